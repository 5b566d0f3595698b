"""Deterministic bucketing: the same visitor gets the same variant, in every process."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

HOLDOUT = "holdout"


def unit_interval(visitor: str, experiment: str) -> float:
    """A uniform number in [0, 1) fixed by visitor and experiment."""
    digest = hashlib.sha256(f"{experiment}\x00{visitor}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def bucket(
    visitor: str, experiment: str, weights: Sequence[tuple[str, float]], holdout: float = 0.0
) -> str | None:
    """The variant id for ``visitor``, ``HOLDOUT`` for the holdout share, or None without
    variants. ``weights`` are relative; the holdout share is taken off the top."""
    x = unit_interval(visitor, experiment)
    if x < holdout:
        return HOLDOUT
    if not weights:
        return None
    x = (x - holdout) / (1 - holdout)
    total = sum(w for _, w in weights)
    edge = 0.0
    for variant, weight in weights:
        edge += weight / total
        if x < edge:
            return variant
    return weights[-1][0]
