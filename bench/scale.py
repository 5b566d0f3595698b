"""The ``scale`` scenario (issue #11): one process against two, one Redis against a cluster.

The ingest load (closed loop, batches of 5 mixed events) saturates `cuewire serve --workers 1`
and `--workers 2` on the run's Redis, and `--workers 2` on a 3-node Redis Cluster of its own:
the two processes on one Redis and on the cluster take turns, ``plan.scale_rounds`` times (the
shared machine drifts by more than the target's margin over a minute; a round's two runs are
seconds apart, and the ratio is the median of the rounds'). All those run
without the per-address rate limit (as every other scenario runs: all load generator sessions
come from 127.0.0.1), and with it on (a limit too high to bind) both ways a cluster can hold it:
asked of the address's key before each batch (`CUEWIRE_ADDRESS_SYNC_S=0`, two round trips) and
decided in each process and shared every 100 ms (the default: store/addresses.py).
Figures: accepted events/s, ack p50 / p99 and the CPU of each process group; the ratios 2 / 1
processes (target >= 1.7) and cluster / one Redis (target >= 0.9; beside it the servers' CPU
per event on the cluster over one Redis, which drifts less); and the capacity model's
prediction for two processes on this machine (bench/capacity.py's reasoning: each process adds
a core until the machine's cores are spent on servers, Redis and the load generator), set
beside the measured figure.
"""

from __future__ import annotations

import statistics
from typing import Any

import psutil

from .context import RULES, Bench
from .procs import CpuMeter, RedisCluster, Server, run_loadgen
from .report import Table, at_least, ms
from .scenarios import RATE_PER_SESSION, _ingest_figures

IN_FLIGHT_PER_PROCESS = 64  # batches in flight per server process (the ingest scenario's)
# the per-address limit on, too high to bind: what holding it costs, not what it refuses
ADDRESS_LIMIT_ON = {"CUEWIRE_LIMITS_ADDRESS_EVENTS_PER_SECOND": "1000000000"}
CLUSTER_RUNS = {
    "2 cluster": {},
    "2 cluster, address limit asked": {**ADDRESS_LIMIT_ON, "CUEWIRE_ADDRESS_SYNC_S": "0"},
    "2 cluster, address limit shared": ADDRESS_LIMIT_ON,
}


async def _saturate(
    bench: Bench, server: Server, redis_pids: list[int], tag: str, workers: int
) -> dict[str, Any]:
    p = bench.plan
    config = bench.config(
        server,
        "ingest",
        sessions=p.ingest_sessions,
        batch=p.ingest_batch,
        max_rate_per_session=RATE_PER_SESSION,
        in_flight=IN_FLIGHT_PER_PROCESS * workers,
        warmup_s=p.ingest_warmup_s,
        duration_s=p.ingest_s,
        connect_rate=1000,
        tag=tag,
    )
    meter = CpuMeter(
        {"server": server.pid, **{f"redis{i}": pid for i, pid in enumerate(redis_pids)}}
    )
    run = await run_loadgen(config, meter, log=bench.log("loadgen"))
    figures = _ingest_figures(run)
    figures["redis_pct_core"] = round(
        sum(v for k, v in run.cpu.items() if k.startswith("redis") and k.endswith("_pct_core")), 1
    )
    return figures


def _row(table: Table, label: str, fig: dict[str, Any]) -> None:
    ack = fig["ack_ms"]
    cpu = fig["cpu"]
    table.add(f"{label}: accepted events/s", fig["events_per_s"], "ev/s")
    table.add(
        f"{label}: ack p50 / p99; CPU server / Redis / load generator",
        f"{ms(ack['p50'])} / {ms(ack['p99'])} ms; {cpu.get('server_pct_core', 0):.0f}% /"
        f" {fig['redis_pct_core']:.0f}% / {cpu.get('loadgen_pct_core', 0):.0f}%",
    )


def _cpu_per_event(fig: dict[str, Any]) -> float:
    """The servers' CPU (in cores) per accepted event/s of a run."""
    return float(fig["cpu"].get("server_pct_core", 0)) / 100 / max(fig["events_per_s"], 1)


def predicted_two(one: dict[str, Any], cores: int) -> float:
    """The model's events/s for two processes on a machine of ``cores``: twice one process,
    unless the machine runs out of cores first (server, Redis and the load generator each
    need their CPU per event, measured in the one-process run)."""
    events = max(one["events_per_s"], 1)
    cpu = one["cpu"]
    per_event = (
        (cpu.get("server_pct_core", 0) + one["redis_pct_core"] + cpu.get("loadgen_pct_core", 0))
        / 100
        / events
    )  # cores per event/s
    return min(2 * events, cores / per_event) if per_event > 0 else 2.0 * events


async def scale(bench: Bench) -> Table:
    table = Table("scale", "Scale: one process against two, one Redis against a cluster")
    bench.stop_server()
    runs: dict[str, dict[str, Any]] = {}
    rounds: list[tuple[dict[str, Any], dict[str, Any]]] = []  # (one Redis, cluster)

    async def on_redis(workers: int, tag: str) -> dict[str, Any]:
        bench.redis.flush()
        server = Server.cuewire(bench.workdir, bench.sites, RULES, bench.redis.url, workers=workers)
        try:
            return await _saturate(bench, server, [bench.redis.pid], tag, workers)
        finally:
            server.stop()

    async def on_cluster(env: dict[str, str], tag: str) -> dict[str, Any]:
        cluster.flush()
        server = Server.cuewire(bench.workdir, bench.sites, RULES, cluster.url, workers=2, env=env)
        try:
            return await _saturate(bench, server, cluster.pids, tag, 2)
        finally:
            server.stop()

    cluster = RedisCluster(bench.workdir)
    try:
        runs["1"] = await on_redis(1, "sc1")
        for n in range(bench.plan.scale_rounds):
            rounds.append((await on_redis(2, f"sc2r{n}"), await on_cluster({}, f"scc0r{n}")))
        runs["2"], runs["2 cluster"] = rounds[0]
        for n, (name, env) in enumerate(CLUSTER_RUNS.items()):
            if name != "2 cluster":
                runs[name] = await on_cluster(env, f"scc{n}")
    finally:
        cluster.stop()
    one, two, clustered = runs["1"], runs["2"], runs["2 cluster"]
    _row(table, "1 process, one Redis", one)
    _row(table, "2 processes, one Redis", two)
    _row(table, "2 processes, 3-node cluster", clustered)
    ratio = two["events_per_s"] / max(one["events_per_s"], 1)
    table.add("ratio 2 / 1 processes", ratio, "x", ">= 1.7", at_least(1.7))
    cores = psutil.cpu_count() or 1
    model = predicted_two(one, cores)
    table.add(
        f"capacity model: 2 processes on {cores} cores (predicted / measured)",
        f"{model:,.0f} / {two['events_per_s']:,} ev/s ({two['events_per_s'] / max(model, 1):.2f}x)",
    )
    ratios = [c["events_per_s"] / max(r["events_per_s"], 1) for r, c in rounds]
    cpu_ratios = [_cpu_per_event(c) / max(_cpu_per_event(r), 1e-9) for r, c in rounds]
    table.add(
        f"ratio cluster / one Redis (2 processes), median of {len(rounds)} alternated rounds",
        statistics.median(ratios),
        "x",
        ">= 0.9",
        at_least(0.9),
    )
    table.add(
        "  each round: events/s ratio; servers' CPU per event, cluster / one Redis",
        "; ".join(f"{a:.2f}x, {b:.2f}x" for a, b in zip(ratios, cpu_ratios, strict=True)),
    )
    asked = runs["2 cluster, address limit asked"]
    shared = runs["2 cluster, address limit shared"]
    _row(table, "2 processes, cluster, address limit asked first", asked)
    _row(table, "2 processes, cluster, address limit shared", shared)
    table.add(
        "ratio address limit shared / asked first (cluster): events/s; ack p50",
        f"{shared['events_per_s'] / max(asked['events_per_s'], 1):.2f}x;"
        f" {shared['ack_ms']['p50'] / max(asked['ack_ms']['p50'], 1e-9):.2f}x",
    )
    table.add(
        "ratio address limit shared / off (cluster): events/s",
        shared["events_per_s"] / max(clustered["events_per_s"], 1),
        "x",
    )
    table.note(
        f"{bench.plan.ingest_sessions:,} sessions, batches of {bench.plan.ingest_batch} mixed"
        f" events, {IN_FLIGHT_PER_PROCESS} batches in flight per process; `cuewire serve"
        " --workers N` (one port, uvicorn's supervisor); CPU in % of one core, the workers"
        " summed, the cluster's nodes summed"
    )
    table.note(
        f"this machine has {cores} cores for the servers, Redis and the load generator"
        " together: the model's prediction says how much of the 2x the machine leaves room for"
    )
    table.details = runs | {
        "model_two_events_per_s": round(model),
        "cores": cores,
        "rounds": [{"one_redis": r, "cluster": c} for r, c in rounds],
        "round_ratios": [round(x, 3) for x in ratios],
        "round_cpu_per_event_ratios": [round(x, 3) for x in cpu_ratios],
    }
    return table
