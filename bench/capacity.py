"""The capacity model of docs/scaling.md, built from one bench run's measured figures.

``python -m bench.capacity [--results FILE] [--rate 0.1] [--visitors 10000,100000,1000000]``
prints, for each number of concurrent visitors, the processes (one per core), their memory,
the Redis shards and Redis memory a deployment needs, and which tier saturates first; then
``--check`` compares what the model predicts for the run's own audience scenario (one process,
N sessions at a rate) with what that scenario measured.

Every input is a figure of the results file (the newest ``bench/results/*.json`` with the
scenarios it needs, unless ``--results`` names one); every assumption that is not measured is
a flag with its default printed beside the answer.
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
NEEDED = ("latency", "memory", "redis_cost", "audience")


@dataclass(frozen=True)
class Measured:
    """The figures the model is built from, each from one scenario of one run."""

    source: str
    event_cpu_us: float  # server CPU per event, one event per batch (latency, held level)
    idle_cpu_us_per_s: float  # server CPU per connected session per second, no events
    max_utilisation: float  # server CPU share at the largest level that held p99 <= 200 ms
    sustained_events_s: int  # that level's events/s
    connections_shown: int  # sessions one process served in the audience scenario
    kb_per_connection: float  # server RSS per idle connection (memory)
    base_rss_mb: float  # server RSS before connections
    redis_cpu_us_per_batch: float  # Redis CPU per one-event batch (redis_cost "single")
    redis_bytes_per_batch: float  # in + out
    redis_session_bytes: int  # MEMORY USAGE of a session's keys
    redis_visitor_bytes: int  # MEMORY USAGE of a visitor's keys
    audience: dict[str, Any]  # the audience scenario's size and figures, for --check


def newest_with(names: tuple[str, ...]) -> Path:
    for path in sorted(glob.glob(str(RESULTS / "*.json")), key=os.path.getmtime, reverse=True):
        scenarios = json.loads(Path(path).read_text()).get("scenarios", {})
        if all(n in scenarios for n in names):
            return Path(path)
    raise SystemExit(f"no results file in {RESULTS} has all of {', '.join(names)}: run the bench")


def measured(path: Path) -> Measured:
    scenarios = json.loads(path.read_text())["scenarios"]
    missing = [n for n in NEEDED if n not in scenarios]
    if missing:
        raise SystemExit(f"{path} lacks the scenarios {', '.join(missing)}")
    levels = scenarios["latency"]["details"]["levels"]
    held = [n for n, f in levels.items() if (f["prompt_ms"].get("p99") or 1e9) <= 200]
    if not held:
        raise SystemExit(f"{path}: no latency level held p99 <= 200 ms")
    level = max(held, key=int)
    events_s = int(level)  # each session sends one event a second
    utilisation = levels[level]["cpu"]["server_pct_core"] / 100
    event_cpu_us = utilisation * 1e6 / events_s
    audience = scenarios["audience"]["details"]
    size = audience["size"]
    served = audience["cuewire"]
    audience_cpu_us = served["cpu"]["server_pct_core"] / 100 * 1e6  # per second
    idle = max(audience_cpu_us - size["sessions"] * size["rate"] * event_cpu_us, 0.0)
    memory = scenarios["memory"]["details"]["cuewire"]
    cost = scenarios["redis_cost"]["details"]
    single = cost["kinds"].get("single") or cost["kinds"]["plain"]
    per_event = 1 if "single" in cost["kinds"] else 5
    return Measured(
        source=str(path),
        event_cpu_us=event_cpu_us,
        idle_cpu_us_per_s=idle / size["sessions"],
        max_utilisation=utilisation,
        sustained_events_s=events_s,
        connections_shown=size["sessions"],
        kb_per_connection=memory["kb_per_connection"],
        base_rss_mb=memory["rss_before_mb"],
        redis_cpu_us_per_batch=single["redis_cpu_us"] / per_event,
        redis_bytes_per_batch=(single["bytes_in"] + single["bytes_out"]) / per_event,
        redis_session_bytes=cost["memory"]["per_session"],
        redis_visitor_bytes=cost["memory"]["per_visitor"],
        audience={"size": size, "cpu_pct": served["cpu"]["server_pct_core"]},
    )


@dataclass(frozen=True)
class Assumptions:
    rate: float  # events per second per concurrent visitor
    session_minutes: float  # how long a visit lasts: sessions kept = visits within the TTL
    session_ttl_minutes: float
    visitors_kept_per_concurrent: float  # distinct visitors whose hash is kept (400-day TTL)
    redis_utilisation: float  # the share of its one core a Redis shard may use
    redis_shard_gb: float  # memory one shard may hold


def plan(m: Measured, a: Assumptions, visitors: int) -> dict[str, Any]:
    events_s = visitors * a.rate
    cpu_cores = visitors * (m.idle_cpu_us_per_s + a.rate * m.event_cpu_us) / 1e6
    by_cpu = math.ceil(cpu_cores / m.max_utilisation)
    by_connections = math.ceil(visitors / m.connections_shown)
    processes = max(by_cpu, by_connections, 1)
    server_gb = (processes * m.base_rss_mb * 1024 + visitors * m.kb_per_connection) / 1024**2
    redis_cores = events_s * m.redis_cpu_us_per_batch / 1e6
    sessions_kept = visitors * (1 + a.session_ttl_minutes / a.session_minutes)
    redis_gb = (
        sessions_kept * m.redis_session_bytes
        + visitors * a.visitors_kept_per_concurrent * m.redis_visitor_bytes
    ) / 1024**3
    shards_cpu = math.ceil(redis_cores / a.redis_utilisation)
    shards_memory = math.ceil(redis_gb / a.redis_shard_gb)
    first = max(
        ("server CPU", by_cpu),
        ("connections per process", by_connections),
        ("Redis CPU", shards_cpu),
        ("Redis memory", shards_memory),
        key=lambda tier: tier[1],
    )[0]
    return {
        "visitors": visitors,
        "events_s": events_s,
        "processes": processes,
        "processes_by_cpu": by_cpu,
        "processes_by_connections": by_connections,
        "server_gb": round(server_gb, 1),
        "redis_shards": max(shards_cpu, shards_memory, 1),
        "redis_shards_by_cpu": shards_cpu,
        "redis_shards_by_memory": shards_memory,
        "redis_gb": round(redis_gb, 1),
        "redis_mb_s": round(events_s * m.redis_bytes_per_batch / 1e6, 1),
        "first": first,
    }


def check(m: Measured) -> dict[str, float]:
    """The model's server CPU for the run's audience scenario against the measured one. The
    idle cost is derived from that same scenario, so the check is of the event cost taken
    from the latency scenario: a different load (many idle sessions, 10% firings)."""
    size = m.audience["size"]
    events = size["sessions"] * size["rate"]
    predicted_events_only = events * m.event_cpu_us / 1e4  # % of a core
    return {
        "audience_sessions": size["sessions"],
        "audience_rate": size["rate"],
        "measured_cpu_pct": m.audience["cpu_pct"],
        "predicted_cpu_pct_events_only": round(predicted_events_only, 1),
        "idle_share_pct": round(100 - 100 * predicted_events_only / m.audience["cpu_pct"], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path)
    parser.add_argument("--visitors", default="10000,100000,1000000")
    parser.add_argument("--rate", type=float, default=0.1, help="events/s per visitor")
    parser.add_argument("--session-minutes", type=float, default=5)
    parser.add_argument("--session-ttl-minutes", type=float, default=30)
    parser.add_argument("--visitors-kept-per-concurrent", type=float, default=1000)
    parser.add_argument("--redis-utilisation", type=float, default=0.7)
    parser.add_argument("--redis-shard-gb", type=float, default=25)
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    m = measured(args.results or newest_with(NEEDED))
    a = Assumptions(
        args.rate,
        args.session_minutes,
        args.session_ttl_minutes,
        args.visitors_kept_per_concurrent,
        args.redis_utilisation,
        args.redis_shard_gb,
    )
    plans = [plan(m, a, int(v)) for v in args.visitors.split(",")]
    checked = check(m) if args.check else None
    if args.json:
        print(
            json.dumps(
                {
                    "measured": m.__dict__,
                    "assumptions": a.__dict__,
                    "plans": plans,
                    "check": checked,
                },
                indent=2,
            )
        )
        return
    print(f"measured ({m.source}):")
    print(
        f"  server: {m.event_cpu_us:.0f} us CPU per event and {m.idle_cpu_us_per_s:.0f} us per"
        f" connected session per second; p99 <= 200 ms held up to {m.max_utilisation:.0%} CPU"
        f" ({m.sustained_events_s:,} events/s); {m.kb_per_connection:.0f} KB per connection;"
        f" {m.connections_shown:,} sessions shown in one process"
    )
    print(
        f"  Redis: {m.redis_cpu_us_per_batch:.0f} us CPU and {m.redis_bytes_per_batch:,.0f} B per"
        f" one-event batch; {m.redis_session_bytes:,} B per session,"
        f" {m.redis_visitor_bytes:,} B per visitor"
    )
    print(
        f"assumed: {a.rate} events/s per visitor; visits of {a.session_minutes:g} min, kept"
        f" {a.session_ttl_minutes:g} min; {a.visitors_kept_per_concurrent:g} visitors kept per"
        f" concurrent one; a Redis shard at <= {a.redis_utilisation:.0%} CPU and"
        f" {a.redis_shard_gb:g} GB"
    )
    head = (
        "visitors",
        "events/s",
        "processes",
        "server GB",
        "Redis shards",
        "Redis GB",
        "Redis MB/s",
        "saturates first",
    )
    print(("{:>10} " * 7 + "{}").format(*head))
    for p in plans:
        print(
            f"{p['visitors']:>10,} {p['events_s']:>10,.0f} {p['processes']:>10,} "
            f"{p['server_gb']:>10} {p['redis_shards']:>10,} {p['redis_gb']:>10} "
            f"{p['redis_mb_s']:>10} {p['first']}"
        )
    if checked:
        print(
            f"check against the run's audience scenario ({checked['audience_sessions']:,}"
            f" sessions x {checked['audience_rate']} events/s): measured server CPU"
            f" {checked['measured_cpu_pct']}%, of which the events' share predicted from the"
            f" latency scenario {checked['predicted_cpu_pct_events_only']}%; the rest"
            f" ({checked['idle_share_pct']}%) is the idle cost the model adds per session"
        )


if __name__ == "__main__":
    main()
