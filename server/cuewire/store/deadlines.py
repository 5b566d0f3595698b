"""The deadline set of the Redis store: claiming due deadlines under a lease, reading a
deadline's facts, releasing it, the next one due.

On one Redis the set is one sorted set (with its lease set and claimed hash); on a cluster it
is 16 shards (keys.py), each claimed from with one script call, all in one loop turn. Adding
and removing deadlines is part of the batch's script (redis.py), not of this module.
"""

from __future__ import annotations

import logging

from .. import fields
from ..keys import Keys
from ..settings import Settings
from .base import Facts, Timer
from .coalesce import Coalescer
from .scripts import lua
from .shared import Client, guard, pairs, together

log = logging.getLogger(__name__)


class Deadlines:
    """The store's deadline calls on ``client``; ``calls`` is the store's coalescer (one
    pipeline per loop turn, grouped per node on a cluster)."""

    def __init__(self, client: Client, keys: Keys, settings: Settings, calls: Coalescer) -> None:
        self._r = client
        self._k = keys
        self._s = settings
        self._calls = calls
        self._claim = client.register_script(lua("claim_timers.lua"))
        self._consume = client.register_script(lua("consume_timer.lua"))
        self._ack = client.register_script(lua("ack_timer.lua"))

    async def claim_due(
        self, now_ms: int, limit: int
    ) -> tuple[list[tuple[Timer, int]], int | None]:
        """Claim due timers, and timers whose lease expired, with a lease of
        ``settings.timer_lease_s``. A member that is not a timer is logged and removed.
        On a cluster every shard is asked (up to ``limit`` each), in one turn."""
        k = self._k
        lease_ms = round(self._s.timer_lease_s * 1000)
        args = [now_ms, limit, lease_ms]
        shards = range(k.timer_shards)
        async with guard("claim timers"):
            if not k.cluster:
                answers = [await self._claim(keys=self._shard_keys(0), args=args)]
            else:
                answers = await together(
                    self._calls.call(self._claim, self._shard_keys(n), args) for n in shards
                )
        claimed: list[tuple[Timer, int]] = []
        next_due: int | None = None
        for shard, members in zip(shards, answers, strict=True):
            if members[0]:
                due = int(float(members[0]))
                next_due = due if next_due is None else min(next_due, due)
            for i in range(1, len(members), 2):
                try:
                    timer = Timer.from_member(members[i])
                    due = int(float(members[i + 1]))
                except ValueError:
                    log.error("removing a timer that cannot be decoded: %r", members[i][:200])
                    async with guard("remove a bad timer"):
                        await self._r.zrem(k.leases(shard), members[i])
                        await self._r.hdel(k.claimed(shard), members[i])
                    continue
                claimed.append((timer, due))
        return claimed, next_due

    def _shard_keys(self, shard: int) -> list[str]:
        """claim_timers.lua's keys for one deadline shard."""
        return [self._k.timers(shard), self._k.leases(shard), self._k.claimed(shard)]

    async def consume(self, timer: Timer) -> tuple[Facts, Facts] | None:
        keys = [
            self._k.session(timer.site, timer.session, timer.visitor),
            self._k.visitor(timer.site, timer.visitor),
        ]
        async with guard("read a timer's facts"):
            result = await self._consume(keys=keys, args=[fields.timer(timer.rule), timer.token])
        if not result:
            return None
        return pairs(result[0]), pairs(result[1])

    async def ack_timer(self, timer: Timer, clear_hold: bool = False) -> None:
        k = self._k
        shard = k.timer_shard(timer.site, timer.visitor)
        lease, claimed = k.leases(shard), k.claimed(shard)
        session = k.session(timer.site, timer.session, timer.visitor)
        member, field = timer.member(), fields.timer(timer.rule)
        hold = fields.hold(timer.rule) if clear_hold else ""
        async with guard("release a timer"):
            if not k.cluster:
                keys = [lease, claimed, session]
                await self._ack(keys=keys, args=[member, field, timer.token, hold])
                return
            # Two slots, one loop turn. Either part may land alone: a lease left behind is
            # claimed again when it expires and then found stale (token cleared); a token left
            # behind belongs to a deadline no shard holds any more: it never fires.
            await together(
                [
                    self._calls.call(self._ack, [session] * 3, ["", field, timer.token, hold]),
                    self._calls.call(self._ack, [lease, claimed, lease], [member, "", "", ""]),
                ]
            )

    async def timer_due(self, timer: Timer) -> int | None:
        shard = self._k.timer_shard(timer.site, timer.visitor)
        async with guard("read a timer"):
            score = await self._r.zscore(self._k.timers(shard), timer.member())
        return int(score) if score is not None else None

    async def next_due_ms(self) -> int | None:
        """The earliest deadline, or lease expiry of a claimed timer, in epoch ms."""
        k = self._k
        sets = [key for n in range(k.timer_shards) for key in (k.timers(n), k.leases(n))]
        async with guard("read the next deadline"):
            if not k.cluster:
                firsts = [await self._r.zrange(key, 0, 0, withscores=True) for key in sets]
            else:
                firsts = await together(self._r.zrange(key, 0, 0, withscores=True) for key in sets)
        scores = [int(first[0][1]) for first in firsts if first]
        return min(scores) if scores else None
