"""On a Redis Cluster, the writes that go beside a script call because their keys are in
other slots: a new deadline's entry in its shard, added in the same loop turn as the script
(another node, concurrently); the removal of cancelled deadlines, gathered per shard, and the
other writes gathered per key (gather.py: live stream entries, heatmap hits, counters), made
after it without waiting (:meth:`Beside.later`). On one Redis the script makes those writes
itself and a call is just the script's."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from redis.commands.core import AsyncScript

from .coalesce import Coalescer
from .gather import WAITING_CAP, Gathered, K, T
from .scripts import TimerOp
from .shared import FAILURES, Client

log = logging.getLogger(__name__)


class Beside:
    """Script calls with their deadline-shard writes on ``client`` through ``calls`` (the
    store's coalescer), and the writes made without waiting."""

    def __init__(self, client: Client, calls: Coalescer) -> None:
        self._r = client
        self._calls = calls
        self._background: set[asyncio.Task[Any]] = set()
        self._gathered: list[Gathered[Any, Any]] = []
        self._removals = self.gathered(self._remove)  # shard key -> deadline members

    def gathered(
        self, write: Callable[[K, list[T]], Awaitable[Any]], cap: int = WAITING_CAP
    ) -> Gathered[K, T]:
        """Writes gathered per key, made by ``write`` after the calls (gather.py)."""
        gathered: Gathered[K, T] = Gathered(write, self.later, cap)
        self._gathered.append(gathered)
        return gathered

    async def call(
        self,
        script: AsyncScript,
        keys: list[str],
        args: list[Any],
        timer_ops: list[TimerOp],
        applied: Callable[[Any], bool],
    ) -> Any:
        """A script call through the coalescer; on a cluster with the deadline-shard changes
        of its actions (``timer_ops``) beside it: new deadlines in the same loop turn, and
        the removal of cancelled ones, once ``applied(answer)`` says they were (else of the
        ones it added), after it."""
        if not timer_ops:  # one Redis (the script changes the deadline set), or none changed
            return await self._calls.call(script, keys, args)
        adds = [op for op in timer_ops if op.due_ms is not None]
        if not adds:
            answer = await self._calls.call(script, keys, args)
        else:
            sent = [self._calls.command("ZADD", op.key, op.due_ms, op.member) for op in adds]
            answer, *added = await asyncio.gather(
                self._calls.call(script, keys, args), *sent, return_exceptions=True
            )
            if isinstance(answer, BaseException):
                raise answer
            for op, result in zip(adds, added, strict=True):
                if isinstance(result, BaseException):  # once more, alone: its token is set
                    await self._r.zadd(op.key, {op.member: op.due_ms or 0})
        # Left behind, a removed deadline, or one added for actions the script did not apply,
        # would fire stale and be dropped: removed after the batch, without waiting.
        done = applied(answer)
        for op in timer_ops:
            removal = op.due_ms is None
            if removal == done:
                self._removals.add(op.key, (op.member,))
        return answer

    async def _remove(self, shard: str, members: list[str]) -> None:
        await self._calls.command("ZREM", shard, *members)

    def later(self, work: Awaitable[Any]) -> None:
        """Run ``work`` without waiting for it (its failure is logged)."""

        async def run() -> None:
            try:
                await work
            except (*FAILURES, OSError) as exc:
                log.warning("a deferred store write failed: %s", exc)

        task = asyncio.get_running_loop().create_task(run())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def deferred(self) -> None:
        """Make the gathered writes now, and wait for those made without waiting."""
        for gathered in self._gathered:
            gathered.flush()
        while self._background:
            await asyncio.wait(set(self._background))
