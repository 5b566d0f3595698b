"""The heatmap page of the QA view (docs/qa.md, "Heatmaps"), behind the admin's auth.

    GET /qa/heatmap: the page (qa_static/heatmap.html + heatmap.js): the site's page in a
        sandboxed iframe, without its scripts (same origin, elements boxed) or with them (an
        opaque origin, cells only), its counts drawn over it, the top selectors beside it
    GET /qa/api/heatmap?site=&days=: the pages with counts over the last ``days`` UTC days
    GET /qa/api/heatmap?site=&path=&days=[&layout=]: one page's counts
        (heatmaps.Heatmap.to_json), its cells those of one layout class (``mobile``,
        ``tablet``, ``desktop``, ``unknown``: without a viewport width) or of ``all`` (the
        default: every event in one grid, as before the classes), and ``page_url``, where the
        page is loaded from: the site's first origin without a wildcard (the demo's is this
        server: same origin, so the page can find elements)

What is counted and how is heatmaps.py's; this module only reads.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from ..codes import QaRefusal
from ..heatmaps import ALL, MAX_DAYS, VIEWS, days_back, page_path
from ..sites import Sites
from ..store.heatmaps import read_heatmap, read_pages
from .explain_view import refusal
from .pages import NO_STORE
from .qa import STATIC, admin_route
from .qa_context import QaContext


def page_url(sites: Sites, site: str, path: str) -> str | None:
    """Where ``site``'s page ``path`` is loaded from: its first origin without a wildcard."""
    found = sites.get(site)
    for origin in found.origins if found else []:
        if "*" not in origin:
            return origin.rstrip("/") + path
    return None


def heatmap_routes(
    ctx: QaContext, sites: Sites, admin: Callable[[ASGIApp], ASGIApp]
) -> list[Route]:
    """The page and its JSON endpoint, each wrapped in ``admin``."""

    async def page(request: Request) -> Response:
        return FileResponse(STATIC / "heatmap.html", headers=NO_STORE)

    async def api(request: Request) -> Response:
        q = request.query_params
        site = q.get("site", "")
        if site not in ctx.sites:
            return refusal(QaRefusal.UNKNOWN_SITE, f"no site {site!r} on this server")
        raw_days = q.get("days", "7")
        if not raw_days.isdigit() or not 1 <= int(raw_days) <= MAX_DAYS:
            return refusal(QaRefusal.BAD_REQUEST, f"pass ?days= a whole number, 1 to {MAX_DAYS}")
        layout = q.get("layout") or ALL
        if layout not in VIEWS:
            return refusal(QaRefusal.BAD_REQUEST, f"pass ?layout= one of {', '.join(VIEWS)}")
        days = days_back(ctx.clock.now_ms(), int(raw_days))
        store = ctx.store
        body: dict[str, Any] = {"site": site, "days": days}
        if "path" not in q:
            body["pages"] = await read_pages(store.client, store.keys, site, days)
            return JSONResponse(body, headers=NO_STORE)
        path = page_path(q["path"])
        heatmap = await read_heatmap(store.client, store.keys, site, path, days)
        body |= heatmap.to_json(layout=layout)
        body["page_url"] = page_url(sites, site, path)
        return JSONResponse(body, headers=NO_STORE)

    return [
        admin_route(admin, "/qa/heatmap", page),
        admin_route(admin, "/qa/api/heatmap", api),
    ]
