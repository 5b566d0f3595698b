"""What prompts achieve: per rule and variant, who was eligible, who saw, clicked, dismissed,
and who reached the goal in time, with confidence intervals and significance.

Read from two streams the store already keeps (docs/qa.md, "Measurement"):

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
import csv
import io
import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .codes import Outcome
from .experiments import HOLDOUT, variant_for
from .goals import Goal, Goals
from .rules.engine import Engine
from .rules.index import matches
from .rules.model import Rule
from .stats import two_proportion, wilson
from .store.base import Store

EXPOSED = (Outcome.FIRED, Outcome.HOLDOUT)
# "queued" comes back as one of these; "replaced" is a later record of a fired prompt
CANDIDATE = (Outcome.FIRED, Outcome.HOLDOUT, Outcome.SUPPRESSED)
NO_VARIANT = ""
CSV_COLUMNS = (
    "rule",
    "variant",
    "goal",
    "window_s",
    "eligible",
    "suppressed",
    "fired",
    "holdout",
    "exposed",
    "shown",
    "clicked",
    "dismissed",
    "converted",
    "rate",
    "ci_low",
    "ci_high",
    "against",
    "difference",
    "p_value",
)


@dataclass(frozen=True)
class Comparison:
    """``variant`` against ``against``: the difference of their conversion rates, its 95 %
    interval (Wald), and the two-sided p-value of the pooled two-proportion z-test."""

    rule: str
    variant: str
    against: str
    difference: float
    ci_low: float
    ci_high: float
    z: float
    p_value: float

    @property
    def significant(self) -> bool:
        return self.p_value < 0.05

    def to_json(self) -> dict[str, Any]:
        return {
            "variant": self.variant,
            "against": self.against,
            "difference": self.difference,
            "ci": [self.ci_low, self.ci_high],
            "z": self.z,
            "p_value": self.p_value,
            "significant": self.significant,
        }


# ---------------------------------------------------------------- the report


@dataclass
class VariantRow:
    rule: str
    variant: str
    suppressed: int = 0
    fired: int = 0
    holdout: int = 0
    shown: int = 0
    clicked: int = 0
    dismissed: int = 0
    converted: int = 0

    @property
    def exposed(self) -> int:
        """Firings that count for the conversion rate: sent, or held out."""
        return self.fired + self.holdout

    @property
    def eligible(self) -> int:
        return self.exposed + self.suppressed

    @property
    def rate(self) -> float | None:
        return self.converted / self.exposed if self.exposed else None

    def to_json(self) -> dict[str, Any]:
        low, high = wilson(self.converted, self.exposed)
        return {
            "variant": self.variant or None,
            "eligible": self.eligible,
            "suppressed": self.suppressed,
            "fired": self.fired,
            "holdout": self.holdout,
            "exposed": self.exposed,
            "shown": self.shown,
            "clicked": self.clicked,
            "dismissed": self.dismissed,
            "converted": self.converted,
            "rate": self.rate,
            "ci": [low, high] if self.exposed else None,
        }


@dataclass
class RuleReport:
    rule: str
    goal: Goal
    variants: dict[str, VariantRow] = field(default_factory=dict)
    suppressed_by: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def row(self, variant: str) -> VariantRow:
        if variant not in self.variants:
            self.variants[variant] = VariantRow(self.rule, variant)
        return self.variants[variant]

    def comparisons(self) -> list[Comparison]:
        """Each variant against the holdout when there is one, and each variant against
        the first variant (by id) when there are several."""
        rows = [self.variants[k] for k in sorted(self.variants)]
        arms = [r for r in rows if r.variant != HOLDOUT and r.exposed]
        refs: list[VariantRow] = []
        if HOLDOUT in self.variants and self.variants[HOLDOUT].exposed:
            refs.append(self.variants[HOLDOUT])
        if len(arms) > 1:
            refs.append(arms[0])
        out = []
        for ref in refs:
            for arm in arms:
                if arm is ref:
                    continue
                diff, low, high, z, p = two_proportion(
                    arm.converted, arm.exposed, ref.converted, ref.exposed
                )
                out.append(Comparison(self.rule, arm.variant, ref.variant, diff, low, high, z, p))
        return out

    def total(self) -> VariantRow:
        total = VariantRow(self.rule, "")
        for row in self.variants.values():
            for name in (
                "suppressed",
                "fired",
                "holdout",
                "shown",
                "clicked",
                "dismissed",
                "converted",
            ):
                setattr(total, name, getattr(total, name) + getattr(row, name))
        return total

    def to_json(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "goal": self.goal.to_json(),
            "total": self.total().to_json(),
            "suppressed_by": dict(sorted(self.suppressed_by.items())),
            "variants": [self.variants[k].to_json() for k in sorted(self.variants)],
            "comparisons": [c.to_json() for c in self.comparisons()],
        }


@dataclass
class Report:
    site: str
    generated_at: int
    goals: Goals
    rules: dict[str, RuleReport] = field(default_factory=dict)
    firings: int = 0
    batches: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "site": self.site,
            "generated_at": self.generated_at,
            "default_goal": self.goals.default.to_json(),
            "read": {"audit_records": self.firings, "batches": self.batches},
            "rules": [self.rules[k].to_json() for k in sorted(self.rules)],
        }

    def to_csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for rule_id in sorted(self.rules):
            rule = self.rules[rule_id]
            against: dict[str, Comparison] = {}
            for found in rule.comparisons():  # against the holdout first, when there is one
                against.setdefault(found.variant, found)
            for key in sorted(rule.variants):
                row = rule.variants[key]
                low, high = wilson(row.converted, row.exposed)
                comp = against.get(key)
                writer.writerow(
                    [
                        rule_id,
                        key,
                        rule.goal.describe(),
                        f"{rule.goal.window_ms / 1000:g}",
                        row.eligible,
                        row.suppressed,
                        row.fired,
                        row.holdout,
                        row.exposed,
                        row.shown,
                        row.clicked,
                        row.dismissed,
                        row.converted,
                        _num(row.rate),
                        _num(low if row.exposed else None),
                        _num(high if row.exposed else None),
                        comp.against if comp else "",
                        _num(comp.difference if comp else None),
                        _num(comp.p_value if comp else None),
                    ]
                )
        return out.getvalue()


def _received_ms(batch: Mapping[str, str]) -> int | None:
    """When the server received a live batch (its ``at``, epoch ms); None when unreadable."""
    at = batch.get("at", "")
    return int(at) if at.isdigit() else None


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.6f}"


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


async def measure(
    store: Store,
    site: str,
    goals: Goals,
    engine: Engine | None,
    now_ms: int,
    max_records: int = 1_000_000,
) -> Report:
    """Read both streams of ``site`` from the store and compute the report."""
    audit = await store.read_audit(site, max_records)
    live = await store.read_live(site, max_records)
    return compute(site, audit, live, goals, assigner(engine), now_ms)
