"""Socket.IO handlers of the visitor namespace: connect, ``events``, disconnect.

Per session, batches are processed one at a time (python-socketio runs each handler in its
own task), so facts and timers change in the order the client sent them.

Connects are admitted before they reach the store (admission.py): at most
``connect_concurrency`` open a session at once, at most ``connect_queue`` wait for that, and the
rest are refused with ``overloaded`` and a ``retry_ms`` that spreads them out (a reconnect storm
after a deploy is served in turn instead of draining the Redis pool).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any, NoReturn

import msgspec
import socketio

from .admission import Admission, Overloaded
from .clock import Clock
from .codes import Refuse, Reject
from .device import device_class
from .errors import StoreError
from .gate import browser_gate, sort_out
from .locks import KeyedLocks
from .metrics import Metrics
from .origin import Origin
from .pipeline import Pipeline
from .protocol import Ack, Prompt, Rejection, SessionStarted, error_reason, parse_auth
from .ratelimit import RefusalLog
from .settings import Settings
from .sites import Sites
from .store import POOL_SIZE
from .store.base import Gate, OpenedSession, Store
from .validation import validate_batch

log = logging.getLogger(__name__)

STORE_RETRY_MS = 1000  # a batch or connect refused for a store error: resend after ~1 s
# Releases of closed sockets in the store at once: a mass disconnect (a deploy) waits here
# instead of draining the Redis pool, where a release that waits too long would fail.
RELEASE_CONCURRENCY = 8
# Batches in the store at once: past it batches wait here, where waiting cannot time out the
# way waiting for a pooled connection does. A batch holds at most one pooled connection (the
# calls of one loop turn share one: store/coalesce.py), so up to the pool's size none waits for
# a connection. Fewer starved a saturated process: at 24, 64 batches in flight left it at 78%
# CPU with acks waiting here (bench ingest, 16.3k ev/s; 19.4k at 64, 94% CPU).
BATCH_CONCURRENCY = POOL_SIZE
WEB_SCHEMES = {"ws": "http", "wss": "https"}  # a websocket request's page is on the web one


@dataclass
class Connection:
    site: str
    visitor: str
    session: str
    tab: str
    address: str
    gate: Gate  # the limits of its batches (gate.py)
    socket: str  # the socket's address (sockets.py): what the store records for the session
    prompt_in_ack: bool = False  # its batches' prompts go in their acks (protocol.Ack)

    @cached_property
    def origin(self) -> Origin:
        """Who its batches come from: the same for all of them, made once."""
        return Origin(self.site, self.visitor, self.session, self.tab, self.socket)


def client_address(environ: dict[str, Any]) -> str:
    """The peer's address as the ASGI server saw it (uvicorn applies trusted proxy headers;
    engine.io's own REMOTE_ADDR is a constant)."""
    client = (environ.get("asgi.scope") or {}).get("client")
    return str(client[0]) if client else "unknown"


def page_origin(environ: dict[str, Any]) -> str | None:
    """The origin of the page that connects: its ``Origin`` header, or where a browser leaves
    that out (a same-origin GET, such as the long-polling handshake of a page this server's own
    address serves; a cross-origin request always carries it) the address the request went to.
    A client that is not a browser can claim any origin either way: the allow-list keeps other
    sites' pages out, not scripts."""
    origin = environ.get("HTTP_ORIGIN")
    if origin:
        return str(origin)
    host = environ.get("HTTP_HOST")
    if not host:
        return None
    scheme = (environ.get("asgi.scope") or {}).get("scheme", "http")
    return f"{WEB_SCHEMES.get(scheme, scheme)}://{host}"


def jittered(base_ms: int) -> int:
    """``base_ms`` plus up to as much again, so refused clients do not return together."""
    return base_ms + random.randint(0, max(base_ms, 1))


class Gateway:
    def __init__(
        self,
        sio: socketio.AsyncServer,
        settings: Settings,
        sites: Sites,
        store: Store,
        pipeline: Pipeline,
        clock: Clock,
        metrics: Metrics,
        address: Callable[[str], str] = lambda sid: sid,
    ) -> None:
        """``address`` turns a local sid into the socket address the store records for the
        session (sockets.py: it names this process, so prompts reach it from any process)."""
        self._sio = sio
        self._address = address
        self._settings = settings
        self._sites = sites
        self._store = store
        self._pipeline = pipeline
        self._metrics = metrics
        self._clock = clock
        self._conns: dict[str, Connection] = {}
        self._store_failures = 0  # store calls failed since the last success (0: reachable)
        self._locks = KeyedLocks()
        limits = settings.limits
        self._admission = Admission(
            limits.connect_concurrency, limits.connect_queue, limits.connect_retry_ms, clock
        )
        self._refusals = RefusalLog(clock)
        self._releasing = asyncio.Semaphore(RELEASE_CONCURRENCY)
        self._batching = asyncio.Semaphore(BATCH_CONCURRENCY)
        sio.on("connect", self.connect)
        sio.on("events", self.events)
        sio.on("disconnect", self.disconnect)

    @property
    def connections(self) -> int:
        return len(self._conns)

    def _refuse(self, code: Refuse, reason: str, retry_ms: int | None = None) -> NoReturn:
        self._metrics.refused.labels(code.value).inc()
        data = {"code": code.value, "reason": reason, "retry_ms": retry_ms}
        raise socketio.exceptions.ConnectionRefusedError(reason, data)

    def _open(self, sid: str) -> bool:
        """Whether the socket behind ``sid`` is still open. python-socketio marks a socket
        connected only after ``connect`` returns, and a close during ``connect`` calls no
        disconnect handler, so ask engine.io."""
        eio_sid = self._sio.manager.eio_sid_from_sid(sid, "/")
        socket = self._sio.eio.sockets.get(eio_sid) if eio_sid else None
        return socket is not None and not socket.closed

    async def connect(self, sid: str, environ: dict[str, Any], auth: Any) -> bool:
        try:
            parsed = parse_auth(auth)
        except msgspec.ValidationError as exc:
            self._refuse(Refuse.INVALID_AUTH, f"invalid auth: {error_reason(exc)}")
        site = self._sites.get(parsed.site)
        origin = page_origin(environ)
        if site is None:
            self._refusals.note(Refuse.UNKNOWN_SITE, parsed.site, origin)
            self._refuse(Refuse.UNKNOWN_SITE, "unknown site key")
        if not site.allows(origin):
            self._refusals.note(Refuse.ORIGIN_NOT_ALLOWED, parsed.site, origin)
            self._refuse(Refuse.ORIGIN_NOT_ALLOWED, "origin not allowed for this site")
        if site.honor_dnt and (
            parsed.dnt or environ.get("HTTP_DNT") == "1" or environ.get("HTTP_SEC_GPC") == "1"
        ):
            self._refuse(Refuse.DO_NOT_TRACK, "do-not-track")
        socket = self._address(sid)
        describe = {"device": device_class(environ.get("HTTP_USER_AGENT")), "sid": socket}
        if parsed.tz is not None:
            describe["tz"] = str(parsed.tz)
        opened: OpenedSession | None = None
        self._metrics.connects_waiting.inc()
        try:
            async with self._admission.slot():
                if self._open(sid):  # else it gave up waiting
                    now = self._clock.now_ms()
                    opened = await self._store.open_session(
                        parsed.site,
                        parsed.visitor,
                        parsed.session,
                        now,
                        describe,
                        self._pipeline.fields(),
                    )
        except Overloaded as busy:
            self._refuse(
                Refuse.OVERLOADED,
                "server busy: too many connects at once, retry later",
                busy.retry_ms,
            )
        except StoreError as exc:
            self._store_down(exc)
            self._metrics.store_errors.labels("connect").inc()
            self._refuse(
                Refuse.STORE_UNAVAILABLE, "store unavailable, retry later", jittered(STORE_RETRY_MS)
            )
        finally:
            self._metrics.connects_waiting.dec()
        if opened is None:
            return False  # python-socketio forgets the socket
        self._store_up()
        if not self._open(sid):
            # The socket closed while the store was opening its session: no disconnect
            # handler runs for it, so nothing may be left behind now.
            await self._release(parsed.site, opened.session, socket, parsed.visitor)
            return False
        address = client_address(environ)
        self._conns[sid] = Connection(
            site=parsed.site,
            visitor=parsed.visitor,
            session=opened.session,
            tab=parsed.tab or sid,
            address=address,
            gate=browser_gate(self._settings.limits, address),
            socket=socket,
            prompt_in_ack=parsed.prompt_in_ack,
        )
        self._metrics.connections.inc()
        if opened.facts is not None:
            self._pipeline.learn(parsed.site, opened.session, opened.facts)
        info = SessionStarted(opened.session, parsed.visitor, opened.returning)
        await self._sio.emit("session", msgspec.to_builtins(info), to=sid, ignore_queue=True)
        return True

    async def disconnect(self, sid: str, reason: str | None = None) -> None:
        conn = self._conns.pop(sid, None)
        if conn is None:
            return
        self._metrics.connections.dec()
        self._pipeline.forget(conn.site, conn.session)
        await self._release(conn.site, conn.session, conn.socket, conn.visitor)

    async def _release(self, site: str, session: str, sid: str, visitor: str) -> None:
        try:
            async with self._releasing:
                await self._store.release_socket(site, session, sid, visitor)
        except StoreError as exc:
            self._store_down(exc)
            self._metrics.store_errors.labels("release").inc()

    async def events(self, sid: str, batch: Any = None) -> dict[str, Any]:
        conn = self._conns.get(sid)
        if conn is None:
            return self._ack(0, [Rejection(-1, Reject.NOT_CONNECTED, "not connected")])
        valid, rejected = validate_batch(batch, self._settings.limits, self._sites.get(conn.site))
        retry_ms: int | None = None
        prompts: list[Prompt] | None = [] if conn.prompt_in_ack else None
        if valid:
            try:
                async with self._locks.hold(conn.session), self._batching:
                    started = time.perf_counter()
                    try:
                        done = await self._pipeline.process(
                            conn.origin,
                            [event for _, event in valid],
                            self._clock.now_ms(),
                            conn.gate,
                            prompts,
                        )
                    finally:
                        self._metrics.batch_seconds.observe(time.perf_counter() - started)
            except StoreError as exc:  # (a prompt shown before the failure goes out still)
                return self._store_failed(conn, exc, prompts or None)
            self._store_up()
            valid, retry_ms = sort_out(valid, rejected, done.admitted, conn.gate)
            self._metrics.batch_accepted(done.ahead, (event["type"] for _, event in valid))
        return self._ack(len(valid), rejected, retry_ms, prompts or None)

    def _store_failed(
        self, conn: Connection, exc: StoreError, prompts: list[Prompt] | None = None
    ) -> dict[str, Any]:
        self._metrics.store_errors.labels("ingest").inc()
        self._store_down(exc)
        failed = Rejection(-1, Reject.STORE_UNAVAILABLE, "store unavailable, resend later")
        return self._ack(0, [failed], jittered(STORE_RETRY_MS), prompts)

    def _store_down(self, exc: StoreError) -> None:
        """Log a store outage once, when it starts (STYLE.md 10c), not once per batch: during
        one, every batch and connect fails; the metric counts them."""
        self._store_failures += 1
        if self._store_failures == 1:
            log.error(
                "store unreachable (%s): batches are answered store_unavailable and connects"
                " refused until it is back",
                exc,
            )

    def _store_up(self) -> None:
        if self._store_failures:
            log.warning(
                "store reachable again (%d store calls failed meanwhile)", self._store_failures
            )
            self._store_failures = 0

    def _ack(
        self,
        accepted: int,
        rejected: list[Rejection],
        retry_ms: int | None = None,
        prompts: list[Prompt] | None = None,
    ) -> dict[str, Any]:
        for rejection in rejected:
            self._metrics.rejected.labels(rejection.code.value).inc()
        result: dict[str, Any] = msgspec.to_builtins(Ack(accepted, rejected, retry_ms, prompts))
        return result
