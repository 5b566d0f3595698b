"""Funnels (funnels.py, counters.lua): defined in a rule file, counted by the store as events
arrive. 400 scripted visitors walk a three-step funnel in and out of order, some after seeing
the prompt of the rule the funnel is split by; the per-step counts must be exactly what the
test works out from the documented rules (next step only, in order; the window restarts the
first step; the segment is the visitor's open exposure at entry). ``cuewire check`` names
each mistake in a funnel with its file and line.
"""

from __future__ import annotations

import random
import shutil
import textwrap
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from cuewire.audit import AuditRecord
from cuewire.cli import main
from cuewire.clock import day_of, days_between
from cuewire.codes import Outcome
from cuewire.facts import changes_for
from cuewire.funnels import funnel_reports
from cuewire.goals import Goals
from cuewire.measures import Measures
from cuewire.origin import Origin
from cuewire.rules.loader import load_rules
from cuewire.store import RedisStore
from support.harness import write
from support.servers import WITH_CLUSTER

BACKENDS = WITH_CLUSTER  # on a cluster the counts come back from the visitor's slot

SITE = "test-site"
START = 1_796_083_200_000 + 23 * 3_600_000  # 2026-12-01 23:00 UTC: the walks cross midnight
GOAL_MS = 30 * 60_000
WINDOW_MS = 20 * 60_000
FIXTURES = Path(__file__).parent / "fixtures"
RULES = """\
rules:
  - id: size-help
    trigger: {event: {type: page_view}}
    show:
      template: note
      variants: [{id: a}, {id: b}]
funnels:
  - id: buy
    description: From a product page to a purchase
    within: 20m
    split: size-help
    steps:
      - {type: page_view, where: {fact: url, contains: /product/}}
      - {type: custom, name: add_to_cart}
      - {type: custom, name: purchase}
"""
PRODUCT = {"type": "page_view", "url": "http://shop.test/product/boots"}
HOME = {"type": "page_view", "url": "http://shop.test/"}
CART = {"type": "custom", "name": "add_to_cart", "props": {}}
BUY = {"type": "custom", "name": "purchase", "props": {}}
STEP_OF = {"product": 1, "cart": 2, "buy": 3}
EVENTS = {"product": PRODUCT, "home": HOME, "cart": CART, "buy": BUY}


@dataclass
class Walker:
    """The test's own model of one visitor in the funnel."""

    step: int = 0
    entered: int = 0
    segment: str = ""
    exposed: tuple[int, str] | None = None  # last exposure (at, variant)

    def event(self, name: str, at: int, counts: Counter[tuple[str, str, int]]) -> None:
        if self.step and at - self.entered > WINDOW_MS:
            self.step = 0
        if STEP_OF.get(name) != self.step + 1:
            return
        if self.step == 0:
            open_ = self.exposed is not None and at - self.exposed[0] <= GOAL_MS
            self.segment = f"x:{self.exposed[1]}" if open_ and self.exposed else "none"
            self.entered = at
        self.step += 1
        counts[(day_of(at), self.segment, self.step)] += 1


@dataclass
class Script:
    counts: Counter[tuple[str, str, int]] = field(default_factory=Counter)


def walk(rng: random.Random) -> list[tuple[str, int]]:
    """A visitor's events with minutes since their start: mostly in order, some not."""
    names = rng.choice(
        [
            ["product", "cart", "buy"],
            ["product", "cart"],
            ["product", "home", "cart", "buy", "buy"],
            ["cart", "product", "buy", "cart", "buy"],  # out of order: 1, 2, 3 in the end
            ["product", "product", "cart", "cart", "buy"],
            ["home", "buy"],
        ]
    )
    minutes, out = 0, []
    for name in names:
        minutes += rng.choice([1, 2, 5, 12])  # some walks take longer than the window
        out.append((name, minutes))
    return out


async def test_400_visitors_walking_a_funnel_give_exactly_the_counts_worked_out_apart(
    store: RedisStore, tmp_path: Path
) -> None:
    write(tmp_path / "rules" / "shop.yaml", RULES)
    loaded = load_rules(tmp_path / "rules")
    [funnel] = loaded.funnels
    measures = Measures(Goals(), loaded.funnels, [r.id for r in loaded.rules])
    rng = random.Random(7)
    expected: Counter[tuple[str, str, int]] = Counter()
    for n in range(400):
        visitor, model = f"w{n}", Walker()
        origin = Origin(SITE, visitor, f"s{n}", "t1", "")
        start = START + rng.randrange(90) * 60_000
        if rng.random() < 0.5:  # saw the prompt just before (or long before: closed)
            at = start - rng.choice([60_000, 3 * GOAL_MS])
            variant = rng.choice(["a", "b"])
            record = AuditRecord(
                Outcome.FIRED,
                "size-help",
                origin.session,
                visitor,
                "event",
                at,
                prompt=f"p{n}",
                variant=variant,
                window_ms=GOAL_MS,
            )
            await store.record(SITE, [], [record.fields()])
            model.exposed = (at, variant)
        for seq, (name, minutes) in enumerate(walk(rng), 1):
            at = start + minutes * 60_000
            event: dict[str, Any] = {**EVENTS[name], "seq": seq, "ts": at}
            await store.ingest(
                origin, [event], [changes_for(event, at)], at, marks=measures.marks([event])
            )
            model.event(name, at, expected)

    await store.deferred()  # a cluster adds the counts beside the visitor's script
    days = days_between(day_of(START), day_of(START + 86_400_000))
    counters = await store.counters(SITE, days)
    [report] = funnel_reports(loaded.funnels, counters, days[0], days[-1])
    got: Counter[tuple[str, str, int]] = Counter()
    for day, fields in counters.items():
        for name, count in fields.items():
            if name.startswith("#f|"):
                _, funnel_id, segment, step = name.split("|")
                assert funnel_id == "buy"
                got[(day, segment, int(step))] = count
    assert got == expected
    assert {day for day, _, _ in expected} == set(days)  # counted on both sides of midnight
    body = report.to_json()
    for segment in ("none", "x:a", "x:b"):
        per_step = [
            sum(c for (_, s, st), c in expected.items() if s == segment and st == k)
            for k in (1, 2, 3)
        ]
        assert body["segments"][segment]["visitors"] == per_step
        assert body["segments"][segment]["dropped"] == [
            0,
            per_step[0] - per_step[1],
            per_step[1] - per_step[2],
        ]
    assert funnel.split == "size-help"


@pytest.mark.parametrize(
    ("funnels", "line", "message"),
    [
        (
            """\
            funnels:
              - id: one
                split: nobody
                steps: [{type: page_view}, {type: click}]
            """,
            3,
            "unknown rule 'nobody'",
        ),
        (
            """\
            funnels:
              - id: one
                steps: [{type: page_view}, {type: click}]
              - id: one
                steps: [{type: page_view}, {type: click}]
            """,
            4,
            "duplicate funnel id 'one'",
        ),
        (
            """\
            funnels:
              - id: one
                steps:
                  - {type: page_view}
                  - {type: teleport}
            """,
            5,
            "unknown event type 'teleport'",
        ),
        (
            """\
            funnels:
              - id: one
                steps: [{type: page_view}]
            """,
            3,
            "length >= 2",
        ),
    ],
)
def test_check_names_each_mistake_in_a_funnel_with_file_and_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, funnels: str, line: int, message: str
) -> None:
    rules, templates = tmp_path / "rules", tmp_path / "templates"
    shutil.copytree(FIXTURES / "templates", templates)
    write(rules / "shop.yaml", RULES)
    path = write(rules / "funnels.yaml", textwrap.dedent(funnels))
    code = main(["check", "--rules", str(rules), "--templates", str(templates)])
    out = capsys.readouterr()
    lines = (out.err or out.out).strip().splitlines()
    assert code != 0
    assert any(text.startswith(f"{path}:{line}:") and message in text for text in lines), lines
