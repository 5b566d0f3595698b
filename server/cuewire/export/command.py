"""``cuewire export postgres``: the loader in a process of its own, supervised, until SIGTERM
or SIGINT (the batch in flight is committed and acknowledged first)."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Sequence

from ..errors import ConfigError
from ..settings import Settings
from ..store import open_store
from ..supervise import Supervisor
from .loader import postgres_loader

GRACE_S = 30.0


async def export_postgres(
    settings: Settings, sites: Sequence[str], consumer: str, count: int, claim_idle_ms: int
) -> dict[str, int]:
    """Run the loader until a signal stops it; what it moved."""
    if not settings.redis_url:
        raise ConfigError("the export reads the server's Redis: pass --redis-url")
    async with open_store(settings) as store:
        loader = postgres_loader(
            settings,
            store.client,
            store.keys,
            sites,
            consumer,
            count=count,
            claim_idle_ms=claim_idle_ms,
        )
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopping.set)
        print(f"exporting sites {', '.join(sites)} as consumer {consumer!r}", flush=True)
        # supervised as in the server: a Redis or PostgreSQL outage is logged and the loop
        # restarts with backoff; on a signal, the batch in flight gets GRACE_S to finish
        async with (
            Supervisor(grace_s=GRACE_S) as supervisor,
            supervisor.running("export", loader.run, stop=loader.stop),
        ):
            await stopping.wait()
    totals = {"batches": loader.batches, **loader.totals}
    print(f"export stopped: {json.dumps(totals, sort_keys=True)}", flush=True)
    return totals
