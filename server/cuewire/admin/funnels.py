"""The funnels page of the QA view: ``/qa/funnels`` (HTML, one bar chart per funnel drawn as
SVG here on the server: no script, no chart library) and ``/qa/funnels.json``, both behind
the admin login. ``?site=``, ``?from=`` and ``?to=`` (UTC days, ``YYYY-MM-DD``) choose what
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

from ..clock import Clock
from ..clock import days_between
from ..funnels import FunnelReport, funnel_reports, segment_label
from ..measure import period
from ..measures import measures_of
from ..runtime import Runtime
from ..store.base import Store
from .pages import NO_STORE, pick_site

COLOURS = ("#8a94a6", "#2f6fde", "#1f9d6b", "#c2562b", "#8e44ad", "#b7950b")
BAR_W, GAP, STEP_GAP, HEIGHT, TOP, BOTTOM, LEFT = 34, 4, 24, 220, 24, 46, 8
MIN_GROUP = 150  # room under a step's bars for its name


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


def chart(report: FunnelReport) -> str:
    """The funnel as grouped bars: per step, one bar per segment (all visitors when it has
    no split), each labelled with its visitors and the share of the previous step's."""
    body = report.to_json()
    segments = report.segments() if report.funnel.split else []
    names = segments or ["all"]
    rows = body["segments"]
    steps = body["steps"]
    top = max([max(rows[n]["visitors"], default=0) for n in names] + [1])
    bars = len(names) * (BAR_W + GAP) - GAP
    group = max(bars, MIN_GROUP)
    width = LEFT * 2 + len(steps) * (group + STEP_GAP)
    parts: list[str] = []
    for i, step in enumerate(steps):
        x0 = LEFT + i * (group + STEP_GAP)
        first = x0 + (group - bars) / 2
        for j, name in enumerate(names):
            row = rows[name]
            count, kept = row["visitors"][i], row["from_previous"][i]
            h = round(HEIGHT * count / top)
            x, y = first + j * (BAR_W + GAP), TOP + HEIGHT - h
            tip = f"{segment_label(name) if name != 'all' else 'all visitors'}: {count}"
            if kept is not None:
                tip += f" ({kept:.0%} of step {i})"
            colour = COLOURS[j % len(COLOURS)] if segments else COLOURS[1]
            parts.append(
                f'<rect class="bar" data-step="{i + 1}" data-segment="{escape(name)}" '
                f'data-visitors="{count}" x="{x}" y="{y}" width="{BAR_W}" height="{max(h, 1)}" '
                f'fill="{colour}"><title>{escape(tip)}</title></rect>'
                f'<text x="{x + BAR_W / 2}" y="{y - 5}" text-anchor="middle" '
                f'font-size="11">{count}</text>'
            )
        name = step_name(step)
        label = name if len(name) <= 22 else name[:21] + "…"
        parts.append(
            f'<text x="{x0 + group / 2}" y="{TOP + HEIGHT + 18}" text-anchor="middle" '
            f'font-size="12"><tspan font-weight="bold">{i + 1}.</tspan> {escape(label)}'
            f"<title>{escape(name)}</title></text>"
        )
    height = TOP + HEIGHT + BOTTOM
    title = f"Visitors reaching each step of {report.funnel.id}"
    return (
        f'<svg class="funnel-chart" role="img" aria-label="{escape(title)}" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'xmlns="http://www.w3.org/2000/svg">{"".join(parts)}</svg>'
    )


def legend(report: FunnelReport) -> str:
    if not report.funnel.split:
        return ""
    items = [
        f'<li><span class="swatch" style="background:{COLOURS[j % len(COLOURS)]}"></span>'
        f"{escape(segment_label(name))}</li>"
        for j, name in enumerate(report.segments())
    ]
    return f'<ul class="legend">{"".join(items)}</ul>'


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
        f"{chart(report)}{legend(report)}{table(report)}</section>"
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
<style>
.funnel-chart {{ display: block; max-width: 100%; height: auto; margin: .5rem 0; }}
.legend {{ list-style: none; display: flex; gap: 1rem; padding: 0; margin: 0 0 .5rem; }}
.swatch {{ display: inline-block; width: .8em; height: .8em; margin-right: .3em; }}
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
