"""The measurement counters' part of the store's script arguments (counters.py, counters.lua):
what a batch's events count (ingest.lua's ARGV[15], with the learned segment a decision made
ahead assigned) and what an audit record counts (record.lua's ``t``), with the keys they touch
added to the call's KEYS.

On a cluster the counters of a site share the slot of its audit stream, not a visitor's: what
the visitor's keys decide (feedback, conversions, funnel steps, a new exposed visitor) comes
back from the script and is added beside it (:func:`count_beside`).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from ..clock import day_of
from ..counters import (
    PROMPT_MARK_TTL_S,
    VISITORS,
    Feedback,
    GoalReached,
    Mark,
    SegmentAssigned,
    counter_field,
    record_count,
    segment_field,
)
from ..keys import Keys
from .coalesce import Coalescer
from .scripts import slot_in, to_json
from .shared import together

COUNTERS_TTL_S = 400 * 86400  # counters.lua: the same


def ingest_arg(
    k: Keys,
    site: str,
    visitor: str,
    marks: list[Mark] | None,
    keys: list[str],
    now_ms: int,
    funnel_ttl_s: int,
) -> str:
    """ingest.lua's ARGV[15] for ``marks``: "" when they count nothing. A funnel without a
    window keeps a visitor's progress ``funnel_ttl_s`` (the visitor's time to live)."""
    if not marks:
        return ""
    slot = slot_in(keys)
    entries: list[list[Any]] = []
    assigned: list[Any] | None = None
    for m in marks:
        if isinstance(m, SegmentAssigned):
            field = segment_field(m.model, m.segment)
            assigned = [slot(k.visitor(site, visitor)), field, day_of(now_ms)]
        elif isinstance(m, Feedback):
            entries.append([m.event + 1, "p", slot(k.prompt_mark(site, visitor, m.prompt)), m.kind])
        elif isinstance(m, GoalReached):
            marker = slot(k.exposed(site, visitor, m.rule))
            entries.append([m.event + 1, "g", marker, m.rule, m.window_ms])
        else:
            split = slot(k.exposed(site, visitor, m.split)) if m.split else 0
            ttl = math.ceil(m.window_ms / 1000) if m.window_ms else funnel_ttl_s
            progress = slot(k.funnel(site, visitor, m.funnel))
            steps = list(m.steps)
            entries.append(
                [m.event + 1, "f", progress, m.funnel, steps, m.window_ms, ttl, split, m.split_ms]
            )
    counters = 0 if k.cluster else slot(k.counters(site, day_of(now_ms)))
    spec: dict[str, Any] = {"k": counters, "e": entries}
    if assigned is not None:
        spec["s"] = assigned
    return to_json(spec)


def record_arg(
    k: Keys, site: str, record: Mapping[str, str], slot: Callable[[str], int]
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """record.lua's ``t`` for ``record`` (None when it counts nothing) and, on a cluster,
    mark.lua's entry for what it leaves in the visitor's slot (else in ``t``)."""
    count = record_count(record)
    if count is None:
        return None, None
    at = int(record.get("at") or 0)
    tally: dict[str, Any] = {"k": slot(k.counters(site, day_of(at))), "c": count.fields}
    visitor = record.get("visitor", "")
    marks: dict[str, Any] = {}
    own: list[str] = []  # on a cluster: mark.lua's KEYS
    mark_slot = slot_in(own) if k.cluster else slot
    if count.exposes:
        visitors = counter_field(count.rule, count.variant, VISITORS)
        marker = mark_slot(k.exposed(site, visitor, count.rule))
        marks["x"] = [marker, count.window_ms, count.variant, visitors, str(at)]
    if count.prompt:
        mark = mark_slot(k.prompt_mark(site, visitor, count.prompt))
        marks["p"] = [mark, count.rule, count.variant, PROMPT_MARK_TTL_S]
    if not k.cluster:
        tally.update(marks)
        return tally, None
    return tally, ({"keys": own, "m": marks, "at": at} if marks else None)


async def count_beside(
    calls: Coalescer, k: Keys, site: str, day: str, fields: Iterable[Any]
) -> None:
    """On a cluster: add to ``site``'s counters of ``day`` 1 per field in ``fields``."""
    counts = Counter(str(f) for f in fields)
    if not counts:
        return
    key = k.counters(site, day)
    work: list[Awaitable[Any]] = [calls.command("HINCRBY", key, f, n) for f, n in counts.items()]
    work.append(calls.command("EXPIRE", key, COUNTERS_TTL_S))
    await together(work)
