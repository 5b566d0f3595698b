"""The per-address rate limit on a Redis Cluster: decided in the process, shared every
``address_sync_s``, so a batch stays one round trip.

On one Redis the address's GCRA state is read and charged inside the batch's script (exact,
no extra call). On a cluster the address key has a slot of its own: asking it first would
make every batch two sequential round trips. Instead each process keeps, per address, its
view of the shared GCRA arrival time (the last one it read, plus the events it admitted
since) and decides from it as address_rate.lua would; a supervised loop (:meth:`run`)
sends each address's admitted events to the shared key and reads the shared time back
(address_sync.lua, one call per address, the calls of one sync in one pipeline per node,
apart from the batches' calls).

One process alone decides exactly as the shared GCRA would. Several processes may together
admit more than the limit while each has not yet seen the others' events: at most what
the others admitted in the lag of one view, ``2 * address_sync_s`` plus a sync's round trip
(an event waits up to one interval to be sent, the other process up to one more to read
it). Every admitted event is charged to the shared time, so an overshoot is a debt the
address pays back (the shared time runs ahead, every process refuses until it has passed):
over any stretch of T seconds an address gets at most
``rate * T + burst + sum over processes of (its events/s of that address * lag)``
(docs/deploy.md, "Redis Cluster"; tests/test_address_limit.py).

Memory: an address is forgotten at a sync once its time has passed and its events are sent
(its GCRA state is then that of an unknown address). At most ``max_addresses`` are kept:
a batch from a new address past that is asked of the shared key first, as without this
module (exact, one more round trip), until syncs forget old ones. While no loop runs (a
store used outside ``cuewire serve``, or a loop that crashed and waits for its restart),
every batch is asked that way too.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass
from typing import Any

from redis.commands.core import AsyncScript

from ..keys import Keys
from ..ratelimit import Rate
from ..waiting import wait_set
from .coalesce import Coalescer
from .shared import FAILURES

log = logging.getLogger(__name__)

MAX_ADDRESSES = 10_000  # addresses one process decides for locally (about 1-2 MB)
MAX_BACKOFF_S = 2.0  # the longest pause between syncs while they fail


@dataclass(slots=True)
class _Address:
    """One address as this process sees it."""

    tat: float  # the GCRA arrival time (ms): the last shared read plus this process's events
    interval: float  # ms per event of its rate
    unsent: int = 0  # events admitted (less those given back) not yet sent to the shared key


class SharedAddressLimit:
    """Per-address GCRA decisions in the process, synced with the shared keys (module doc)."""

    def __init__(
        self,
        calls: Coalescer,
        script: AsyncScript,
        keys: Keys,
        max_addresses: int = MAX_ADDRESSES,
    ) -> None:
        self._calls = calls
        self._script = script
        self._k = keys
        self.max_addresses = max_addresses
        self._addresses: dict[str, _Address] = {}
        self._sharing = False
        self._stopping = asyncio.Event()
        # "now" for syncs: the latest batch's time, moved on by the (monotonic) time since it
        self._now_ms = 0.0
        self._now_at = time.monotonic()
        self.syncs = 0  # syncs done
        self.failures = 0  # syncs with at least one address that failed
        self.failing = False  # the latest sync failed (its events are sent with the next)
        self.full = 0  # batches asked of the shared key because the map was full

    @property
    def sharing(self) -> bool:
        """Whether batches are decided here (a sync loop runs, or :meth:`start` was called)."""
        return self._sharing

    def __len__(self) -> int:
        return len(self._addresses)

    def start(self) -> None:
        """Decide batches here from now on; the caller syncs (:meth:`run` does, by itself)."""
        self._sharing = True

    def take(self, address: str, rate: Rate, events: int, now_ms: int) -> tuple[int, int] | None:
        """How many of ``events`` the address admits now and, when not all, the ``retry_ms``
        (address_rate.lua's answer, from this process's view); None: not decided here (no
        sync runs, or the map is full), ask the shared key."""
        if not self._sharing:
            return None
        if now_ms > self._now_ms:
            self._now_ms, self._now_at = float(now_ms), time.monotonic()
        interval, burst = rate.interval_ms(), rate.burst
        held = self._addresses.get(address)
        if held is None:
            if len(self._addresses) >= self.max_addresses:
                self.full += 1
                return None
            held = self._addresses[address] = _Address(now_ms, interval)
        held.interval = interval
        tat = max(held.tat, now_ms)
        granted = min(events, max(0, math.floor((now_ms + interval * burst - tat) / interval)))
        new_tat = tat + granted * interval
        if granted > 0:
            held.tat, held.unsent = new_tat, held.unsent + granted
        retry = 0
        if granted < events:
            retry = max(0, math.ceil(new_tat + interval - interval * burst - now_ms))
        return granted, retry

    def give_back(self, address: str, events: int) -> None:
        """Return ``events`` taken by :meth:`take` that the batch did not admit (the visitor's
        own limit refused them, or the store failed), as ingest.lua charges an address only
        for the events both limits grant."""
        held = self._addresses.get(address)
        if held is not None and events > 0:
            held.tat -= events * held.interval
            held.unsent -= events

    def now_ms(self) -> float:
        return self._now_ms + (time.monotonic() - self._now_at) * 1000

    async def sync(self) -> int:
        """Send each address's admitted events to its shared key and read the shared time
        back; forget the addresses with nothing left to say. How many addresses were synced;
        a failed one keeps its events for the next sync (``failing`` says so)."""
        now = self.now_ms()
        for address in [a for a, held in self._addresses.items() if self._done(held, now)]:
            del self._addresses[address]
        batch = list(self._addresses.items())
        sent = [held.unsent for _, held in batch]
        for _, held in batch:
            held.unsent = 0
        answers = await asyncio.gather(
            *(
                self._calls.call(
                    self._script,
                    [self._k.address_rate(address)],
                    [int(now), n, f"{held.tat:.3f}", held.interval],
                )
                for (address, held), n in zip(batch, sent, strict=True)
            ),
            return_exceptions=True,
        )
        failed: BaseException | None = None
        for (_, held), n, answer in zip(batch, sent, answers, strict=True):
            if isinstance(answer, BaseException):
                held.unsent += n  # sent with the next sync
                failed = answer
            else:  # the shared time, plus what this process admitted while the call was out
                held.tat = max(float(answer) + held.unsent * held.interval, held.tat)
        self.syncs += 1
        self._note(failed)
        if failed is not None and not isinstance(failed, (*FAILURES, OSError)):
            raise failed  # not the store failing: a bug, for the supervisor to report
        return len(batch)

    @staticmethod
    def _done(held: _Address, now: float) -> bool:
        return held.unsent == 0 and held.tat <= now

    def _note(self, failed: BaseException | None) -> None:
        """Count a failed sync; log once when syncs start failing and once when they work
        again (not once per sync)."""
        if failed is not None:
            self.failures += 1
            if not self.failing:
                log.error(
                    "address rate limit: cannot share counts (%s); deciding from this "
                    "process's counts, retrying with backoff",
                    failed,
                )
        elif self.failing:
            log.warning("address rate limit: counts shared again")
        self.failing = failed is not None

    async def run(self, every_s: float) -> None:
        """Decide here and sync every ``every_s`` (longer, up to MAX_BACKOFF_S, while syncs
        fail) until :meth:`stop`; then send what is left and let the shared key decide."""
        self._stopping.clear()
        self._sharing = True
        pause = every_s
        try:
            while not self._stopping.is_set():
                await self.sync()
                pause = min(pause * 2, MAX_BACKOFF_S) if self.failing else every_s
                await wait_set(self._stopping, pause)
            await self.sync()  # the last events, for the other processes
        finally:
            self._sharing = False

    def stop(self) -> None:
        """Ask :meth:`run` to return after a last sync."""
        self._stopping.set()

    def status(self) -> dict[str, Any]:
        """For ``/healthz``: whether batches are decided here, and how the syncs go."""
        return {
            "shared": self._sharing,
            "addresses": len(self._addresses),
            "syncs": self.syncs,
            "failing": self.failing,
            "failures": self.failures,
            "full": self.full,
        }
