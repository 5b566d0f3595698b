"""What prompts achieve: per rule and variant, who was eligible, who saw, clicked, dismissed,
and who reached the goal in time, with confidence intervals and significance.

The report (:func:`measure`) reads the counters the store keeps per site, rule, variant and
UTC day as things happen (counters.py, docs/qa.md "Measurement"), over a window of days: they
hold at any volume. A conversion is counted per visitor: a visitor exposed to a rule (fired or
held out) stays exposed for the goal window after their last exposure, and the first goal
event in that time converts them, once.

The streams are capped (the audit stream keeps about 100,000 records, the live stream 10,000
batches): what they still hold gives the *recent* details only (trigger latency, how many
records were read). :func:`compute` is the same table recomputed from those streams, for a
short test or a replay; it reads two streams the store already keeps:

- the audit stream: one record per candidate (``fired``, ``holdout``, ``suppressed``, ...),
  with its rule, variant, visitor, prompt id and server time ``at``;
- the live stream: every accepted batch, with the ``prompt_*`` events that say what the
  visitor did with a prompt, and the goal events, and the server time ``at`` it arrived.

A firing (or a holdout, which is a firing that shows nothing) *converts* when the same visitor
sends the rule's goal event (goals.py, ``measure.toml``) within its window after it. Both ends
of the window are server times: the firing's ``at`` and the ``at`` of the batch that carried
the goal event. The browser's own ``ts`` is never used: a page that lies about its clock cannot
move a conversion into or out of the window.
"""

from __future__ import annotations

import bisect
import json
import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from datetime import date, timedelta

from .clock import day_of, days_between
from .codes import Outcome
from .conversion_series import DAILY
from .counters import FUNNEL, SEGMENT, SUPPRESSED
from .experiments import HOLDOUT, variant_for
from .goals import Goals
from .measure_report import Report, RuleReport, VariantRow
from .rules.engine import Engine
from .rules.index import matches
from .rules.model import Rule
from .store.base import Store

# "queued" comes back as one of these; "replaced" is a later record of a fired prompt
CANDIDATE = (Outcome.FIRED, Outcome.HOLDOUT, Outcome.SUPPRESSED)
NO_VARIANT = ""


def _received_ms(batch: Mapping[str, str]) -> int | None:
    """When the server received a live batch (its ``at``, epoch ms); None when unreadable."""
    at = batch.get("at", "")
    return int(at) if at.isdigit() else None


Assign = Callable[[str, str], str | None]


def assigner(engine: Engine | None) -> Assign:
    """The variant a visitor gets for a rule, as delivery would pick it (experiments.py), so
    suppressed candidates are counted in the arm they belong to."""
    rules: dict[str, Rule] = dict(engine.rules.rules) if engine else {}

    def assign(visitor: str, rule_id: str) -> str | None:
        rule = rules.get(rule_id)
        return None if rule is None else variant_for(visitor, rule)

    return assign


def compute(
    site: str,
    audit: Iterable[Mapping[str, str]],
    live: Iterable[Mapping[str, str]],
    goals: Goals,
    assign: Assign | None = None,
    now_ms: int = 0,
) -> Report:
    """The report for ``site`` from audit records and live batches (both oldest first)."""
    assign = assign or assigner(None)
    report = Report(site, now_ms, goals)
    feedback: dict[str, set[str]] = defaultdict(set)  # prompt id -> prompt_* types seen
    goal_times: dict[tuple[str, str], list[int]] = defaultdict(list)  # (visitor, rule) -> at
    exposures: list[tuple[RuleReport, VariantRow, dict[str, str]]] = []
    records = [dict(r) for r in audit]
    report.firings = len(records)
    rules_seen = {r.get("rule", "") for r in records if r.get("outcome") in CANDIDATE}
    goal_by_rule = {rule: goals.of(rule) for rule in rules_seen}
    for batch in live:
        report.batches += 1
        visitor = batch.get("visitor", "")
        received = _received_ms(batch)
        for event in json.loads(batch.get("events") or "[]"):
            kind = event.get("type", "")
            if kind.startswith("prompt_") and isinstance(event.get("prompt"), str):
                feedback[event["prompt"]].add(kind)
            for rule_id, goal in goal_by_rule.items():
                if received is not None and matches(goal.match, event):
                    goal_times[(visitor, rule_id)].append(received)
    for times in goal_times.values():
        times.sort()
    for record in records:
        outcome = record.get("outcome", "")
        if outcome not in CANDIDATE:
            continue
        rule_id = record.get("rule", "")
        rule = report.rules.get(rule_id)
        if rule is None:
            rule = report.rules[rule_id] = RuleReport(rule_id, goal_by_rule[rule_id])
        visitor = record.get("visitor", "")
        if outcome == Outcome.SUPPRESSED:
            row = rule.row(assign(visitor, rule_id) or NO_VARIANT)
            row.suppressed += 1
            rule.suppressed_by[record.get("reason", "")] += 1
            continue
        row = rule.row(HOLDOUT if outcome == Outcome.HOLDOUT else record.get("variant", ""))
        if outcome == Outcome.HOLDOUT:
            row.holdout += 1
        else:
            row.fired += 1
        exposures.append((rule, row, record))
    for rule_report, row, record in exposures:
        seen = feedback.get(record.get("prompt", ""), set())
        row.shown += "prompt_shown" in seen
        row.clicked += "prompt_click" in seen
        row.dismissed += "prompt_dismiss" in seen
        at = int(record.get("at") or 0)
        times = goal_times.get((record.get("visitor", ""), rule_report.rule), [])
        first = bisect.bisect_left(times, at)
        row.converted += first < len(times) and times[first] <= at + rule_report.goal.window_ms
    return report


def from_counters(
    site: str,
    goals: Goals,
    counters: Mapping[str, Mapping[str, int]],
    first: str,
    last: str,
    now_ms: int = 0,
) -> Report:
    """The report for ``site`` from its daily counters (day -> field -> count, counters.py)
    over the days ``first`` to ``last``."""
    report = Report(site, now_ms, goals, days=(first, last))
    for day in days_between(first, last):
        for name, count in counters.get(day, {}).items():
            if name.startswith((FUNNEL, SEGMENT)):
                continue
            rule_id, _, rest = name.partition("|")
            variant, _, kind = rest.partition("|")
            rule = report.rules.get(rule_id)
            if rule is None:
                rule = report.rules[rule_id] = RuleReport(rule_id, goals.of(rule_id))
            row = rule.row(variant)
            row.visitors = max(row.visitors, 0)
            if kind.startswith(SUPPRESSED):
                row.suppressed += count
                rule.suppressed_by[kind.removeprefix(SUPPRESSED)] += count
            elif kind in COUNTED:
                if kind in DAILY:
                    rule.series.add(variant, day, kind, count)
                setattr(row, COUNTED[kind], getattr(row, COUNTED[kind]) + count)
    return report


COUNTED = {
    "fired": "fired",
    "holdout": "holdout",
    "visitors": "visitors",
    "shown": "shown",
    "clicked": "clicked",
    "dismissed": "dismissed",
    "converted": "converted",
}
DEFAULT_DAYS = 30


def period(
    now_ms: int, first: str | None = None, last: str | None = None, days: int = DEFAULT_DAYS
) -> tuple[str, str]:
    """The UTC days a report covers: ``first`` to ``last`` when given (``YYYY-MM-DD``), else
    the ``days`` days up to today. Raises ValueError on a date it cannot read or a window
    longer than a year."""
    last = last or day_of(now_ms)
    first = first or (date.fromisoformat(last) - timedelta(days=days - 1)).isoformat()
    span = len(days_between(first, last))
    if span < 1 or span > MAX_DAYS:
        raise ValueError(f"from {first} to {last}: a window of 1 to {MAX_DAYS} days")
    return first, last


MAX_DAYS = 400


async def measure(
    store: Store,
    site: str,
    goals: Goals,
    now_ms: int,
    first: str | None = None,
    last: str | None = None,
    recent_records: int = 100_000,
) -> Report:
    """The report of ``site`` from its counters over ``first`` to ``last`` (UTC days; the
    last 30 days by default), with the recent trigger latencies from the audit stream.
    Raises ValueError on a window :func:`period` refuses."""
    first, last = period(now_ms, first, last)
    counters = await store.counters(site, days_between(first, last))
    report = from_counters(site, goals, counters, first, last, now_ms)
    audit = await store.read_audit(site, recent_records)
    report.firings = len(audit)
    latencies: dict[str, list[int]] = defaultdict(list)
    for record in audit:
        if record.get("outcome") == Outcome.FIRED and record.get("latency_ms", "").isdigit():
            latencies[record.get("rule", "")].append(int(record["latency_ms"]))
    report.latency_ms = {rule: int(statistics.median(v)) for rule, v in latencies.items()}
    return report
