"""Prompt templates: a sandboxed, autoescaped, strict Jinja2 catalog (docs/templates.md).

Rendering is pure: data in, HTML out. It never reads the store.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import msgspec
import yaml
from jinja2.sandbox import SandboxedEnvironment

from .errors import Problem, TemplateError
from .protocol import Kind

FRONT_MATTER = re.compile(r"\A\{#---\n(.*?)\n---#\}", re.S)
TEMPLATE_SUFFIX = ".html"


class TemplateMeta(msgspec.Struct, forbid_unknown_fields=True):
    kind: Kind
    description: str = ""
    sample: dict[str, Any] = {}


@dataclass(frozen=True)
class PromptTemplate:
    name: str
    path: Path
    meta: TemplateMeta
    compiled: jinja2.Template


def make_environment() -> SandboxedEnvironment:
    return SandboxedEnvironment(
        autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True
    )


class Catalog:
    """The templates of one folder, by name (the file name without ``.html``)."""

    def __init__(self, templates: dict[str, PromptTemplate]) -> None:
        self._templates = templates

    @property
    def names(self) -> list[str]:
        return sorted(self._templates)

    def get(self, name: str) -> PromptTemplate:
        return self._templates[name]

    def render(self, name: str, context: dict[str, Any]) -> str:
        return self._templates[name].compiled.render(context)

    def __len__(self) -> int:
        return len(self._templates)

    @classmethod
    def load(cls, folder: Path) -> Catalog:
        """Compile every template and render it with its sample; raise listing all problems."""
        env = make_environment()
        problems: list[Problem] = []
        templates: dict[str, PromptTemplate] = {}
        paths = sorted(folder.glob(f"*{TEMPLATE_SUFFIX}")) if folder.is_dir() else []
        for path in paths:
            result = _load_one(env, path)
            if isinstance(result, Problem):
                problems.append(result)
            else:
                templates[result.name] = result
        if problems:
            raise TemplateError(problems)
        return cls(templates)


def _load_one(env: SandboxedEnvironment, path: Path) -> PromptTemplate | Problem:
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return Problem(path, 1, 1, f"cannot read: {exc}")
    front = FRONT_MATTER.match(source)
    if not front:
        return Problem(path, 1, 1, "missing metadata: start the file with {#--- kind: ... ---#}")
    try:
        meta = msgspec.convert(yaml.safe_load(front.group(1)), TemplateMeta)
    except yaml.MarkedYAMLError as exc:
        line = (exc.problem_mark.line + 2) if exc.problem_mark else 1
        return Problem(path, line, 1, f"invalid metadata YAML: {exc.problem}")
    except msgspec.ValidationError as exc:
        return Problem(path, 2, 1, f"metadata: {exc}")
    try:
        compiled = env.from_string(source)
    except jinja2.TemplateSyntaxError as exc:
        return Problem(path, exc.lineno, 1, exc.message or "template syntax error")
    try:
        compiled.render(meta.sample)
    except jinja2.TemplateError as exc:
        return Problem(path, _error_line(exc), 1, f"rendering the sample data: {exc}")
    return PromptTemplate(path.stem, path, meta, compiled)


def _error_line(exc: BaseException) -> int:
    """The template line a render-time error came from (Jinja keeps it in the traceback)."""
    tb = exc.__traceback__
    line = 1
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line
