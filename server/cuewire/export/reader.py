"""One stream of one site, read through a Redis consumer group (XREADGROUP / XACK).

The group remembers how far it read (its last-delivered id) and which entries each consumer
read but did not acknowledge (its pending entries list). A reader hands out, in this order:

1. its own pending entries (after a restart under the same consumer name: the batch that was
   in flight when the process died, loaded again: the sink is idempotent);
2. pending entries of other consumers idle for ``claim_idle_ms`` (XAUTOCLAIM: a consumer that
   died and never came back);
3. new entries (``>``).

The source streams are capped (MAXLEN ~), and trimming does not wait for consumer groups. So
before reading new entries the reader compares the group's last-delivered id with the
stream's first entry (XINFO STREAM and GROUPS, Redis 7): when entries after the one last
delivered were trimmed, it reports a :class:`Lost` (codes.Gap.TRIMMED) with how many
(``entries-added - entries-read - length``), and, once the sink recorded it, counts them as
read (:meth:`GroupReader.settle`). Pending entries trimmed before they were acknowledged are
reported as ``pending_trimmed``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from redis.exceptions import ResponseError

from ..codes import Gap
from ..keys import EXPORT_GROUP
from ..store.shared import Client, guard, pairs_of
from .records import Source

GROUP = EXPORT_GROUP

Entry = tuple[str, dict[str, str]]


def entry_id(raw: str) -> tuple[int, int]:
    """A stream id as a pair of numbers, for comparing."""
    ms, _, seq = raw.partition("-")
    return int(ms or 0), int(seq or 0)


@dataclass(frozen=True)
class Lost:
    """Entries of a stream that will never reach the sink, and why (``code``)."""

    site: str
    source: Source
    code: Gap
    after: str  # the last id the group had read (or the id of the entry itself)
    before: str  # the first id still there after the gap
    count: int | None  # how many, when the server can tell
    read: int | None = None  # (trimmed) the group's entries-read when the gap was found


@dataclass
class Batch:
    """What one read returned: entries to load (then acknowledge), and entries lost."""

    entries: list[Entry] = field(default_factory=list)
    lost: list[Lost] = field(default_factory=list)
    reclaimed: int = 0  # entries taken over from another consumer


class GroupReader:
    """``site``'s ``source`` stream at ``key``, read as ``consumer`` of ``group``."""

    def __init__(
        self,
        client: Client,
        key: str,
        site: str,
        source: Source,
        *,
        consumer: str,
        group: str = GROUP,
        count: int = 500,
        claim_idle_ms: int = 30_000,
    ) -> None:
        self._r = client
        self.key = key
        self.site = site
        self.source = source
        self.consumer = consumer
        self.group = group
        self.count = count
        self.claim_idle_ms = claim_idle_ms
        self._ready = False
        self._own_after: str | None = "0-0"  # own pending entries left to read; None: done
        self._claim_from = "0-0"
        self._next_claim = 0.0  # monotonic time of the next XAUTOCLAIM

    def rewind(self) -> None:
        """Start again with this consumer's own pending entries (a loop restarted after a
        failure loads the batch it could not finish first)."""
        self._own_after = "0-0"
        self._claim_from = "0-0"

    async def _ensure_group(self) -> None:
        if self._ready:
            return
        async with guard("create the export's consumer group"):
            try:  # from the start: everything the stream still holds is exported
                await self._r.xgroup_create(self.key, self.group, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
        self._ready = True

    async def next_batch(self) -> Batch:
        """The next entries to load; empty when there is nothing to do now."""
        await self._ensure_group()
        if self._own_after is not None:
            batch = await self._own_pending(self._own_after)
            if batch.entries or batch.lost:
                return batch
        if time.monotonic() >= self._next_claim:
            batch = await self._claim()
            if batch.entries or batch.lost:
                return batch
        lost = await self.trimmed()
        if lost:  # recorded first (then settle()), so it is never forgotten
            return Batch([], lost)
        async with guard("read the export stream"):
            reply = await self._r.xreadgroup(
                self.group, self.consumer, {self.key: ">"}, count=self.count
            )
        return Batch(_entries(reply))

    async def _own_pending(self, after: str) -> Batch:
        async with guard("read the export's pending entries"):
            reply = await self._r.xreadgroup(
                self.group, self.consumer, {self.key: after}, count=self.count
            )
        entries = _entries(reply)
        if not entries:
            self._own_after = None
            return Batch()
        self._own_after = entries[-1][0]
        return self._split(entries)

    def _split(self, entries: Sequence[tuple[str, Any]], deleted: Sequence[str] = ()) -> Batch:
        """Pending entries: those still in the stream, and those trimmed (a deleted entry
        comes back with no fields)."""
        kept = [(i, f) for i, f in entries if f]
        gone = [i for i, f in entries if not f] + list(deleted)
        lost = [
            Lost(self.site, self.source, Gap.PENDING_TRIMMED, i, i, 1) for i in gone
        ]  # acknowledged with the batch: nothing left to read
        return Batch(kept, lost)

    async def _claim(self) -> Batch:
        """Pending entries of consumers idle for ``claim_idle_ms`` (a dead loader's batch)."""
        async with guard("claim the export's idle entries"):
            reply = await self._r.xautoclaim(
                self.key,
                self.group,
                self.consumer,
                self.claim_idle_ms,
                start_id=self._claim_from,
                count=self.count,
            )
        following, claimed = str(reply[0]), reply[1] or []
        if following == "0-0":  # the whole list scanned: again in half the idle time
            self._next_claim = time.monotonic() + self.claim_idle_ms / 2000
        deleted = [str(i) for i in (reply[2] if len(reply) > 2 else [])]
        self._claim_from = following
        batch = self._split([(str(i), pairs_of(f) if f else {}) for i, f in claimed], deleted)
        batch.reclaimed = len(claimed)
        return batch

    async def trimmed(self) -> list[Lost]:
        """Entries the stream dropped before the group read them (XINFO), as a gap.

        When the stream's first entry is newer than the last one delivered, every entry
        still there is unread, so ``entries-added - entries-read - length`` were trimmed
        unread. (Redis 7.0 does not move ``max-deleted-entry-id`` on a trim, and does not
        count the trimmed entries as read: :meth:`settle` does, once the gap is recorded.)"""
        async with guard("check the export stream for gaps"):
            stream = await self._r.xinfo_stream(self.key)
            groups = await self._r.xinfo_groups(self.key)
        group = next((g for g in groups if str(g.get("name")) == self.group), None)
        first = stream.get("first-entry")
        if group is None or not first:
            return []
        delivered, before = str(group.get("last-delivered-id") or "0-0"), str(first[0])
        if entry_id(before) <= entry_id(delivered):
            return []
        read, added = group.get("entries-read"), stream.get("entries-added")
        if read is None or added is None:  # the server cannot count: any deletion is a gap
            deleted = str(stream.get("max-deleted-entry-id") or "0-0")
            if entry_id(deleted) <= entry_id(delivered):
                return []
            return [Lost(self.site, self.source, Gap.TRIMMED, delivered, before, None)]
        lost = int(added) - int(read) - int(stream.get("length") or 0)
        if lost <= 0:
            return []
        return [Lost(self.site, self.source, Gap.TRIMMED, delivered, before, lost, int(read))]

    async def settle(self, lost: Sequence[Lost]) -> None:
        """After a gap is recorded: count its entries as read by the group (XGROUP SETID
        ... ENTRIESREAD), so the next check, and the group's lag, start from there. Should
        another consumer have read on meanwhile, this only delivers its entries again."""
        for gap in lost:
            if gap.code is Gap.TRIMMED and gap.read is not None and gap.count:
                async with guard("record a gap in the export's group"):
                    await self._r.xgroup_setid(
                        self.key, self.group, gap.after, entries_read=gap.read + gap.count
                    )

    async def retire(self) -> None:
        """Leave the group when nothing read is left unacknowledged (a clean stop), so
        consumer names made per process do not pile up; otherwise stay, to be taken over."""
        async with guard("leave the export's group"):
            pending = await self._r.xpending_range(
                self.key, self.group, "-", "+", 1, consumername=self.consumer
            )
            if not pending:
                await self._r.xgroup_delconsumer(self.key, self.group, self.consumer)

    async def ack(self, ids: Sequence[str]) -> None:
        """Acknowledge entries the sink committed (and entries reported lost)."""
        if not ids:
            return
        async with guard("acknowledge exported entries"):
            await self._r.xack(self.key, self.group, *ids)


def _entries(reply: Any) -> list[Entry]:
    """XREADGROUP's reply for one stream (a list of ``[key, entries]`` or a dict)."""
    if not reply:
        return []
    streams = reply.items() if isinstance(reply, dict) else reply
    out: list[Entry] = []
    for _, entries in streams:
        for found in entries or []:
            if isinstance(found, list | tuple) and len(found) == 2:
                out.append((str(found[0]), pairs_of(found[1]) if found[1] else {}))
    return out
