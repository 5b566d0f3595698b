"""Funnels: steps visitors take in order, counted as they happen (docs/funnels.md).

A funnel is defined in any rule file, beside the rules (``funnels:``, rules/model.py
``Funnel``): its steps are event patterns, written as a trigger's ``event``. The store counts
a visitor at a step when it is their next one (ingest.lua, counters.lua: the visitor's
progress is kept per funnel, and with ``within`` the first step starts again once that time
has passed since it). Counts are per UTC day and *segment*: with ``split: <rule>``, whether
the visitor had an open exposure to that rule when they entered the funnel (``x:<variant>``,
``x:`` for a rule without variants) or not (``none``). This module reads those counters over
a window of days into per-step visitors and drop-off.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import msgspec

from .clock import days_between
from .counters import FUNNEL
from .rules.model import Funnel, duration_ms

NOT_EXPOSED = "none"
EXPOSED = "x:"


def segment_label(segment: str) -> str:
    """How a segment reads: "not exposed", "exposed" or "exposed: <variant>"."""
    if segment == NOT_EXPOSED:
        return "not exposed"
    variant = segment.removeprefix(EXPOSED)
    return f"exposed: {variant}" if variant else "exposed"


@dataclass
class FunnelReport:
    """Visitors reaching each step of ``funnel``, per segment, over the days ``first`` to
    ``last``."""

    funnel: Funnel
    first: str
    last: str
    reached: dict[str, list[int]] = field(default_factory=dict)  # segment -> per step

    def segments(self) -> list[str]:
        """The segments counted, "none" first, then the exposed ones by name."""
        return sorted(self.reached, key=lambda s: (s != NOT_EXPOSED, s))

    def total(self) -> list[int]:
        steps = len(self.funnel.steps)
        return [sum(counts[i] for counts in self.reached.values()) for i in range(steps)]

    def to_json(self) -> dict[str, Any]:
        f = self.funnel
        rows = {"all": self.total(), **{s: self.reached[s] for s in self.segments()}}
        return {
            "id": f.id,
            "description": f.description,
            "split": f.split,
            "within_s": duration_ms(f.within) / 1000 if f.within is not None else None,
            "window": {"from": self.first, "to": self.last, "timezone": "UTC"},
            "steps": [msgspec.to_builtins(step) for step in f.steps],
            "segments": {
                name: {"label": segment_label(name) if name != "all" else "all visitors"}
                | _progress(counts)
                for name, counts in rows.items()
            },
        }


def _progress(counts: list[int]) -> dict[str, Any]:
    """Visitors per step, how many of the previous step's reached it, and dropped off."""
    kept: list[float | None] = [None]
    dropped: list[int] = [0]
    for before, now in pairwise(counts):
        kept.append(now / before if before else None)
        dropped.append(max(before - now, 0))
    return {"visitors": counts, "from_previous": kept, "dropped": dropped}


def funnel_reports(
    funnels: tuple[Funnel, ...] | list[Funnel],
    counters: Mapping[str, Mapping[str, int]],
    first: str,
    last: str,
) -> list[FunnelReport]:
    """The reports of ``funnels`` from a site's daily counters (day -> field -> count)."""
    by_id = {f.id: FunnelReport(f, first, last) for f in funnels}
    sums: dict[tuple[str, str, int], int] = defaultdict(int)
    for day in days_between(first, last):
        for name, count in counters.get(day, {}).items():
            if not name.startswith(FUNNEL + "|"):
                continue
            parts = name.split("|")
            if len(parts) != 4 or not parts[3].isdigit():
                continue
            sums[(parts[1], parts[2], int(parts[3]))] += count
    for (funnel, segment, step), count in sums.items():
        report = by_id.get(funnel)
        if report is None or not 1 <= step <= len(report.funnel.steps):
            continue  # a funnel removed or shortened since: its old counts are left out
        counts = report.reached.setdefault(segment, [0] * len(report.funnel.steps))
        counts[step - 1] += count
    return list(by_id.values())
