"""``/studio``: every template x variant rendered with sample data, live (docs/templates.md).

The page (studio/index.html + studio.js) polls ``api/state`` every 500 ms and mounts each
preview's HTML in its own Shadow DOM host, the way the snippet mounts a prompt. The state
comes from the live runtime: its catalog is the last good one, so after a failed reload the
previews stay (marked stale) and the templates with problems show ``file:line:col: message``.

Previews: each template with its ``sample`` and with each of its sample ``variants``; then
each rule that shows a prompt, once per rule variant, with the rule's own params over the
template's sample visitor, session and event.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route, Router
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp

from ..experiments import arm_shares
from ..render import DEFAULT_SAMPLE, TEMPLATE_SUFFIX, Catalog, PromptTemplate, error_line
from ..rules.model import Rule
from ..runtime import Runtime

STATIC = Path(__file__).resolve().parent / "studio"
PROBLEM = re.compile(r"^(?P<file>.+?):(?P<line>\d+):(?P<col>\d+): (?P<message>.*)$")

# The studio page runs only its own script and styles; prompts get theirs through
# adoptedStyleSheets, which this policy allows, as a site's strict CSP would.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' https: data:; font-src 'self'; form-action 'none'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
HEADERS = {"Content-Security-Policy": CSP, "Cache-Control": "no-store", "X-Frame-Options": "DENY"}


@dataclass(frozen=True)
class Preview:
    key: str  # unique: "template:toast:default", "rule:cart-reminder:b"
    source: str  # "template" or "rule"
    template: str
    variant: str | None
    kind: str
    title: str
    file: str
    html: str | None = None
    error: str | None = None
    rule: str | None = None
    note: str = ""


def _problems(error: str | None) -> dict[str, list[str]]:
    """``file`` -> its problem lines, from a failed reload's ``file:line:col: message`` text."""
    found: dict[str, list[str]] = {}
    for line in (error or "").splitlines():
        match = PROBLEM.match(line)
        if match:
            found.setdefault(match["file"], []).append(line)
    return found


def _render(template: PromptTemplate, context: dict[str, Any]) -> tuple[str | None, str | None]:
    try:
        return template.render(context), None
    except jinja2.TemplateError as exc:
        return None, f"{template.path}:{error_line(exc)}:1: {exc}"


def template_previews(catalog: Catalog) -> list[Preview]:
    out: list[Preview] = []
    for name in catalog.names:
        template = catalog.get(name)
        for variant, context in template.samples.items():
            html, error = _render(template, context)
            label = "sample" if variant == DEFAULT_SAMPLE else f"sample variant: {variant}"
            out.append(
                Preview(
                    key=f"template:{name}:{variant}",
                    source="template",
                    template=name,
                    variant=variant,
                    kind=template.meta.kind,
                    title=label,
                    file=str(template.path),
                    html=html,
                    error=error,
                    note=template.meta.description if variant == DEFAULT_SAMPLE else "",
                )
            )
    return out


def rule_previews(catalog: Catalog, rules: list[Rule]) -> list[Preview]:
    """Each rule that shows a prompt, per variant, as prompts.py renders it for a firing."""
    out: list[Preview] = []
    for rule in rules:
        show = rule.show
        if show is None:
            continue
        arms: list[tuple[str | None, str, dict[str, Any], str]] = [
            (
                v.id if v else None,
                (v.template if v else None) or show.template,
                {**show.params, **(v.params if v else {})},
                f"{share:.0%} of visitors",
            )
            for v, share in arm_shares(show)
        ]
        holdout = f"; holdout {show.holdout:.0%} (recorded, not shown)" if show.holdout else ""
        for variant, name, params, share_text in arms:
            template = catalog.get(name)
            context = {
                **template.samples[DEFAULT_SAMPLE],
                "prompt": {"id": "p_studio", "rule": rule.id, "variant": variant},
                "params": params,
            }
            html, error = _render(template, context)
            out.append(
                Preview(
                    key=f"rule:{rule.id}:{variant or ''}",
                    source="rule",
                    template=name,
                    variant=variant,
                    kind=template.meta.kind,
                    title=f"variant {variant}" if variant else "rule",
                    file=str(template.path),
                    html=html,
                    error=error,
                    rule=rule.id,
                    note=(rule.description or "") + f" [{share_text}{holdout}]",
                )
            )
    return out


def broken_files(catalog: Catalog, problems: dict[str, list[str]]) -> list[Preview]:
    """Template files with problems that have no last good version (new, or renamed)."""
    known = {str(catalog.get(n).path) for n in catalog.names}
    return [
        Preview(
            key=f"template:{Path(file).stem}:{DEFAULT_SAMPLE}",
            source="template",
            template=Path(file).stem,
            variant=DEFAULT_SAMPLE,
            kind="",
            title="sample",
            file=file,
            error="\n".join(lines),
        )
        for file, lines in sorted(problems.items())
        if file.endswith(TEMPLATE_SUFFIX) and file not in known
    ]


class Studio:
    """Builds the studio's state from the runtime, once per (generation, error)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._cache: tuple[str, dict[str, Any]] | None = None

    def version(self) -> str:
        error = self.runtime.last_error
        return f"{self.runtime.generation}-{abs(hash(error)) if error else 0}"

    def state(self) -> dict[str, Any]:
        version = self.version()
        if self._cache is not None and self._cache[0] == version:
            return self._cache[1]
        runtime = self.runtime
        catalog = runtime.catalog()
        error = runtime.last_error
        problems = _problems(error)
        previews = template_previews(catalog)
        previews += broken_files(catalog, problems)
        previews += rule_previews(catalog, list(runtime.engine().rules.rules.values()))
        items = []
        for p in previews:
            item = asdict(p)
            item["problems"] = "\n".join(problems.get(p.file, [])) or None
            item["stale"] = error is not None
            items.append(item)
        state = {
            "version": version,
            "generation": runtime.generation,
            "error": error,
            "templates_dir": str(runtime.templates_dir),
            "rules_dir": str(runtime.rules_dir),
            "previews": items,
        }
        self._cache = (version, state)
        return state


def studio_app(runtime: Runtime) -> ASGIApp:
    """The studio as an ASGI app; mount it behind :class:`~cuewire.admin.auth.AdminAuth`."""
    studio = Studio(runtime)

    async def page(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers=HEADERS)

    async def state(request: Request) -> Response:
        version = studio.version()
        if request.query_params.get("v") == version:
            return JSONResponse({"version": version, "unchanged": True}, headers=HEADERS)
        return JSONResponse(studio.state(), headers=HEADERS)

    return Router(
        routes=[
            Route("/", page),
            Route("/api/state", state),
            Mount("/static", StaticFiles(directory=STATIC)),
        ]
    )


def studio_routes(runtime: Runtime, guard: Callable[[ASGIApp], ASGIApp]) -> list[Route | Mount]:
    """``/studio`` (redirects to ``/studio/``, which relative URLs of the page need) and the
    studio itself behind ``guard`` (the admin login). A catch-all mount at ``/`` (the demo
    shop) would otherwise answer ``/studio`` with a 404."""

    async def to_slash(request: Request) -> Response:
        return RedirectResponse(request.url.replace(path=request.url.path + "/"))

    return [Route("/studio", to_slash), Mount("/studio", guard(studio_app(runtime)))]
