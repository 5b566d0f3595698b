"""Proportions: Wilson intervals, Newcombe's interval of a difference and the two-proportion
z-test (measurement, docs/qa.md)."""

from __future__ import annotations

import math

Z95 = 1.959963984540054  # the 97.5th percentile of the standard normal distribution


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a proportion; (0, 1) when there is no observation."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def two_proportion(x1: int, n1: int, x2: int, n2: int) -> tuple[float, float, float, float, float]:
    """(difference, ci_low, ci_high, z, p_value) of x1/n1 - x2/n2: the interval is
    :func:`difference_interval`'s, the p-value the two-sided pooled two-proportion z-test's."""
    if n1 == 0 or n2 == 0:
        return 0.0, -1.0, 1.0, 0.0, 1.0
    diff = x1 / n1 - x2 / n2
    low, high = difference_interval(x1, n1, x2, n2)
    pooled = (x1 + x2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return diff, low, high, 0.0, 1.0
    z = diff / se
    return diff, low, high, z, math.erfc(abs(z) / math.sqrt(2))


def difference_interval(x1: int, n1: int, x2: int, n2: int, z: float = Z95) -> tuple[float, float]:
    """Newcombe's hybrid score interval (1998, method 10) of x1/n1 - x2/n2, built from the two
    Wilson intervals: it stays inside [-1, 1] and keeps a width at small counts and at 0 % or
    100 %, where the Wald interval collapses to a point. (-1, 1) when an arm has no
    observation."""
    if n1 == 0 or n2 == 0:
        return -1.0, 1.0
    p1, p2 = x1 / n1, x2 / n2
    (l1, u1), (l2, u2) = wilson(x1, n1, z), wilson(x2, n2, z)
    diff = p1 - p2
    low = diff - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = diff + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return max(-1.0, low), min(1.0, high)
