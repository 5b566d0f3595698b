"""The live QA view (``/qa``) and the measurement page (``/qa/metrics``), for the admin only.

HTTP, every route behind :class:`AdminAuth` (mounted by app.py with :func:`mount_qa`):

    GET /qa                   the live view (qa_static/qa.html)
    GET /qa/metrics           measurement tables and charts (qa_static/metrics.html)
    GET /qa/metrics.json      the measurement report (measure.py), ?site=
    GET /qa/metrics.csv       the same, one row per rule and variant
    GET /qa/shadow.json       shadow rules against live ones (shadow_report.py), ?site=&since=
    GET /qa/api/token         a short-lived token for the Socket.IO namespace below
    GET /qa/api/session       one session's snapshot, ?site=&session= (what the view shows)
    /qa/api/explain, /qa/api/overlay-token, /qa/overlay/explain, /cw-qa.js: explain_view.py
    /qa/api/search, /qa/api/reset, /qa/api/force: the QA tools, qatools.py
    GET /qa/static/...        the view's JS and CSS

The Socket.IO namespace ``/admin`` and its feeds are in qa_feed.py, the tokens it wants in
qa_tokens.py, and what both read (:class:`QaContext`, a session's snapshot) in qa_context.py.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import socketio
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route, request_response
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp

from ..clock import Clock
from ..delivery import Delivery
from ..export.history import ExportHistory
from ..goals import MEASURE_FILE
from ..measure import measure
from ..measures import measures_of
from ..protocol import Push
from ..runtime import Runtime
from ..settings import Settings
from ..sites import Sites
from ..store import RedisStore
from ..supervise import Supervisor
from .auth import AdminAuth
from .pages import NO_STORE
from .qa_context import QaContext, snapshot
from .qa_feed import AdminNamespace
from .qa_tokens import issue_token, token_key
from .segments_view import segment_routes
from .shadow_report import shadow_json

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "qa_static"


# ---------------------------------------------------------------- HTTP


class QaServices(Protocol):
    """The parts of the app's services the QA view uses (app.Services has them)."""

    settings: Settings
    store: RedisStore
    runtime: Runtime
    sio: socketio.AsyncServer
    clock: Clock
    supervisor: Supervisor
    delivery: Delivery
    history: ExportHistory | None  # with CUEWIRE_EXPORT_DSN: the QA search reads the export

    async def push_to_tab(self, address: str, push: Push, confirm: bool) -> bool: ...


def mount_qa(
    services: QaServices, sites: Sites, admin: Callable[[ASGIApp], ASGIApp]
) -> list[Route | Mount]:
    """Register the ``/admin`` namespace on the services' Socket.IO server; return the routes
    of the QA view, each wrapped in ``admin`` (app.py's AdminAuth)."""
    settings, store, runtime, clock = (
        services.settings,
        services.store,
        services.runtime,
        services.clock,
    )
    checker = AdminAuth(PlainTextResponse(""), settings.admin_user, settings.admin_password)
    key = token_key(settings.secret)
    if settings.secret is None and settings.redis_url and settings.admin_password:
        log.warning(
            "CUEWIRE_SECRET is not set: admin tokens are signed with a key of this process "
            "only, so with several processes the QA view works only when its token request "
            "and its socket reach the same one; set CUEWIRE_SECRET (the same on every process)"
        )
    ctx = QaContext(store, runtime, clock, sorted(sites.keys()), checker, key, services.supervisor)
    services.sio.register_namespace(AdminNamespace(ctx))

    async def page(request: Request) -> Response:
        return FileResponse(STATIC / "qa.html", headers=NO_STORE)

    async def metrics_page(request: Request) -> Response:
        return FileResponse(STATIC / "metrics.html", headers=NO_STORE)

    async def token(request: Request) -> Response:
        value = issue_token(ctx.token_key, ctx.subject, clock.now_ms())
        return JSONResponse({"token": value, "sites": ctx.sites}, headers=NO_STORE)

    async def session_api(request: Request) -> Response:
        session = request.query_params.get("session", "")
        if not session:
            return PlainTextResponse("pass ?session=ID (and ?site=KEY)", status_code=400)
        body = await snapshot(ctx, ctx.site(request.query_params.get("site")), session)
        return JSONResponse(body, status_code=200 if body["exists"] else 404, headers=NO_STORE)

    async def report(request: Request) -> Any:
        """Raises ValueError on a window it cannot read (``?from=`` / ``?to=``, UTC days)."""
        query = request.query_params
        site = ctx.site(query.get("site"))
        goals = measures_of(runtime.engine().rules).goals  # the goals the counters count with
        first, last = query.get("from") or None, query.get("to") or None
        return await measure(store, site, goals, clock.now_ms(), first, last)

    async def metrics_json(request: Request) -> Response:
        try:
            body = (await report(request)).to_json()
        except ValueError as exc:
            return PlainTextResponse(f"bad window: {exc}", status_code=400)
        body["goals_file"] = str(runtime.rules_dir / MEASURE_FILE)
        body["sites"] = ctx.sites
        return JSONResponse(body, headers=NO_STORE)

    async def metrics_csv(request: Request) -> Response:
        try:
            text = (await report(request)).to_csv()
        except ValueError as exc:
            return PlainTextResponse(f"bad window: {exc}", status_code=400)
        return Response(
            text,
            media_type="text/csv; charset=utf-8",
            headers={
                **NO_STORE,
                "Content-Disposition": 'attachment; filename="cuewire-metrics.csv"',
            },
        )

    def route(path: str, endpoint: Callable[[Request], Any]) -> Route:
        return admin_route(admin, path, endpoint)

    # imported here: they import admin_route (and STATIC) from this module
    from .explain_view import explain_routes
    from .heatmaps import heatmap_routes
    from .qatools import qatools_routes

    return [
        *explain_routes(ctx, sites, admin),
        *qatools_routes(ctx, services.delivery, services.push_to_tab, admin, services.history),
        *heatmap_routes(ctx, sites, admin),
        route("/qa", page),
        route("/qa/metrics", metrics_page),
        route("/qa/metrics.json", metrics_json),
        route("/qa/metrics.csv", metrics_csv),
        route("/qa/shadow.json", shadow_json(ctx)),
        route("/qa/api/token", token),
        route("/qa/api/session", session_api),
        *segment_routes(runtime, store, clock, ctx.sites, route),
        Mount("/qa/static", admin(StaticFiles(directory=STATIC))),
    ]


def admin_route(
    admin: Callable[[ASGIApp], ASGIApp],
    path: str,
    endpoint: Callable[[Request], Any],
    methods: list[str] | None = None,
) -> Route:
    """``endpoint`` at ``path``, behind ``admin`` (app.py's AdminAuth)."""
    return Route(path, admin(request_response(endpoint)), methods=methods)
