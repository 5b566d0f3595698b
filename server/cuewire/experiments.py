"""Deterministic bucketing: the same visitor gets the same variant, in every process.

``in_rollout`` decides, the same way, whether a rule with a ``rollout`` share is live for a
visitor.

``variant_for`` is the one place a rule's ``show`` is turned into a variant: delivery picks
with it, measurement counts suppressed candidates in the arm it names, and the studio labels
each arm with the share ``arm_shares`` gives it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .rules.model import rollout_share

if TYPE_CHECKING:
    from .rules.model import Rule, Show, Variant

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


def variant_for(visitor: str, rule: Rule) -> str | None:
    """The variant ``visitor`` gets for ``rule``: a variant id, ``HOLDOUT``, or None when the
    rule shows nothing or has neither variants nor a holdout."""
    show = rule.show
    if show is None or (not show.variants and not show.holdout):
        return None
    weights = [(v.id, v.weight) for v in show.variants]
    return bucket(visitor, show.experiment or rule.id, weights, show.holdout)


def in_rollout(site: str, rule: Rule, visitor: str) -> bool:
    """Whether ``rule`` is live for ``visitor`` under its ``rollout`` share (docs/rules.md):
    ``unit_interval`` of the visitor under the name ``rollout\0<site>\0<rule id>``, below
    the share. Its own name, so who is in the rollout does not follow the A/B arms; raising
    the share keeps everyone who was in."""
    if rule.rollout is None:
        return True
    return unit_interval(visitor, f"rollout\x00{site}\x00{rule.id}") < rollout_share(rule.rollout)


def arm_shares(show: Show) -> list[tuple[Variant | None, float]]:
    """Each arm of ``show`` with the share of all visitors ``variant_for`` gives it (the
    holdout's share is ``show.holdout``); one arm ``None`` when there are no variants."""
    share = 1 - show.holdout
    if not show.variants:
        return [(None, share)]
    total = sum(v.weight for v in show.variants)
    return [(v, v.weight / total * share) for v in show.variants]
