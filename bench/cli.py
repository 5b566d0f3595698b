"""``python -m bench [--quick] [--only NAMES]``: every scenario, printed and saved as JSON."""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
SCENARIOS = (
    "memory",
    "ingest",
    "latency",
    "timers",
    "redis_cost",
    "profile",
    "profile_echo",
    "profile_latency",
    "rules",
    "storm",
    "scale",
)
SCENARIOS += ("audience",)


# module (or, for py-spy, program) -> the distribution of the `bench` extra that provides it
BENCH_EXTRA = {"psutil": "psutil", "durable": "durable-rules", "py-spy": "py-spy"}


def missing_tools() -> list[str]:
    """The distributions of the `bench` extra that this Python lacks."""
    missing = [
        d for m, d in BENCH_EXTRA.items() if m != "py-spy" and not importlib.util.find_spec(m)
    ]
    if shutil.which("py-spy", path=f"{Path(sys.executable).parent}") is None:
        missing.append(BENCH_EXTRA["py-spy"])
    return missing


def ensure_tools() -> None:
    """Check what the bench needs beyond the project: the `bench` extra (installed by the
    user, never at run time) and the Node load generator's packages (npm ci from the
    committed lock file)."""
    missing = missing_tools()
    if missing:
        sys.exit(
            f"bench: {', '.join(missing)} missing: install the bench extra first, "
            f"{sys.executable} -m pip install -e '.[bench]'"
        )
    if shutil.which("node") is None or shutil.which("npm") is None:
        sys.exit(
            "bench: node and npm are needed for the load generator (apt-get install nodejs npm)"
        )
    if not (BENCH / "loadgen" / "node_modules" / "socket.io-client").is_dir():
        print("installing the load generator's packages (npm ci in bench/loadgen)", flush=True)
        npm = ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"]
        subprocess.run(npm, cwd=BENCH / "loadgen", check=True)


def _rules_table(plan: Any) -> Any:
    from .procs import TREE
    from .report import Table, at_least, at_most

    env = {**os.environ, "PYTHONPATH": TREE.pythonpath}
    budget = "1.5" if plan.name == "quick" else "6"
    argv = [sys.executable, "-m", "bench.rulescale", "--events", str(plan.rule_events)]
    argv += ["--counts", ",".join(map(str, plan.rule_counts)), "--budget", budget]
    done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=ROOT, check=True)
    found = json.loads(done.stdout)
    table = Table("rules", "Rule evaluation in process: scaling, and against durable_rules")
    scaling = found["scaling"]
    for row in scaling:
        table.add(
            f"{row['rules']:,} rules: engine per event",
            f"{row['engine_us_per_event']:.1f} us ({row['engine_events_per_s']:,} ev/s)",
        )
    first, last = scaling[0], scaling[-1]
    growth = last["engine_us_per_event"] / first["engine_us_per_event"]
    table.add(
        f"cost {last['rules']:,} rules / {first['rules']:,} rules",
        growth,
        "x",
        "flat (<= 3x)",
        at_most(3),
    )
    table.add(
        f"timers armed per 1,000 events ({first['rules']} / {last['rules']:,} rules)",
        f"{first['timers_armed_per_1000_events']:,.0f}"
        f" / {last['timers_armed_per_1000_events']:,.0f}",
    )
    cw, dr = found["seed"]["cuewire"], found["seed"]["durable_rules"]
    # both timed whole, one clock around the stream (the per-event clocks of the breakdown
    # cost Cuewire four clock calls an event)
    whole = cw["whole_events_per_s"]
    table.add("seed scenarios, Cuewire (engine + facts), events/s", whole)
    table.add("seed scenarios, durable_rules, events/s", dr["events_per_s"])
    ratio = whole / max(dr["events_per_s"], 1)
    table.add("ratio Cuewire / durable_rules", ratio, "x", "> 1 (faster)", at_least(1.0001))
    table.add(
        "ratio, Cuewire engine alone / durable_rules",
        cw["engine_events_per_s"] / max(dr["events_per_s"], 1),
        "x",
    )
    armed_cw = cw["seed_timers_armed"]
    armed_dr = dr["timers_armed"]
    table.add(
        "timers armed, hesitation / cart (Cuewire | durable_rules)",
        f"{armed_cw.get('hesitation-product', 0):,} / {armed_cw.get('cart-abandonment', 0):,} | "
        f"{armed_dr.get('hesitation-product', 0):,} / {armed_dr.get('cart-abandonment', 0):,}",
    )
    types = ", ".join(f"{k} {v}" for k, v in found["stream"]["types"].items())
    table.note(f"one stream of {found['stream']['events']:,} events, 200 sessions: {types}")
    table.note(
        "rule sets: the 3 seed rules + synthetic rules that each target their own pages,"
        " custom names or elements (event, absence, exit-intent and facts triggers); per count"
        f" the stream's prefix that fits {budget} s"
    )
    table.note(
        "durable_rules gets only the event kinds its rules name (filtered in Python first: it"
        " raises on events no rule handles); Cuewire gets every event and includes computing"
        " and applying its fact changes (done by Redis in production)"
    )
    table.details = found
    return table


async def wait_quiet(limit_s: float, own: list[int]) -> float:
    """Wait up to ``limit_s`` until processes other than ``own`` use under 20% of a core
    (over 2 s); return what they used last, in % of one core."""
    from .procs import CpuMeter

    deadline = time.monotonic() + limit_s
    while True:
        meter = CpuMeter({str(pid): pid for pid in own})
        a = meter.sample()
        await asyncio.sleep(2)
        cpu = CpuMeter.between(a, meter.sample())
        others = cpu["others_pct_core"] + cpu["steal_pct_core"]
        if others < 20 or time.monotonic() >= deadline:
            return others
        print(f"   waiting for a quiet machine: other processes at {others:.0f}% of a core")


def _summary(tables: list[Any]) -> str:
    from .report import Table

    verdicts = Table("summary", "Summary: targets")
    for table in tables:
        for row in table.rows:
            if row.verdict:
                verdicts.rows.append(row)
    return verdicts.render()


async def run(
    names: list[str],
    plan: Any,
    results: Path,
    keep: bool,
    wait_s: float = 0,
    redis_via: str = "tcp",
) -> int:
    from .audience import audience
    from .context import Bench
    from .profile import ceiling, profile, profile_echo, profile_latency
    from .report import machine_info
    from .scale import scale
    from .scenarios import ingest, latency, memory, redis_cost, timers
    from .storm import storm_table

    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    workdir = Path(tempfile.mkdtemp(prefix="cw-bench-"))
    started = time.monotonic()
    bench = Bench(plan, workdir, results, redis_via)
    out: dict[str, Any] = {
        "run": {"plan": plan.__dict__, "started_utc": stamp, "argv": sys.argv[1:]},
        "machine": machine_info(bench.redis.version()),
        "scenarios": {},
    }
    steps: dict[str, Callable[[], Awaitable[Any]]] = {
        "memory": lambda: memory(bench),
        "ingest": lambda: ingest(bench),
        "latency": lambda: latency(bench),
        "timers": lambda: timers(bench),
        "redis_cost": lambda: redis_cost(bench),
        "profile": lambda: profile(bench, results / f"{stamp}-{plan.name}-profile.txt"),
        "profile_echo": lambda: profile_echo(
            bench, results / f"{stamp}-{plan.name}-profile-echo.txt"
        ),
        "profile_latency": lambda: profile_latency(
            bench, results / f"{stamp}-{plan.name}-profile-latency.txt"
        ),
        "rules": lambda: asyncio.to_thread(_rules_table, plan),
        "storm": lambda: storm_table(bench),
        "audience": lambda: audience(bench),
        "scale": lambda: scale(bench),
    }
    tables = []
    failed = 0
    try:
        for name in names:
            if wait_s > 0:
                own = [bench.redis.pid] + ([bench.server.pid] if bench.server else [])
                await wait_quiet(wait_s, own)
            t0 = time.monotonic()
            print(f"\n-- {name} ...", flush=True)
            try:
                table = await steps[name]()
            except Exception as exc:
                failed += 1
                traceback.print_exc()
                out["scenarios"][name] = {"error": f"{type(exc).__name__}: {exc}"}
                continue
            table.details["elapsed_s"] = round(time.monotonic() - t0, 1)
            tables.append(table)
            out["scenarios"][name] = table.to_json()
            print(table.render(), flush=True)
        by_name = {t.name: t for t in tables}
        if "ingest" in by_name and "profile" in by_name:
            table = ceiling(by_name["ingest"], by_name["profile"], by_name.get("profile_echo"))
            tables.append(table)
            out["scenarios"]["ceiling"] = table.to_json()
            print(table.render(), flush=True)
    finally:
        bench.close()
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)
    from .procs import OTHERS

    out["run"]["elapsed_s"] = round(time.monotonic() - started, 1)
    out["run"]["other_processes_pct_core_max"] = max(OTHERS, default=0.0)
    path = results / f"{stamp}-{plan.name}.json"
    path.write_text(json.dumps(out, indent=1, sort_keys=False) + "\n", encoding="utf-8")
    print()
    print(_summary(tables))
    print(f"\n{plan.name} run: {out['run']['elapsed_s']:g} s; results in {path}")
    busiest = out["run"]["other_processes_pct_core_max"]
    if busiest > 25:
        print(
            f"warning: other processes and hypervisor steal took up to {busiest:.0f}% of a core"
            " during measured windows (of 200%): figures are pessimistic; rerun when quiet"
        )
    if keep:
        print(f"logs in {workdir}")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short windows: under 2 minutes")
    parser.add_argument("--only", help=f"comma-separated scenarios, of: {', '.join(SCENARIOS)}")
    parser.add_argument("--results", type=Path, default=BENCH / "results")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir with the logs")
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0,
        metavar="S",
        help="before each scenario, wait up to S seconds for other processes to go quiet",
    )
    parser.add_argument(
        "--redis",
        choices=("tcp", "unix"),
        default="tcp",
        help="how the server reaches its redis-server: loopback TCP (default) or its unix"
        " socket (a Redis on the same host)",
    )
    parser.add_argument(
        "--ref",
        help="benchmark the server/ and templates/ of this git ref (e.g. HEAD), exported to a"
        " temp dir, instead of the work tree",
    )
    args = parser.parse_args(argv)
    names = list(SCENARIOS) if not args.only else [n.strip() for n in args.only.split(",")]
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(unknown)}")
    args.results.mkdir(parents=True, exist_ok=True)
    ensure_tools()
    from .procs import TREE

    export = None
    if args.ref:
        export = Path(tempfile.mkdtemp(prefix="cw-bench-tree-"))
        TREE.export(args.ref, export)
    sys.path[:0] = [str(TREE.root / "server"), str(ROOT)]
    from .context import FULL, QUICK

    plan = QUICK if args.quick else FULL
    try:
        return asyncio.run(run(names, plan, args.results, args.keep, args.wait_quiet, args.redis))
    finally:
        if export is not None:
            shutil.rmtree(export, ignore_errors=True)
