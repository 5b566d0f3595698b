"""Decide, from events and timers, which rules are candidates to fire. No I/O here.

The engine reads facts and returns actions (timers to schedule or cancel) and candidates;
the gateway applies the actions in one store round trip, and delivery resolves candidates.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from msgspec import UNSET

from ..ids import new_id
from ..store.base import Action, Cancel, Facts, Schedule, Timer
from .conditions import evaluate, first_failure
from .facts_view import FactView, walk
from .model import Match, Rule, duration_ms


class Role(Enum):
    """How an event type relates to a rule."""

    TRIGGER = "trigger"  # the event itself fires the rule
    START = "start"  # the event starts an absence timer
    STOP = "stop"  # the event cancels an absence timer


@dataclass(frozen=True)
class Candidate:
    """A rule whose trigger and conditions hold now; governance decides if it fires."""

    rule: Rule
    view: FactView
    cause: str  # "event" or "timer"
    since_ms: int  # when the triggering behaviour happened or the deadline fell due


@dataclass
class Decision:
    actions: list[Action] = field(default_factory=list)
    candidates: list[Candidate] = field(default_factory=list)


def matches(match: Match, event: dict[str, Any]) -> bool:
    if event["type"] != match.type:
        return False
    if match.name is not UNSET and event.get("name") != match.name:
        return False
    if match.where is UNSET:
        return True
    return evaluate(match.where, lambda name: walk(event, name.split(".")))


class RuleSet:
    """Rules indexed by the event types they depend on: an event touches only those."""

    def __init__(self, rules: list[Rule]) -> None:
        self.rules = {rule.id: rule for rule in rules}
        self.by_type: dict[str, list[tuple[Rule, Role]]] = defaultdict(list)
        self.page_scoped: list[Rule] = []
        for rule in sorted(rules, key=lambda r: -r.priority):
            trigger = rule.trigger
            if trigger.event is not UNSET:
                self.by_type[trigger.event.type].append((rule, Role.TRIGGER))
            if trigger.absence is not UNSET:
                # cancel first, so an event that both stops and restarts a timer restarts it
                self.by_type[trigger.absence.missing.type].append((rule, Role.STOP))
                self.by_type[trigger.absence.after.type].append((rule, Role.START))
                if trigger.absence.scope == "page":
                    self.page_scoped.append(rule)
        for entries in self.by_type.values():
            entries.sort(key=lambda entry: entry[1] is Role.START)

    def __len__(self) -> int:
        return len(self.rules)


class Engine:
    def __init__(self, rules: RuleSet) -> None:
        self.rules = rules

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
        """Process the new events of one batch, in order."""
        decision = Decision()
        pending = {k[2:]: v for k, v in session_facts.items() if k.startswith("t:")}

        def cancel(rule: Rule) -> None:
            token = pending.pop(rule.id, None)
            if token is not None:
                decision.actions.append(Cancel(Timer(site, session, visitor, rule.id, token)))

        for event in events:
            if event["type"] == "page_view":
                for rule in self.rules.page_scoped:
                    cancel(rule)
            entries = self.rules.by_type.get(event["type"], ())
            if not entries:
                continue
            view = FactView(session_facts, visitor_facts, now_ms, event)
            for rule, role in entries:
                trigger = rule.trigger
                if role is Role.TRIGGER and trigger.event is not UNSET:
                    if matches(trigger.event, event) and self._eligible(rule, view):
                        decision.candidates.append(Candidate(rule, view, "event", now_ms))
                elif trigger.absence is not UNSET:
                    absence = trigger.absence
                    if role is Role.STOP and matches(absence.missing, event):
                        cancel(rule)
                    elif role is Role.START and matches(absence.after, event):
                        cancel(rule)
                        if self._eligible(rule, view):
                            token = new_id(nbytes=6)
                            pending[rule.id] = token
                            timer = Timer(site, session, visitor, rule.id, token)
                            due = now_ms + duration_ms(absence.within)
                            decision.actions.append(Schedule(timer, due))
        return decision

    def on_timer(
        self, timer: Timer, session_facts: Facts, visitor_facts: Facts, due_ms: int, now_ms: int
    ) -> Candidate | None:
        """A deadline fell due: the rule is a candidate if it still targets where we are."""
        rule = self.rules.rules.get(timer.rule)
        if rule is None:
            return None
        view = FactView(session_facts, visitor_facts, now_ms)
        return Candidate(rule, view, "timer", due_ms) if self._eligible(rule, view) else None

    @staticmethod
    def _eligible(rule: Rule, view: FactView) -> bool:
        return rule.when is None or evaluate(rule.when, view.get)

    @staticmethod
    def why_not(rule: Rule, view: FactView) -> str | None:
        """The first condition of ``rule`` that fails for ``view``, or None."""
        return None if rule.when is None else first_failure(rule.when, view.get)
