"""The Redis store's stream reads: a site's audit (firings) and live stream (accepted
batches), for the QA view, the CLI and tailing. Writing them is part of the batch's and the
firing's scripts (redis.py, firing_writes.py)."""

from __future__ import annotations

from ..keys import Keys
from .shared import Client, guard, pairs_of


class Streams:
    """Reads of the audit and live streams on ``client``."""

    def __init__(self, client: Client, keys: Keys) -> None:
        self._r = client
        self._k = keys

    async def read_audit(self, site: str, count: int) -> list[dict[str, str]]:
        async with guard("read the audit"):
            entries = await self._r.xrevrange(self._k.audit(site), count=count) or []
        return [{"id": str(entry_id), **pairs_of(fields)} for entry_id, fields in reversed(entries)]

    async def read_live(self, site: str, count: int) -> list[dict[str, str]]:
        """The latest accepted batches, oldest first: id, session, visitor, events (JSON)."""
        async with guard("read the live stream"):
            entries = await self._r.xrevrange(self._k.live(site), count=count) or []
        return [{"id": str(i), **pairs_of(fields)} for i, fields in reversed(entries)]

    async def stream_after(
        self, key: str, after: str | None, count: int
    ) -> list[tuple[str, dict[str, str]]]:
        """Entries of a stream (audit, live) after the id ``after``, oldest first; without
        ``after``, the latest ``count``. For tailing: pass the last id seen."""
        async with guard("read a stream"):
            if after is None:
                entries = list(reversed(await self._r.xrevrange(key, count=count) or []))
            else:
                entries = await self._r.xrange(key, min=f"({after}", count=count) or []
        return [(str(i), pairs_of(fields)) for i, fields in entries]
