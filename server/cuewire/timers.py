"""The timer loop: claim due deadlines with a lease, re-check eligibility, deliver, ack.

Deadlines live in the store (a sorted set scored by due time), so they survive restarts. A
claim moves a deadline under a lease (claim_timers.lua); the firing process acks it when done,
and a deadline whose lease expires (its process crashed) is claimed again by any process. A
firing is idempotent: the timer's token is checked at consume and cleared at ack, its firing
request is granted once per token and its audit record is written once per token. So with several
processes and crashes each deadline fires once, or is dropped with an audited reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable

from . import fields
from .clock import Clock
from .codes import Drop
from .delivery import Delivery
from .errors import StoreError
from .ids import new_id
from .origin import Origin
from .rules.engine import Engine
from .rules.model import duration_ms
from .store.base import Facts, Put, Schedule, Store, Timer

log = logging.getLogger(__name__)

CLAIM_BATCH = 256
HOLD_FOR_A_TAB_MS = 30_000  # a due prompt waits this long for a tab to (re)connect
RETRY_MS = 500
MAX_BACKOFF_S = 2.0  # while the store is unreachable, retry at least this often


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
        self._idle = asyncio.Event()
        self._idle.set()

    def stop(self) -> None:
        """Ask :meth:`run` to return after its current tick.

        Stopping by flag, not only by cancellation: a cancel that lands inside a Redis
        command may surface as a connection error, which the loop would otherwise retry.
        """
        self._stopping.set()

    async def drain(self, timeout_s: float = 5.0) -> None:
        """Stop, and wait (up to ``timeout_s``) for the tick in flight to finish. What is
        still in flight after that keeps its lease and is claimed again by another process."""
        self.stop()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout_s)

    async def run(self) -> None:
        backoff = self._poll_s
        while not self._stopping.is_set():
            pause = self._poll_s
            self._idle.clear()
            try:
                fired, next_due = await self.tick()
                self._set_healthy(True)
                backoff = self._poll_s
                if next_due is not None:  # sleep to the next deadline, polling at least this often
                    pause = min(pause, max(0.0, (next_due - self._clock.now_ms()) / 1000))
            except StoreError as exc:
                self._on_store_error()
                self._set_healthy(False, exc)
                backoff = pause = min(backoff * 2, MAX_BACKOFF_S)
                fired = 0
            finally:
                self._idle.set()
            if fired < CLAIM_BATCH and pause > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), pause * random.uniform(0.9, 1.0))

    async def tick(self) -> tuple[int, int | None]:
        """Claim and fire what is due now: how many timers were claimed, and the next deadline.

        Fired concurrently: one slow session does not hold up the others. One timer that
        fails is logged and keeps its lease, so it is claimed again when the lease expires."""
        now = self._clock.now_ms()
        claimed, next_due = await self._store.claim_due(now, CLAIM_BATCH)
        for _timer, due_ms in claimed:
            self._on_lateness(max(0, now - due_ms))
        results = await asyncio.gather(
            *(self._fire(timer, due_ms) for timer, due_ms in claimed), return_exceptions=True
        )
        store_errors = 0
        for (timer, _), result in zip(claimed, results, strict=True):
            if isinstance(result, StoreError):
                store_errors += 1
            elif isinstance(result, Exception):
                log.error(
                    "timer %s of session %s failed", timer.rule, timer.session, exc_info=result
                )
        if store_errors:  # one line, not one traceback per timer, during an outage
            self._on_store_error()
            log.warning(
                "%d timers not fired (store error); they are claimed again when their lease"
                " expires",
                store_errors,
            )
        return len(claimed), next_due

    async def _fire(self, timer: Timer, due_ms: int) -> None:
        facts = await self._store.consume(timer)
        if facts is None:  # cancelled or replaced since it was scheduled: a normal cancel
            await self._store.ack_timer(timer)
            return
        session_facts, visitor_facts = facts
        now = self._clock.now_ms()
        engine = self._engine()
        rule = engine.rules.rules.get(timer.rule)
        if rule is None:
            await self._drop(timer, due_ms, Drop.RULE_REMOVED, "the rule is no longer loaded")
            return
        if due_ms - int(session_facts.get("last") or due_ms) > self._session_ttl_ms:
            # the session had ended before the deadline; nobody is there to see it
            await self._drop(timer, due_ms, Drop.SESSION_ENDED, "the session had ended")
            return
        max_late = duration_ms(rule.max_late or engine.rules.policy.max_late)
        if now - due_ms > max_late:
            late = f"due {(now - due_ms) / 1000:.1f} s ago, over max_late {max_late / 1000:g} s"
            await self._drop(timer, due_ms, Drop.TOO_LATE, late)
            return
        outcome = engine.on_timer(timer, session_facts, visitor_facts, due_ms, now)
        if isinstance(outcome, Schedule):  # activity pushed a lazy deadline back
            await self._store.apply([outcome])
            await self._store.ack_timer(timer)
        elif outcome is None:
            if not engine.eligible(rule, engine.view(session_facts, visitor_facts, now)):
                reason = engine.why_not(rule, engine.view(session_facts, visitor_facts, now))
                await self._drop(timer, due_ms, Drop.NOT_ELIGIBLE, reason or "not eligible")
            else:  # a dwell deadline of a hidden page: re-armed when the page is visible again
                await self._store.ack_timer(timer)
        else:
            sid = session_facts.get("sid")
            if sid or rule.show is None:  # a webhook or `set` needs no tab
                origin = Origin(timer.site, timer.visitor, timer.session, tab="", sid=sid or "")
                await self._delivery.resolve(origin, [outcome])
                await self._store.ack_timer(timer, clear_hold=True)
            else:
                await self._hold(timer, due_ms, session_facts, now)

    async def _drop(self, timer: Timer, due_ms: int, code: Drop, reason: str) -> None:
        await self._delivery.record_drop(timer, code, reason, due_ms)
        await self._store.ack_timer(timer, clear_hold=True)

    async def _hold(self, timer: Timer, due_ms: int, session_facts: Facts, now: int) -> None:
        """No tab is connected: try again shortly, for a while, in case one comes back.

        ``hold:<rule>`` is ``<since ms>:<token of the retry>``; it counts only for that retry,
        so a hold left behind (its retry was cancelled) never shortens a later one."""
        field = fields.hold(timer.rule)
        held_since, _, retry_of = session_facts.get(field, "").partition(":")
        since = int(held_since) if retry_of == timer.token and held_since.isdigit() else now
        if now - since >= HOLD_FOR_A_TAB_MS:
            reason = f"no tab connected within {HOLD_FOR_A_TAB_MS / 1000:g} s"
            await self._drop(timer, due_ms, Drop.NO_TAB, reason)
            return
        retry = Timer(timer.site, timer.session, timer.visitor, timer.rule, new_id(nbytes=6))
        put = Put(timer.site, timer.session, timer.visitor, field, f"{since}:{retry.token}")
        await self._store.apply([put, Schedule(retry, now + RETRY_MS)])
        await self._store.ack_timer(timer)

    def _set_healthy(self, healthy: bool, exc: Exception | None = None) -> None:
        if healthy != self._healthy:
            if healthy:
                log.warning("timer loop: store reachable again")
            else:
                log.error("timer loop: store unreachable (%s); retrying with backoff", exc)
        self._healthy = healthy
