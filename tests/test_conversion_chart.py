"""Conversion over time (conversion_series.py, stats.py): the intervals against published
values and against an independent computation, and the per-day series /qa/metrics draws,
read from real day counters written through the store (Redis and the embedded store).
"""

from __future__ import annotations

import math

import pytest

from cuewire.clock import day_of
from cuewire.goals import Goals
from cuewire.measure import measure
from cuewire.stats import Z95, difference_interval, wilson
from cuewire.store import RedisStore
from support.experiment import DAY_MS, Experiment

SITE = "test-site"
RULE = "offer"
START = 1_795_996_800_000  # 2026-11-30 00:00 UTC
CONVERTS = {"a": 0.5, "holdout": 0.1}  # chance that a visitor of an arm buys


def score_bounds(x: int, n: int) -> tuple[float, float]:
    """The Wilson interval found the long way: the proportions p whose score statistic
    |x/n - p| / sqrt(p(1-p)/n) stays within 1.96, by bisection (no closed form)."""

    def outside(p: float) -> bool:
        return abs(x / n - p) > Z95 * math.sqrt(p * (1 - p) / n)

    def edge(inside: float, out: float) -> float:
        for _ in range(100):
            mid = (inside + out) / 2
            inside, out = (inside, mid) if outside(mid) else (mid, out)
        return inside

    centre = x / n if 0 < x < n else (1e-12 if x == 0 else 1 - 1e-12)
    return (0.0 if x == 0 else edge(centre, 0.0)), (1.0 if x == n else edge(centre, 1.0))


def test_the_wilson_interval_matches_newcombes_table_and_the_inverted_score_test() -> None:
    # Newcombe (1998), Statistics in Medicine 17:857, Table I, method 3
    for (x, n), published in {
        (81, 263): (0.2553, 0.3662),
        (15, 148): (0.0624, 0.1605),
        (0, 20): (0.0, 0.1611),
        (1, 29): (0.0061, 0.1718),
    }.items():
        assert tuple(round(v, 4) for v in wilson(x, n)) == published
    for x, n in [(0, 5), (1, 5), (3, 10), (7, 9), (40, 40), (123, 1000)]:
        assert wilson(x, n) == pytest.approx(score_bounds(x, n), abs=1e-9)


def test_the_difference_interval_matches_newcombes_method_10() -> None:
    # Newcombe (1998), Statistics in Medicine 17:873, Table II, method 10 (hybrid score)
    for (x1, n1, x2, n2), published in {
        (56, 70, 48, 80): (0.0524, 0.3339),
        (9, 10, 3, 10): (0.1705, 0.8090),
        (6, 7, 2, 7): (0.0582, 0.8062),
        (5, 56, 0, 29): (-0.0381, 0.1926),
        (0, 10, 0, 20): (-0.1611, 0.2775),
        (10, 10, 0, 20): (0.6791, 1.0),
    }.items():
        assert tuple(round(v, 4) for v in difference_interval(x1, n1, x2, n2)) == published
    # and from the Wilson bounds found by bisection: diff -/+ the root of squared distances
    shop = Experiment(RedisStore.__new__(RedisStore), SITE, RULE)  # its counts only
    shop.converted.update({("d", "a"): 30, ("d", "holdout"): 12})
    shop.visitors.update({("d", "a"): 120, ("d", "holdout"): 110})
    assert difference_interval(30, 120, 12, 110) == pytest.approx(newcombe_long(shop), abs=1e-9)
    assert difference_interval(3, 10, 0, 0) == (-1.0, 1.0)


async def test_the_series_gives_each_days_rate_and_interval_per_arm_from_the_counters(
    store: RedisStore,
) -> None:
    """Three days of an experiment (a prompt converting 50 %, the holdout 10 %) through the
    store; a quiet day between. Each day's points are the test's own counts; the window's
    difference is beyond noise; ``?from=`` cuts the first day off."""
    shop = Experiment(store, SITE, RULE)
    per_day = 40
    await shop.run(START, 2, per_day, CONVERTS)
    await shop.run(START + 3 * DAY_MS, 1, per_day, CONVERTS)
    first, last = day_of(START - DAY_MS), day_of(START + 4 * DAY_MS)
    report = (await measure(store, SITE, Goals(), START, first, last)).to_json()
    [rule] = report["rules"]
    series = rule["series"]
    days = [day_of(START + n * DAY_MS) for n in range(5)]  # from the first exposure on
    assert (series["days"], series["reference"]) == (days, "holdout")
    for arm in series["arms"]:
        assert [p["day"] for p in arm["points"]] == days
        for p in arm["points"]:
            n, x = (
                shop.visitors[(p["day"], arm["variant"])],
                shop.converted[(p["day"], arm["variant"])],
            )
            assert (p["visitors"], p["converted"]) == (n, x)
            if n == 0:
                assert p["rate"] is None and p["ci"] is None
            else:
                assert p["rate"] == x / n
                assert p["ci"] == pytest.approx(list(score_bounds(x, n)), abs=1e-9)
        total_n = sum(v for (_, a), v in shop.visitors.items() if a == arm["variant"])
        total_x = sum(v for (_, a), v in shop.converted.items() if a == arm["variant"])
        assert (arm["window"]["visitors"], arm["window"]["converted"]) == (total_n, total_x)
    [diff] = series["differences"]
    assert (diff["variant"], diff["against"]) == ("a", "holdout")
    quiet = [p for p in diff["points"] if p["day"] in (days[2], days[4])]
    assert [p["difference"] for p in quiet] == [None, None]
    for p in diff["points"]:
        if p["difference"] is not None:
            assert p["ci"] == pytest.approx(list(newcombe_long(shop, p["day"])), abs=1e-9)
    window = diff["window"]
    assert window["ci"] == pytest.approx(list(newcombe_long(shop)), abs=1e-9)
    assert window["ci"][0] > 0  # 50 % against 10 %: beyond noise over the window

    cut = (await measure(store, SITE, Goals(), START, days[1], last)).to_json()
    [later] = cut["rules"][0]["series"]["arms"][:1]
    assert cut["rules"][0]["series"]["days"] == days[1:]
    assert later["window"]["visitors"] == sum(
        n for (day, a), n in shop.visitors.items() if a == "a" and day != days[0]
    )


def newcombe_long(shop: Experiment, day: str | None = None) -> tuple[float, float]:
    """Arm a against the holdout on ``day`` (the whole experiment: None), from the counts
    the test kept and the Wilson bounds found by bisection."""

    def counts(arm: str) -> tuple[int, int]:
        def on(key: tuple[str, str]) -> bool:
            return key[1] == arm and day in (None, key[0])

        return (
            sum(n for k, n in shop.converted.items() if on(k)),
            sum(n for k, n in shop.visitors.items() if on(k)),
        )

    (x1, n1), (x2, n2) = counts("a"), counts("holdout")
    (l1, u1), (l2, u2) = score_bounds(x1, n1), score_bounds(x2, n2)
    d = x1 / n1 - x2 / n2
    return d - math.hypot(x1 / n1 - l1, u2 - x2 / n2), d + math.hypot(u1 - x1 / n1, x2 / n2 - l2)


async def test_a_conversion_after_midnight_counts_on_its_day_and_a_days_rate_stays_within_one(
    store: RedisStore,
) -> None:
    """Exposed at 23:58, bought at 00:03: the conversion counts on the next day, whose one
    new visitor also buys: 2 conversions over 1 visitor, drawn as 1/1 (the counts as counted)."""
    shop = Experiment(store, SITE, RULE)
    midnight = START + DAY_MS
    await shop.visitor("v-late", "a", midnight - 2 * 60_000, buys=True)
    await shop.visitor("v-early", "a", midnight + 3_600_000, buys=True)
    first, second = day_of(START), day_of(midnight)
    report = (await measure(store, SITE, Goals(), midnight, first, second)).to_json()
    [arm] = report["rules"][0]["series"]["arms"]
    drawn = [(first, 1, 0, 0.0, (0, 1)), (second, 1, 2, 1.0, (1, 1))]  # ci: wilson(x, n)
    assert arm["points"] == [
        {"day": d, "visitors": n, "converted": x, "rate": r, "ci": list(wilson(*ci))}
        for d, n, x, r, ci in drawn
    ]
    assert arm["window"] == {"visitors": 2, "converted": 2, "rate": 1.0, "ci": list(wilson(2, 2))}
    assert report["rules"][0]["series"]["differences"] == []  # nothing to compare with
