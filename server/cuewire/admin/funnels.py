"""The funnels page of the QA view: ``/qa/funnels`` (HTML: one table per funnel written here,
and its bars drawn in the browser with Observable Plot from ``/qa/funnels.json`` by
``qa_static/funnels.js``; without script the tables stay) and ``/qa/funnels.json``, both
behind the admin login. ``?site=``, ``?from=`` and ``?to=`` (UTC days, ``YYYY-MM-DD``) choose what
is read; the last 30 days by default (docs/funnels.md)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from html import escape
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, request_response
from starlette.types import ASGIApp

from ..clock import Clock, days_between
from ..funnels import FunnelReport, funnel_reports
from ..measure import period
from ..measures import measures_of
from ..runtime import Runtime
from ..store.base import Store
from .pages import NO_STORE, pick_site


def funnel_routes(
    store: Store,
    runtime: Runtime,
    clock: Clock,
    sites: Iterable[str],
    admin: Callable[[ASGIApp], ASGIApp],
) -> list[Route]:
    """``/qa/funnels`` and ``/qa/funnels.json``, each wrapped in ``admin`` (AdminAuth)."""
    known = sorted(sites)

    async def read(request: Request) -> tuple[str, list[FunnelReport]]:
        site = pick_site(known, request.query_params.get("site"))
        query = request.query_params
        first, last = period(clock.now_ms(), query.get("from") or None, query.get("to") or None)
        funnels = measures_of(runtime.engine().rules).funnels
        counters = await store.counters(site, days_between(first, last))
        return site, funnel_reports(funnels, counters, first, last)

    async def as_json(request: Request) -> Response:
        try:
            site, reports = await read(request)
        except ValueError as exc:
            return PlainTextResponse(f"bad window: {exc}", status_code=400)
        body = {"site": site, "sites": known, "funnels": [r.to_json() for r in reports]}
        return JSONResponse(body, headers=NO_STORE)

    async def page(request: Request) -> Response:
        try:
            site, reports = await read(request)
        except ValueError as exc:
            return PlainTextResponse(f"bad window: {exc}", status_code=400)
        return HTMLResponse(render_page(site, known, reports), headers=NO_STORE)

    def route(path: str, endpoint: Callable[[Request], Any]) -> Route:
        return Route(path, admin(request_response(endpoint)))

    return [route("/qa/funnels", page), route("/qa/funnels.json", as_json)]


def step_name(step: dict[str, Any]) -> str:
    name = f" {step['name']}" if "name" in step else ""
    return f"{step['type']}{name}{' (where …)' if 'where' in step else ''}"


def table(report: FunnelReport) -> str:
    body = report.to_json()
    names = ["all", *report.segments()] if report.funnel.split else ["all"]
    head = "".join(f"<th scope='col'>{escape(body['segments'][n]['label'])}</th>" for n in names)
    rows = []
    for i, step in enumerate(body["steps"]):
        cells = []
        for n in names:
            row = body["segments"][n]
            kept = row["from_previous"][i]
            share = f" <span class='muted'>({kept:.0%})</span>" if kept is not None else ""
            cells.append(f"<td>{row['visitors'][i]}{share}</td>")
        name = escape(f"{i + 1}. {step_name(step)}")
        rows.append(f"<tr><th scope='row'>{name}</th>{''.join(cells)}</tr>")
    return (
        f"<table class='funnel-table'><thead><tr><th>Step</th>{head}</tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def section(report: FunnelReport) -> str:
    f = report.funnel
    split = (
        f"split by exposure to <span class='mono'>{escape(f.split)}</span> at entry"
        if f.split
        else "not split"
    )
    within = f"within {escape(str(f.within))}" if f.within is not None else "no time limit"
    described = f"<p>{escape(f.description)}</p>" if f.description else ""
    return (
        f"<section class='panel funnel' data-funnel='{escape(f.id)}' aria-label='{escape(f.id)}'>"
        f"<h2>{escape(f.id)}</h2>{described}<p class='goal'>{within}; {split}</p>"
        f"{table(report)}</section>"
    )


def render_page(site: str, sites: list[str], reports: list[FunnelReport]) -> str:
    options = "".join(
        f"<option value='{escape(s)}'{' selected' if s == site else ''}>{escape(s)}</option>"
        for s in sites
    )
    first, last = (reports[0].first, reports[0].last) if reports else ("", "")
    json_link = "/qa/funnels.json?" + urlencode({"site": site, "from": first, "to": last})
    sections = "".join(section(r) for r in reports) or (
        "<section class='panel'><p>No funnel is defined: add <span class='mono'>funnels:</span> "
        "to a rule file (docs/funnels.md).</p></section>"
    )
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Funnels · Cuewire QA</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/qa/static/qa.css">
<script type="module" src="/qa/static/funnels.js"></script>
<style>
.funnel-chart {{ display: block; max-width: 100%; height: auto; margin: .5rem 0; }}
.funnel-table td, .funnel-table th {{ padding: .2rem .6rem; text-align: right; }}
.funnel-table th[scope=row] {{ text-align: left; }}
</style>
</head>
<body>
<header class="bar">
  <h1><span class="logo" aria-hidden="true">◆</span> Cuewire <span class="muted">QA</span></h1>
  <nav aria-label="Admin">
    <a href="/qa">Live</a>
    <a href="/qa/metrics">Metrics</a>
    <a href="/qa/funnels" aria-current="page">Funnels</a>
  </nav>
  <form class="site" method="get" action="/qa/funnels">
    <label>Site <select name="site">{options}</select></label>
    <label>From <input type="date" name="from" value="{escape(first)}"></label>
    <label>To <input type="date" name="to" value="{escape(last)}"></label>
    <button type="submit">Show</button>
  </form>
</header>
<main class="metrics">
  <section class="panel">
    <h2 style="font-family:inherit">Where visitors drop off</h2>
    <p class="goal">Per step, the visitors who reached it in order, counted per UTC day as it
      happens ({escape(first)} to {escape(last)}); in brackets, the share of the step before.
      A funnel split by a rule compares the visitors exposed to its prompt (per variant) when
      they entered with those who were not. <a href="{escape(json_link)}">JSON</a></p>
  </section>
  {sections}
</main>
</body>
</html>
"""
