"""The timer loop: claim due deadlines atomically, re-check eligibility, deliver.

Deadlines live in the store (a sorted set scored by due time), so they survive restarts, and
a claim is atomic, so with several server processes each deadline fires once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable

from .clock import Clock
from .delivery import Delivery
from .errors import StoreError
from .ids import new_id
from .rules.engine import Engine
from .store.base import Put, Schedule, Store, Timer

log = logging.getLogger(__name__)

CLAIM_BATCH = 256
HOLD_FOR_A_TAB_MS = 30_000  # a due prompt waits this long for a tab to (re)connect
RETRY_MS = 500


class TimerLoop:
    def __init__(
        self,
        store: Store,
        engine: Callable[[], Engine],
        delivery: Delivery,
        clock: Clock,
        poll_s: float,
        session_ttl_s: int = 30 * 60,
        on_lateness: Callable[[float], None] = lambda _ms: None,
        on_store_error: Callable[[], None] = lambda: None,
    ) -> None:
        self._store = store
        self._engine = engine
        self._delivery = delivery
        self._clock = clock
        self._poll_s = poll_s
        self._session_ttl_ms = session_ttl_s * 1000
        self._on_lateness = on_lateness
        self._on_store_error = on_store_error
        self._healthy = True
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        """Ask :meth:`run` to return after its current tick.

        Stopping by flag, not only by cancellation: a cancel that lands inside a Redis
        command may surface as a connection error, which the loop would otherwise retry.
        """
        self._stopping.set()

    async def run(self) -> None:
        backoff = self._poll_s
        while not self._stopping.is_set():
            pause = self._poll_s
            try:
                fired, next_due = await self.tick()
                self._set_healthy(True)
                backoff = self._poll_s
                if next_due is not None:  # sleep to the next deadline, polling at least this often
                    pause = min(pause, max(0.0, (next_due - self._clock.now_ms()) / 1000))
            except StoreError as exc:
                self._on_store_error()
                self._set_healthy(False, exc)
                backoff = pause = min(backoff * 2, 5.0)
                fired = 0
            if fired < CLAIM_BATCH and pause > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), pause * random.uniform(0.9, 1.0))

    async def tick(self) -> tuple[int, int | None]:
        """Claim and fire what is due now: how many timers were claimed, and the next deadline.

        Fired concurrently: one slow session does not hold up the others."""
        now = self._clock.now_ms()
        claimed, next_due = await self._store.claim_due(now, CLAIM_BATCH)
        for _timer, due_ms in claimed:
            self._on_lateness(max(0, now - due_ms))
        results = await asyncio.gather(
            *(self._fire(timer, due_ms) for timer, due_ms in claimed), return_exceptions=True
        )
        for (timer, _), result in zip(claimed, results, strict=True):
            if isinstance(result, Exception):
                log.error(
                    "timer %s of session %s failed", timer.rule, timer.session, exc_info=result
                )
        return len(claimed), next_due

    async def _fire(self, timer: Timer, due_ms: int) -> None:
        facts = await self._store.consume(timer)
        if facts is None:  # cancelled or replaced since it was scheduled
            return
        session_facts, visitor_facts = facts
        now = self._clock.now_ms()
        if due_ms - int(session_facts.get("last") or due_ms) > self._session_ttl_ms:
            return  # the session had ended before the deadline; nobody is there to see it
        outcome = self._engine().on_timer(timer, session_facts, visitor_facts, due_ms, now)
        if isinstance(outcome, Schedule):  # activity pushed a lazy deadline back
            await self._store.apply([outcome])
        elif outcome is not None:
            sid = session_facts.get("sid")
            if sid:
                await self._delivery.resolve(
                    timer.site, timer.session, timer.visitor, sid, [outcome]
                )
            else:
                await self._hold(timer, session_facts, now)

    async def _hold(self, timer: Timer, session_facts: dict[str, str], now: int) -> None:
        """No tab is connected: try again shortly, for a while, in case one comes back."""
        field = f"hold:{timer.rule}"
        since = int(session_facts.get(field) or now)
        if now - since >= HOLD_FOR_A_TAB_MS:
            return
        retry = Timer(timer.site, timer.session, timer.visitor, timer.rule, new_id(nbytes=6))
        put = Put(timer.site, timer.session, timer.visitor, field, str(since))
        await self._store.apply([put, Schedule(retry, now + RETRY_MS)])

    def _set_healthy(self, healthy: bool, exc: Exception | None = None) -> None:
        if healthy != self._healthy:
            if healthy:
                log.warning("timer loop: store reachable again")
            else:
                log.error("timer loop: store unreachable (%s); retrying with backoff", exc)
        self._healthy = healthy
