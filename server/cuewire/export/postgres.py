"""The PostgreSQL sink (asyncpg): tables of docs/export.md, loaded one transaction per batch.

Exactly once: every row's primary key is its record's id (site, stream entry id, and the
event's index in its batch), inserted with ``ON CONFLICT DO NOTHING``; the loader
acknowledges a batch in Redis only after :meth:`PostgresSink.load` committed. A loader killed
between the two reads the batch again and inserts nothing twice: the rows it skips are counted
as ``replayed``.

Conversions (measure.py's definition): a ``fired`` or ``holdout`` decision converts when the
same visitor's goal event (goals.py, measure.toml) was accepted within the goal's window
after it. Each event row carries the goals it matches (``goals``: a rule id for a rule's own
goal, ``*`` for the default goal); after the batch's rows are in, one statement derives the
conversions of the visitors the batch touched, in the same transaction, under a per-site
advisory lock (so two loaders, one on each stream, never miss a pair that neither saw
committed). A decision converts once, by its first goal event.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..codes import Gap
from ..goals import Goals
from ..rules.index import matches
from .reader import Entry, Lost
from .records import (
    DECISION_FIELDS,
    DecisionRecord,
    EventRecord,
    Source,
    Unreadable,
    decision_of,
    events_of,
)

if TYPE_CHECKING:
    import asyncpg

DEFAULT_GOAL = "*"

SCHEMA = """
CREATE TABLE IF NOT EXISTS cuewire_events (
    site text NOT NULL,
    entry_id text NOT NULL,
    idx integer NOT NULL,
    received_at timestamptz NOT NULL,
    session text NOT NULL,
    visitor text NOT NULL,
    type text NOT NULL,
    event jsonb NOT NULL,
    goals text[] NOT NULL DEFAULT '{}',
    v smallint NOT NULL DEFAULT 1,
    PRIMARY KEY (site, entry_id, idx)
);
-- added to version 1's table (docs/export.md): tables made before it get it here
ALTER TABLE cuewire_events ADD COLUMN IF NOT EXISTS device text NOT NULL DEFAULT '';
CREATE INDEX IF NOT EXISTS cuewire_events_visitor
    ON cuewire_events (site, visitor, received_at);
CREATE TABLE IF NOT EXISTS cuewire_decisions (
    site text NOT NULL,
    entry_id text NOT NULL,
    decided_at timestamptz NOT NULL,
    outcome text NOT NULL,
    code text NOT NULL,
    reason text NOT NULL,
    rule text NOT NULL,
    session text NOT NULL,
    visitor text NOT NULL,
    cause text NOT NULL,
    prompt text NOT NULL,
    template text NOT NULL,
    variant text NOT NULL,
    url text NOT NULL,
    firing text NOT NULL,
    latency_ms integer NOT NULL,
    event jsonb NOT NULL,
    v smallint NOT NULL DEFAULT 1,
    PRIMARY KEY (site, entry_id)
);
CREATE INDEX IF NOT EXISTS cuewire_decisions_visitor
    ON cuewire_decisions (site, visitor, decided_at);
CREATE TABLE IF NOT EXISTS cuewire_conversions (
    site text NOT NULL,
    decision_id text NOT NULL,
    rule text NOT NULL,
    variant text NOT NULL,
    visitor text NOT NULL,
    decided_at timestamptz NOT NULL,
    goal_entry_id text NOT NULL,
    goal_idx integer NOT NULL,
    converted_at timestamptz NOT NULL,
    v smallint NOT NULL DEFAULT 1,
    PRIMARY KEY (site, decision_id)
);
CREATE TABLE IF NOT EXISTS cuewire_export_gaps (
    site text NOT NULL,
    stream text NOT NULL,
    code text NOT NULL,
    after_id text NOT NULL,
    before_id text NOT NULL,
    lost bigint,
    detected_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (site, stream, code, after_id)
);
"""

EVENTS = """
INSERT INTO cuewire_events
    (site, entry_id, idx, received_at, session, visitor, type, event, goals, device)
SELECT $1, e.entry_id, e.idx, e.received_at, e.session, e.visitor, e.type, e.event::jsonb,
    string_to_array(e.goals, ','), e.device
FROM unnest($2::text[], $3::int[], $4::timestamptz[], $5::text[], $6::text[], $7::text[],
    $8::text[], $9::text[], $10::text[])
    AS e(entry_id, idx, received_at, session, visitor, type, event, goals, device)
ON CONFLICT DO NOTHING
"""

DECISIONS = f"""
INSERT INTO cuewire_decisions
    (site, entry_id, decided_at, latency_ms, event, {", ".join(DECISION_FIELDS)})
SELECT $1, d.* FROM unnest($2::text[], $3::timestamptz[], $4::int[], $5::jsonb[],
    {", ".join(f"${i}::text[]" for i in range(6, 6 + len(DECISION_FIELDS)))})
    AS d(entry_id, decided_at, latency_ms, event, {", ".join(DECISION_FIELDS)})
ON CONFLICT DO NOTHING
"""

# $1 site, $2 visitors, $3 rules with their own goal, $4 their windows (ms), $5 default window
CONVERSIONS = """
INSERT INTO cuewire_conversions
    (site, decision_id, rule, variant, visitor, decided_at, goal_entry_id, goal_idx,
     converted_at)
SELECT DISTINCT ON (d.entry_id)
    d.site, d.entry_id, d.rule, d.variant, d.visitor, d.decided_at, e.entry_id, e.idx,
    e.received_at
FROM cuewire_decisions d
CROSS JOIN LATERAL (
    SELECT coalesce(
        (SELECT g.window_ms FROM unnest($3::text[], $4::bigint[]) AS g(rule, window_ms)
         WHERE g.rule = d.rule), $5) AS window_ms,
        CASE WHEN d.rule = ANY($3::text[]) THEN d.rule ELSE '*' END AS goal
) w
JOIN cuewire_events e
    ON e.site = d.site AND e.visitor = d.visitor
    AND e.received_at >= d.decided_at
    AND e.received_at <= d.decided_at + w.window_ms * interval '1 millisecond'
    AND w.goal = ANY(e.goals)
WHERE d.site = $1 AND d.visitor = ANY($2::text[]) AND d.outcome IN ('fired', 'holdout')
ORDER BY d.entry_id, e.received_at, e.entry_id, e.idx
ON CONFLICT DO NOTHING
"""

GAPS = """
INSERT INTO cuewire_export_gaps (site, stream, code, after_id, before_id, lost)
SELECT $1, g.* FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[])
    AS g(stream, code, after_id, before_id, lost)
ON CONFLICT DO NOTHING
"""


@dataclass
class Loaded:
    """What one batch did to the tables."""

    rows: dict[str, int] = field(default_factory=dict)  # inserted, by kind
    replayed: int = 0  # rows already there (a batch loaded again after a crash)
    lost: list[Lost] = field(default_factory=list)  # the batch's gaps, unreadable entries too


def _time(ms: int) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC)


def _count(status: str) -> int:
    """The row count of an ``INSERT 0 N`` status."""
    return int(status.rsplit(" ", 1)[-1])


class PostgresSink:
    """Loads batches into the tables of ``SCHEMA`` through ``pool``."""

    def __init__(self, pool: asyncpg.Pool, goals: Goals) -> None:
        self._pool = pool
        self._goals = goals

    async def prepare(self) -> None:
        """Create the tables when they are missing (one lock: loaders may start together)."""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext('cuewire-export:schema'))")
            await conn.execute(SCHEMA)

    def goals_of(self, event: dict[str, Any]) -> list[str]:
        """The goals ``event`` reaches: rules' own goals by rule id, the default as ``*``."""
        if "type" not in event:
            return []
        found = [rule for rule, goal in self._goals.per_rule.items() if matches(goal.match, event)]
        if matches(self._goals.default.match, event):
            found.append(DEFAULT_GOAL)
        return found

    async def load(
        self, site: str, source: Source, entries: Sequence[Entry], lost: Sequence[Lost] = ()
    ) -> Loaded:
        """Insert the records of ``entries`` and the gaps ``lost``, in one transaction."""
        loaded = Loaded(lost=list(lost))
        events: list[EventRecord] = []
        decisions: list[DecisionRecord] = []
        for entry, fields in entries:
            try:
                if source is Source.LIVE:
                    events += events_of(site, entry, fields)
                else:
                    decisions.append(decision_of(site, entry, fields))
            except Unreadable:
                loaded.lost.append(Lost(site, source, Gap.UNREADABLE, entry, entry, 1))
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtext('cuewire-export:' || $1))", site
            )
            if events:
                inserted = _count(await conn.execute(EVENTS, site, *self._event_columns(events)))
                loaded.rows["event"] = inserted
                loaded.replayed += len(events) - inserted
            if decisions:
                inserted = _count(
                    await conn.execute(DECISIONS, site, *_decision_columns(decisions))
                )
                loaded.rows["decision"] = inserted
                loaded.replayed += len(decisions) - inserted
            visitors = sorted({r.visitor for r in events} | {r["visitor"] for r in decisions})
            if visitors:
                per_rule = sorted(self._goals.per_rule.items())
                loaded.rows["conversion"] = _count(
                    await conn.execute(
                        CONVERSIONS,
                        site,
                        visitors,
                        [rule for rule, _ in per_rule],
                        [goal.window_ms for _, goal in per_rule],
                        self._goals.default.window_ms,
                    )
                )
            if loaded.lost:
                await conn.execute(GAPS, site, *_gap_columns(loaded.lost))
        return loaded

    def _event_columns(self, events: Sequence[EventRecord]) -> list[list[Any]]:
        return [
            [e.entry for e in events],
            [e.index for e in events],
            [_time(e.at_ms) for e in events],
            [e.session for e in events],
            [e.visitor for e in events],
            [e.type for e in events],
            [json.dumps(e.event) for e in events],
            [",".join(self.goals_of(e.event)) for e in events],
            [e.device for e in events],
        ]


def _decision_columns(decisions: Sequence[DecisionRecord]) -> list[list[Any]]:
    return [
        [d.entry for d in decisions],
        [_time(d.at_ms) for d in decisions],
        [d.latency_ms for d in decisions],
        [json.dumps(d.event) for d in decisions],
        *([d[name] for d in decisions] for name in DECISION_FIELDS),
    ]


def _gap_columns(lost: Sequence[Lost]) -> list[list[Any]]:
    return [
        [str(g.source) for g in lost],
        [str(g.code) for g in lost],
        [g.after for g in lost],
        [g.before for g in lost],
        [g.count for g in lost],
    ]
