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
import logging
import random
from collections.abc import Callable
from dataclasses import replace

import msgspec

from . import fields
from .clock import Clock
from .codes import Drop
from .delivery import PROMPT_ACK_TIMEOUT_S, Delivery
from .errors import StoreError
from .ids import new_id
from .origin import Origin
from .rules.engine import Engine
from .rules.model import duration_ms
from .store.base import Facts, Put, Schedule, Store, Timer
from .waiting import wait_set

log = logging.getLogger(__name__)

CLAIM_BATCH = 256
HOLD_FOR_A_TAB_MS = 30_000  # a due prompt waits this long for a tab to (re)connect
RETRY_MS = 500
FIRING_WAIT_S = 0.5  # the loop waits this long for a tick's firings, then goes on (see tick)
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
        self._inflight: set[asyncio.Task[None]] = set()
        self._store_errors = 0

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
        await wait_set(self._idle, timeout_s)
        await self._settle(timeout_s)

    async def _settle(self, timeout_s: float | None = None) -> None:
        """Wait for the firings still in flight (those waiting for a tab's ack)."""
        if self._inflight:
            await asyncio.wait(set(self._inflight), timeout=timeout_s)

    async def run(self) -> None:
        backoff = self._poll_s
        while not self._stopping.is_set():
            pause = self._poll_s
            self._idle.clear()
            try:
                fired, next_due = await self.tick(wait=False)
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
                await wait_set(self._stopping, pause * random.uniform(0.9, 1.0))
        await self._settle(FIRING_WAIT_S + PROMPT_ACK_TIMEOUT_S)

    async def tick(self, wait: bool = True) -> tuple[int, int | None]:
        """Claim and fire what is due now: how many timers were claimed, and the next deadline.

        Fired concurrently: one slow session does not hold up the others. One timer that
        fails is logged and keeps its lease, so it is claimed again when the lease expires.
        With ``wait=False`` (the loop) a firing still waiting for a tab's ack after
        ``FIRING_WAIT_S`` goes on in the background under its lease, so a dead tab does not
        delay the deadlines of the next tick."""
        now = self._clock.now_ms()
        claimed, next_due = await self._store.claim_due(now, CLAIM_BATCH)
        tasks: list[asyncio.Task[None]] = []
        for timer, due_ms in claimed:
            self._on_lateness(max(0, now - due_ms))
            task = asyncio.create_task(self._fire_logged(timer, due_ms))
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)
            tasks.append(task)
        if tasks:
            await asyncio.wait(tasks, timeout=None if wait else FIRING_WAIT_S)
        if self._store_errors:  # one line, not one traceback per timer, during an outage
            self._on_store_error()
            log.warning(
                "%d timers not fired (store error); they are claimed again when their lease"
                " expires",
                self._store_errors,
            )
            self._store_errors = 0
        return len(claimed), next_due

    async def _fire_logged(self, timer: Timer, due_ms: int) -> None:
        try:
            await self._fire(timer, due_ms)
        except StoreError:
            self._store_errors += 1
        except Exception:
            log.exception("timer %s of session %s failed", timer.rule, timer.session)

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
            await self._drop(
                timer, due_ms, Drop.RULE_REMOVED, "the rule is no longer loaded", session_facts
            )
            return
        if due_ms - int(session_facts.get("last") or due_ms) > self._session_ttl_ms:
            # the session had ended before the deadline; nobody is there to see it
            await self._drop(
                timer, due_ms, Drop.SESSION_ENDED, "the session had ended", session_facts
            )
            return
        max_late = duration_ms(rule.max_late or engine.rules.policy.max_late)
        if now - due_ms > max_late:
            late = f"due {(now - due_ms) / 1000:.1f} s ago, over max_late {max_late / 1000:g} s"
            await self._drop(timer, due_ms, Drop.TOO_LATE, late, session_facts)
            return
        outcome = engine.on_timer(timer, session_facts, visitor_facts, due_ms, now)
        if isinstance(outcome, Schedule):  # activity pushed a lazy deadline back
            await self._store.apply([outcome])
            await self._store.ack_timer(timer)
        elif outcome is None:
            if not engine.eligible(rule, engine.view(session_facts, visitor_facts, now)):
                reason = engine.why_not(rule, engine.view(session_facts, visitor_facts, now))
                await self._drop(
                    timer, due_ms, Drop.NOT_ELIGIBLE, reason or "not eligible", session_facts
                )
            else:  # a dwell deadline of a hidden or idle page: re-armed later
                await self._store.ack_timer(timer)
        else:
            # a retry of a prompt no tab acked keeps the firing its claim was granted to
            claimed = _held(session_facts, timer)[1]
            if claimed:
                outcome = replace(outcome, firing=claimed)
            sid = session_facts.get("sid")
            origin = Origin(timer.site, timer.visitor, timer.session, tab="", sid=sid or "")
            if not self._delivery.shows(origin, rule):  # a webhook, `set`, shadow: no tab
                await self._delivery.resolve(origin, [outcome])
                await self._store.ack_timer(timer, clear_hold=True)
            elif sid and await self._delivery.fire(origin, outcome):
                await self._store.ack_timer(timer, clear_hold=True)
            else:  # no tab, or the tab behind `sid` did not ack (its process died)
                await self._hold(timer, due_ms, session_facts, now, outcome.firing if sid else "")

    async def _drop(
        self, timer: Timer, due_ms: int, code: Drop, reason: str, facts: Facts | None = None
    ) -> None:
        """Audit a deadline that does not fire, once per firing. When it is the retry of a
        prompt no tab acked, its claim was granted: the slot that prompt took is freed."""
        claimed = _held(facts or {}, timer)[1]
        if claimed and (facts or {}).get("showing") == f"p_{claimed}":
            await self._store.apply(
                [Put(timer.site, timer.session, timer.visitor, "showing", None)]
            )
        firing = msgspec.structs.replace(timer, token=claimed) if claimed else timer
        await self._delivery.record_drop(firing, code, reason, due_ms)
        await self._store.ack_timer(timer, clear_hold=True)

    async def _hold(
        self, timer: Timer, due_ms: int, session_facts: Facts, now: int, claimed: str
    ) -> None:
        """No tab took the prompt (none connected, or the socket we pushed to did not ack):
        try again shortly, for a while, in case one comes back.

        ``hold:<rule>`` is ``<since ms>:<token of the retry>:<firing>``; it counts only for
        that retry, so a hold left behind (its retry was cancelled) never shortens a later
        one. ``firing`` is the token whose claim was granted to an unacked prompt ("" when
        none was): the retry fires under it, so the claim is granted again, not counted
        again, and the prompt keeps its id."""
        field = fields.hold(timer.rule)
        held_since, earlier = _held(session_facts, timer)
        since = held_since if held_since is not None else now
        claimed = claimed or earlier
        if now - since >= HOLD_FOR_A_TAB_MS:
            reason = f"no tab took the prompt within {HOLD_FOR_A_TAB_MS / 1000:g} s"
            await self._drop(timer, due_ms, Drop.NO_TAB, reason, session_facts)
            return
        retry = Timer(timer.site, timer.session, timer.visitor, timer.rule, new_id(nbytes=6))
        value = f"{since}:{retry.token}:{claimed}"
        put = Put(timer.site, timer.session, timer.visitor, field, value)
        await self._store.apply([put, Schedule(retry, now + RETRY_MS)])
        await self._store.ack_timer(timer)

    def _set_healthy(self, healthy: bool, exc: Exception | None = None) -> None:
        if healthy != self._healthy:
            if healthy:
                log.warning("timer loop: store reachable again")
            else:
                log.error("timer loop: store unreachable (%s); retrying with backoff", exc)
        self._healthy = healthy


def _held(session_facts: Facts, timer: Timer) -> tuple[int | None, str]:
    """The hold this timer is the retry of: since when (None when it is not a retry), and the
    firing an unacked prompt was granted to ("" when none)."""
    since, _, rest = session_facts.get(fields.hold(timer.rule), "").partition(":")
    retry_of, _, claimed = rest.partition(":")
    if retry_of != timer.token or not since.isdigit():
        return None, ""
    return int(since), claimed
