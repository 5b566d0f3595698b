"""The export read back as recorded sessions: ``cuewire_events`` (postgres.py) of one site, in
an optional time window, as the :class:`~cuewire.replay.Recording` that ``cuewire segment`` and
``cuewire train`` learn from (docs/learning.md, "Training data").

One row per event becomes one batch per live stream entry (``entry_id``), its events in
``idx`` order, its time the row's ``received_at``, its device class the rows' ``device``
(empty in rows loaded before the export kept it): the batches ``cuewire record`` copies from
the live stream, in the order :meth:`Recording.read` sorts them (time, then entry id as a
string: ``COLLATE "C"`` compares as Python does).

The rows come through a server-side cursor in a read-only snapshot, ``prefetch`` at a time;
only the latest ``max_batches`` batches are kept (as ``--redis`` reads the latest ones).
"""

from __future__ import annotations

import collections
import datetime
import json
from dataclasses import dataclass
from typing import Any

from ..codes import Misconfig
from ..errors import ConfigError
from ..replay import Batch, Recording

# received_at holds whole milliseconds (postgres._time): round() only undoes the float
EVENTS = """
SELECT entry_id, round(extract(epoch FROM received_at) * 1000)::bigint AS at_ms,
    session, visitor, {device} AS device, event::text AS event
FROM cuewire_events
WHERE site = $1
    AND ($2::timestamptz IS NULL OR received_at >= $2)
    AND ($3::timestamptz IS NULL OR received_at < $3)
ORDER BY received_at, entry_id COLLATE "C", idx
"""

# a table no loader has opened since ``device`` was added has no such column (postgres.py)
HAS_DEVICE = """
SELECT EXISTS (SELECT 1 FROM information_schema.columns
    WHERE table_schema = current_schema() AND table_name = 'cuewire_events'
        AND column_name = 'device')
"""

CONNECT_TIMEOUT_S = 10.0


@dataclass
class Read:
    """The sessions read, and how many older batches the limit left out."""

    recording: Recording
    batches: int  # batches in the window
    dropped: int  # the oldest ones, over ``max_batches``


def _driver() -> Any:
    try:
        import asyncpg
    except ImportError as exc:
        raise ConfigError(
            "reading the PostgreSQL export needs asyncpg: pip install 'cuewire[postgres]'"
        ) from exc
    return asyncpg


async def read_sessions(
    dsn: str,
    site: str,
    since: datetime.datetime | None = None,
    until: datetime.datetime | None = None,
    max_batches: int = 100_000,
    prefetch: int = 2_000,
) -> Read:
    """The batches of ``site`` received in ``[since, until)`` (either may be open)."""
    asyncpg = _driver()
    try:
        conn = await asyncpg.connect(dsn, timeout=CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError, ValueError, asyncpg.PostgresError) as exc:
        raise ConfigError(
            f"cannot connect to PostgreSQL at the export DSN: {exc} (check --from-export or "
            "CUEWIRE_EXPORT_DSN: the DSN `cuewire export postgres` writes to)",
            Misconfig.EXPORT_UNREACHABLE,
        ) from exc
    kept: collections.deque[Batch] = collections.deque(maxlen=max_batches)
    seen = 0
    try:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            open_id: str | None = None
            head: Any = None
            events: list[dict[str, Any]] = []
            device = "device" if await conn.fetchval(HAS_DEVICE) else "''"
            query = EVENTS.format(device=device)
            async for row in conn.cursor(query, site, since, until, prefetch=prefetch):
                if row["entry_id"] != open_id:
                    if head is not None:
                        kept.append(_batch(site, head, events))
                        seen += 1
                    open_id, head, events = row["entry_id"], row, []
                events.append(json.loads(row["event"]))
            if head is not None:
                kept.append(_batch(site, head, events))
                seen += 1
    except asyncpg.UndefinedTableError as exc:
        raise ConfigError(
            "the database at the export DSN has no table cuewire_events: run `cuewire export "
            "postgres` (or the server with CUEWIRE_EXPORT_DSN) into it first (docs/export.md)",
            Misconfig.EXPORT_MISSING,
        ) from exc
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise ConfigError(
            f"cannot read cuewire_events at the export DSN: {exc}", Misconfig.EXPORT_UNREACHABLE
        ) from exc
    finally:
        await conn.close()
    return Read(Recording(batches=list(kept)), seen, seen - len(kept))


def _batch(site: str, head: Any, events: list[dict[str, Any]]) -> Batch:
    return Batch(
        kind="batch",
        site=site,
        id=head["entry_id"],
        at=int(head["at_ms"]),
        session=head["session"],
        visitor=head["visitor"],
        events=events,
        device=head["device"],
    )
