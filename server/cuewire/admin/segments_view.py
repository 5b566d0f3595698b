"""What the learned models are, for the admin (mounted by admin/qa.py behind AdminAuth):

    GET /qa/segments.json     the live segments and propensity models: ids, sizes, centroids
    GET /qa/segments          the same as a page (server-rendered, every value escaped)

Centroids are shown in the features' own units (the scaler undone) beside their distinctive
z-scores, so "many products" reads as the number of products it means.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jinja2 import Environment
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from ..learn.features import NAMES
from ..learn.models import Models
from ..runtime import Runtime
from .pages import NO_STORE


def describe(models: Models) -> dict[str, Any]:
    """The models as JSON: segments with their size at training and centroid in feature units,
    the propensity model's target, held-out AUC and coefficients."""
    body: dict[str, Any] = {"model": models.version, "features": list(NAMES)}
    if models.segments is not None:
        spec = models.segments.spec
        mean, scale = spec.scaler.mean, spec.scaler.scale
        body["segments"] = {
            "id": spec.id,
            "metrics": spec.metrics,
            "segments": [
                {
                    "name": s.name,
                    "size": s.size,
                    "share": round(s.size / max(1, sum(x.size for x in spec.segments)), 4),
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
<table><thead><tr><th>segment</th><th>sessions at training</th><th>share</th>
{% for f in m.features %}<th>{{ f }}</th>{% endfor %}</tr></thead><tbody>
{% for s in m.segments.segments %}<tr><th>{{ s.name }}</th><td>{{ s.size }}</td>
<td>{{ "%.1f"|format(s.share * 100) }} %</td>
{% for f in m.features %}<td>{{ s.centroid[f] }}</td>{% endfor %}</tr>{% endfor %}
</tbody></table></section>{% endif %}
{% if m.propensity %}<section class="panel" id="propensity">
<h2>Propensity: {{ m.propensity.target }} <span class="muted mono">{{ m.propensity.id }}</span></h2>
<p>AUC on held-out sessions: {{ m.propensity.metrics.auc }} (constant baseline
{{ m.propensity.metrics.baseline_auc }})</p>
<table><tbody>{% for f, c in m.propensity.coef.items() %}<tr><th>{{ f }}</th><td>{{ c }}</td></tr>
{% endfor %}</tbody></table></section>{% endif %}
</main></body></html>"""
)


def segment_routes(
    runtime: Runtime, route: Callable[[str, Callable[[Request], Any]], Route]
) -> list[Route]:
    """The routes, each made by ``route`` (qa.py's, which puts them behind the admin auth)."""

    async def as_json(request: Request) -> Response:
        return JSONResponse(describe(runtime.engine().rules.models), headers=NO_STORE)

    async def page(request: Request) -> Response:
        body = PAGE.render(m=describe(runtime.engine().rules.models))
        return HTMLResponse(body, headers=NO_STORE)

    return [route("/qa/segments.json", as_json), route("/qa/segments", page)]
