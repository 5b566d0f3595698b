"""The store on Redis (``redis://``) or on the embedded in-process server (``memory://``)."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from .. import fields
from ..errors import StoreError
from ..facts import FactChanges, NewName
from ..ids import new_id
from ..keys import Keys
from ..lifecycle import Closing
from ..origin import Origin
from ..settings import Settings
from .base import (
    Action,
    Admitted,
    Commit,
    Decided,
    Facts,
    FiringRequest,
    Gate,
    Ingested,
    OpenedSession,
    Put,
    Resolved,
    Timer,
)
from .coalesce import Coalescer
from .scripts import asks_arg, composed, lua, ops_arg, ops_of, slot_in, to_json, verdict

log = logging.getLogger(__name__)

AUDIT_MAXLEN = 100_000
AUDITED_TTL_S = 24 * 3600  # how long a firing is remembered as audited (record.lua)


@asynccontextmanager
async def _guard(what: str) -> AsyncIterator[None]:
    """Turn a Redis failure into StoreError: no RedisError leaves the store."""
    try:
        yield
    except RedisError as exc:
        raise StoreError(f"cannot {what}: {exc}") from exc


def _pairs_of(mapping: Any) -> Facts:
    return {str(k): str(v) for k, v in (mapping or {}).items()}


def _pairs(flat: list[Any]) -> Facts:
    return {flat[i]: flat[i + 1] for i in range(0, len(flat), 2)}


class RedisStore(Closing):
    """Session state in a Redis-compatible server, one round trip per event batch."""

    def __init__(self, client: aioredis.Redis, settings: Settings) -> None:
        self._r = client
        self._s = settings
        self._k = Keys(settings.key_prefix)
        self._open = client.register_script(lua("read.lua") + lua("open_session.lua"))
        self._ingest = client.register_script(composed("ingest.lua"))
        self._claim_timers = client.register_script(lua("claim_timers.lua"))
        self._consume = client.register_script(lua("consume_timer.lua"))
        self._ack = client.register_script(lua("ack_timer.lua"))
        self._commit = client.register_script(lua("ops.lua") + lua("commit.lua"))
        self._record = client.register_script(lua("ops.lua") + lua("record.lua"))
        self._resolve = client.register_script(composed("resolve.lua"))
        self._release = client.register_script(lua("release_socket.lua"))
        self._calls = Coalescer(client)  # the hot path's calls: one pipeline per loop turn

    @property
    def keys(self) -> Keys:
        return self._k

    @property
    def client(self) -> aioredis.Redis:
        """The Redis client (or the embedded server's) this store runs on."""
        return self._r

    @property
    def settings(self) -> Settings:
        return self._s

    async def ping(self) -> bool:
        try:
            return bool(await self._r.ping())
        except (RedisError, OSError):
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
        """Resume ``session`` or start a new one; with ``fields`` (``RuleSet.fields_json``),
        return those facts as the session starts, for the process to know them."""
        fresh_id = new_id("s_")
        held = self._k.session(site, session) if session else self._k.session(site, fresh_id)
        args: list[Any] = [now_ms, self._s.session_ttl_s, self._s.visitor_ttl_s, visitor, fresh_id]
        args.append(fields)
        for pair in (describe or {}).items():
            args += pair
        try:
            resumed, returning, prev, sess, vis = await self._open(
                keys=[held, self._k.session(site, fresh_id), self._k.visitor(site, visitor)],
                args=args,
            )
        except RedisError as exc:
            raise StoreError(f"cannot open a session: {exc}") from exc
        return OpenedSession(
            session=session if resumed and session else fresh_id,
            resumed=bool(resumed),
            returning=bool(returning),
            previous_visit_ms=int(prev) if prev else None,
            facts=(_pairs(sess), _pairs(vis)) if fields else None,
        )

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
    ) -> Ingested:
        """Admit a batch through ``gate`` (``names``: the names each event would add, for the
        caps), store what it admits; return its flags and the facts after it: the fields
        ``fields`` names (``RuleSet.fields_json``: what the engine reads), or all of both
        hashes. With ``decided``, its actions are applied with the batch when its facts are
        what the store holds and every event is new (``Ingested.applied``). One round trip."""
        site, session, visitor, tab = origin.site, origin.session, origin.visitor, origin.tab
        socket_id = origin.sid
        args: list[Any] = [
            now_ms,
            self._s.session_ttl_s,
            self._s.visitor_ttl_s,
            self._s.recent_events,
            socket_id,
            visitor,
            self._s.live_stream_max,
            session,
        ]
        batch = [
            change.encoded(event["seq"], to_json(event))
            for event, change in zip(events, changes, strict=True)
        ]
        args.append(to_json(batch))
        args.append(fields)
        args.append(self._gate_arg(gate, names or [[] for _ in events]) if gate else "")
        address = gate.address if gate else ""
        keys = [
            self._k.session(site, session),
            self._k.recent(site, session),
            self._k.seen(site, session, tab),
            self._k.visitor(site, visitor),
            self._k.live(site),
            self._k.pending(site, session, tab),
            self._k.visitor_rate(site, visitor),
            self._k.address_rate(address),
            self._k.names(site, session),
            self._k.visitor_names(site, visitor),
        ]
        if decided is None:
            args += ["", "", ""]
        else:
            facts = {"s": decided.session, "v": decided.visitor}
            args.append(to_json(facts))
            args.append(ops_arg(self._k, decided.seqs, decided.actions, keys))
            args.append(asks_arg(decided.requests) if decided.requests else "")
        try:
            (
                flags,
                sess,
                vis,
                (granted, retry_ms, capped),
                applied,
                verdicts,
            ) = await self._calls.call(self._ingest, keys, args)
        except RedisError as exc:
            raise StoreError(f"cannot store events: {exc}") from exc
        fresh = [int(f) == 1 for f in flags]
        todo = [int(f) != 0 for f in flags]
        admitted = Admitted(int(granted), int(retry_ms), [str(c) for c in capped or []])
        session_facts, visitor_facts = _pairs(sess), _pairs(vis)
        if not applied:
            return Ingested(fresh, todo, session_facts, visitor_facts, admitted)
        resolved = Resolved([verdict(v) for v in verdicts], session_facts, visitor_facts)
        return Ingested(fresh, todo, {}, {}, admitted, True, resolved)

    @staticmethod
    def _gate_arg(gate: Gate, names: list[list[NewName]]) -> str:
        """ingest.lua's ARGV[11]: the gate's limits and the names of each event."""
        spec = {
            "vi": gate.visitor_rate.interval_ms(),
            "vb": gate.visitor_rate.burst,
            "ai": gate.address_rate.interval_ms(),
            "ab": gate.address_rate.burst,
            "caps": dict(gate.caps),
            "names": names,
        }
        return to_json(spec)

    async def commit(self, origin: Origin, seqs: list[int], actions: list[Action]) -> bool:
        keys = [self._k.pending(origin.site, origin.session, origin.tab)]
        arg = ops_arg(self._k, seqs, actions, keys)
        async with _guard("apply rule actions"):
            done = await self._calls.call(self._commit, keys, [arg])
        return bool(done)

    async def resolve(
        self, requests: list[FiringRequest], commit: Commit | None = None
    ) -> Resolved | None:
        if not requests:
            raise ValueError("resolve() needs at least one firing request")
        first = requests[0]
        site, session, visitor = first.site, first.session, first.visitor
        pending = (
            self._k.pending(commit.origin.site, commit.origin.session, commit.origin.tab)
            if commit
            else self._k.session(site, session)  # unused without a commit
        )
        keys = [pending, self._k.session(site, session), self._k.visitor(site, visitor)]
        arg = ops_arg(self._k, commit.seqs, commit.actions, keys) if commit else ""
        async with _guard("ask governance about a firing"):
            answer = await self._calls.call(self._resolve, keys, [arg, asks_arg(requests)])
        if not answer:
            return None
        _, verdicts, sess, vis = answer
        return Resolved([verdict(v) for v in verdicts], _pairs(sess), _pairs(vis))

    async def record(self, site: str, puts: list[Put], records: list[dict[str, str]]) -> None:
        if not puts and not records:
            return
        keys = [self._k.audit(site)]
        ops = ops_of(self._k, list(puts), keys)
        slot = slot_in(keys)
        entries = [
            {
                "m": slot(self._k.audited(r["firing"])) if r.get("firing") else 0,
                "f": [item for pair in r.items() for item in pair],
            }
            for r in records
        ]
        arg = to_json({"ops": ops, "records": entries})
        async with _guard("record a firing"):
            await self._calls.call(self._record, keys, [arg, AUDIT_MAXLEN, AUDITED_TTL_S])

    async def apply(self, actions: list[Action]) -> None:
        if not actions:
            return
        keys = [self._k.timers()]  # commit.lua's pending-seq key: unused without seqs
        arg = ops_arg(self._k, [], actions, keys)
        async with _guard("apply rule actions"):
            await self._calls.call(self._commit, keys, [arg])

    async def claim_due(
        self, now_ms: int, limit: int
    ) -> tuple[list[tuple[Timer, int]], int | None]:
        """Claim due timers, and timers whose lease expired, with a lease of
        ``settings.timer_lease_s``. A member that is not a timer is logged and removed."""
        keys = [self._k.timers(), self._k.leases(), self._k.claimed()]
        lease_ms = round(self._s.timer_lease_s * 1000)
        async with _guard("claim timers"):
            members = await self._claim_timers(keys=keys, args=[now_ms, limit, lease_ms])
        claimed: list[tuple[Timer, int]] = []
        for i in range(1, len(members), 2):
            try:
                timer = Timer.from_member(members[i])
                due = int(float(members[i + 1]))
            except ValueError:
                log.error("removing a timer that cannot be decoded: %r", members[i][:200])
                async with _guard("remove a bad timer"):
                    await self._r.zrem(self._k.leases(), members[i])
                    await self._r.hdel(self._k.claimed(), members[i])
                continue
            claimed.append((timer, due))
        return claimed, int(float(members[0])) if members[0] else None

    async def consume(self, timer: Timer) -> tuple[Facts, Facts] | None:
        keys = [
            self._k.session(timer.site, timer.session),
            self._k.visitor(timer.site, timer.visitor),
        ]
        async with _guard("read a timer's facts"):
            result = await self._consume(keys=keys, args=[fields.timer(timer.rule), timer.token])
        if not result:
            return None
        return _pairs(result[0]), _pairs(result[1])

    async def ack_timer(self, timer: Timer, clear_hold: bool = False) -> None:
        keys = [self._k.leases(), self._k.claimed(), self._k.session(timer.site, timer.session)]
        hold = fields.hold(timer.rule) if clear_hold else ""
        async with _guard("release a timer"):
            await self._ack(
                keys=keys, args=[timer.member(), fields.timer(timer.rule), timer.token, hold]
            )

    async def timer_due(self, timer: Timer) -> int | None:
        async with _guard("read a timer"):
            score = await self._r.zscore(self._k.timers(), timer.member())
        return int(score) if score is not None else None

    async def visitor_facts(self, site: str, visitor: str) -> Facts:
        async with _guard("read visitor facts"):
            return _pairs_of(await self._r.hgetall(self._k.visitor(site, visitor)))

    async def release_socket(self, site: str, session: str, sid: str) -> None:
        try:
            await self._release(keys=[self._k.session(site, session)], args=[sid])
        except RedisError as exc:
            raise StoreError(f"cannot release a socket: {exc}") from exc

    async def link_user(self, site: str, user_id: str, visitor: str) -> None:
        """Link ``user_id`` to ``visitor``: call it for verified identifies only (identity.py)."""
        async with _guard("link a user id"):
            await self._r.set(self._k.user(site, user_id), visitor, ex=self._s.visitor_ttl_s)

    async def visitor_of_user(self, site: str, user_id: str) -> str | None:
        """The visitor ``user_id`` was last verified on, or None."""
        async with _guard("look up a user id"):
            found = await self._r.get(self._k.user(site, user_id))
        return str(found) if found is not None else None

    async def next_due_ms(self) -> int | None:
        """The earliest deadline, or lease expiry of a claimed timer, in epoch ms."""
        async with _guard("read the next deadline"):
            firsts = [
                await self._r.zrange(key, 0, 0, withscores=True)
                for key in (self._k.timers(), self._k.leases())
            ]
        scores = [int(first[0][1]) for first in firsts if first]
        return min(scores) if scores else None

    async def session_facts(self, site: str, session: str) -> Facts:
        async with _guard("read session facts"):
            return _pairs_of(await self._r.hgetall(self._k.session(site, session)))

    async def recent_events(self, site: str, session: str, count: int) -> list[dict[str, Any]]:
        async with _guard("read recent events"):
            raw = await self._r.lrange(self._k.recent(site, session), 0, count - 1)
        return [json.loads(item) for item in raw]

    async def audit(self, site: str, record: dict[str, str]) -> None:
        """Append ``record`` to the site's audit stream; once per ``firing`` when it has one."""
        await self.record(site, [], [record])

    async def read_audit(self, site: str, count: int) -> list[dict[str, str]]:
        async with _guard("read the audit"):
            entries = await self._r.xrevrange(self._k.audit(site), count=count) or []
        return [
            {"id": str(entry_id), **_pairs_of(fields)} for entry_id, fields in reversed(entries)
        ]

    async def read_live(self, site: str, count: int) -> list[dict[str, str]]:
        """The latest accepted batches, oldest first: id, session, visitor, events (JSON)."""
        async with _guard("read the live stream"):
            entries = await self._r.xrevrange(self._k.live(site), count=count) or []
        return [{"id": str(i), **_pairs_of(fields)} for i, fields in reversed(entries)]

    async def stream_after(
        self, key: str, after: str | None, count: int
    ) -> list[tuple[str, dict[str, str]]]:
        """Entries of a stream (audit, live) after the id ``after``, oldest first; without
        ``after``, the latest ``count``. For tailing: pass the last id seen."""
        async with _guard("read a stream"):
            if after is None:
                entries = list(reversed(await self._r.xrevrange(key, count=count) or []))
            else:
                entries = await self._r.xrange(key, min=f"({after}", count=count) or []
        return [(str(i), _pairs_of(fields)) for i, fields in entries]

    async def aclose(self) -> None:
        await self._r.aclose()
