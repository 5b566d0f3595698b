"""The export loop: batches from each site's live and audit streams into a sink, each
acknowledged in Redis only after the sink committed it (docs/export.md).

    loader = Loader(readers, lambda: postgres_sink(dsn, goals), ExportMetrics(registry))
    await loader.run()      # until loader.stop(): the batch in flight finishes first

The sink is opened when the loop starts (a supervised restart opens it again), so an
unreachable database is a failing task in /healthz, not a server that cannot start.

``cuewire export postgres`` runs it in its own process; ``cuewire serve`` runs it as the
supervised task ``export`` when ``CUEWIRE_EXPORT_DSN`` is set (the embedded store is
in-process: that is its only way).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter

from ..codes import Gap
from ..errors import ConfigError, StoreError
from ..goals import MEASURE_FILE, Goals
from ..keys import Keys
from ..settings import Settings
from ..store.shared import Client
from ..waiting import wait_set
from .postgres import Loaded, PostgresSink
from .reader import Entry, GroupReader, Lost
from .records import Source

log = logging.getLogger(__name__)

APPLICATION = "cuewire-export"


class Sink(Protocol):
    async def prepare(self) -> None: ...

    async def load(
        self, site: str, source: Source, entries: Sequence[Entry], lost: Sequence[Lost] = ()
    ) -> Loaded: ...


class ExportMetrics:
    """The export's counters, in the registry given (the app's, or the CLI's own)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = registry or CollectorRegistry()
        self.rows = Counter(
            "cuewire_export_rows_total", "Rows the export inserted, by kind", ["kind"], registry=r
        )
        self.replayed = Counter(
            "cuewire_export_replayed_total",
            "Rows of a batch loaded again (after a crash before its XACK) and skipped",
            registry=r,
        )
        self.reclaimed = Counter(
            "cuewire_export_reclaimed_total",
            "Stream entries taken over from an idle consumer (XAUTOCLAIM)",
            registry=r,
        )
        self.gaps = Counter(
            "cuewire_export_gaps_total",
            "Gaps: stream entries that never reached the sink, by stream and code",
            ["stream", "code"],
            registry=r,
        )
        self.lost = Counter(
            "cuewire_export_lost_entries_total",
            "Entries in gaps, by stream and code (when the server can count them)",
            ["stream", "code"],
            registry=r,
        )


def readers_for(
    client: Client,
    keys: Keys,
    sites: Iterable[str],
    consumer: str,
    *,
    count: int = 500,
    claim_idle_ms: int = 30_000,
) -> list[GroupReader]:
    """A reader of each site's live and audit streams."""
    return [
        GroupReader(
            client,
            keys.live(site) if source is Source.LIVE else keys.audit(site),
            site,
            source,
            consumer=consumer,
            count=count,
            claim_idle_ms=claim_idle_ms,
        )
        for site in sites
        for source in (Source.LIVE, Source.AUDIT)
    ]


class Loader:
    def __init__(
        self,
        readers: Sequence[GroupReader],
        open_sink: Callable[[], contextlib.AbstractAsyncContextManager[Sink]],
        metrics: ExportMetrics,
        poll_s: float = 0.2,
    ) -> None:
        self._readers = readers
        self._open_sink = open_sink
        self._metrics = metrics
        self._poll_s = poll_s
        self._stopping = asyncio.Event()
        self.batches = 0
        self.totals: collections.Counter[str] = collections.Counter()  # rows by kind, replayed...

    def stop(self) -> None:
        """Finish the batch in flight, then return from :meth:`run`."""
        self._stopping.set()

    async def run(self) -> None:
        for reader in self._readers:
            reader.rewind()
        async with self._open_sink() as sink:
            await sink.prepare()
            while not self._stopping.is_set():
                await self._round(sink)
        for reader in self._readers:  # stopped: leave no consumer behind with nothing pending
            with contextlib.suppress(StoreError):  # (Redis gone: the name stays, harmlessly)
                await reader.retire()

    async def _round(self, sink: Sink) -> None:
        """One batch of each reader; a pause when none had anything."""
        moved = 0
        for reader in self._readers:
            if self._stopping.is_set():
                return
            moved += await self.step(reader, sink)
            if not moved:
                await wait_set(self._stopping, self._poll_s)

    async def step(self, reader: GroupReader, sink: Sink) -> int:
        """Load one batch of ``reader`` and acknowledge it; the number of entries moved."""
        batch = await reader.next_batch()
        if not batch.entries and not batch.lost:
            return 0
        loaded = await sink.load(reader.site, reader.source, batch.entries, batch.lost)
        # after the commit: a crash before this line loads the batch again, to no effect
        acked = [i for i, _ in batch.entries]
        acked += [g.after for g in loaded.lost if g.code is not Gap.TRIMMED]
        await reader.ack(acked)
        await reader.settle(loaded.lost)
        self.batches += 1
        m = self._metrics
        self.totals.update(loaded.rows)
        self.totals.update(
            replayed=loaded.replayed, reclaimed=batch.reclaimed, gaps=len(loaded.lost)
        )
        for kind, count in loaded.rows.items():
            m.rows.labels(kind).inc(count)
        m.replayed.inc(loaded.replayed)
        m.reclaimed.inc(batch.reclaimed)
        for gap in loaded.lost:
            m.gaps.labels(str(gap.source), str(gap.code)).inc()
            if gap.count:
                m.lost.labels(str(gap.source), str(gap.code)).inc(gap.count)
            log.warning(
                "export gap [%s] site %s, %s stream: %s entries after %s, before %s",
                gap.code,
                gap.site,
                gap.source,
                "unknown" if gap.count is None else gap.count,
                gap.after,
                gap.before,
            )
        return len(batch.entries) + len(loaded.lost)


@contextlib.asynccontextmanager
async def postgres_sink(dsn: str, goals: Goals) -> AsyncIterator[PostgresSink]:
    """A sink on a pool of connections to ``dsn``; closed on exit."""
    try:
        import asyncpg
    except ImportError as exc:
        raise ConfigError(
            "the PostgreSQL export needs asyncpg: pip install 'cuewire[postgres]'"
        ) from exc
    try:
        settings = {"application_name": APPLICATION}  # the loader's sessions in pg_stat_activity
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2, server_settings=settings)
    except (OSError, asyncpg.PostgresError) as exc:
        raise ConfigError(f"cannot connect to PostgreSQL at the export DSN: {exc}") from exc
    try:
        yield PostgresSink(pool, goals)
    finally:
        await pool.close()


def postgres_loader(
    settings: Settings,
    client: Client,
    keys: Keys,
    sites: Iterable[str],
    consumer: str,
    registry: CollectorRegistry | None = None,
    count: int = 500,
    claim_idle_ms: int = 30_000,
) -> Loader:
    """The loader of ``sites`` into PostgreSQL at ``settings.export_dsn``, with the goals of
    ``measure.toml`` beside the rules (read once, at start)."""
    dsn = settings.export_dsn
    if not dsn:
        raise ConfigError("no export DSN: pass --dsn or set CUEWIRE_EXPORT_DSN")
    goals = Goals.load(settings.rules_dir / MEASURE_FILE)
    readers = readers_for(client, keys, sites, consumer, count=count, claim_idle_ms=claim_idle_ms)
    return Loader(readers, lambda: postgres_sink(dsn, goals), ExportMetrics(registry))
