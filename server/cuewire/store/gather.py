"""On a Redis Cluster: the writes that go after a batch's script into slots of their own (the
live stream, a site's heatmaps and counters, the deadline shards), gathered per key.

Under load many batches of one loop turn add to the same site's heatmap, live stream or
counters, or remove deadlines from the same shard. Sent one call per batch, each pays a task,
a future and a command of its own; gathered, what is added for a key waits for the end of the
loop turn, or for the key's call in flight to be answered, and goes in one call. At most one
call per key is in flight, so a key's writes land in the order they were added (the live
stream needs that: two calls on two connections could land in either order), and a busy
process makes fewer calls, not more. While a node does not answer, at most ``cap`` items wait
per key: the oldest are dropped, as a failed call drops its own (:meth:`Beside.later` logs it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Iterable
from typing import Any, Generic, TypeVar

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")

WAITING_CAP = 10_000  # items waiting per key while its node does not answer


class Gathered(Generic[K, T]):
    """Items gathered per key, written by ``write(key, items)``: one call per key in flight,
    run by ``later`` (without waiting for it; its failure logged there)."""

    def __init__(
        self,
        write: Callable[[K, list[T]], Awaitable[Any]],
        later: Callable[[Awaitable[Any]], None],
        cap: int = WAITING_CAP,
    ) -> None:
        self._write = write
        self._later = later
        self._cap = cap
        self._waiting: dict[K, list[T]] = {}  # not sent yet
        self._sending: set[K] = set()  # the keys with a call in flight

    def add(self, key: K, items: Iterable[T]) -> None:
        """Write ``items`` for ``key``: at the end of the loop turn, or once the key's call in
        flight is answered."""
        waiting = self._waiting.get(key)
        if waiting is None:
            waiting = self._waiting[key] = []
            if key not in self._sending:
                asyncio.get_running_loop().call_soon(self._send, key)
        waiting.extend(items)
        if len(waiting) > self._cap:
            del waiting[: len(waiting) - self._cap]

    def flush(self) -> None:
        """Send what is gathered now, for the keys with no call in flight."""
        for key in list(self._waiting):
            self._send(key)

    def _send(self, key: K) -> None:
        if key in self._sending or key not in self._waiting:
            return  # the call in flight sends the rest once answered, or nothing is left
        self._sending.add(key)
        self._later(self._written(key, self._waiting.pop(key)))

    async def _written(self, key: K, items: list[T]) -> None:
        try:
            await self._write(key, items)
        finally:  # failed or not (the caller of ``later`` logs it), the next call goes
            self._sending.discard(key)
            self._send(key)
