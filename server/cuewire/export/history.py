"""The QA search's reach into the export (docs/qa.md, "Find sessions"): the sessions of a site
whose events or decisions in PostgreSQL match a visitor, session, URL or rule, however old.

The tables are the export's (postgres.py). A visitor is found through the index on
``(site, visitor, received_at)`` (and its twin on the decisions); a session, a URL (a
substring of the event's ``url``) and a user id (``identify`` events) read the site's rows,
bounded by a statement timeout, and every query by a LIMIT. The pool opens on the first
search and holds at most two connections, named ``cuewire-qa`` in ``pg_stat_activity``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, HistoryError

if TYPE_CHECKING:
    import asyncpg

APPLICATION = "cuewire-qa"
STATEMENT_TIMEOUT_MS = 10_000

# What an event row and a decision row must match, per kind of search: $2 is the query
# (a text array of visitor ids for "visitor")
_EVENTS = {
    "visitor": "visitor = ANY($2::text[])",
    "session": "session = $2",
    "url": "strpos(event->>'url', $2) > 0",
    "rule": "false AND $2 = ''",
}
_DECISIONS = {
    "visitor": "visitor = ANY($2::text[])",
    "session": "session = $2",
    "url": "strpos(url, $2) > 0",
    "rule": "rule = $2",
}

# $1 site, $2 the query, $3 the most sessions answered, latest activity first
_SESSIONS = """
WITH hits AS (
    SELECT session, visitor, received_at AS at, coalesce(event->>'url', '') AS url,
        '' AS rule
    FROM cuewire_events WHERE site = $1 AND {events}
    UNION ALL
    SELECT session, visitor, decided_at, url, rule
    FROM cuewire_decisions WHERE site = $1 AND {decisions}
)
SELECT session, min(visitor) AS visitor,
    (extract(epoch FROM min(at)) * 1000)::bigint AS first_at,
    (extract(epoch FROM max(at)) * 1000)::bigint AS last_at,
    (array_agg(DISTINCT url) FILTER (WHERE url <> ''))[1:10] AS urls,
    (array_agg(DISTINCT rule) FILTER (WHERE rule <> ''))[1:10] AS rules
FROM hits GROUP BY session ORDER BY max(at) DESC LIMIT $3
"""

# $1 site, $2 user id, $3 limit: the visitors an identify named the user on
_IDENTIFIED = """
SELECT visitor FROM cuewire_events
WHERE site = $1 AND type = 'identify' AND event->>'user_id' = $2
GROUP BY visitor ORDER BY max(received_at) DESC LIMIT $3
"""

# the oldest row of each table (their primary keys start with the site, then the stream
# entry id, whose first part is the time in ms)
_OLDEST = """
SELECT (SELECT min(entry_id) FROM cuewire_events WHERE site = $1) AS events,
       (SELECT min(entry_id) FROM cuewire_decisions WHERE site = $1) AS decisions
"""


@dataclass(frozen=True)
class Found:
    """What the export holds of one session's matches."""

    session: str
    visitor: str
    first_at: int
    last_at: int
    urls: list[str]
    rules: list[str]


def _ms(entry_id: str | None) -> int | None:
    head = (entry_id or "").split("-")[0]
    return int(head) if head.isdigit() else None


class ExportHistory:
    """Searches of the export's tables at ``dsn``; ``aclose`` closes its pool."""

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._pool: asyncpg.Pool | None = None
        self._opening = asyncio.Lock()

    async def _connections(self) -> asyncpg.Pool:
        async with self._opening:
            if self._pool is None:
                try:
                    import asyncpg
                except ImportError as exc:
                    raise ConfigError(
                        "searching the export needs asyncpg: pip install 'cuewire[postgres]'"
                    ) from exc
                options = {
                    "application_name": APPLICATION,
                    "statement_timeout": str(STATEMENT_TIMEOUT_MS),
                }
                try:
                    self._pool = await asyncpg.create_pool(
                        self._dsn, min_size=0, max_size=2, server_settings=options
                    )
                except (OSError, asyncpg.PostgresError) as exc:
                    raise HistoryError(
                        f"cannot connect to PostgreSQL at the export DSN: {exc}"
                    ) from exc
            return self._pool

    async def _fetch(self, query: str, *args: Any) -> Sequence[Any]:
        import asyncpg

        pool = await self._connections()
        try:
            return list(await pool.fetch(query, *args))
        except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
            raise HistoryError(f"cannot search the export: {exc}") from exc

    async def sessions(self, site: str, by: str, query: str | list[str], limit: int) -> list[Found]:
        """The sessions of ``site`` matching ``query`` (a list of visitor ids for ``by``
        "visitor"), latest activity first, ``limit`` at most."""
        sql = _SESSIONS.format(events=_EVENTS[by], decisions=_DECISIONS[by])
        rows = await self._fetch(sql, site, query, limit)
        return [
            Found(
                r["session"],
                r["visitor"],
                int(r["first_at"]),
                int(r["last_at"]),
                list(r["urls"] or []),
                list(r["rules"] or []),
            )
            for r in rows
        ]

    async def visitors_of_user(self, site: str, user_id: str, limit: int) -> list[str]:
        """The visitors ``identify`` events named ``user_id`` on, latest first."""
        return [r["visitor"] for r in await self._fetch(_IDENTIFIED, site, user_id, limit)]

    async def since_ms(self, site: str) -> int | None:
        """When the oldest exported row of ``site`` was received (ms), or None."""
        [row] = await self._fetch(_OLDEST, site)
        found = [ms for ms in (_ms(row["events"]), _ms(row["decisions"])) if ms is not None]
        return min(found) if found else None

    async def aclose(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
