"""A scripted experiment written through the store's own calls, as delivery records an
exposure (store.record: the audit record and its counters) and the pipeline ingests a goal
event (store.ingest with the marks measures.py computes): the day counters the conversion
series reads are the real ones (test_conversion_chart.py, test_browser_conversion.py)."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from cuewire.audit import AuditRecord
from cuewire.clock import day_of
from cuewire.codes import Outcome
from cuewire.facts import changes_for
from cuewire.goals import Goals
from cuewire.measures import Measures
from cuewire.origin import Origin
from cuewire.store import RedisStore

WINDOW_MS = 30 * 60_000  # the default goal: a purchase within 30 minutes
DAY_MS = 86_400_000
HOUR_MS = 3_600_000


@dataclass
class Experiment:
    """Visitors of ``rule`` on ``site``, each exposed once (in an arm) and buying or not, and
    the test's own count of them: (day, arm) -> visitors, converted."""

    store: RedisStore
    site: str
    rule: str
    visitors: Counter[tuple[str, str]] = field(default_factory=Counter)
    converted: Counter[tuple[str, str]] = field(default_factory=Counter)

    async def visitor(self, name: str, arm: str, at: int, buys: bool) -> None:
        """``name`` is exposed to ``arm`` at ``at`` and, when ``buys``, buys 5 minutes later."""
        outcome = Outcome.HOLDOUT if arm == "holdout" else Outcome.FIRED
        prompt = "" if arm == "holdout" else f"p-{name}"
        record = AuditRecord(
            outcome, self.rule, f"s-{name}", name, "event", at,
            prompt=prompt, variant=arm, window_ms=WINDOW_MS,
        )  # fmt: skip
        await self.store.record(self.site, [], [record.fields()])
        self.visitors[(day_of(at), arm)] += 1
        if buys:
            sent = at + 5 * 60_000
            events: list[dict[str, Any]] = [
                {"type": "custom", "name": "purchase", "props": {}, "seq": 1, "ts": sent}
            ]
            marks = Measures(Goals(), (), [self.rule]).marks(events)
            origin = Origin(self.site, name, f"s-{name}", "t1", "")
            await self.store.ingest(
                origin, events, [changes_for(e, sent) for e in events], sent, marks=marks
            )
            self.converted[(day_of(sent), arm)] += 1

    async def run(self, start: int, days: int, per_day: int, converts: dict[str, float]) -> None:
        """``per_day`` visitors a day per arm of ``converts`` (arm -> chance to buy) for
        ``days`` UTC days from ``start`` (midnight), each between 01:00 and 22:00."""
        rng = random.Random(14)
        for d in range(days):
            for arm, chance in converts.items():
                for n in range(per_day):
                    at = start + d * DAY_MS + HOUR_MS + rng.randrange(21 * HOUR_MS)
                    name = f"v{day_of(at)}-{arm}-{n}"  # a new visitor (and session) each
                    await self.visitor(name, arm, at, rng.random() < chance)
        await self.store.deferred()
