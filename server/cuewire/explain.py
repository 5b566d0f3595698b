"""Explain a session: per rule, whether it fired, is pending, or what holds it back."""

from __future__ import annotations

from dataclasses import dataclass

from msgspec import UNSET

from . import fields
from .rules.engine import Engine
from .store.base import Store, Timer


@dataclass(frozen=True)
class RuleStatus:
    rule: str
    state: str  # "fired", "pending", "blocked" (a condition fails now) or "waiting" (trigger)
    detail: str
    due_ms: int | None = None


async def explain(
    store: Store, engine: Engine, site: str, session: str, now_ms: int
) -> list[RuleStatus]:
    facts = await store.session_facts(site, session)
    if not facts:
        return []
    visitor_facts = await store.visitor_facts(site, facts.get("visitor", ""))
    view = engine.view(facts, visitor_facts, now_ms)
    out: list[RuleStatus] = []
    for rule in engine.rules.rules.values():
        fired = int(facts.get(fields.fired(rule.id), 0))
        token = facts.get(fields.timer(rule.id))
        if token:
            timer = Timer(site, session, facts.get("visitor", ""), rule.id, token)
            due = await store.timer_due(timer)
            left = f"{max(0, (due or now_ms) - now_ms) / 1000:.1f}s"
            out.append(
                RuleStatus(rule.id, "pending", f"{rule.trigger.kind} deadline in {left}", due)
            )
        elif fired:
            out.append(RuleStatus(rule.id, "fired", f"fired {fired} time(s) in this session"))
        elif (failure := engine.why_not(rule, view)) is not None:
            out.append(RuleStatus(rule.id, "blocked", f"when: {failure}"))
        else:
            out.append(RuleStatus(rule.id, "waiting", _waiting_for(engine, rule.id)))
    return out


def _waiting_for(engine: Engine, rule_id: str) -> str:
    t = engine.rules.rules[rule_id].trigger
    if t.event is not UNSET:
        return f"waiting for a {t.event.type} event"
    if t.absence is not UNSET:
        return f"waiting for a {t.absence.after.type} event to start its deadline"
    if t.sequence is not UNSET:
        return "waiting for the sequence " + " -> ".join(s.type for s in t.sequence.steps)
    if t.count is not UNSET:
        return f"waiting for {t.count.at_least} {t.count.of.type} events"
    return f"waiting for its {t.kind} trigger"
