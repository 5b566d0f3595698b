"""Conversion over time: per rule and arm (variant, or the holdout), the conversion rate of
each UTC day with its 95 % Wilson interval, and each arm's difference from the reference arm
(the holdout; else the first variant) per day and over the whole window, with Newcombe's
interval (stats.py). Read from the day counters (counters.py) by measure.from_counters; drawn
by /qa/metrics (docs/qa.md, "Measurement").

A day's rate is the ``converted`` counted that day over the ``visitors`` newly exposed that
day. A conversion counts on the day of its goal event, so one just after midnight may belong
to an exposure of the day before: a day's conversions are capped at its visitors for the
rate and the interval (the counts themselves are reported as counted).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .counters import CONVERTED, VISITORS
from .experiments import HOLDOUT
from .stats import difference_interval, wilson

DAILY = (VISITORS, CONVERTED)  # the counter kinds the series reads


@dataclass
class Day:
    """One arm's counts of one UTC day."""

    visitors: int = 0
    converted: int = 0

    @property
    def successes(self) -> int:
        """The conversions the rate is over: at most the day's visitors (module docstring)."""
        return min(self.converted, self.visitors)

    def point(self, day: str) -> dict[str, Any]:
        return {"day": day, **self.summary()}

    def summary(self) -> dict[str, Any]:
        low, high = wilson(self.successes, self.visitors)
        return {
            "visitors": self.visitors,
            "converted": self.converted,
            "rate": self.successes / self.visitors if self.visitors else None,
            "ci": [low, high] if self.visitors else None,
        }


@dataclass
class Series:
    """One rule's days: arm (variant; ``""`` without variants) -> UTC day -> counts."""

    arms: dict[str, dict[str, Day]] = field(default_factory=dict)

    def add(self, variant: str, day: str, kind: str, count: int) -> None:
        counts = self.arms.setdefault(variant, {}).setdefault(day, Day())
        setattr(counts, kind, getattr(counts, kind) + count)

    def reference(self) -> str | None:
        """The arm the others are compared with: the holdout when it has visitors, else the
        first variant (by id) when there are several, as the report's comparisons do."""
        exposed = sorted(
            a for a, days in self.arms.items() if any(d.visitors for d in days.values())
        )
        if HOLDOUT in exposed:
            return HOLDOUT
        return exposed[0] if len(exposed) > 1 else None

    def total(self, arm: str, days: list[str]) -> Day:
        """``arm``'s counts summed over ``days``."""
        counts = self.arms.get(arm, {})
        return Day(
            sum(counts.get(d, Day()).visitors for d in days),
            sum(counts.get(d, Day()).converted for d in days),
        )

    def difference(self, arm: str, ref: str, days: list[str], window: list[str]) -> dict[str, Any]:
        """``arm`` minus ``ref``: per day of ``days`` (None on a day one of them had no
        visitor) and over the whole ``window``."""

        def between(a: Day, b: Day) -> dict[str, Any] | None:
            if not (a.visitors and b.visitors):
                return None
            low, high = difference_interval(a.successes, a.visitors, b.successes, b.visitors)
            diff = a.successes / a.visitors - b.successes / b.visitors
            return {"difference": diff, "ci": [low, high]}

        points = []
        for day in days:
            a, b = self.arms[arm].get(day, Day()), self.arms[ref].get(day, Day())
            points.append({"day": day, **(between(a, b) or {"difference": None, "ci": None})})
        return {
            "variant": arm or None,
            "against": ref or None,
            "points": points,
            "window": between(self.total(arm, window), self.total(ref, window)),
        }

    def to_json(self, window: list[str]) -> dict[str, Any]:
        """The series over ``window`` (the report's UTC days), shown from the first day an arm
        had a visitor to the window's last day."""
        active = [d for d in window if any(a.get(d, Day()).visitors for a in self.arms.values())]
        days = window[window.index(active[0]) :] if active else []
        ref = self.reference()
        return {
            "days": days,
            "reference": ref or None,
            "arms": [
                {
                    "variant": arm or None,
                    "points": [self.arms[arm].get(d, Day()).point(d) for d in days],
                    "window": self.total(arm, window).summary(),
                }
                for arm in sorted(self.arms)
            ],
            "differences": []
            if ref is None
            else [self.difference(a, ref, days, window) for a in sorted(self.arms) if a != ref],
        }
