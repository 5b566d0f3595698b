"""On a Redis Cluster: the QA live stream's entries, gathered per site and written in order.

The live stream (``<prefix>:live:{l:site}``) has a slot of its own, so a batch's ingest.lua
cannot write its entry there as it does on one Redis. The entries of the batches a process
takes are gathered per site and written after them, without waiting (:meth:`Beside.later`),
by one ``live_add.lua`` call for all those gathered: at most one call per site is in flight,
and the entries gathered meanwhile go in the next, so the stream keeps the order the batches
were taken in (replay and export read it so: two calls on two connections could land in
either order) and a busy process makes fewer calls, not more.
"""

from __future__ import annotations

import asyncio
from typing import Any

from redis.commands.core import AsyncScript

from ..keys import Keys
from ..origin import Origin
from .base import Facts
from .beside import Beside
from .coalesce import Coalescer


class LiveEntries:
    """Gathers the live stream entries of a process's batches and writes them per site."""

    def __init__(
        self, calls: Coalescer, beside: Beside, script: AsyncScript, keys: Keys, max_len: int
    ) -> None:
        self._calls = calls
        self._beside = beside
        self._script = script
        self._k = keys
        self._max_len = max_len
        self._waiting: dict[str, list[Any]] = {}  # site -> 5 arguments per entry, not sent
        self._sending: set[str] = set()  # the sites with a call in flight

    def add(self, origin: Origin, now_ms: int, accepted: list[str], session: Facts) -> None:
        """The entry of a batch's ``accepted`` events (their JSON), with the session's
        device class from ``session``, its facts after the batch (every rule set reads
        ``device``: rules/reads.py; a batch never changes it). Sent at the end of the loop
        turn, or once the site's call in flight is answered."""
        site = origin.site
        waiting = self._waiting.get(site)
        if waiting is None:
            waiting = self._waiting[site] = []
            if site not in self._sending:
                asyncio.get_running_loop().call_soon(self._send, site)
        events = "[" + ",".join(accepted) + "]"
        waiting += [now_ms, origin.session, origin.visitor, events, session.get("device", "")]
        if len(waiting) > 5 * self._max_len:  # (a node not answering) the stream keeps the
            del waiting[: len(waiting) - 5 * self._max_len]  # last max_len entries only

    def flush(self) -> None:
        """Send what is gathered now, for the sites with no call in flight."""
        for site in list(self._waiting):
            self._send(site)

    def _send(self, site: str) -> None:
        if site in self._sending or site not in self._waiting:
            return  # the call in flight sends the rest once answered, or nothing is left
        self._sending.add(site)
        self._beside.later(self._write(site, self._waiting.pop(site)))

    async def _write(self, site: str, entries: list[Any]) -> None:
        try:
            await self._calls.call(self._script, [self._k.live(site)], [self._max_len, *entries])
        finally:  # failed or not (Beside logs it), the next call goes
            self._sending.discard(site)
            self._send(site)
