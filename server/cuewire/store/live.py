"""On a Redis Cluster: the QA live stream's entries, gathered per site and written in order.

The live stream (``<prefix>:live:{l:site}``) has a slot of its own, so a batch's ingest.lua
cannot write its entry there as it does on one Redis. The entries of the batches a process
takes are gathered per site (gather.py) and written after them by one ``live_add.lua`` call
for all those gathered, in the order the batches were taken (replay and export read it so).
"""

from __future__ import annotations

from typing import Any

from redis.commands.core import AsyncScript

from ..keys import Keys
from ..origin import Origin
from .base import Facts
from .beside import Beside
from .coalesce import Coalescer
from .gather import Gathered


class LiveEntries:
    """Gathers the live stream entries of a process's batches and writes them per site."""

    def __init__(
        self, calls: Coalescer, beside: Beside, script: AsyncScript, keys: Keys, max_len: int
    ) -> None:
        self._calls = calls
        self._script = script
        self._k = keys
        self._max_len = max_len
        # site -> entries (the stream keeps the last max_len only: so many may wait)
        self._gathered: Gathered[str, tuple[Any, ...]] = beside.gathered(self._write, max_len)

    def add(self, origin: Origin, now_ms: int, accepted: list[str], session: Facts) -> None:
        """The entry of a batch's ``accepted`` events (their JSON), with the session's
        device class from ``session``, its facts after the batch (every rule set reads
        ``device``: rules/reads.py; a batch never changes it)."""
        events = "[" + ",".join(accepted) + "]"
        entry = (now_ms, origin.session, origin.visitor, events, session.get("device", ""))
        self._gathered.add(origin.site, (entry,))

    async def _write(self, site: str, entries: list[tuple[Any, ...]]) -> None:
        args = [self._max_len, *(arg for entry in entries for arg in entry)]
        await self._calls.call(self._script, [self._k.live(site)], args)
