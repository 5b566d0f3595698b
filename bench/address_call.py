"""A browser's batch on a Redis Cluster with the per-address rate limit on: asked of the
address's key before the batch (two sequential round trips, as before issue #11's change) or
decided in the process and shared every 100 ms (store/addresses.py, one round trip).

A store on a 3-node cluster of our own ingests batches of one page view, ``--in-flight``
sessions at once (each its own visitor and client address, so the address keys spread over
the nodes as real visitors' do), the two ways taking turns ``--rounds`` times in one process
so a busy machine slows them alike. Figures per way: batch latency p50 (median over rounds),
batches/s, and EVALSHA calls per batch counted on the nodes (the shared way's syncs
included); then the ratios shared / asked.

``python -m bench.address_call [--batches 2000] [--in-flight 1,32] [--rounds 5]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from cuewire.facts import changes_for
from cuewire.gate import browser_gate
from cuewire.origin import Origin
from cuewire.settings import Settings
from cuewire.store import RedisStore, open_store

from .procs import RedisCluster

SITE = "bench-site"
SYNC_S = 0.1


def evalsha_calls(cluster: RedisCluster) -> int:
    total = 0
    for client in cluster.clients:
        stats = client.info("commandstats").get("cmdstat_evalsha", {})
        total += int(stats.get("calls", 0)) if isinstance(stats, dict) else 0
    return total


async def _sessions(store: RedisStore, count: int, tag: str) -> list[Origin]:
    origins = []
    for n in range(count):
        visitor = f"v_{tag}{n:05d}"
        opened = await store.open_session(SITE, visitor, None, int(time.time() * 1000))
        origins.append(Origin(SITE, visitor, opened.session, "tab1", f"sid-{visitor}"))
    return origins


async def _run(store: RedisStore, origins: list[Origin], batches: int) -> list[float]:
    """``batches`` batches of one page view, one session per task: each batch's latency."""
    settings = store.settings
    latencies: list[float] = []
    seqs = dict.fromkeys(range(len(origins)), 0)

    async def worker(i: int, count: int) -> None:
        origin = origins[i]
        gate = browser_gate(settings.limits, f"10.{i // 250}.{i % 250}.7")
        for _ in range(count):
            now = int(time.time() * 1000)
            event = {"type": "page_view", "ts": now, "seq": seqs[i], "url": "http://s.test/"}
            seqs[i] += 1
            began = time.perf_counter()
            await store.ingest(origin, [event], [changes_for(event, now)], now, gate=gate)
            latencies.append(time.perf_counter() - began)

    per = batches // len(origins)
    await asyncio.gather(*(worker(i, per) for i in range(len(origins))))
    return latencies


async def measure(
    cluster: RedisCluster, batches: int, in_flight: int, rounds: int
) -> dict[str, Any]:
    # no live stream: its entries are written beside each batch, apart from what is measured
    settings = Settings(redis_url=cluster.url, key_prefix="bac", live_stream_max=0)
    out: dict[str, dict[str, list[float]]] = {}
    async with open_store(settings) as store:
        limit = store.address_limit
        if limit is None:
            raise RuntimeError("the store did not find the cluster")
        origins = {way: await _sessions(store, in_flight, way) for way in ("asked", "shared")}
        for _ in range(rounds):
            for way in ("asked", "shared"):
                syncing = asyncio.create_task(limit.run(SYNC_S)) if way == "shared" else None
                await asyncio.sleep(0.01)
                calls = evalsha_calls(cluster)
                began = time.perf_counter()
                latencies = await _run(store, origins[way], batches)
                wall = time.perf_counter() - began
                if syncing is not None:
                    limit.stop()
                    with contextlib.suppress(asyncio.CancelledError):
                        await syncing
                figures = out.setdefault(way, {"p50_ms": [], "per_s": [], "calls": []})
                figures["p50_ms"].append(statistics.median(latencies) * 1000)
                figures["per_s"].append(len(latencies) / wall)
                figures["calls"].append((evalsha_calls(cluster) - calls) / len(latencies))
    return {way: {k: statistics.median(v) for k, v in f.items()} for way, f in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=2000)
    parser.add_argument("--in-flight", default="1,32")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cw-bench-address-") as folder:
        cluster = RedisCluster(Path(folder))
        try:
            for in_flight in (int(n) for n in args.in_flight.split(",")):
                cluster.flush()
                found = asyncio.run(measure(cluster, args.batches, in_flight, args.rounds))
                asked, shared = found["asked"], found["shared"]
                for way, f in found.items():
                    print(
                        f"in flight {in_flight:3d}, {way:6s}: p50 {f['p50_ms']:.2f} ms, "
                        f"{f['per_s']:,.0f} batches/s, {f['calls']:.2f} EVALSHA per batch"
                    )
                print(
                    f"in flight {in_flight:3d}, shared / asked: p50 "
                    f"{shared['p50_ms'] / asked['p50_ms']:.2f}x, batches/s "
                    f"{shared['per_s'] / asked['per_s']:.2f}x"
                )
        finally:
            cluster.stop()


if __name__ == "__main__":
    main()
