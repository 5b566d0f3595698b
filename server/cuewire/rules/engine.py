"""Decide, from events and timers, which rules are candidates to fire. No I/O here.

The engine reads facts and returns actions (timers to schedule or cancel, rule state to
write) and candidates; the pipeline applies the actions in one store round trip, and
delivery resolves candidates under governance.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import msgspec
from msgspec import UNSET

from .. import fields
from ..facts import PROMPT_CLOSED, is_activity
from ..ids import new_id
from ..store.base import Action, Cancel, Facts, Put, Schedule, Timer
from .conditions import evaluate, first_failure
from .facts_view import FactView, walk
from .index import Role, RuleSet, matches
from .model import Rule, duration_ms

TOLERANCE_MS = 20  # a lazy deadline this close to due counts as due


@dataclass(frozen=True)
class Candidate:
    """A rule whose trigger and conditions hold now; governance decides if it fires."""

    rule: Rule
    view: FactView
    cause: str  # the trigger kind, or "queue"
    since_ms: int  # when the triggering behaviour happened or the deadline fell due
    firing: str = ""  # a deadline's token: its governance grant and audit record happen once


class Decision(msgspec.Struct):
    """What a batch's events decided. (A msgspec Struct: its empty lists are built in C.)"""

    actions: list[Action] = []
    candidates: list[Candidate] = []
    # the learned segment a rule's condition assigned the visitor (visitor.segment), the
    # latest of the batch; "" when no rule tested it (counted live: pipeline.py)
    segment: str = ""


# The decision of a batch no rule depends on (most batches): one, shared, never changed.
NOTHING: Final = Decision()


class _Batch:
    """Working state while one batch of one session is decided."""

    __slots__ = ("_timers", "decision", "facts", "rules", "session", "site", "visitor")

    def __init__(self, site: str, session: str, visitor: str, facts: Facts, rules: RuleSet) -> None:
        self.site, self.session, self.visitor = site, session, visitor
        self.facts = dict(facts)  # a private copy the batch updates as it goes
        self.decision = Decision()
        self.rules = rules
        self._timers: set[str] | None = None

    @property
    def timers(self) -> set[str]:
        """The rules with a deadline pending (found in the facts when first needed)."""
        if self._timers is None:
            self._timers = self.rules.pending(self.facts)
        return self._timers

    def timer(self, rule: Rule, token: str) -> Timer:
        return Timer(self.site, self.session, self.visitor, rule.id, token)

    def pending(self, rule: Rule) -> str | None:
        return self.facts.get(fields.timer(rule.id))

    def schedule(self, rule: Rule, due_ms: int) -> None:
        self.cancel(rule)
        token = new_id(nbytes=6)
        self.facts[fields.timer(rule.id)] = token
        if self._timers is not None:
            self._timers.add(rule.id)
        self.decision.actions.append(Schedule(self.timer(rule, token), due_ms))

    def cancel(self, rule: Rule) -> None:
        token = self.facts.pop(fields.timer(rule.id), None)
        if token is not None:
            if self._timers is not None:
                self._timers.discard(rule.id)
            self.decision.actions.append(Cancel(self.timer(rule, token)))

    def put(self, name: str, value: str | None) -> None:
        if value is None:
            self.facts.pop(name, None)
        else:
            self.facts[name] = value
        self.decision.actions.append(Put(self.site, self.session, self.visitor, name, value))


class Engine:
    def __init__(self, rules: RuleSet) -> None:
        self.rules = rules

    def view(
        self, session: Facts, visitor: Facts, now_ms: int, event: dict[str, Any] | None = None
    ) -> FactView:
        return FactView(session, visitor, now_ms, event, self.rules.segments, self.rules.models)

    def eligible(self, rule: Rule, view: FactView) -> bool:
        return rule.when is None or evaluate(rule.when, view)

    def why_not(self, rule: Rule, view: FactView) -> str | None:
        """The first condition of ``rule`` that fails for ``view``, or None."""
        return None if rule.when is None else first_failure(rule.when, view)

    def on_events(
        self,
        site: str,
        session: str,
        visitor: str,
        events: list[dict[str, Any]],
        session_facts: Facts,
        visitor_facts: Facts,
        now_ms: int,
    ) -> Decision:
        """Process the new events of one batch, in order, against the facts after it."""
        batch: _Batch | None = None
        rules = self.rules
        every, types, names = rules.every_busy, rules.busy_types, rules.busy_names
        for event in events:
            kind = event["type"]
            if not (every or kind in types or (kind == "custom" and event["name"] in names)):
                continue  # no rule depends on this event: nothing to read or decide
            if batch is None:
                batch = _Batch(site, session, visitor, session_facts, rules)
            view = FactView(batch.facts, visitor_facts, now_ms, event, rules.segments, rules.models)
            read = view.read
            if kind == "page_view":
                self._page_changed(batch, view, now_ms)
            elif kind == "attention" or (kind == "visibility" and event["state"] == "visible"):
                self._dwell_resumes(batch, view, now_ms)
            if kind in PROMPT_CLOSED:
                self._release_queued(batch, view, now_ms)
            if rules.on_every_event:
                for rule in rules.every_event(read):
                    self._every_event(batch, rule, event, view, now_ms)
            for rule, role in self.entries(batch, event, read):
                self._by_role(batch, rule, role, event, view, now_ms)
            if view.segment is not None:
                batch.decision.segment = view.segment
        return NOTHING if batch is None else batch.decision

    def entries(
        self, batch: _Batch, event: dict[str, Any], read: Callable[[str], Any]
    ) -> list[tuple[Rule, Role]]:
        """The entries of the rules ``event`` can concern (index.py, alpha.py)."""
        return self.rules.select(event, read, lambda: batch.timers)

    def _page_changed(self, batch: _Batch, view: FactView, now_ms: int) -> None:
        if not self.rules.on_page_view:
            return
        for rule in self.rules.page_resets(batch.timers):
            batch.cancel(rule)
            dwell = rule.trigger.dwell
            if dwell is not UNSET:
                batch.schedule(rule, now_ms + duration_ms(dwell.for_))

    def _dwell_resumes(self, batch: _Batch, view: FactView, now_ms: int) -> None:
        """The page is visible again or the visitor attentive again: re-arm the dwell rules
        whose deadline :meth:`on_timer` left unarmed while the page was hidden or idle."""
        for rule in self.rules.dwell:
            dwell = rule.trigger.dwell
            if dwell is UNSET or batch.pending(rule):
                continue
            if batch.facts.get(fields.fired(rule.id, rule.mode == "shadow")):
                continue
            remaining = duration_ms(dwell.for_) - view.active_ms()
            batch.schedule(rule, now_ms + max(0, remaining))

    def _release_queued(self, batch: _Batch, view: FactView, now_ms: int) -> None:
        for name in [k for k in batch.facts if k.startswith(fields.QUEUED)]:
            rule = self.rules.rules.get(name.removeprefix(fields.QUEUED))
            batch.put(name, None)
            if rule is not None and self.eligible(rule, view):
                batch.decision.candidates.append(Candidate(rule, view, "queue", now_ms))

    def _every_event(
        self, batch: _Batch, rule: Rule, event: dict[str, Any], view: FactView, now_ms: int
    ) -> None:
        t = rule.trigger
        if t.inactivity is not UNSET:
            if is_activity(event) and not batch.pending(rule):
                batch.schedule(rule, now_ms + duration_ms(t.inactivity.for_))
        elif t.facts is not UNSET and evaluate(t.facts, view) and self.eligible(rule, view):
            batch.decision.candidates.append(Candidate(rule, view, "facts", now_ms))

    def _by_role(
        self,
        batch: _Batch,
        rule: Rule,
        role: Role,
        event: dict[str, Any],
        view: FactView,
        now_ms: int,
    ) -> None:
        t = rule.trigger
        fire = False
        if role is Role.TRIGGER and t.event is not UNSET:
            fire = matches(t.event, event)
        elif role is Role.STOP and t.absence is not UNSET:
            if matches(t.absence.missing, event):
                batch.cancel(rule)
        elif role is Role.START and t.absence is not UNSET:
            if matches(t.absence.after, event):  # restarts the deadline (schedule cancels)
                if self.eligible(rule, view):  # checked again when the deadline falls due
                    batch.schedule(rule, now_ms + duration_ms(t.absence.within))
                else:
                    batch.cancel(rule)
        elif role is Role.STEP and t.sequence is not UNSET:
            fire = self._step(batch, rule, event, now_ms)
        elif role is Role.COUNT and t.count is not UNSET:
            fire = self._count(batch, rule, event, now_ms)
        elif role is Role.FACTS and t.facts is not UNSET:
            fire = evaluate(t.facts, view)
        if fire and self.eligible(rule, view):
            batch.decision.candidates.append(Candidate(rule, view, t.kind, now_ms))

    def _step(self, batch: _Batch, rule: Rule, event: dict[str, Any], now_ms: int) -> bool:
        seq = rule.trigger.sequence
        if seq is UNSET:
            return False
        key = fields.sequence(rule.id)
        done, _, started = batch.facts.get(key, "0:0").partition(":")
        step, start = int(done), int(started or 0)
        in_time = step > 0 and now_ms - start <= duration_ms(seq.within)
        if in_time and matches(seq.steps[step], event):
            if step + 1 == len(seq.steps):
                batch.put(key, None)
                return True
            batch.put(key, f"{step + 1}:{start}")
        elif matches(seq.steps[0], event):
            batch.put(key, f"1:{now_ms}")
        return False

    def _count(self, batch: _Batch, rule: Rule, event: dict[str, Any], now_ms: int) -> bool:
        count = rule.trigger.count
        if count is UNSET or not matches(count.of, event):
            return False
        group = ""
        if count.group_by:
            value = walk(event, count.group_by.split("."))
            if not isinstance(value, str | int | float) or isinstance(value, bool):
                return False
            group = str(value)
        key = fields.window(rule.id, group)
        since = now_ms - duration_ms(count.within)
        stamps = [ts for ts in json.loads(batch.facts.get(key, "[]")) if ts > since]
        stamps.append(now_ms)
        if len(stamps) >= count.at_least:
            batch.put(key, None)
            return True
        batch.put(key, json.dumps(stamps[-count.at_least :]))
        return False

    def on_timer(
        self, timer: Timer, session_facts: Facts, visitor_facts: Facts, due_ms: int, now_ms: int
    ) -> Candidate | Schedule | None:
        """A deadline fell due. The rule is a candidate if it still targets where the visitor
        is; a lazy deadline (inactivity, active dwell) that activity pushed back moves on."""
        rule = self.rules.rules.get(timer.rule)
        if rule is None:
            return None
        view = self.view(session_facts, visitor_facts, now_ms)
        t = rule.trigger
        later: int | None = None
        if t.inactivity is not UNSET:
            active_at = int(session_facts.get("active_at") or due_ms)
            due = active_at + duration_ms(t.inactivity.for_)
            later = due if due - now_ms > TOLERANCE_MS else None
        elif t.dwell is not UNSET:
            remaining = duration_ms(t.dwell.for_) - (
                view.active_ms()
                if t.dwell.active
                else now_ms - int(view.session.get("page_started") or now_ms)
            )
            if remaining > TOLERANCE_MS:
                if session_facts.get("visible", "1") != "1":
                    return None  # re-armed when the page is visible again
                if t.dwell.active and view.idle_for_attention():
                    return None  # re-armed by the next attention beat
                later = now_ms + remaining
        if later is not None:
            token = new_id(nbytes=6)
            return Schedule(Timer(timer.site, timer.session, timer.visitor, rule.id, token), later)
        if not self.eligible(rule, view):
            return None
        return Candidate(rule, view, t.kind, due_ms, firing=timer.token)
