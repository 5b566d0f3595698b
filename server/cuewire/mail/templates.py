"""Email templates: ``templates/email/<name>.html`` (front matter with the subject, then the
HTML part with its ``<style>``) and ``<name>.txt`` (the text part), docs/templates.md "Email
templates".

Both parts and the subject render in Jinja2's immutable sandbox with strict undefined, as
prompt templates do (render.py); the HTML part autoescapes, the text part and the subject
print plain text (nothing there is ever read as markup). The HTML part's CSS is then inlined
into ``style`` attributes (css-inline, remote stylesheets never loaded), since mail clients
drop ``<style>``. Loading renders each template with its sample and with no data, and
reports every problem as ``file:line:col``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import css_inline
import jinja2
import msgspec

from ..errors import Problem
from ..filters import FILTERS
from ..render import (
    Named,
    error_line,
    front_matter,
    full_context,
    load_folder,
    make_environment,
    render_failures,
    sample_problem,
    shifted,
    unknown_variable,
)
from ..sandbox import Sandbox

CONTEXT_NAMES = ("email", "params", "visitor", "session", "event")
SAMPLE_EMAIL = {
    "id": "m_sample",
    "rule": "sample",
    "to": "ada@example.com",
    "unsubscribe_url": "http://localhost/email/unsubscribe?t=sample",
}
# Headers cannot hold line breaks; a subject is one line of at most this many characters.
MAX_SUBJECT = 200


class EmailMeta(msgspec.Struct, forbid_unknown_fields=True):
    subject: str  # Jinja, rendered as plain text
    description: str = ""
    sample: dict[str, Any] = {}


@dataclass(frozen=True)
class Rendered:
    subject: str
    html: str  # CSS inlined
    text: str


def _text_environment() -> Sandbox:
    """The sandbox of prompt templates without autoescape: for the text part and subject."""
    env = Sandbox(autoescape=False, undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    env.filters.update(FILTERS)
    return env


_INLINER = css_inline.CSSInliner(load_remote_stylesheets=False)


@dataclass(frozen=True)
class EmailTemplate:
    name: str
    path: Path
    meta: EmailMeta
    subject: jinja2.Template
    html: jinja2.Template
    text: jinja2.Template

    def render(self, context: dict[str, Any]) -> Rendered:
        """Render all three; any failure is a :class:`jinja2.TemplateError`."""
        with render_failures():
            subject = " ".join(self.subject.render(context).split())[:MAX_SUBJECT]
            html = _INLINER.inline(self.html.render(context))
            text = self.text.render(context)
        return Rendered(subject, html, text)


class EmailCatalog(Named[EmailTemplate]):
    """The email templates of one folder (``templates/email/``)."""

    @classmethod
    def load(cls, folder: Path) -> EmailCatalog:
        """Compile and check every ``*.html`` with its ``.txt``; raise TemplateError."""
        html_env, text_env = make_environment(), _text_environment()
        return cls(load_folder(folder, lambda path: _load_one(html_env, text_env, path)))


def context_of(sample: dict[str, Any], email: dict[str, Any]) -> dict[str, Any]:
    """A full email context: ``sample`` (shaped as a prompt's) with ``email`` beside it."""
    context = full_context(sample)
    context.pop("prompt", None)
    context["email"] = email
    return context


def _load_one(html_env: Sandbox, text_env: Sandbox, path: Path) -> EmailTemplate | Problem:
    text_path = path.with_suffix(".txt")
    try:
        source = path.read_text(encoding="utf-8")
        text_source = text_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Problem(path, 1, 1, f"missing the text part {text_path.name} beside it")
    except (OSError, UnicodeDecodeError) as exc:
        return Problem(path, 1, 1, f"cannot read: {exc}")
    found = front_matter(path, source, EmailMeta, "subject")
    if isinstance(found, Problem):
        return found
    doc, meta = found
    parts: list[jinja2.Template] = []
    for env, where, text in (
        (text_env, path, meta.subject),
        (html_env, path, source),
        (text_env, text_path, text_source),
    ):
        try:
            ast = env.parse(text)
            parts.append(env.from_string(ast))
        except jinja2.TemplateSyntaxError as exc:
            return Problem(
                where, exc.lineno if text is not meta.subject else 2, 1, exc.message or ""
            )
        unknown = unknown_variable(ast, CONTEXT_NAMES)
        if unknown is not None:
            name, line = unknown
            known = ", ".join(CONTEXT_NAMES)
            return Problem(where, line, 1, f"'{name}' is undefined: email templates see {known}")
    template = EmailTemplate(path.stem, path, meta, *parts)
    try:
        sample = context_of(meta.sample, SAMPLE_EMAIL)
    except msgspec.ValidationError as exc:
        return shifted(sample_problem(doc, ["sample"], exc))
    for context, doing in (
        (sample, "rendering the sample data"),
        (context_of({}, SAMPLE_EMAIL), "rendering with no data"),
    ):
        try:
            template.render(context)
        except jinja2.TemplateError as exc:
            return Problem(path, error_line(exc), 1, f"{doing}: {exc}")
    return template
