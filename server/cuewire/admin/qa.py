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

Socket.IO namespace ``/admin`` on the server's one ``AsyncServer``. Its connect handler wants
a token from ``/qa/api/token`` in the ``auth`` object (Basic credentials are not accepted
there: a browser would send them cross-site on its own) and a handshake whose ``Origin`` is
the server's own (the request's ``Host``), so no other site's page can open it even with the
admin's browser; a visitor connection (namespace ``/``, a site key) cannot join. The server
emits nothing before the connect is acknowledged: the client sends ``hello`` once connected
(after every reconnect), and only then the server answers ``hello`` and starts one feed that
tails the site's live stream (accepted batches) and audit stream (firings and suppressions)
every 250 ms with exclusive XRANGE reads and pushes what is new:

    admin -> server: hello {site, session?} (after each connect), site {site}, watch {session}
    server -> admin: hello {sites, site, now}, batches [..], audit [..], snapshot {..}

Tokens are ``<expiry ms>.<HMAC>`` keyed by the server secret (settings ``secret``,
CUEWIRE_SECRET), never by the admin password. Without a secret each process draws a random key
when the app is created: tokens then die with the process and are not accepted by another one.

Each feed is a task of the app's :class:`~cuewire.supervise.Supervisor`, named
``qa-feed:<socket id>``: a store outage is logged once and retried on the next poll; any other
exception is logged with its traceback, shown in ``/healthz`` ``tasks`` and the feed restarts
after a backoff (saying ``hello`` again and resending the backlog). The feed ends, and leaves
``/healthz``, when its socket disconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import socketio
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route, request_response
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp

from ..clock import Clock
from ..codes import Refuse
from ..delivery import Delivery
from ..errors import ConfigError, StoreError
from ..explain import explained, read_state
from ..export.history import ExportHistory
from ..goals import MEASURE_FILE
from ..measure import measure
from ..measures import measures_of
from ..protocol import Push
from ..runtime import Runtime
from ..settings import Settings
from ..sites import Sites
from ..store import RedisStore
from ..supervise import Supervised, Supervisor
from .auth import AdminAuth
from .pages import NO_STORE, pick_site
from .segments_view import segment_routes
from .shadow_report import shadow_json

log = logging.getLogger(__name__)

NAMESPACE = "/admin"
STATIC = Path(__file__).resolve().parent / "qa_static"
POLL_S = 0.25  # how often a feed looks for new stream entries
SNAPSHOT_S = 1.0  # a watched session is re-read at least this often (timers, explain)
BACKLOG = 300  # stream entries sent on connect, so the view is not empty
TOKEN_TTL_MS = 10 * 60_000
FEED_TASK = "qa-feed:"  # + socket id: the supervised task of one admin socket (/healthz)


# ---------------------------------------------------------------- tokens


MIN_SECRET = 16  # characters of CUEWIRE_SECRET


def token_key(secret: str | None) -> bytes:
    """The key admin tokens are signed with: derived from the server secret, or random for
    this process when there is none (tokens then do not survive a restart or reach another
    process)."""
    if secret is None:
        return secrets.token_bytes(32)
    if len(secret) < MIN_SECRET:
        raise ConfigError(
            f"CUEWIRE_SECRET is too short: use at least {MIN_SECRET} random characters "
            "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')"
        )
    return hmac.new(secret.encode(), b"cuewire-admin-token", hashlib.sha256).digest()


def admin_subject(user: str, password: str) -> str:
    """Whom a token is for: the admin user and a digest of the password, so a new password
    (or user) revokes every token. The token is keyed by the secret, so it reveals nothing
    that could be checked against guessed passwords."""
    return f"{user}\0{hashlib.sha256(password.encode()).hexdigest()}"


def _mac(key: bytes, subject: str, expiry: str) -> str:
    return hmac.new(key, f"{subject}\0{expiry}".encode(), hashlib.sha256).hexdigest()


def issue_token(key: bytes, subject: str, now_ms: int, ttl_ms: int = TOKEN_TTL_MS) -> str:
    """``<expiry ms>.<HMAC>`` for ``subject`` (:func:`admin_subject`), keyed by
    :func:`token_key`: every server process with the same secret accepts it; changing the
    secret, the admin user or the password revokes every token."""
    expiry = str(now_ms + ttl_ms)
    return f"{expiry}.{_mac(key, subject, expiry)}"


def token_ok(token: object, key: bytes, subject: str, now_ms: int) -> bool:
    if not isinstance(token, str):
        return False
    expiry, _, mac = token.partition(".")
    if not expiry.isdigit() or int(expiry) < now_ms:
        return False
    return hmac.compare_digest(mac, _mac(key, subject, expiry))


def same_origin(environ: dict[str, Any]) -> bool:
    """True when the handshake's ``Origin`` names the host it was sent to (``Host``): the page
    that opens the socket was served by this server. A missing Origin is refused (browsers
    always send it on WebSocket handshakes)."""
    origin, host = environ.get("HTTP_ORIGIN"), environ.get("HTTP_HOST")
    if not isinstance(origin, str) or not isinstance(host, str) or not origin or not host:
        return False
    try:
        page = urlsplit(origin)
        server = urlsplit("//" + host)
        if page.scheme not in ("http", "https") or not page.hostname or not server.hostname:
            return False
        default = 443 if page.scheme == "https" else 80
        return (page.hostname, page.port or default) == (server.hostname, server.port or default)
    except ValueError:  # a port that is not a number
        return False


def refused(code: Refuse, reason: str) -> socketio.exceptions.ConnectionRefusedError:
    return socketio.exceptions.ConnectionRefusedError(
        reason, {"code": code.value, "reason": reason, "retry_ms": None}
    )


# ---------------------------------------------------------------- stream reads


async def read_after(
    store: RedisStore, key: str, after: str | None, count: int = 500
) -> list[tuple[str, dict[str, str]]]:
    """Stream entries after the id ``after`` (oldest first); the latest BACKLOG when None."""
    return await store.stream_after(key, after, BACKLOG if after is None else count)


def batch_json(entry_id: str, fields: dict[str, str]) -> dict[str, Any]:
    return {
        "id": entry_id,
        "at": int(fields.get("at") or entry_id.split("-")[0]),
        "session": fields.get("session", ""),
        "visitor": fields.get("visitor", ""),
        "events": json.loads(fields.get("events") or "[]"),
    }


# ---------------------------------------------------------------- snapshots


@dataclass
class QaContext:
    """What the QA view reads from the app's services."""

    store: RedisStore
    runtime: Runtime
    clock: Clock
    sites: list[str]
    auth: AdminAuth
    token_key: bytes
    supervisor: Supervisor

    @property
    def subject(self) -> str:
        return admin_subject(self.auth.user, self.auth.password or "")

    def site(self, wanted: object) -> str:
        return pick_site(self.sites, wanted)


async def snapshot(ctx: QaContext, site: str, session: str) -> dict[str, Any]:
    """One session as the view shows it: facts, timers, rule states and their explanation
    (explain.py, whose reads give the facts and the session's audit records too), events."""
    now = ctx.clock.now_ms()
    store = ctx.store
    state = await read_state(store, site, session)
    body = explained(ctx.runtime.engine(), state, site, session, now) if state else None
    states = [
        {
            "rule": r["rule"],
            "state": r["state"],
            "detail": r["detail"],
            "due_ms": r["trigger"]["due_ms"],
        }
        for r in (body["rules"] if body else [])
    ]
    recent = await store.recent_events(site, session, 50)
    return {
        "site": site,
        "session": session,
        "now": now,
        "exists": state is not None,
        "facts": state.session if state else {},
        "visitor": state.visitor if state else {},
        "rules": states,
        "explain": body,
        "timers": [
            {"rule": s["rule"], "due_ms": s["due_ms"], "detail": s["detail"]}
            for s in states
            if s["state"] == "pending"
        ],
        "events": list(reversed(recent)),
        "audit": state.audit if state else [],
    }


# ---------------------------------------------------------------- Socket.IO namespace


@dataclass
class Feed:
    """One admin connection: the site it looks at, the session it watches, its cursors."""

    site: str
    watching: str | None = None
    live_cursor: str | None = None
    audit_cursor: str | None = None
    last_snapshot: float = 0.0
    handle: Supervised | None = None  # the supervised task, from the client's hello on
    wake: asyncio.Event = field(default_factory=asyncio.Event)


class AdminNamespace(socketio.AsyncNamespace):  # type: ignore[misc]
    def __init__(self, ctx: QaContext) -> None:
        super().__init__(NAMESPACE)
        self.ctx = ctx
        self.feeds: dict[str, Feed] = {}

    def admitted(self, auth: Any) -> bool:
        token = auth.get("token") if isinstance(auth, dict) else None
        return token_ok(token, self.ctx.token_key, self.ctx.subject, self.ctx.clock.now_ms())

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        if not self.ctx.auth.password:
            raise refused(
                Refuse.INVALID_AUTH, "the admin views are disabled: set CUEWIRE_ADMIN_PASSWORD"
            )
        if not same_origin(environ):
            raise refused(
                Refuse.ORIGIN_NOT_ALLOWED,
                "the admin namespace only accepts pages of this server (Origin must match Host)",
            )
        if not self.admitted(auth):
            raise refused(Refuse.INVALID_AUTH, "admin login required")
        # Nothing is emitted here: packets sent before the connect is acknowledged reach a
        # client that cannot answer yet. The client says hello once it is connected.
        self.feeds[sid] = Feed(self.ctx.site(auth.get("site")))

    async def on_disconnect(self, sid: str, reason: Any = None) -> None:
        feed = self.feeds.pop(sid, None)
        if feed and feed.handle:
            await feed.handle.cancel()  # the task ends and leaves /healthz

    async def on_hello(self, sid: str, data: Any = None) -> None:
        """The client is connected: answer hello and start its feed (once per connection)."""
        feed = self.feeds.get(sid)
        if feed is None or feed.handle is not None:
            return
        if isinstance(data, dict):
            if "site" in data:
                feed.site = self.ctx.site(data.get("site"))
            session = data.get("session")
            feed.watching = session if isinstance(session, str) and session else None
        # started before any await, so a disconnect handled meanwhile finds and cancels it
        feed.handle = self.ctx.supervisor.spawn(f"{FEED_TASK}{sid}", lambda: self._run(sid, feed))

    async def on_site(self, sid: str, data: Any = None) -> None:
        feed = self.feeds.get(sid)
        if feed is None or not isinstance(data, dict):
            return
        feed.site = self.ctx.site(data.get("site"))
        feed.watching = feed.live_cursor = feed.audit_cursor = None
        feed.wake.set()

    async def on_watch(self, sid: str, data: Any = None) -> None:
        feed = self.feeds.get(sid)
        if feed is None or not isinstance(data, dict):
            return
        session = data.get("session")
        feed.watching = session if isinstance(session, str) and session else None
        feed.last_snapshot = 0.0
        feed.wake.set()

    async def _run(self, sid: str, feed: Feed) -> None:
        """The feed of one socket, until it disconnects. Started again by the supervisor after
        an unexpected exception: then it greets the page again and resends the backlog (the
        page starts over on ``hello``)."""
        feed.live_cursor = feed.audit_cursor = None
        now = self.ctx.clock.now_ms()
        await self.emit("hello", {"sites": self.ctx.sites, "site": feed.site, "now": now}, to=sid)
        healthy = True
        while True:
            try:
                await self._tick(sid, feed)
                if not healthy:
                    log.warning("QA feed %s: store reachable again", sid)
                healthy = True
            except (StoreError, RedisError) as exc:  # an outage: retried on the next poll
                if healthy:
                    log.error("QA feed %s: store unreachable (%s); retrying", sid, exc)
                healthy = False
            feed.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(feed.wake.wait(), POLL_S)

    async def _tick(self, sid: str, feed: Feed) -> None:
        store, site = self.ctx.store, feed.site
        touched: set[str] = set()
        first = feed.live_cursor is None
        live = await read_after(store, store.keys.live(site), feed.live_cursor)
        if live:
            feed.live_cursor = live[-1][0]
            batches = [batch_json(i, f) for i, f in live]
            touched |= {b["session"] for b in batches}
            await self.emit("batches", {"site": site, "batches": batches}, to=sid)
        elif first:
            feed.live_cursor = "0-0"
            await self.emit("batches", {"site": site, "batches": []}, to=sid)
        first = feed.audit_cursor is None
        audit = await read_after(store, store.keys.audit(site), feed.audit_cursor)
        if audit:
            feed.audit_cursor = audit[-1][0]
            records = [{"id": i, **f} for i, f in audit]
            touched |= {r.get("session", "") for r in records}
            await self.emit("audit", {"site": site, "records": records}, to=sid)
        elif first:
            feed.audit_cursor = "0-0"
        loop = asyncio.get_running_loop()
        due = loop.time() - feed.last_snapshot >= SNAPSHOT_S
        if feed.watching and (feed.watching in touched or due):
            feed.last_snapshot = loop.time()
            await self.emit("snapshot", await snapshot(self.ctx, site, feed.watching), to=sid)


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

    # imported here: both modules build on this one's tokens and context
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
