"""The measurement report (measure.py): per rule and variant, who was eligible, who saw,
clicked, dismissed and converted, each variant compared with the holdout and with the first
variant; as JSON for the QA view and as CSV for a spreadsheet."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from .clock import days_between
from .conversion_series import Series
from .experiments import HOLDOUT
from .goals import Goal, Goals
from .stats import two_proportion, wilson

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
    interval (Newcombe's hybrid score, stats.py), and the two-sided p-value of the pooled
    two-proportion z-test."""

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
    visitors: int = -1  # exposed visitors (counters); -1: not counted (streams: per firing)

    @property
    def exposed(self) -> int:
        """Firings that count for the conversion rate: sent, or held out."""
        return self.fired + self.holdout

    @property
    def base(self) -> int:
        """What the conversion rate is over: exposed visitors (counters), else firings."""
        return self.visitors if self.visitors >= 0 else self.exposed

    @property
    def eligible(self) -> int:
        return self.exposed + self.suppressed

    @property
    def rate(self) -> float | None:
        return self.converted / self.base if self.base else None

    def to_json(self) -> dict[str, Any]:
        low, high = wilson(self.converted, self.base)
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
            "visitors": self.base,
            "rate": self.rate,
            "ci": [low, high] if self.base else None,
        }


@dataclass
class RuleReport:
    rule: str
    goal: Goal
    variants: dict[str, VariantRow] = field(default_factory=dict)
    suppressed_by: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    series: Series = field(default_factory=Series)  # per UTC day (counters only)

    def row(self, variant: str) -> VariantRow:
        if variant not in self.variants:
            self.variants[variant] = VariantRow(self.rule, variant)
        return self.variants[variant]

    def comparisons(self) -> list[Comparison]:
        """Each variant against the holdout when there is one, and each variant against
        the first variant (by id) when there are several."""
        rows = [self.variants[k] for k in sorted(self.variants)]
        arms = [r for r in rows if r.variant != HOLDOUT and r.base]
        refs: list[VariantRow] = []
        if HOLDOUT in self.variants and self.variants[HOLDOUT].base:
            refs.append(self.variants[HOLDOUT])
        if len(arms) > 1:
            refs.append(arms[0])
        out = []
        for ref in refs:
            for arm in arms:
                if arm is ref:
                    continue
                diff, low, high, z, p = two_proportion(
                    arm.converted, arm.base, ref.converted, ref.base
                )
                out.append(Comparison(self.rule, arm.variant, ref.variant, diff, low, high, z, p))
        return out

    def total(self) -> VariantRow:
        rows = self.variants.values()
        total = VariantRow(self.rule, "", visitors=-1 if any(r.visitors < 0 for r in rows) else 0)
        for row in rows:
            total.visitors += max(row.visitors, 0)
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
    days: tuple[str, str] | None = None  # the UTC days the counters cover (first, last)
    latency_ms: dict[str, int] = field(default_factory=dict)  # recent: median per rule

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "site": self.site,
            "generated_at": self.generated_at,
            "default_goal": self.goals.default.to_json(),
            "read": {"audit_records": self.firings, "batches": self.batches},
            "rules": [self.rules[k].to_json() for k in sorted(self.rules)],
        }
        if self.days is not None:
            window = days_between(*self.days)
            for rule in body["rules"]:
                rule["series"] = self.rules[rule["rule"]].series.to_json(window)
            body["source"] = "counters"
            body["window"] = {"from": self.days[0], "to": self.days[1], "timezone": "UTC"}
            body["recent"] = {
                "about": "from the capped audit stream: its latest records only",
                "audit_records": self.firings,
                "median_latency_ms": dict(sorted(self.latency_ms.items())),
            }
        else:
            body["source"] = "streams"
        return body

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
                low, high = wilson(row.converted, row.base)
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
                        _num(low if row.base else None),
                        _num(high if row.base else None),
                        comp.against if comp else "",
                        _num(comp.difference if comp else None),
                        _num(comp.p_value if comp else None),
                    ]
                )
        return out.getvalue()


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.6f}"
