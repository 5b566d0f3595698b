"""The QA view's live feed: the Socket.IO namespace ``/admin``.

It lives on the server's one Socket.IO ``AsyncServer``. Its connect handler wants
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

Each feed is a task of the app's :class:`~cuewire.supervise.Supervisor`, named
``qa-feed:<socket id>``: a store outage is logged once and retried on the next poll; any other
exception is logged with its traceback, shown in ``/healthz`` ``tasks`` and the feed restarts
after a backoff (saying ``hello`` again and resending the backlog). The feed ends, and leaves
``/healthz``, when its socket disconnects.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from typing import Any

import socketio
from redis.exceptions import RedisError

from ..codes import Refuse
from ..errors import StoreError
from ..store import RedisStore
from ..supervise import Supervised
from ..waiting import wait_set
from .qa_context import QaContext, snapshot
from .qa_tokens import same_origin, token_ok

log = logging.getLogger(__name__)

NAMESPACE = "/admin"
POLL_S = 0.25  # how often a feed looks for new stream entries
SNAPSHOT_S = 1.0  # a watched session is re-read at least this often (timers, explain)
BACKLOG = 300  # stream entries sent on connect, so the view is not empty
FEED_TASK = "qa-feed:"  # + socket id: the supervised task of one admin socket (/healthz)


def refused(code: Refuse, reason: str) -> socketio.exceptions.ConnectionRefusedError:
    return socketio.exceptions.ConnectionRefusedError(
        reason, {"code": code.value, "reason": reason, "retry_ms": None}
    )


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
            await wait_set(feed.wake, POLL_S)

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
