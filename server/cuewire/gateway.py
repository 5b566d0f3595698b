"""Socket.IO handlers of the visitor namespace: connect, ``events``, disconnect.

Per session, batches are processed one at a time (python-socketio runs each handler in its
own task), so facts and timers change in the order the client sent them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import msgspec
import socketio

from .clock import Clock
from .codes import Reject
from .device import device_class
from .errors import IdentityUnverified, StoreError
from .identity import verify
from .locks import KeyedLocks
from .metrics import Metrics, reason_label
from .pipeline import Origin, Pipeline
from .protocol import (
    Ack,
    Rejection,
    SessionInfo,
    error_reason,
    event_reason,
    parse_auth,
    parse_event,
)
from .ratelimit import TokenBucket
from .settings import Settings
from .sites import Site, Sites
from .store.base import Store

log = logging.getLogger(__name__)


@dataclass
class Connection:
    site: str
    visitor: str
    session: str
    tab: str
    bucket: TokenBucket

    def origin(self, sid: str) -> Origin:
        return Origin(self.site, self.visitor, self.session, self.tab, sid)


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
    ) -> None:
        self._sio = sio
        self._settings = settings
        self._sites = sites
        self._store = store
        self._pipeline = pipeline
        self._metrics = metrics
        self._clock = clock
        self._conns: dict[str, Connection] = {}
        self._locks = KeyedLocks()
        sio.on("connect", self.connect)
        sio.on("events", self.events)
        sio.on("disconnect", self.disconnect)

    @property
    def connections(self) -> int:
        return len(self._conns)

    async def connect(self, sid: str, environ: dict[str, Any], auth: Any) -> None:
        try:
            parsed = parse_auth(auth)
        except msgspec.ValidationError as exc:
            raise _refuse(f"invalid auth: {error_reason(exc)}", "invalid_auth") from None
        site = self._sites.get(parsed.site)
        if site is None:
            raise _refuse("unknown site key", "unknown_site")
        if not site.allows(environ.get("HTTP_ORIGIN")):
            raise _refuse("origin not allowed for this site", "origin_not_allowed")
        if site.honor_dnt and (
            parsed.dnt or environ.get("HTTP_DNT") == "1" or environ.get("HTTP_SEC_GPC") == "1"
        ):
            raise _refuse("do-not-track", "do_not_track")
        now = self._clock.now_ms()
        try:
            describe = {"device": device_class(environ.get("HTTP_USER_AGENT")), "sid": sid}
            if parsed.tz is not None:
                describe["tz"] = str(parsed.tz)
            opened = await self._store.open_session(
                parsed.site, parsed.visitor, parsed.session, now, describe
            )
        except StoreError as exc:
            log.error("connect refused: %s", exc)
            raise _refuse("store unavailable", "store_unavailable", 2000) from None
        limits = self._settings.limits
        self._conns[sid] = Connection(
            site=parsed.site,
            visitor=parsed.visitor,
            session=opened.session,
            tab=parsed.tab or sid,
            bucket=TokenBucket(limits.events_per_second, limits.event_burst, now),
        )
        self._metrics.connections.inc()
        info = SessionInfo(opened.session, parsed.visitor, opened.returning)
        await self._sio.emit("session", msgspec.to_builtins(info), to=sid, ignore_queue=True)

    def _within_rate(
        self, conn: Connection, batch: list[Any], now: int
    ) -> tuple[list[dict[str, Any]], list[Rejection]]:
        limits = self._settings.limits
        valid, rejected = validate_batch(batch, limits.max_batch_events, self._sites.get(conn.site))
        kept = []
        for index, event in valid:
            if conn.bucket.take(now):
                kept.append(event)
            else:
                reason = (
                    f"rate limit: at most {limits.events_per_second:g} events/s "
                    f"(bursts of {limits.event_burst})"
                )
                rejected.append(Rejection(index, reason, "rate_limited"))
        rejected.sort(key=lambda r: r.index)
        return kept, rejected

    async def disconnect(self, sid: str, reason: str | None = None) -> None:
        conn = self._conns.pop(sid, None)
        if conn is None:
            return
        self._metrics.connections.dec()
        try:
            await self._store.release_socket(conn.site, conn.session, sid)
        except StoreError as exc:
            log.warning("could not release socket %s: %s", sid, exc)

    async def events(self, sid: str, batch: Any = None) -> dict[str, Any]:
        conn = self._conns.get(sid)
        if conn is None:
            return _ack(0, [Rejection(-1, "not connected", "not_connected")])
        if not isinstance(batch, list):
            return _ack(0, [Rejection(-1, "events must be a list of event maps", "invalid_batch")])
        now = self._clock.now_ms()
        valid, rejected = self._within_rate(conn, batch, now)
        for rejection in rejected:
            self._metrics.rejected.labels(reason_label(rejection.reason)).inc()
        if valid:
            try:
                async with self._locks.hold(conn.session):
                    with self._metrics.batch_seconds.time():
                        await self._pipeline.process(conn.origin(sid), valid, now)
            except StoreError as exc:
                self._metrics.store_errors.labels("ingest").inc()
                log.error("batch of session %s not stored: %s", conn.session, exc)
                return _ack(
                    0, [Rejection(-1, "store unavailable, resend later", "store_unavailable")]
                )
            for event in valid:
                self._metrics.events.labels(event["type"]).inc()
        return _ack(len(valid), rejected)


Indexed = list[tuple[int, dict[str, Any]]]


def validate_batch(
    batch: list[Any], limit: int, site: Site | None = None
) -> tuple[Indexed, list[Rejection]]:
    """Valid events with their index in the batch, and a reason for every invalid one.
    With ``site``, identify events are checked against its identity policy (identity.py)."""
    valid: Indexed = []
    rejected: list[Rejection] = []
    for index, raw in enumerate(batch):
        if index >= limit:
            rejected.append(
                Rejection(
                    index, f"batch too large: at most {limit} events per batch", "batch_too_large"
                )
            )
            continue
        try:
            event = parse_event(raw)
        except msgspec.ValidationError as exc:
            rejected.append(Rejection(index, event_reason(raw, exc)))
            continue
        if site is not None and event["type"] == "identify":
            try:
                event = verify(site, event)
            except IdentityUnverified as exc:
                code = Reject.IDENTITY_UNVERIFIED
                rejected.append(Rejection(index=index, reason=str(exc), code=code))
                continue
        valid.append((index, event))
    return valid, rejected


def _refuse(
    reason: str, code: str, retry_ms: int | None = None
) -> socketio.exceptions.ConnectionRefusedError:
    """A connect refusal carrying its code (docs/protocol.md, "Connect refusals")."""
    data = {"code": code, "reason": reason, "retry_ms": retry_ms}
    return socketio.exceptions.ConnectionRefusedError(reason, data)


def _ack(accepted: int, rejected: list[Rejection]) -> dict[str, Any]:
    result: dict[str, Any] = msgspec.to_builtins(Ack(accepted, rejected))
    return result
