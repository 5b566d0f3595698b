"""The store on Redis (``redis://``) or on the embedded in-process server (``memory://``)."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ..errors import StoreError
from ..facts import FactChanges, NewName
from ..ids import new_id
from ..keys import Keys
from ..ratelimit import Rate
from ..settings import Settings
from .base import (
    Action,
    Admission,
    Cancel,
    Claim,
    Facts,
    Ingested,
    OpenedSession,
    Put,
    Schedule,
    Timer,
)

AUDIT_MAXLEN = 100_000


def _lua(name: str) -> str:
    return resources.files(__package__).joinpath("lua", name).read_text(encoding="utf-8")


def _pairs_of(mapping: Any) -> Facts:
    return {str(k): str(v) for k, v in (mapping or {}).items()}


def _pairs(flat: list[Any]) -> Facts:
    return {flat[i]: flat[i + 1] for i in range(0, len(flat), 2)}


class RedisStore:
    """Session state in a Redis-compatible server, one round trip per event batch."""

    def __init__(self, client: aioredis.Redis, settings: Settings) -> None:
        self._r = client
        self._s = settings
        self._k = Keys(settings.key_prefix)
        self._open = client.register_script(_lua("open_session.lua"))
        self._ingest = client.register_script(_lua("ingest.lua"))
        self._claim = client.register_script(_lua("claim_timers.lua"))
        self._consume = client.register_script(_lua("consume_timer.lua"))
        self._governance = client.register_script(_lua("claim.lua"))
        self._release = client.register_script(_lua("release_socket.lua"))
        self._admit = client.register_script(_lua("admit.lua"))

    @property
    def keys(self) -> Keys:
        return self._k

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
    ) -> OpenedSession:
        fresh_id = new_id("s_")
        held = self._k.session(site, session) if session else self._k.session(site, fresh_id)
        args: list[Any] = [now_ms, self._s.session_ttl_s, self._s.visitor_ttl_s, visitor, fresh_id]
        for pair in (describe or {}).items():
            args += pair
        try:
            resumed, returning, prev = await self._open(
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
        )

    async def ingest(
        self,
        site: str,
        session: str,
        visitor: str,
        tab: str,
        socket_id: str,
        events: list[dict[str, Any]],
        changes: list[FactChanges],
        now_ms: int,
    ) -> Ingested:
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
            change.encoded(event["seq"], json.dumps(event, separators=(",", ":")))
            for event, change in zip(events, changes, strict=True)
        ]
        args.append(json.dumps(batch, separators=(",", ":")))
        keys = [
            self._k.session(site, session),
            self._k.recent(site, session),
            self._k.seen(site, session, tab),
            self._k.visitor(site, visitor),
            self._k.live(site),
        ]
        try:
            fresh, sess, vis = await self._ingest(keys=keys, args=args)
        except RedisError as exc:
            raise StoreError(f"cannot store events: {exc}") from exc
        return Ingested([bool(f) for f in fresh], _pairs(sess), _pairs(vis))

    async def admit(
        self,
        site: str,
        session: str,
        visitor: str,
        address: str,
        names: list[list[NewName]],
        visitor_rate: Rate,
        address_rate: Rate,
        caps: dict[str, int],
        now_ms: int,
    ) -> Admission:
        keys = [
            self._k.visitor_rate(site, visitor),
            self._k.address_rate(address),
            self._k.names(site, session),
            self._k.visitor_names(site, visitor),
        ]
        args: list[Any] = [
            now_ms,
            len(names),
            visitor_rate.interval_ms(),
            visitor_rate.burst,
            address_rate.interval_ms(),
            address_rate.burst,
            self._s.session_ttl_s,
            self._s.visitor_ttl_s,
            json.dumps(caps),
            json.dumps(names, separators=(",", ":")),
        ]
        try:
            granted, retry_ms, capped = await self._admit(keys=keys, args=args)
        except RedisError as exc:
            raise StoreError(f"cannot admit events: {exc}") from exc
        return Admission(int(granted), int(retry_ms), [str(c) for c in capped or []])

    async def apply(self, actions: list[Action]) -> list[str]:
        if not actions:
            return []
        if len(actions) == 1 and isinstance(actions[0], Claim):  # one EVALSHA, no pipeline
            try:
                return [str(await self._claim_into(self._r, actions[0]))]
            except RedisError as exc:
                raise StoreError(f"cannot claim a firing: {exc}") from exc
        pipe = self._r.pipeline(transaction=False)
        for action in actions:
            if isinstance(action, Schedule):
                t = action.timer
                pipe.hset(self._k.session(t.site, t.session), f"t:{t.rule}", t.token)
                pipe.zadd(self._k.timers(), {t.member(): action.due_ms})
            elif isinstance(action, Cancel):
                t = action.timer
                pipe.hdel(self._k.session(t.site, t.session), f"t:{t.rule}")
                pipe.zrem(self._k.timers(), t.member())
            elif isinstance(action, Put):
                key = (
                    self._k.visitor(action.site, action.visitor)
                    if action.on_visitor
                    else self._k.session(action.site, action.session)
                )
                if action.value is None:
                    pipe.hdel(key, action.field)
                else:
                    pipe.hset(key, action.field, action.value)
            else:
                await self._claim_into(pipe, action)
        try:
            results = await pipe.execute()
        except RedisError as exc:
            raise StoreError(f"cannot apply rule actions: {exc}") from exc
        verdicts: list[str] = []
        pos = 0
        for action in actions:
            if isinstance(action, Claim):
                verdicts.append(str(results[pos]))
            pos += 2 if isinstance(action, Schedule | Cancel) else 1
        return verdicts

    async def _claim_into(self, client: Any, c: Claim) -> Any:
        return await self._governance(
            keys=[self._k.session(c.site, c.session), self._k.visitor(c.site, c.visitor)],
            args=[
                c.rule,
                c.now_ms,
                int(c.shows),
                c.prompt_id,
                c.per_session,
                c.per_day,
                c.per_week,
                c.cooldown_ms,
                c.max_prompts,
                int(c.one_at_a_time),
                c.snooze_ms,
                c.dismiss_count,
                c.dismiss_pause_ms,
            ],
            client=client,
        )

    async def claim_due(
        self, now_ms: int, limit: int
    ) -> tuple[list[tuple[Timer, int]], int | None]:
        try:
            members = await self._claim(keys=[self._k.timers()], args=[now_ms, limit])
        except RedisError as exc:
            raise StoreError(f"cannot claim timers: {exc}") from exc
        claimed = [
            (Timer.from_member(members[i]), int(float(members[i + 1])))
            for i in range(1, len(members), 2)
        ]
        return claimed, int(float(members[0])) if members[0] else None

    async def consume(self, timer: Timer) -> tuple[Facts, Facts] | None:
        keys = [
            self._k.session(timer.site, timer.session),
            self._k.visitor(timer.site, timer.visitor),
        ]
        result = await self._consume(keys=keys, args=[f"t:{timer.rule}", timer.token])
        if not result:
            return None
        return _pairs(result[0]), _pairs(result[1])

    async def timer_due(self, timer: Timer) -> int | None:
        score = await self._r.zscore(self._k.timers(), timer.member())
        return int(score) if score is not None else None

    async def visitor_facts(self, site: str, visitor: str) -> Facts:
        return _pairs_of(await self._r.hgetall(self._k.visitor(site, visitor)))

    async def release_socket(self, site: str, session: str, sid: str) -> None:
        try:
            await self._release(keys=[self._k.session(site, session)], args=[sid])
        except RedisError as exc:
            raise StoreError(f"cannot release a socket: {exc}") from exc

    async def link_user(self, site: str, user_id: str, visitor: str) -> None:
        await self._r.set(self._k.user(site, user_id), visitor, ex=self._s.visitor_ttl_s)

    async def visitor_of_user(self, site: str, user_id: str) -> str | None:
        found = await self._r.get(self._k.user(site, user_id))
        return str(found) if found is not None else None

    async def next_due_ms(self) -> int | None:
        first = await self._r.zrange(self._k.timers(), 0, 0, withscores=True)
        return int(first[0][1]) if first else None

    async def session_facts(self, site: str, session: str) -> Facts:
        return _pairs_of(await self._r.hgetall(self._k.session(site, session)))

    async def recent_events(self, site: str, session: str, count: int) -> list[dict[str, Any]]:
        raw = await self._r.lrange(self._k.recent(site, session), 0, count - 1)
        return [json.loads(item) for item in raw]

    async def audit(self, site: str, record: dict[str, str]) -> None:
        fields: dict[Any, Any] = dict(record)
        await self._r.xadd(self._k.audit(site), fields, maxlen=AUDIT_MAXLEN, approximate=True)

    async def read_audit(self, site: str, count: int) -> list[dict[str, str]]:
        entries = await self._r.xrevrange(self._k.audit(site), count=count) or []
        return [
            {"id": str(entry_id), **_pairs_of(fields)} for entry_id, fields in reversed(entries)
        ]

    async def read_live(self, site: str, count: int) -> list[dict[str, str]]:
        """The latest accepted batches, oldest first: id, session, visitor, events (JSON)."""
        entries = await self._r.xrevrange(self._k.live(site), count=count) or []
        return [{"id": str(i), **_pairs_of(fields)} for i, fields in reversed(entries)]

    async def stream_after(
        self, key: str, after: str | None, count: int
    ) -> list[tuple[str, dict[str, str]]]:
        """Entries of a stream (audit, live) after the id ``after``, oldest first; without
        ``after``, the latest ``count``. For tailing: pass the last id seen."""
        if after is None:
            entries = list(reversed(await self._r.xrevrange(key, count=count) or []))
        else:
            entries = await self._r.xrange(key, min=f"({after}", count=count) or []
        return [(str(i), _pairs_of(fields)) for i, fields in entries]

    async def aclose(self) -> None:
        await self._r.aclose()
