"""Explain a session: per rule, where its trigger is, each ``when`` condition with the fact's
value, its caps and cooldown with their counters, snooze and opt-out, and its last drop.

Everything comes from the store in a few calls (:func:`read_state`): the session hash (on a
cluster, after looking up the session's visitor), then together the visitor hash, the due time
of each pending deadline and the latest audit records (the last :data:`AUDIT_SCAN` of the
site; an older drop is not found). The engine's own state is read as the engine writes it
(rules/engine.py: ``sq:``, ``w:``, ``t:``; govern.lua: ``fired:``, ``dc:``, ``wc:``,
``fired_at:``, ``snooze:``, ``optout:``), so what is shown is what the next batch sees.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from msgspec import UNSET

from . import fields
from .clock import DAY_MS, WEEK_MS
from .codes import Hold, Outcome
from .rules.conditions import MISSING, Lookup, describe, evaluate
from .rules.engine import Engine
from .rules.facts_view import FactView
from .rules.model import Condition, Policy, Rule, duration_ms
from .store.base import Facts, Store, Timer

AUDIT_SCAN = 5000  # audit records of the site read for one session's explain
DROPS = (Outcome.DROPPED, Outcome.SUPPRESSED)


@dataclass(frozen=True)
class RuleStatus:
    rule: str
    state: str  # "fired", "pending", "blocked" (a condition fails now) or "waiting" (trigger)
    detail: str
    due_ms: int | None = None


@dataclass(frozen=True)
class SessionState:
    """What the store holds about one session, read for explain."""

    session: Facts
    visitor: Facts
    due: dict[str, int | None]  # rule -> due ms of its pending deadline (None: not in the set)
    audit: list[dict[str, str]]  # the session's audit records, oldest first


async def read_state(store: Store, site: str, session: str) -> SessionState | None:
    """The session's state in two turns of calls; None when the session is gone."""
    facts = await store.session_facts(site, session)
    if not facts:
        return None
    visitor = facts.get("visitor", "")
    timers = [
        Timer(site, session, visitor, name.removeprefix(fields.TIMER), token)
        for name, token in facts.items()
        if name.startswith(fields.TIMER) and token
    ]
    visitor_facts, audit, dues = await asyncio.gather(
        store.visitor_facts(site, visitor),
        store.read_audit(site, AUDIT_SCAN),
        asyncio.gather(*(store.timer_due(t) for t in timers)),
    )
    mine = [r for r in audit if r.get("session") == session]
    due = {t.rule: d for t, d in zip(timers, dues, strict=True)}
    return SessionState(facts, visitor_facts, due, mine)


async def explain_session(
    store: Store, engine: Engine, site: str, session: str, now_ms: int, rule: str | None = None
) -> dict[str, Any] | None:
    """The whole explanation of ``session`` (of one ``rule`` when given) as JSON-ready data;
    None when the session is gone."""
    state = await read_state(store, site, session)
    if state is None:
        return None
    return explained(engine, state, site, session, now_ms, rule)


def explained(
    engine: Engine,
    state: SessionState,
    site: str,
    session: str,
    now_ms: int,
    rule: str | None = None,
) -> dict[str, Any]:
    view = engine.view(state.session, state.visitor, now_ms)
    policy = engine.rules.policy
    rules = [r for r in engine.rules.rules.values() if rule is None or r.id == rule]
    return {
        "site": site,
        "session": session,
        "visitor": state.session.get("visitor", ""),
        "now": now_ms,
        "url": view.url,
        "policy": _policy(policy, state, now_ms),
        "rules": [_rule(engine, r, view, state, policy, now_ms) for r in rules],
    }


async def explain(
    store: Store, engine: Engine, site: str, session: str, now_ms: int
) -> list[RuleStatus]:
    """One line per rule: its state and why (the CLI and the QA view's rule table)."""
    state = await read_state(store, site, session)
    if state is None:
        return []
    body = explained(engine, state, site, session, now_ms)
    return [
        RuleStatus(r["rule"], r["state"], r["detail"], r["trigger"]["due_ms"])
        for r in body["rules"]
    ]


# ---------------------------------------------------------------- one rule


def _rule(
    engine: Engine, rule: Rule, view: FactView, state: SessionState, policy: Policy, now_ms: int
) -> dict[str, Any]:
    trigger = _trigger(rule, state, now_ms)
    when = None if rule.when is None else _condition(rule.when, view)
    governance = _governance(rule, state, policy, now_ms)
    fired = int(state.session.get(fields.fired(rule.id, rule.mode == "shadow"), 0) or 0)
    if trigger["deadline"]:
        left = max(0, (trigger["due_ms"] or now_ms) - now_ms) / 1000
        status, detail = "pending", f"{rule.trigger.kind} deadline in {left:.1f}s"
    elif fired:
        status, detail = "fired", f"fired {fired} time(s) in this session"
    elif (failure := engine.why_not(rule, view)) is not None:
        status, detail = "blocked", f"when: {failure}"
    else:
        status, detail = "waiting", trigger["waiting"]
    records = [r for r in state.audit if r.get("rule") == rule.id]
    page = [] if when is None else _page_tests(when)
    drops = [r for r in records if r.get("outcome") in DROPS]
    return {
        "rule": rule.id,
        "description": rule.description,
        "shows": rule.show is not None,
        "state": status,
        "detail": detail,
        "trigger": trigger,
        "when": when,
        "watches_page": all(leaf["ok"] for leaf in page),
        "governance": governance,
        "last": _record(records[-1]) if records else None,
        "last_drop": _record(drops[-1]) if drops else None,
    }


def _record(r: dict[str, str]) -> dict[str, Any]:
    keep = ("outcome", "code", "reason", "cause", "prompt", "url", "variant")
    return {"id": r.get("id", ""), "at": int(r.get("at") or 0), **{k: r.get(k, "") for k in keep}}


def _trigger(rule: Rule, state: SessionState, now_ms: int) -> dict[str, Any]:
    """Where the trigger is: its deadline, sequence step, counts in the window."""
    t = rule.trigger
    facts = state.session
    out: dict[str, Any] = {
        "kind": t.kind,
        "due_ms": state.due.get(rule.id),
        "deadline": bool(facts.get(fields.timer(rule.id))),
        "queued_since": _int(facts.get(fields.queued(rule.id))) or None,
        # hold:<rule> is "<since ms>:<retry token>:<firing>" (timers.py)
        "held_for_tab_since": _int(facts.get(fields.hold(rule.id), "").partition(":")[0]) or None,
        "waiting": _waiting_for(rule),
    }
    if t.sequence is not UNSET:
        done, _, started = facts.get(fields.sequence(rule.id), "0:0").partition(":")
        step, start = _int(done), _int(started)
        within = duration_ms(t.sequence.within)
        live = step > 0 and now_ms - start <= within
        out["sequence"] = {
            "steps": [
                s.type + (f" {s.name}" if s.name is not UNSET else "") for s in t.sequence.steps
            ],
            "reached": step if live else 0,
            "started_ms": start if live else None,
            "expires_ms": start + within if live else None,
        }
    if t.count is not UNSET:
        within = duration_ms(t.count.within)
        prefix = fields.window(rule.id, "")
        groups = {}
        for name, raw in facts.items():
            if name.startswith(prefix):
                stamps = [ts for ts in json.loads(raw or "[]") if ts > now_ms - within]
                groups[name.removeprefix(prefix)] = {
                    "count": len(stamps),
                    "oldest_ms": min(stamps) if stamps else None,
                }
        out["count"] = {
            "at_least": t.count.at_least,
            "within_ms": within,
            "group_by": t.count.group_by,
            "groups": groups,
        }
    return out


def _waiting_for(rule: Rule) -> str:
    t = rule.trigger
    if t.event is not UNSET:
        return f"waiting for a {t.event.type} event"
    if t.absence is not UNSET:
        return f"waiting for a {t.absence.after.type} event to start its deadline"
    if t.sequence is not UNSET:
        return "waiting for the sequence " + " -> ".join(s.type for s in t.sequence.steps)
    if t.count is not UNSET:
        return f"waiting for {t.count.at_least} {t.count.of.type} events"
    return f"waiting for its {t.kind} trigger"


def _condition(cond: Condition, scope: Lookup) -> dict[str, Any]:
    """A ``when`` tree: each node whether it holds now, each leaf with the fact's value."""
    node: dict[str, Any] = {"ok": evaluate(cond, scope)}
    if cond.all is not UNSET or cond.any is not UNSET:
        kind, subs = ("all", cond.all) if cond.all is not UNSET else ("any", cond.any)
        return {**node, "kind": kind, "children": [_condition(c, scope) for c in subs or []]}
    if cond.not_ is not UNSET:
        return {**node, "kind": "not", "children": [_condition(cond.not_, scope)]}
    if cond.segment is not UNSET:
        segment = scope.segments.get(cond.segment)
        children = [] if segment is None else [_condition(segment, scope)]
        return {**node, "kind": "segment", "name": cond.segment, "children": children}
    value = scope.get(str(cond.fact))
    return {
        **node,
        "kind": "fact",
        "fact": str(cond.fact),
        "test": describe(cond),
        "value": None if value is MISSING else _plain(value),
        "missing": value is MISSING,
    }


def _page_tests(node: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``page.*`` conditions every firing needs (not under ``any`` or ``not``): the rule
    watches the current page when they all hold."""
    if node["kind"] == "fact":
        return [node] if node["fact"].startswith("page.") else []
    if node["kind"] in ("all", "segment"):
        return [leaf for child in node["children"] for leaf in _page_tests(child)]
    return []


def _plain(value: Any) -> Any:
    """A fact's value as JSON can carry it."""
    if value is None or isinstance(value, str | int | float | bool | list | dict):
        return value
    return str(value)


# ---------------------------------------------------------------- governance


def _governance(rule: Rule, state: SessionState, policy: Policy, now_ms: int) -> dict[str, Any]:
    """The rule's caps and cooldown with their counters, snooze and opt-out, as govern.lua
    reads them, and the code it would answer now (``holds``: "" when it would grant)."""
    s, v, limit = state.session, state.visitor, rule.limit
    own = fields.counted_as(rule.id, rule.mode == "shadow")  # a shadow rule's own counts
    fired_at = _int(v.get(fields.FIRED_AT + own))
    cooldown = duration_ms(limit.cooldown) if limit.cooldown else 0
    snoozed_at = _int(v.get(fields.snooze(rule.id)))
    snooze_ms = duration_ms(policy.snooze)
    day = f"{fields.DAY_COUNT}{own}:{now_ms // DAY_MS}"
    week = f"{fields.WEEK_COUNT}{own}:{now_ms // WEEK_MS}"
    out: dict[str, Any] = {
        "session": {"count": _int(s.get(fields.FIRED + own)), "cap": limit.per_session},
        "day": {"count": _int(v.get(day)), "cap": limit.per_visitor_day},
        "week": {"count": _int(v.get(week)), "cap": limit.per_visitor_week},
        "shown_total": _int(v.get(fields.SHOWN + own)),
        "cooldown": {
            "ms": cooldown,
            "last_fired_ms": fired_at or None,
            "until_ms": fired_at + cooldown if cooldown and fired_at else None,
        },
        "snooze": {
            "at_ms": snoozed_at or None,
            "until_ms": snoozed_at + snooze_ms if snoozed_at else None,
            "active": bool(snoozed_at) and now_ms < snoozed_at + snooze_ms,
        },
        "opted_out": fields.optout(rule.id) in v,
        "opted_out_ms": _int(v.get(fields.optout(rule.id))) or None,
    }
    out["holds"] = _would_hold(rule, out, state, policy, now_ms)
    return out


def _would_hold(
    rule: Rule, g: dict[str, Any], state: SessionState, policy: Policy, now_ms: int
) -> str:
    """The code govern.lua would answer for a firing now, in its order ("" for a grant)."""
    shows = rule.show is not None
    s, v = state.session, state.visitor
    dismiss = policy.dismissals
    paused_until = _int(v.get("last_dismiss")) + duration_ms(dismiss.pause) if dismiss else 0
    checks: list[tuple[bool, Hold]] = [
        (shows and g["opted_out"], Hold.OPTED_OUT),
        (shows and g["snooze"]["active"], Hold.SNOOZED),
        (
            shows
            and dismiss is not None
            and _int(v.get("dismissed")) >= dismiss.count
            and now_ms < paused_until,
            Hold.DISMISS_PAUSE,
        ),
        (bool(g["cooldown"]["until_ms"]) and now_ms < g["cooldown"]["until_ms"], Hold.COOLDOWN),
    ]
    checks += [
        (c["cap"] > 0 and c["count"] >= c["cap"], code)
        for c, code in (
            (g["session"], Hold.CAP_SESSION),
            (g["day"], Hold.CAP_DAY),
            (g["week"], Hold.CAP_WEEK),
        )
    ]
    checks.append(
        (
            shows
            and policy.max_prompts_per_session > 0
            and _int(s.get("prompts")) >= policy.max_prompts_per_session,
            Hold.CAP_SITE,
        )
    )
    showing = s.get("showing", "")
    on_screen = s.get("showing_priority")
    outranks = on_screen is not None and on_screen != "" and rule.priority > _int(on_screen)
    checks.append(
        (
            shows and policy.one_prompt_at_a_time and bool(showing) and not outranks,
            Hold.SHOWING,
        )
    )
    return next((str(code) for held, code in checks if held), "")


def _policy(policy: Policy, state: SessionState, now_ms: int) -> dict[str, Any]:
    """The site policy's counters for this session and visitor."""
    s, v = state.session, state.visitor
    dismiss = policy.dismissals
    last = _int(v.get("last_dismiss"))
    return {
        "prompts": {"count": _int(s.get("prompts")), "cap": policy.max_prompts_per_session},
        "one_at_a_time": policy.one_prompt_at_a_time,
        "showing": {"prompt": s.get("showing", ""), "rule": s.get("showing_rule", "")},
        "dismissals": {
            "count": _int(v.get("dismissed")),
            "pause_after": dismiss.count if dismiss else 0,
            "paused_until_ms": last + duration_ms(dismiss.pause)
            if dismiss and last and _int(v.get("dismissed")) >= dismiss.count
            else None,
        },
        "snooze_ms": duration_ms(policy.snooze),
        "returning": s.get("returning") == "1",
        "sessions": _int(v.get("sessions")),
    }


def _int(value: str | None) -> int:
    try:
        return int(value) if value else 0
    except ValueError:
        return 0
