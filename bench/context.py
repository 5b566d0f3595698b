"""What one run needs: the plan (quick or full), a temp dir, Redis and the Cuewire server."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from .procs import BENCH, SITE, CpuMeter, Redis, Server, run_loadgen

ORIGIN = "http://shop.bench.test"
RULES = BENCH / "rules"


@dataclass(frozen=True)
class Plan:
    """Sizes and durations of every scenario."""

    name: str
    ingest_sessions: int
    ingest_in_flight: int
    ingest_batch: int
    ingest_warmup_s: float
    ingest_s: float
    latency_levels: tuple[int, ...]
    latency_warmup_s: int
    latency_window_s: int
    timer_pending: tuple[int, ...]
    timer_sessions: int
    timer_spread_s: float
    memory_connections: int
    memory_variants: bool  # also the echo floor and Cuewire without permessage-deflate
    cost_sessions: int
    cost_batches: int
    rule_counts: tuple[int, ...]
    rule_events: int
    profile_s: float
    storm_tabs: int
    scale_rounds: int  # rounds of 2 processes on one Redis, then on the cluster, alternated


QUICK = Plan(
    name="quick",
    ingest_sessions=1200,
    ingest_in_flight=64,
    ingest_batch=5,
    ingest_warmup_s=1,
    ingest_s=3,
    latency_levels=(1000, 2000, 3000),
    latency_warmup_s=1,
    latency_window_s=2,
    timer_pending=(10_000, 100_000),
    timer_sessions=200,
    timer_spread_s=2,
    memory_connections=5000,
    memory_variants=False,
    cost_sessions=30,
    cost_batches=10,
    rule_counts=(10, 100, 1000),
    rule_events=20_000,
    profile_s=3,
    storm_tabs=3000,
    scale_rounds=3,
)

FULL = Plan(
    name="full",
    ingest_sessions=1500,
    ingest_in_flight=64,
    ingest_batch=5,
    ingest_warmup_s=3,
    ingest_s=20,
    latency_levels=(500, 1000, 2000, 3000),
    latency_warmup_s=5,
    latency_window_s=10,
    timer_pending=(10_000, 100_000),
    timer_sessions=1000,
    timer_spread_s=10,
    memory_connections=5000,
    memory_variants=True,
    cost_sessions=100,
    cost_batches=20,
    rule_counts=(10, 100, 1000),
    rule_events=100_000,
    profile_s=15,
    storm_tabs=10_000,
    scale_rounds=2,
)


class Bench:
    """Redis and the Cuewire server of one run, and helpers the scenarios share."""

    def __init__(self, plan: Plan, workdir: Path, results: Path, redis_via: str = "tcp") -> None:
        self.plan = plan
        self.workdir = workdir
        self.results = results
        self.sites = workdir / "sites.yaml"
        self.sites.write_text(f'sites:\n  {SITE}:\n    origins: ["{ORIGIN}"]\n', encoding="utf-8")
        self.redis = Redis(workdir, redis_via)
        self.server: Server | None = None

    def start_server(self, gc_probe: bool = False) -> Server:
        self.stop_server()
        self.server = Server.cuewire(self.workdir, self.sites, RULES, self.redis.url, gc_probe)
        return self.server

    def stop_server(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    @property
    def cuewire(self) -> Server:
        return self.server or self.start_server()

    async def settle(self, limit_s: float = 30) -> None:
        """Wait until the server is idle (under 10% of a core for 0.5 s): a scenario that
        overloaded it may leave a backlog that would land in the next measurement."""
        proc = psutil.Process(self.cuewire.pid)
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            a = proc.cpu_times()
            await asyncio.sleep(0.5)
            b = proc.cpu_times()
            if (b.user + b.system - a.user - a.system) / 0.5 < 0.1:
                return

    def meter(self, server: Server | None = None) -> CpuMeter:
        target = server or self.cuewire
        pids = {"server": target.pid}
        if target.name == "cuewire":
            pids["redis"] = self.redis.pid
        return CpuMeter(pids)

    def config(self, server: Server, mode: str, **extra: Any) -> dict[str, Any]:
        """A load generator config for ``server``."""
        return {"mode": mode, "url": server.url, "origin": ORIGIN, "site": SITE, **extra}

    async def warm_rss(self, server: Any, meter: CpuMeter, tag: str) -> int:
        """Connect and close 50 sessions to ``server`` (its first allocations), then its RSS:
        the baseline of a per-connection memory figure."""

        async def close_when_connected(line: dict[str, Any], proc: Any) -> None:
            if line["t"] == "connected":
                proc.stdin.write(b"close\n")
                await proc.stdin.drain()

        warm = self.config(server, "idle", sessions=50, connect_rate=500, tag=f"{tag}w")
        await run_loadgen(warm, meter, close_when_connected, self.log("loadgen"))
        await asyncio.sleep(1)
        return int(server.rss())

    def log(self, name: str) -> Path:
        return self.workdir / f"{name}.log"

    def close(self) -> None:
        self.stop_server()
        self.redis.stop()
