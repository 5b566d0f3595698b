"""The store on Redis (``redis://``), Redis Cluster (the same URL, to any node: detected when
the store opens) or the embedded in-process server (``memory://``).

On a cluster every script touches the keys of one slot (keys.py): a batch's ingest is still
one script call, in its visitor's slot. What cannot share that slot goes beside it: a new
deadline's entry in its shard is added in the same loop turn (a second node, concurrently),
the per-address rate limit is decided in the process and shared by a loop of its own
(addresses.py; asked first, one more round trip, while no such loop runs), and the live
stream, the measurement counts the visitor's script made (counters.lua), the
heatmap counts (heatmap.lua, in the site's ``{h:site}`` slot) and the
removal of cancelled deadlines are written after the batch, without waiting for them. A
deadline entry whose session never took its token (the script did not apply the batch) fires
stale and is dropped, as a cancelled one is (those writes: beside.py).

A batch's one call is in batches.py, sessions and visitors by id (opening a session, its
reads) in sessions.py, a firing's record and actions applied alone in firing_writes.py, the
deadline calls in deadlines.py and the stream reads in streams.py; the store delegates to
them, so callers see one store (base.Store).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Self

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from ..clock import day_of
from ..counters import Mark, segment_field
from ..errors import StoreError
from ..facts import FactChanges, NewName
from ..keys import Keys, keys_for
from ..lifecycle import Closing
from ..origin import Origin
from ..settings import Settings
from . import tally
from .addresses import SharedAddressLimit
from .base import (
    Action,
    Commit,
    Decided,
    Facts,
    FiringRequest,
    Gate,
    Ingested,
    OpenedSession,
    Put,
    Queued,
    Resolved,
    Timer,
)
from .batches import Batches
from .beside import Beside
from .cluster import cluster_client, is_cluster
from .coalesce import Coalescer
from .deadlines import Deadlines
from .firing_writes import FiringWrites
from .live import LiveEntries
from .scripts import (
    TimerOp,
    asks_arg,
    composed,
    lua,
    ops_arg,
    verdict,
)
from .sessions import Sessions
from .shared import FAILURES, Client, guard, pairs, pairs_of, together
from .streams import Streams

log = logging.getLogger(__name__)


class RedisStore(Closing):
    """Session state in a Redis-compatible server, one round trip per event batch.

    With ``url`` (a ``redis://`` URL the client was made from), entering the store asks the
    server whether it is a cluster node and, when it is, goes on with a cluster client."""

    def __init__(self, client: Client, settings: Settings, url: str | None = None) -> None:
        self._s = settings
        self._url = url
        self._use(client)

    def _use(self, client: Client) -> None:
        self._r = client
        self._k = keys_for(self._s.key_prefix, isinstance(client, RedisCluster))
        self._commit = client.register_script(lua("ops.lua") + lua("commit.lua"))
        self._segment = client.register_script(lua("counters.lua") + lua("segment.lua"))
        self._resolve = client.register_script(composed("resolve.lua"))
        self._calls = Coalescer(client)  # the hot path's calls, those of a loop turn together
        # its own lane or pipelines: a sync waiting on a slow node never holds up a batch
        self._syncs = Coalescer(client)
        self._addresses = SharedAddressLimit(
            self._syncs, client.register_script(lua("address_sync.lua")), self._k
        )
        self._deadlines = Deadlines(client, self._k, self._s, self._calls)
        self._streams = Streams(client, self._k)
        self._beside = Beside(client, self._calls)
        live_add = client.register_script(lua("live_add.lua"))
        live = LiveEntries(self._calls, self._beside, live_add, self._k, self._s.live_stream_max)
        self._batches = Batches(
            client, self._k, self._s, self._calls, self._beside, self._addresses, live
        )
        self._sessions = Sessions(client, self._k, self._s)
        self._writes = FiringWrites(client, self._k, self._calls, self._beside)

    async def __aenter__(self) -> Self:
        if self._url is not None and not self._k.cluster:
            try:
                cluster = isinstance(self._r, aioredis.Redis) and await is_cluster(self._r)
            except (*FAILURES, OSError) as exc:
                log.warning("cannot ask %s whether it is a cluster (%s): one Redis", self._url, exc)
                cluster = False
            if cluster:
                single, client = self._r, cluster_client(self._url)
                try:  # the cluster's map of slots, before calls made together need it
                    await client.initialize()
                except (*FAILURES, OSError) as exc:
                    raise StoreError(f"cannot reach the cluster at {self._url}: {exc}") from exc
                await self._calls.aclose()
                await self._syncs.aclose()
                self._use(client)
                await single.aclose()
        return self

    @property
    def keys(self) -> Keys:
        return self._k

    @property
    def client(self) -> Client:
        """The Redis client (a cluster's, or the embedded server's) this store runs on."""
        return self._r

    @property
    def settings(self) -> Settings:
        return self._s

    @property
    def writes_firings_ahead(self) -> bool:
        """One Redis only: on a cluster the audit stream and the counters are in other slots
        than the session (store/fold.py)."""
        return not self._k.cluster

    @property
    def address_limit(self) -> SharedAddressLimit | None:
        """On a cluster: the per-address rate limit decided here (addresses.py), whose sync
        loop the app runs; None on one Redis (ingest.lua decides it in the batch's call)."""
        return self._addresses if self._k.cluster else None

    async def ping(self) -> bool:
        try:
            return bool(await self._r.ping())
        except (*FAILURES, OSError):
            return False

    async def open_session(
        self,
        site: str,
        visitor: str,
        session: str | None,
        now_ms: int,
        describe: dict[str, str] | None = None,
        fields: str = "",
    ) -> OpenedSession:
        """Resume ``session`` or start a new one (:meth:`Sessions.open_session`)."""
        return await self._sessions.open_session(site, visitor, session, now_ms, describe, fields)

    async def ingest(
        self,
        origin: Origin,
        events: list[dict[str, Any]],
        changes: list[FactChanges],
        now_ms: int,
        fields: str = "",
        gate: Gate | None = None,
        names: list[list[NewName]] | None = None,
        decided: Decided | None = None,
        marks: list[Mark] | None = None,
    ) -> Ingested:
        """A batch's one store call (:meth:`Batches.ingest`)."""
        return await self._batches.ingest(
            origin, events, changes, now_ms, fields, gate, names, decided, marks
        )

    async def commit(self, origin: Origin, seqs: list[int], actions: list[Action]) -> bool:
        keys = [self._k.pending(origin.site, origin.session, origin.tab, origin.visitor)]
        timer_ops: list[TimerOp] = []
        arg = ops_arg(self._k, seqs, actions, keys, timer_ops)
        async with guard("apply rule actions"):
            done = await self._beside.call(self._commit, keys, [arg], timer_ops, bool)
        return bool(done)

    async def resolve(
        self, requests: list[FiringRequest], commit: Commit | None = None
    ) -> Resolved | None:
        if not requests:
            raise ValueError("resolve() needs at least one firing request")
        k = self._k
        first = requests[0]
        site, session, visitor = first.site, first.session, first.visitor
        session_key = k.session(site, session, visitor)
        pending = (
            k.pending(commit.origin.site, commit.origin.session, commit.origin.tab, visitor)
            if commit
            else session_key  # unused without a commit
        )
        keys = [pending, session_key, k.visitor(site, visitor)]
        timer_ops: list[TimerOp] = []
        arg = ops_arg(k, commit.seqs, commit.actions, keys, timer_ops) if commit else ""
        async with guard("ask governance about a firing"):
            answer = await self._beside.call(
                self._resolve, keys, [arg, asks_arg(requests)], timer_ops, bool
            )
        if not answer:
            return None
        _, verdicts, sess, vis = answer
        return Resolved([verdict(v) for v in verdicts], pairs(sess), pairs(vis))

    async def record(
        self,
        site: str,
        puts: list[Put],
        records: list[dict[str, str]],
        jobs: Sequence[Queued] = (),
    ) -> None:
        """Write what a firing leaves (:meth:`FiringWrites.record`)."""
        await self._writes.record(site, puts, records, jobs)

    async def apply(self, actions: list[Action]) -> None:
        """Apply ``actions`` outside a batch (:meth:`FiringWrites.apply`)."""
        await self._writes.apply(actions)

    # ---------------------------------------------------------------- sessions (sessions.py)

    async def visitor_facts(self, site: str, visitor: str) -> Facts:
        return await self._sessions.visitor_facts(site, visitor)

    async def release_socket(
        self, site: str, session: str, sid: str, visitor: str | None = None
    ) -> None:
        await self._sessions.release_socket(site, session, sid, visitor)

    async def link_user(self, site: str, user_id: str, visitor: str) -> None:
        """Link ``user_id`` to ``visitor``: call it for verified identifies only (identity.py)."""
        await self._sessions.link_user(site, user_id, visitor)

    async def visitor_of_user(self, site: str, user_id: str) -> str | None:
        """The visitor ``user_id`` was last verified on, or None."""
        return await self._sessions.visitor_of_user(site, user_id)

    async def visitor_sessions(self, site: str, visitor: str, now_ms: int) -> dict[str, int]:
        """The visitor's sessions whose keys may still live at ``now_ms``, newest first
        (:meth:`Sessions.visitor_sessions`)."""
        return await self._sessions.visitor_sessions(site, visitor, now_ms)

    async def session_facts(self, site: str, session: str, visitor: str | None = None) -> Facts:
        return await self._sessions.session_facts(site, session, visitor)

    async def recent_events(
        self, site: str, session: str, count: int, visitor: str | None = None
    ) -> list[dict[str, Any]]:
        return await self._sessions.recent_events(site, session, count, visitor)

    # ---------------------------------------------------------------- deadlines (deadlines.py)

    async def claim_due(
        self, now_ms: int, limit: int
    ) -> tuple[list[tuple[Timer, int]], int | None]:
        """Claim due timers, and timers whose lease expired, with a lease of
        ``settings.timer_lease_s`` (:meth:`Deadlines.claim_due`)."""
        return await self._deadlines.claim_due(now_ms, limit)

    async def consume(self, timer: Timer) -> tuple[Facts, Facts] | None:
        return await self._deadlines.consume(timer)

    async def ack_timer(self, timer: Timer, clear_hold: bool = False) -> None:
        await self._deadlines.ack_timer(timer, clear_hold)

    async def timer_due(self, timer: Timer) -> int | None:
        return await self._deadlines.timer_due(timer)

    async def next_due_ms(self) -> int | None:
        """The earliest deadline, or lease expiry of a claimed timer, in epoch ms."""
        return await self._deadlines.next_due_ms()

    # ---------------------------------------------------------------- streams (streams.py)

    async def audit(self, site: str, record: dict[str, str]) -> None:
        """Append ``record`` to the site's audit stream; once per ``firing`` when it has one."""
        await self.record(site, [], [record])

    async def counters(self, site: str, days: list[str]) -> dict[str, dict[str, int]]:
        """The measurement counters of ``site`` on each of ``days`` (UTC, ``YYYY-MM-DD``):
        day -> field -> count (counters.py); a day without any is left out."""
        async with guard("read the measurement counters"):
            found = await together(
                self._calls.command("HGETALL", self._k.counters(site, day)) for day in days
            )
        return {
            day: {str(f): int(n) for f, n in pairs_of(held).items()}
            for day, held in zip(days, found, strict=True)
            if held
        }

    async def assign_segment(
        self, site: str, visitor: str, model: str, segment: str, now_ms: int
    ) -> bool:
        k = self._k
        keys = [k.visitor(site, visitor)]
        if not k.cluster:
            keys.append(k.counters(site, day_of(now_ms)))
        args = [segment_field(model, segment), day_of(now_ms)]
        async with guard("count a segment"):
            counted, apart = await self._calls.call(self._segment, keys, args)
            if apart:  # a cluster: the day's counters are in the site's slot
                await tally.count_beside(self._calls, k, site, day_of(now_ms), apart)
        return bool(counted)

    async def read_audit(self, site: str, count: int) -> list[dict[str, str]]:
        return await self._streams.read_audit(site, count)

    async def read_live(self, site: str, count: int) -> list[dict[str, str]]:
        """The latest accepted batches, oldest first: id, session, visitor, events (JSON)."""
        return await self._streams.read_live(site, count)

    async def stream_after(
        self, key: str, after: str | None, count: int
    ) -> list[tuple[str, dict[str, str]]]:
        """Entries of a stream (audit, live) after the id ``after``, oldest first; without
        ``after``, the latest ``count`` (:meth:`Streams.stream_after`)."""
        return await self._streams.stream_after(key, after, count)

    async def deferred(self) -> None:
        """Make the writes gathered after the batches now and wait for them (on a cluster:
        live stream entries, heatmap hits, counters, removals of cancelled deadlines)."""
        await self._beside.deferred()

    async def aclose(self) -> None:
        await self.deferred()
        await self._calls.aclose()
        await self._syncs.aclose()
        await self._r.aclose()
