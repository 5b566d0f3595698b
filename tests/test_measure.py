"""Measurement (cuewire.measure): 200 simulated visitors with known outcomes go through the real
pipeline on a fake clock; the test keeps its own tally of what each visitor saw and did, and
the report must agree with it, number for number.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from cuewire.errors import ConfigError
from cuewire.goals import Goals
from cuewire.measure import compute, measure
from cuewire.settings import Settings
from cuewire.stats import two_proportion, wilson
from cuewire.store import RedisStore
from support.harness import Harness, VisitorSession, write

SITE = "test-site"
SHOP = "http://shop.test"
MIN = 60

RULES = """
rules:
  - id: exit-offer
    priority: 20
    trigger: {event: {type: exit_intent}}
    show:
      template: note
      params: {message: "10% off today"}
      variants: [{id: a}, {id: b}]
      holdout: 0.2
  - id: cart-nudge
    priority: 10
    trigger:
      absence:
        after: {type: custom, name: add_to_cart}
        missing: {type: custom, name: checkout_started}
        within: 10m
    show:
      template: note
      params: {message: "Your cart is waiting"}
"""
GOALS = """
# exit-offer keeps the default goal: a purchase within 30 minutes
[rules.cart-nudge]
goal = { type = "custom", name = "checkout_started" }
window = "20m"
"""
CONVERTS = {"a": 0.25, "b": 0.45, "holdout": 0.15}  # chance that a visitor of an arm buys


@dataclass
class Tally:
    """What the script did, by (rule, arm): the test's own expectations."""

    counts: Counter[tuple[str, str, str]]

    def __getitem__(self, key: tuple[str, str, str]) -> int:
        return self.counts[key]


@pytest.fixture
def shop(store: RedisStore, settings: Settings, tmp_path: Path) -> Harness:
    rules = write(tmp_path / "rules" / "measured.yaml", RULES).parent
    write(rules / "measure.toml", GOALS)  # the goals the counters count with, as rules load
    return Harness(store, replace(settings, rules_dir=rules))


async def shown_after(h: Harness, before: int) -> tuple[str, str, str | None] | None:
    """The prompt pushed since ``before`` prompts were pushed: (id, rule, variant)."""
    if len(h.shown) == before:
        return None
    [(_, prompt)] = h.shown[before:]
    return prompt.id, prompt.rule, prompt.variant


async def feedback(v: VisitorSession, kind: str, prompt: str, rule: str) -> None:
    await v.send(kind, f"{SHOP}/", prompt=prompt, rule=rule)


async def exit_flow(
    h: Harness, v: VisitorSession, rng: random.Random, t: Counter[tuple[str, str, str]]
) -> None:
    rule = "exit-offer"
    url = f"{SHOP}/product/p{rng.randrange(12)}"
    await v.send("page_view", url)
    if rng.random() < 0.05:  # bought before the prompt: not a conversion of it
        await v.send("custom", f"{SHOP}/thanks", name="purchase", props={"total": 10})
        await h.pass_time(1)
    before = len(h.shown)
    await v.send("exit_intent", url)
    pushed = await shown_after(h, before)
    if pushed is None:
        arm = "holdout"
        t[rule, arm, "holdout"] += 1
    else:
        prompt, fired_rule, variant = pushed
        assert fired_rule == rule and variant in ("a", "b")
        arm = variant
        t[rule, arm, "fired"] += 1
        if rng.random() < 0.95:  # some browsers never get to show it
            await feedback(v, "prompt_shown", prompt, rule)
            t[rule, arm, "shown"] += 1
            action = rng.random()
            if action < 0.3:
                await feedback(v, "prompt_click", prompt, rule)
                t[rule, arm, "clicked"] += 1
            elif action < 0.7:
                await feedback(v, "prompt_dismiss", prompt, rule)
                t[rule, arm, "dismissed"] += 1
    if rng.random() < 0.2:  # a second exit intent: capped at once per session
        await v.send("exit_intent", url)
        t[rule, arm, "suppressed"] += 1
    if rng.random() < CONVERTS[arm]:
        in_time = rng.random() < 0.85
        await h.pass_time(rng.uniform(1 * MIN, 29 * MIN) if in_time else 31 * MIN)
        await v.send("custom", f"{SHOP}/thanks", name="purchase", props={"total": 80})
        t[rule, arm, "converted"] += in_time


async def cart_flow(
    h: Harness, v: VisitorSession, rng: random.Random, t: Counter[tuple[str, str, str]]
) -> None:
    rule, arm = "cart-nudge", ""
    url = f"{SHOP}/product/p{rng.randrange(12)}"
    await v.send("page_view", url)
    await v.send("custom", url, name="add_to_cart", props={"product_id": "p1"})
    if rng.random() < 0.4:  # checks out in time: the rule never fires
        await h.pass_time(rng.uniform(1 * MIN, 9 * MIN))
        await v.send("custom", f"{SHOP}/checkout", name="checkout_started")
        return
    before = len(h.shown)
    await h.pass_time(10 * MIN + 1)
    pushed = await shown_after(h, before)
    assert pushed is not None and pushed[1] == rule and pushed[2] is None
    t[rule, arm, "fired"] += 1
    await feedback(v, "prompt_shown", pushed[0], rule)
    t[rule, arm, "shown"] += 1
    outcome = rng.random()
    if outcome < 0.6:
        in_time = outcome < 0.5
        await h.pass_time(rng.uniform(1 * MIN, 19 * MIN) if in_time else 25 * MIN)
        await v.send("custom", f"{SHOP}/checkout", name="checkout_started")
        t[rule, arm, "converted"] += in_time


async def run_visitors(h: Harness, n: int, seed: int) -> Counter[tuple[str, str, str]]:
    tally: Counter[tuple[str, str, str]] = Counter()
    for i in range(n):
        rng = random.Random(seed * 100_003 + i)
        v = await h.visit(visitor=f"v_measured{i:04d}", site=SITE)
        if rng.random() < 0.75:
            await exit_flow(h, v, rng, tally)
        else:
            await cart_flow(h, v, rng, tally)
        await h.pass_time(2 * MIN)
    return tally


def chi_square_p(x1: int, n1: int, x2: int, n2: int) -> float:
    """The p-value of a 2x2 table by Pearson's chi-square (no continuity correction), written
    from the table, not from the z statistic the report uses; the two tests are equivalent."""
    a, b, c, d = x1, n1 - x1, x2, n2 - x2
    n = n1 + n2
    chi2 = n * (a * d - b * c) ** 2 / ((a + b) * (c + d) * (a + c) * (b + d))
    return math.erfc(math.sqrt(chi2 / 2))


async def test_the_report_counts_200_scripted_visitors_exactly(shop: Harness) -> None:
    tally = await run_visitors(shop, 200, seed=5)
    goals = Goals.parse(GOALS)
    report = (await measure(shop.store, SITE, goals, shop.clock.now)).to_json()

    by_rule = {r["rule"]: r for r in report["rules"]}
    assert set(by_rule) == {"exit-offer", "cart-nudge"}
    for rule in by_rule.values():
        for row in rule["variants"]:
            arm = row["variant"] or ""
            key = (rule["rule"], arm)
            expected = {
                name: tally[(*key, name)]
                for name in (
                    "fired",
                    "holdout",
                    "suppressed",
                    "shown",
                    "clicked",
                    "dismissed",
                    "converted",
                )
            }
            exposed = expected["fired"] + expected["holdout"]
            assert {name: row[name] for name in expected} == expected, key
            assert row["exposed"] == exposed
            assert row["eligible"] == exposed + expected["suppressed"]
            assert row["rate"] == pytest.approx(expected["converted"] / exposed)
            low, high = row["ci"]
            assert low < row["rate"] < high

    arms = {row["variant"]: row for row in by_rule["exit-offer"]["variants"]}
    assert set(arms) == {"a", "b", "holdout"}
    assert sum(
        tally[("exit-offer", a, k)] for a in ("a", "b", "holdout") for k in ("fired", "holdout")
    ) == sum(r["exposed"] for r in arms.values())
    assert by_rule["exit-offer"]["suppressed_by"] == {  # by code (codes.Hold)
        "cap_session": sum(tally[("exit-offer", a, "suppressed")] for a in ("a", "b", "holdout"))
    }
    comparisons = {(c["variant"], c["against"]): c for c in by_rule["exit-offer"]["comparisons"]}
    assert set(comparisons) == {("a", "holdout"), ("b", "holdout"), ("b", "a")}
    for (arm, against), comp in comparisons.items():
        x1, n1 = tally[("exit-offer", arm, "converted")], arms[arm]["exposed"]
        x2, n2 = tally[("exit-offer", against, "converted")], arms[against]["exposed"]
        assert comp["difference"] == pytest.approx(x1 / n1 - x2 / n2)
        assert comp["p_value"] == pytest.approx(chi_square_p(x1, n1, x2, n2))
    nudge = by_rule["cart-nudge"]
    assert nudge["goal"] == {
        "event": {"type": "custom", "name": "checkout_started"},
        "window_s": 1200,
    }
    assert by_rule["exit-offer"]["goal"]["window_s"] == 1800
    assert [c for c in nudge["comparisons"]] == []
    print(
        "measured:",
        {
            f"{r['rule']}/{row['variant']}": (
                row["exposed"],
                row["converted"],
                round(row["rate"], 3),
            )
            for r in report["rules"]
            for row in r["variants"]
        },
        {k: round(c["p_value"], 4) for k, c in comparisons.items()},
    )


async def test_csv_has_one_row_per_rule_and_variant(shop: Harness) -> None:
    await run_visitors(shop, 40, seed=9)
    audit = await shop.store.read_audit(SITE, 10_000)
    live = await shop.store.read_live(SITE, 10_000)
    report = compute(SITE, audit, live, Goals.parse(GOALS))
    lines = report.to_csv().splitlines()
    assert lines[0].startswith("rule,variant,goal,window_s,eligible,")
    keys = [tuple(line.split(",")[:2]) for line in lines[1:]]
    assert keys == sorted(keys) and ("cart-nudge", "") in keys and ("exit-offer", "holdout") in keys
    row = dict(
        zip(lines[0].split(","), lines[1 + keys.index(("exit-offer", "a"))].split(","), strict=True)
    )
    assert (
        row["against"] == "holdout"
        and row["goal"] == "custom purchase"
        and row["window_s"] == "1800"
    )


def test_wilson_interval_matches_newcombes_worked_example() -> None:
    # Newcombe (1998), Statistics in Medicine 17:857, method 3: 81/263 -> 0.2553 to 0.3662
    low, high = wilson(81, 263)
    assert (round(low, 4), round(high, 4)) == (0.2553, 0.3662)
    assert wilson(0, 10)[0] == 0.0 and wilson(10, 10)[1] == pytest.approx(1.0)
    assert wilson(0, 0) == (0.0, 1.0)


def test_two_proportion_test_agrees_with_chi_square() -> None:
    diff, low, high, _z, p = two_proportion(45, 100, 30, 100)
    assert diff == pytest.approx(0.15)
    assert low < diff < high
    assert p == pytest.approx(chi_square_p(45, 100, 30, 100))
    assert p < 0.05 < two_proportion(32, 100, 30, 100)[4]
    assert two_proportion(0, 10, 0, 10)[4] == 1.0


def test_goals_default_to_a_purchase_within_30_minutes_and_reject_unknown_events(
    tmp_path: Path,
) -> None:
    goals = Goals.load(tmp_path / "measure.toml")
    assert (goals.of("any").describe(), goals.of("any").window_ms) == ("custom purchase", 1_800_000)
    with pytest.raises(ConfigError, match="unknown event type"):
        Goals.parse('[default]\ngoal = { type = "buy" }\n')
    with pytest.raises(ConfigError, match="not valid TOML"):
        Goals.parse("[default\n")


async def test_a_browser_lying_about_its_clock_cannot_move_a_conversion(shop: Harness) -> None:
    """The window is measured in server time (the live batch's ``at``), never in ``ts``."""
    late = await shop.visit(visitor="v_liar_late", site=SITE)
    await late.send("exit_intent", f"{SHOP}/product/p1")
    fired_at = shop.clock.now
    await shop.pass_time(31 * MIN)  # past the 30 min window, but it claims a minute after
    await late.send("custom", f"{SHOP}/thanks", name="purchase", ts=fired_at + 60_000)

    early = await shop.visit(visitor="v_liar_early", site=SITE)
    await early.send("exit_intent", f"{SHOP}/product/p2")
    await shop.pass_time(5 * MIN)  # well inside the window, but it claims two hours later
    await early.send("custom", f"{SHOP}/thanks", name="purchase", ts=shop.clock.now + 7_200_000)

    report = await measure(shop.store, SITE, Goals(), shop.clock.now)
    assert report.rules["exit-offer"].total().exposed == 2
    exposures = {
        r["visitor"]: r for r in await shop.audit(SITE) if r.get("outcome") in ("fired", "holdout")
    }
    live = await shop.store.read_live(SITE, 1000)

    def converted(visitor: str) -> int:
        alone = compute(SITE, [exposures[visitor]], live, Goals())
        return alone.rules["exit-offer"].total().converted

    assert (converted("v_liar_late"), converted("v_liar_early")) == (0, 1)
