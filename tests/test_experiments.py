"""Bucketing: weighted variants and a holdout, split as configured and stable for a visitor
across calls, restarts and processes."""

from __future__ import annotations

import itertools
import json
import random
import string
import subprocess
import sys
from collections import Counter

import pytest

from cuewire.experiments import HOLDOUT, bucket, unit_interval

N = 10_000
ALPHABET = string.ascii_letters + string.digits + "_-"


def visitor_ids(n: int = N, seed: int = 4) -> list[str]:
    """Ids shaped like the snippet's (v_ + random [A-Za-z0-9_-]), from a fixed seed."""
    rng = random.Random(seed)
    return ["v_" + "".join(rng.choices(ALPHABET, k=rng.randint(10, 22))) for _ in range(n)]


def shares(ids: list[str], **kwargs: object) -> dict[str | None, float]:
    counts = Counter(bucket(v, **kwargs) for v in ids)  # type: ignore[arg-type]
    return {k: c / len(ids) for k, c in counts.items()}


WEIGHTS = [("a", 50.0), ("b", 30.0), ("c", 20.0)]
# Chi-square critical values at p = 0.001, by degrees of freedom.
CHI2_CRITICAL = {2: 13.82, 3: 16.27}


def test_ten_thousand_visitors_split_within_one_point_of_the_weights() -> None:
    """One fixed set of 10,000 ids. With an ideal random split, a share's standard error at
    this size is about 0.5 points, so "within 1 point" holds for about 93% of id sets; the
    next test shows the hash is unbiased on far larger samples."""
    got = shares(visitor_ids(), experiment="checkout-copy", weights=WEIGHTS)
    assert set(got) == {"a", "b", "c"}
    for variant, weight in WEIGHTS:
        assert abs(got[variant] - weight / 100) < 0.01, (variant, got)


@pytest.mark.parametrize(
    ("experiment", "holdout"), [("checkout-copy", 0.0), ("exit-offer-2026", 0.0), ("x", 0.1)]
)
def test_the_split_fits_the_weights_on_200_000_visitors(experiment: str, holdout: float) -> None:
    n = 200_000
    counts = Counter(bucket(v, experiment, WEIGHTS, holdout) for v in visitor_ids(n, seed=99))
    expected = {v: (1 - holdout) * w / 100 * n for v, w in WEIGHTS}
    if holdout:
        expected[HOLDOUT] = holdout * n
    chi2 = sum((counts[k] - e) ** 2 / e for k, e in expected.items())
    assert set(counts) == set(expected)
    assert chi2 < CHI2_CRITICAL[len(expected) - 1], (chi2, counts)


def test_a_holdout_is_taken_off_the_top_and_the_rest_split_by_weight() -> None:
    got = shares(visitor_ids(), experiment="checkout-copy", weights=WEIGHTS, holdout=0.1)
    assert abs(got[HOLDOUT] - 0.10) < 0.01, got
    for variant, weight in WEIGHTS:  # 90% of visitors, split 50/30/20
        assert abs(got[variant] - 0.9 * weight / 100) < 0.01, (variant, got)


def test_weights_are_relative() -> None:
    ids = visitor_ids(2_000)
    small = [bucket(v, "e", [("a", 5), ("b", 3), ("c", 2)]) for v in ids]
    large = [bucket(v, "e", [("a", 50), ("b", 30), ("c", 20)]) for v in ids]
    assert small == large


def test_a_holdout_alone_shows_the_rest_the_rule_itself() -> None:
    got = shares(visitor_ids(), experiment="e", weights=[], holdout=0.25)
    assert set(got) == {HOLDOUT, None}
    assert abs(got[HOLDOUT] - 0.25) < 0.01


def test_without_variants_or_holdout_nobody_is_bucketed() -> None:
    assert {bucket(v, "e", []) for v in visitor_ids(100)} == {None}


def test_the_same_visitor_gets_the_same_variant_on_every_call() -> None:
    ids = visitor_ids(1_000)
    first = [bucket(v, "e", WEIGHTS, 0.1) for v in ids]
    assert [bucket(v, "e", WEIGHTS, 0.1) for v in ids] == first


def test_experiments_bucket_independently() -> None:
    """A visitor's variant in one experiment says nothing about another experiment."""
    ids = visitor_ids()
    pairs = Counter(
        (bucket(v, "one", [("a", 1), ("b", 1)]), bucket(v, "two", [("a", 1), ("b", 1)]))
        for v in ids
    )
    for pair in [("a", "a"), ("a", "b"), ("b", "a"), ("b", "b")]:
        assert abs(pairs[pair] / N - 0.25) < 0.01, pairs


def test_each_share_is_one_slice_of_the_hash_range() -> None:
    """Holdout first, then the variants in order: changing one weight moves only the
    visitors at the edges of its slice."""
    ids = visitor_ids(2_000)
    ordered = sorted(ids, key=lambda v: unit_interval(v, "e"))
    variants = [bucket(v, "e", WEIGHTS, 0.1) for v in ordered]
    runs = [variants[0]] + [b for a, b in itertools.pairwise(variants) if a != b]
    assert runs == [HOLDOUT, "a", "b", "c"]


CHILD = """
import json, sys
from cuewire.experiments import bucket
ids = json.loads(sys.stdin.read())
weights = [("a", 50.0), ("b", 30.0), ("c", 20.0)]
print(json.dumps([bucket(v, "checkout-copy", weights, 0.1) for v in ids]))
"""


@pytest.mark.parametrize("hash_seed", ["0", "12345"])
def test_a_fresh_interpreter_buckets_every_visitor_the_same_way(hash_seed: str) -> None:
    """Stable across restarts and server processes: no per-process salt (PYTHONHASHSEED)."""
    ids = visitor_ids(2_000)
    here = [bucket(v, "checkout-copy", WEIGHTS, 0.1) for v in ids]
    child = subprocess.run(
        [sys.executable, "-c", CHILD],
        input=json.dumps(ids),
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
        env={"PYTHONHASHSEED": hash_seed, "PATH": ""},
    )
    assert json.loads(child.stdout) == here
