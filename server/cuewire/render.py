"""Prompt templates: a sandboxed, autoescaped, strict Jinja2 catalog (docs/templates.md).

A template file is front matter (YAML in a leading ``{#--- ... ---#}`` comment: kind, default
position, sample data, sample variants) followed by Jinja2 markup with its ``<style>``.

Loading checks every template the way ``cuewire check`` reports it, as ``file:line:col``:
syntax, metadata, sample data shaped like the real context, variables no context provides,
and three renders: the sample, each sample variant, and a bare context (no traits, props or
params, as when a timer fires for a visitor nothing is known about).

Rendering is pure: data in, HTML out. It never reads the store.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Generic, Literal, TypeVar

import jinja2
import jinja2.meta
import jinja2.nodes
import msgspec
import yaml
from msgspec import Meta

from .errors import Problem, TemplateError
from .facts import path_of
from .filters import FILTERS
from .protocol import Kind
from .render_cache import Inputs, RenderCache, inputs_of
from .rules.model import duration_ms
from .sandbox import Sandbox
from .sources import YamlDoc, yaml_problem
from .template_reads import ALL, TemplateReads, reads_of, union

T = TypeVar("T")
M = TypeVar("M")
FRONT_MATTER = re.compile(r"\A\{#---\n(.*?)\n---#\}", re.S)
TEMPLATE_SUFFIX = ".html"
DEFAULT_SAMPLE = "default"
CONTEXT_NAMES = ("prompt", "params", "visitor", "session", "event")
BARE = (
    "rendering with no data (no params, traits or event props, as for a visitor nothing is "
    "known about): give optional values a default, e.g. params.get('title', 'Hello')"
)

Position = Literal[
    "center", "top", "bottom", "top-left", "top-right", "bottom-left", "bottom-right"
]


# How long a prompt of each kind stays when nobody attends to it, unless its template says
# (``dismiss_after``). A modal waits for the visitor; a banner is an announcement for the page.
DISMISS_AFTER_MS: dict[str, int] = {
    "modal": 0,
    "banner": 0,
    "toast": 12_000,
    "slidein": 30_000,
    "chat": 45_000,
}
DismissAfter = (
    Annotated[str, Meta(pattern=r"^(never|\d+(\.\d+)?\s*(ms|s|m|h))$")]
    | Annotated[float, Meta(ge=0)]
)


class TemplateMeta(msgspec.Struct, forbid_unknown_fields=True):
    kind: Kind
    description: str = ""
    position: Position | None = None  # the default of params.position
    # Close by itself after this long unattended: "12s", "1m", seconds, or "never" / 0.
    dismiss_after: DismissAfter | None = None
    sample: dict[str, Any] = {}
    variants: dict[str, dict[str, Any]] = {}  # name -> overrides of `sample`, for previews

    def __post_init__(self) -> None:
        if self.kind == "modal" and self.dismiss_after_ms:
            raise ValueError(
                "a modal waits for the visitor: remove dismiss_after (toasts, banners, "
                "slide-ins and chats can close by themselves)"
            )

    @property
    def dismiss_after_ms(self) -> int:
        """How long the prompt stays unattended; 0 for as long as it takes."""
        value = self.dismiss_after
        if value is None:
            return DISMISS_AFTER_MS[self.kind]
        if value == "never":
            return 0
        return duration_ms(value)


# What templates see (prompts.py builds it from rules/facts_view.py). Samples are checked
# against these shapes, and what a sample leaves out gets the values of an unknown visitor.
class SamplePrompt(msgspec.Struct, forbid_unknown_fields=True):
    id: str = "p_sample"
    rule: str = "sample"
    variant: str | None = None


class SampleVisitor(msgspec.Struct, forbid_unknown_fields=True):
    returning: bool = False
    sessions: int = 1
    traits: dict[str, Any] = {}


class SampleSession(msgspec.Struct, forbid_unknown_fields=True):
    url: str = "http://localhost/"
    path: str | None = None  # from url when left out
    pages: int = 1
    last: dict[str, dict[str, Any]] = {}


class SampleContext(msgspec.Struct, forbid_unknown_fields=True):
    prompt: SamplePrompt = msgspec.field(default_factory=SamplePrompt)
    params: dict[str, Any] = {}
    visitor: SampleVisitor = msgspec.field(default_factory=SampleVisitor)
    session: SampleSession = msgspec.field(default_factory=SampleSession)
    event: dict[str, Any] = {}


class RenderFailed(jinja2.TemplateRuntimeError):
    """A template raised something other than a Jinja error (a TypeError on bad data...)."""


def make_environment() -> Sandbox:
    """Sandboxed (no private attributes, no mutation of data), autoescaped, strict."""
    env = Sandbox(
        autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True
    )
    env.filters.update(FILTERS)
    return env


@dataclass(frozen=True)
class PromptTemplate:
    name: str
    path: Path
    meta: TemplateMeta
    compiled: jinja2.Template
    samples: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> full context
    reads: TemplateReads = ALL  # the traits and custom events' props it reads
    inputs: Inputs | None = None  # what its text depends on (render_cache.py); None: more

    def render(self, context: dict[str, Any]) -> str:
        """Render; any failure is a :class:`jinja2.TemplateError` (line in its traceback)."""
        params = context.get("params")
        if self.meta.position and isinstance(params, dict) and "position" not in params:
            context = {**context, "params": {**params, "position": self.meta.position}}
        with render_failures():
            return self.compiled.render(context)


@contextlib.contextmanager
def render_failures() -> Iterator[None]:
    """Let Jinja errors through; turn anything else a render raises into RenderFailed."""
    try:
        yield
    except jinja2.TemplateError:
        raise
    except Exception as exc:
        raise RenderFailed(f"{type(exc).__name__}: {exc}") from exc


class Named(Generic[T]):
    """The templates of one folder, by name (the file name without its suffix)."""

    def __init__(self, templates: dict[str, T]) -> None:
        self._templates = templates

    @property
    def names(self) -> list[str]:
        return sorted(self._templates)

    def get(self, name: str) -> T:
        return self._templates[name]

    def __len__(self) -> int:
        return len(self._templates)


def load_folder(folder: Path, load_one: Callable[[Path], T | Problem]) -> dict[str, T]:
    """``load_one`` on every ``*.html`` of ``folder`` (none when it does not exist), by name;
    raise :class:`TemplateError` listing every problem."""
    problems: list[Problem] = []
    templates: dict[str, T] = {}
    for path in sorted(folder.glob(f"*{TEMPLATE_SUFFIX}")) if folder.is_dir() else []:
        result = load_one(path)
        if isinstance(result, Problem):
            problems.append(result)
        else:
            templates[path.stem] = result
    if problems:
        raise TemplateError(problems)
    return templates


class Catalog(Named[PromptTemplate]):
    """The prompt templates of one folder, and the texts they rendered (render_cache.py)."""

    def __init__(self, templates: dict[str, PromptTemplate]) -> None:
        super().__init__(templates)
        self.rendered = RenderCache()

    def render(self, name: str, context: dict[str, Any]) -> str:
        """``name`` rendered with ``context``: the text rendered before from the same inputs,
        or rendered now."""
        template = self._templates[name]
        inputs = template.inputs
        key = None if inputs is None else self.rendered.key(name, inputs, context)
        if key is None:
            return template.render(context)
        text = self.rendered.get(key)
        if text is None:
            text = template.render(context)
            self.rendered.keep(key, text)
        return text

    def reads(self) -> TemplateReads:
        """The traits and custom events' props the templates read (template_reads.py)."""
        return union(t.reads for t in self._templates.values())

    @classmethod
    def load(cls, folder: Path) -> Catalog:
        """Compile and check every template; raise :class:`TemplateError` listing all problems."""
        return cls(load_folder(folder, _load_one))


def full_context(sample: dict[str, Any]) -> dict[str, Any]:
    """``sample`` checked against the context's shape, with what it leaves out filled in.
    Raises msgspec.ValidationError."""
    context: dict[str, Any] = msgspec.to_builtins(msgspec.convert(sample, SampleContext))
    session = context["session"]
    if session["path"] is None:
        session["path"] = path_of(session["url"])
    return context


def merged(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``overrides`` applied: nested maps merge key by key, an empty map clears
    (``traits: {}``), anything else replaces."""
    out = dict(base)
    for key, value in overrides.items():
        old = out.get(key)
        if isinstance(old, dict) and isinstance(value, dict) and value:
            out[key] = merged(old, value)
        else:
            out[key] = value
    return out


def front_matter(
    path: Path, source: str, shape: type[M], first: str
) -> tuple[YamlDoc, M] | Problem:
    """The file's front matter, read and checked against ``shape`` (``first``: the key the
    error message suggests starting with)."""
    front = FRONT_MATTER.match(source)
    if not front:
        return Problem(
            path, 1, 1, f"missing metadata: start the file with {{#--- and a line `{first}: ...`"
        )
    try:
        doc = YamlDoc(path, front.group(1))
    except yaml.YAMLError as exc:  # front matter starts on the file's second line
        return yaml_problem(path, front.group(1), exc, "invalid metadata YAML", first_line=2)
    try:
        return doc, msgspec.convert(doc.data, shape)
    except msgspec.ValidationError as exc:
        return shifted(doc.validation_problem(exc))


def _load_one(path: Path) -> PromptTemplate | Problem:
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return Problem(path, 1, 1, f"cannot read: {exc}")
    return _compiled(path, source)


# Templates by file and text, compiled and checked once per process: a folder loaded again (a
# hot reload, a worker's restart, each test's server) compiles only the files that changed
# (a fifth of a second for the shipped ones). A loaded template is never changed.
@lru_cache(maxsize=512)
def _compiled(path: Path, source: str) -> PromptTemplate | Problem:
    env = make_environment()
    found = front_matter(path, source, TemplateMeta, "kind")
    if isinstance(found, Problem):
        return found
    doc, meta = found
    try:
        ast = env.parse(source)
        compiled = env.from_string(ast)
    except jinja2.TemplateSyntaxError as exc:
        return Problem(path, exc.lineno, 1, exc.message or "template syntax error")
    unknown = unknown_variable(ast)
    if unknown is not None:
        name, line = unknown
        known = ", ".join(CONTEXT_NAMES)
        return Problem(path, line, 1, f"'{name}' is undefined: templates see {known}")
    if DEFAULT_SAMPLE in meta.variants:
        return shifted(doc.problem(["variants"], f"the variant name {DEFAULT_SAMPLE!r} is taken"))
    template = PromptTemplate(
        path.stem, path, meta, compiled, reads=reads_of(ast), inputs=inputs_of(ast, CONTEXT_NAMES)
    )
    checks = [(DEFAULT_SAMPLE, ["sample"], meta.sample, "rendering the sample data")]
    checks += [
        (name, ["variants", name], merged(meta.sample, v), f"rendering variant {name!r}")
        for name, v in meta.variants.items()
    ]
    for name, where, sample, doing in checks:
        try:
            context = full_context(sample)
        except msgspec.ValidationError as exc:
            return shifted(sample_problem(doc, where, exc))
        problem = _try_render(template, context, doing)
        if problem is not None:
            return problem
        template.samples[name] = context
    return _try_render(template, full_context({}), BARE) or template


def _try_render(template: PromptTemplate, context: dict[str, Any], doing: str) -> Problem | None:
    try:
        template.render(context)
    except jinja2.TemplateError as exc:
        return Problem(template.path, error_line(exc), 1, f"{doing}: {exc}")
    return None


def unknown_variable(
    ast: jinja2.nodes.Template, known: tuple[str, ...] = CONTEXT_NAMES
) -> tuple[str, int] | None:
    """The first variable no context provides (``known``: the names it does), and its line."""
    names = jinja2.meta.find_undeclared_variables(ast) - set(known)
    # A name set in some branches only ({% if %}{% set x %}...) counts as undeclared for
    # Jinja; leave those to the sample renders, which fail when a branch leaves it unset.
    names -= {n.name for n in ast.find_all(jinja2.nodes.Name) if n.ctx in ("store", "param")}
    if not names:
        return None
    found = [
        (node.lineno, node.name)
        for node in ast.find_all(jinja2.nodes.Name)
        if node.ctx == "load" and node.name in names
    ]
    line, name = min(found) if found else (1, sorted(names)[0])
    return name, line


def sample_problem(doc: YamlDoc, where: list[str], exc: msgspec.ValidationError) -> Problem:
    """A sample shape error, placed at the field of the sample (or variant) it came from."""
    prefix = "$." + ".".join(str(p) for p in where)
    text = str(exc)
    text = (
        text.replace(" - at `$", f" - at `{prefix}", 1)
        if " - at `$" in text
        else f"{text} - at `{prefix}`"
    )
    problem = doc.validation_problem(msgspec.ValidationError(text))
    message = problem.message.replace("Object contains unknown field", "unknown field")
    if where[0] == "variants":
        message += " (in the sample merged with this variant)"
    return Problem(problem.path, problem.line, problem.col, message)


def shifted(problem: Problem) -> Problem:
    """Front-matter lines start on the file's second line."""
    return Problem(problem.path, problem.line + 1, problem.col, problem.message)


def error_line(exc: BaseException) -> int:
    """The template line a render-time error came from (Jinja keeps it in the traceback)."""
    current: BaseException | None = exc
    while current is not None:
        line = 0
        tb = current.__traceback__
        while tb is not None:
            if tb.tb_frame.f_code.co_filename == "<template>":
                line = tb.tb_lineno
            tb = tb.tb_next
        if line:
            return line
        current = current.__cause__
    return 1
