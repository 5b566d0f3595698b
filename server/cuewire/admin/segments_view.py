"""What the learned models are, for the admin (mounted by admin/qa.py behind AdminAuth):

    GET /qa/segments.json     the live segments and propensity models: ids, sizes, centroids
    GET /qa/segments          the same as a page (server-rendered, every value escaped)

Centroids are shown in the features' own units (the scaler undone) beside their distinctive
z-scores, so "many products" reads as the number of products it means. Beside each segment's
size at training: the visitors the server assigned to it (learn/assigned.py) on the site
``?site=`` over the UTC days ``?from=`` to ``?to=`` (the last 30 by default), and per day.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jinja2 import Environment
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from ..clock import Clock, days_between
from ..counters import segment_sizes
from ..learn.features import NAMES
from ..learn.models import Models
from ..measure import period
from ..runtime import Runtime
from ..store.base import Store
from .pages import NO_STORE, pick_site


@dataclass(frozen=True)
class Live:
    """The site's counters (day -> field -> count, ``Store.counters``) over ``first``..``last``."""

    site: str
    sites: list[str]
    first: str
    last: str
    counters: dict[str, dict[str, int]]


def describe(models: Models, live: Live | None = None) -> dict[str, Any]:
    """The models as JSON: segments with their size at training and centroid in feature units,
    and (with ``live``) the visitors the server assigned to each in the window, in all and per
    day; the propensity model's target, held-out AUC and coefficients."""
    body: dict[str, Any] = {"model": models.version, "features": list(NAMES)}
    if live is not None:
        body["live"] = {"site": live.site, "sites": live.sites, "from": live.first}
        body["live"]["to"] = live.last
    if models.segments is not None:
        spec = models.segments.spec
        mean, scale = spec.scaler.mean, spec.scaler.scale
        counters = live.counters if live else {}
        assigned = segment_sizes(counters, spec.id)
        per_day = {
            day: sizes
            for day in sorted(counters)
            if (sizes := segment_sizes({day: counters[day]}, spec.id))
        }
        total = max(1, sum(assigned.values()))
        body["segments"] = {
            "id": spec.id,
            "metrics": spec.metrics,
            "assigned_per_day": per_day,
            "segments": [
                {
                    "name": s.name,
                    "size": s.size,
                    "share": round(s.size / max(1, sum(x.size for x in spec.segments)), 4),
                    "assigned": assigned.get(s.name, 0),
                    "assigned_share": round(assigned.get(s.name, 0) / total, 4),
                    "centroid": {
                        name: round(m + z * d, 3)
                        for name, m, z, d in zip(NAMES, mean, s.centroid, scale, strict=True)
                    },
                    "distinctive": s.distinctive,
                }
                for s in spec.segments
            ],
        }
    if models.propensity is not None:
        p = models.propensity.spec
        body["propensity"] = {
            "id": p.id,
            "target": p.target,
            "metrics": p.metrics,
            "coef": dict(zip(NAMES, p.coef, strict=True)),
            "intercept": p.intercept,
        }
    return body


PAGE = Environment(autoescape=True).from_string(
    """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Segments · Cuewire QA</title>
<link rel="icon" href="data:,"><link rel="stylesheet" href="/qa/static/qa.css"></head>
<body><header class="bar"><h1>Cuewire <span class="muted">QA</span></h1>
<nav aria-label="Admin"><a href="/qa">Live</a> <a href="/qa/metrics">Metrics</a>
<a href="/qa/segments" aria-current="page">Segments</a></nav></header>
<main class="metrics">
{% if not m.segments and not m.propensity %}
<section class="panel"><p>No learned model is loaded (docs/learning.md).</p></section>
{% endif %}
{% if m.segments %}<section class="panel" id="segments">
<h2>Segments <span class="muted mono">{{ m.segments.id }}</span></h2>
{% if m.live %}<form method="get" action="/qa/segments"><label>site <select name="site">
{% for x in m.live.sites %}<option{% if x == m.live.site %} selected{% endif %}>{{ x }}</option>
{% endfor %}</select></label> <label>from <input name="from" value="{{ m.live.from }}"></label>
<label>to <input name="to" value="{{ m.live.to }}"></label> <button>Show</button></form>{% endif %}
<table><thead><tr><th>segment</th><th>sessions at training</th><th>share</th>
{% if m.live %}<th>visitors assigned live, {{ m.live.from }} to {{ m.live.to }} (UTC)</th>
<th>live share</th>{% endif %}
{% for f in m.features %}<th>{{ f }}</th>{% endfor %}</tr></thead><tbody>
{% for s in m.segments.segments %}<tr><th>{{ s.name }}</th><td>{{ s.size }}</td>
<td>{{ "%.1f"|format(s.share * 100) }} %</td>
{% if m.live %}<td class="assigned">{{ s.assigned }}</td>
<td>{{ "%.1f"|format(s.assigned_share * 100) }} %</td>{% endif %}
{% for f in m.features %}<td>{{ s.centroid[f] }}</td>{% endfor %}</tr>{% endfor %}
</tbody></table>
{% if m.segments.assigned_per_day %}<h3>Visitors assigned per UTC day</h3>
<table id="assigned-per-day"><thead><tr><th>day</th>
{% for s in m.segments.segments %}<th>{{ s.name }}</th>{% endfor %}</tr></thead><tbody>
{% for day, sizes in m.segments.assigned_per_day.items() %}<tr><th>{{ day }}</th>
{% for s in m.segments.segments %}<td>{{ sizes.get(s.name, 0) }}</td>{% endfor %}</tr>
{% endfor %}</tbody></table>{% endif %}
</section>{% endif %}
{% if m.propensity %}<section class="panel" id="propensity">
<h2>Propensity: {{ m.propensity.target }} <span class="muted mono">{{ m.propensity.id }}</span></h2>
<p>AUC on held-out sessions: {{ m.propensity.metrics.auc }} (constant baseline
{{ m.propensity.metrics.baseline_auc }})</p>
<table><tbody>{% for f, c in m.propensity.coef.items() %}<tr><th>{{ f }}</th><td>{{ c }}</td></tr>
{% endfor %}</tbody></table></section>{% endif %}
</main></body></html>"""
)


def segment_routes(
    runtime: Runtime,
    store: Store,
    clock: Clock,
    sites: list[str],
    route: Callable[[str, Callable[[Request], Any]], Route],
) -> list[Route]:
    """The routes, each made by ``route`` (qa.py's, which puts them behind the admin auth)."""

    async def read(request: Request) -> dict[str, Any]:
        query = request.query_params
        site = pick_site(sites, query.get("site"))
        first, last = period(clock.now_ms(), query.get("from") or None, query.get("to") or None)
        counters = await store.counters(site, days_between(first, last))
        return describe(runtime.engine().rules.models, Live(site, sites, first, last, counters))

    async def as_json(request: Request) -> Response:
        try:
            body = await read(request)
        except ValueError as exc:
            return PlainTextResponse(f"bad window: {exc}", status_code=400)
        return JSONResponse(body, headers=NO_STORE)

    async def page(request: Request) -> Response:
        try:
            body = await read(request)
        except ValueError as exc:
            return PlainTextResponse(f"bad window: {exc}", status_code=400)
        return HTMLResponse(PAGE.render(m=body), headers=NO_STORE)

    return [route("/qa/segments.json", as_json), route("/qa/segments", page)]
