"""An audience that mostly reads: many connected sessions, each sending an event now and then.

10,000 sessions x 0.1 event/s (5,000 x 0.2 in ``--quick``), open loop, against Cuewire and
then against the echo server in the same run: p99 event -> ack (from the tick's due time, so
a late generator cannot hide a stall), event -> prompt for the share of sessions that fire
the exit-intent rule, and each server's RSS per idle connection (every session connected,
none sending yet). ``python -m bench.audience --sessions 10000 --rate 0.1`` runs it alone and
prints the figures as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import resource
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .context import Bench
from .procs import TREE, CpuMeter, Server, free_port, gc_figures, run_loadgen
from .report import Table, at_most, ms, summary

RULE = "exit-intent-product"
P99_TARGET_MS = 25.0
MEMORY_TARGET = 1.1  # Cuewire's RSS per idle connection / the echo server's
SETTLE_S = 2.0  # after the last connect, before reading RSS


@dataclass(frozen=True)
class Size:
    sessions: int
    rate: float  # events per second per session
    warmup_s: float
    window_s: float
    fire_share: float  # sessions that send the exit intent once in the window


SIZES = {
    "quick": Size(sessions=5_000, rate=0.2, warmup_s=5, window_s=10, fire_share=0.1),
    "full": Size(sessions=10_000, rate=0.1, warmup_s=10, window_s=30, fire_share=0.1),
}


@contextlib.contextmanager
def echo_with_gc_probe(workdir: Path) -> Iterator[Server]:
    """The echo server, timing its garbage collections as the Cuewire server does here."""
    port = free_port()
    argv = [sys.executable, "-m", "bench.echo_server", "--port", str(port)]
    server = Server("echo", argv, port, workdir / "echo.log", workdir / "gc-echo.json")
    try:
        yield server
    finally:
        server.stop()


def _raise_fd_limit() -> None:
    """Every connection is a file descriptor in the server and in the generator."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def measure(bench: Bench, server: Server, size: Size, tag: str) -> dict[str, Any]:
    """Warm ``server`` up with 50 connections, read its RSS, connect ``size.sessions``, read
    its RSS again once they are idle, then let them send; the figures of both phases."""
    meter = CpuMeter({"server": server.pid})
    before = await bench.warm_rss(server, meter, tag)
    seen: dict[str, float] = {}
    gc_marks: dict[str, tuple[float, dict[str, Any]]] = {}

    async def go_when_idle(line: dict[str, Any], proc: Any) -> None:
        if line["t"] in ("measure_start", "measure_end"):
            at = time.time()
            await asyncio.sleep(0.6)  # the probe writes its file twice a second
            gc_marks[line["t"]] = (at, server.gc_stats())
        if line["t"] == "connected":
            await asyncio.sleep(SETTLE_S)
            seen["rss"] = server.rss()
            seen["connected"] = line["sessions"]
            seen["failures"] = line["failures"]
            proc.stdin.write(b"go\n")
            await proc.stdin.drain()

    cfg = bench.config(
        server,
        "audience",
        sessions=size.sessions,
        rate=size.rate,
        warmup_s=size.warmup_s,
        window_s=size.window_s,
        fire_share=size.fire_share,
        rule=RULE if server.name == "cuewire" else None,
        ack_timeout_s=10,
        drain_s=2,
        connect_rate=1000,
        tag=tag,
    )
    run = await run_loadgen(cfg, bench.meter(server), go_when_idle, bench.log("loadgen"))
    r = run.result
    conns = max(1, int(seen["connected"]))
    return {
        "connections": conns,
        "connect_failures": int(seen["failures"]),
        "rss_before_mb": round(before / 2**20, 1),
        "rss_idle_mb": round(seen["rss"] / 2**20, 1),
        "kb_per_connection": round((seen["rss"] - before) / conns / 1024, 2),
        "ack_ms": summary(r["ack_ms"], lost=r["timeouts"]),
        "prompt_ms": summary(r["prompt_ms"], lost=r["missing"]) if cfg["rule"] else None,
        "send_lag_ms": summary(r["send_lag_ms"]),
        "loadgen_loop_delay_ms": r["loop_delay_ms"],
        "sent": r["sent"],
        "rejected": r["rejected"],
        "timeouts": r["timeouts"],
        "firing": r["firing"],
        "disconnects": r["disconnects"],
        "disconnects_by_second": r["disconnects_by_second"],
        "cpu": run.cpu,
        "gc": gc_figures(gc_marks["measure_start"], gc_marks["measure_end"]),
    }


def _table(size: Size, cw: dict[str, Any], floor: dict[str, Any]) -> Table:
    n = size.sessions
    table = Table(
        "audience",
        f"Audience: {n:,} connected sessions x {size.rate:g} event/s, Cuewire beside the echo",
    )
    cw_p99, echo_p99 = cw["ack_ms"]["p99"], floor["ack_ms"]["p99"]
    table.add("Cuewire, event -> ack p99", cw_p99, "ms", f"<= {P99_TARGET_MS:g} ms", at_most(25))
    table.add("echo server, event -> ack p99", echo_p99, "ms")
    for name, fig in (("Cuewire", cw), ("echo", floor)):
        ack = fig["ack_ms"]
        table.add(
            f"event -> ack p50 / p99 / max ({name})",
            f"{ms(ack['p50'])} / {ms(ack['p99'])} / {ms(ack['max'])} ms",
        )
    if cw["prompt_ms"] is not None:
        prompt = cw["prompt_ms"]
        table.add(
            "Cuewire, event -> prompt p99",
            prompt["p99"],
            "ms",
            f"<= {P99_TARGET_MS:g} ms",
            at_most(P99_TARGET_MS),
        )
        table.add("prompts measured (lost)", f"{prompt['n']:,} ({prompt['lost']:,})")
    cw_kb, echo_kb = cw["kb_per_connection"], floor["kb_per_connection"]
    table.add("Cuewire, KB per idle connection", cw_kb, "KB")
    table.add("echo server, KB per idle connection", echo_kb, "KB")
    table.add(
        "memory ratio Cuewire / echo",
        cw_kb / echo_kb if echo_kb > 0 else float("nan"),
        "x",
        f"<= {MEMORY_TARGET:g}x",
        at_most(MEMORY_TARGET),
    )
    for name, fig in (("Cuewire", cw), ("echo", floor)):
        lag, eld = fig["send_lag_ms"], fig["loadgen_loop_delay_ms"]
        table.add(
            f"generator: send lag p99 / event-loop delay p99, max ({name} run)",
            f"{ms(lag['p99'])} / {eld['p99']:.1f}, {eld['max']:.1f} ms",
        )
        gc = fig["gc"]
        table.add(
            f"GC in the window: share of server CPU / pauses > 50 ms / longest ({name})",
            f"{gc['share_pct']:.0f}% / {gc['pauses_over_50ms']} / {gc['longest_ms']:.0f} ms",
        )
        table.add(
            f"CPU server / generator ({name} run)",
            f"{fig['cpu'].get('server_pct_core', 0):.0f}%"
            f" / {fig['cpu'].get('loadgen_pct_core', 0):.0f}% of a core",
        )
    table.note(
        f"{n:,} sessions connected (Cuewire {cw['connections']:,}, echo {floor['connections']:,}),"
        f" each sending 1 event every {1 / size.rate:g} s at its own phase, open loop;"
        f" {size.window_s:g} s measured after {size.warmup_s:g} s; {size.fire_share:.0%} of"
        f" the sessions send the exit intent once (rule {RULE})"
    )
    table.note(
        "latency counts from the tick's due time (a late generator shows as send lag, not as"
        " a shorter latency); memory: RSS with every session connected and idle"
        f" ({SETTLE_S:g} s after the last connect) minus RSS after a 50-connection warm-up"
    )
    table.details = {"size": size.__dict__, "cuewire": cw, "echo": floor}
    return table


async def audience(bench: Bench) -> Table:
    size = SIZES[bench.plan.name]
    _raise_fd_limit()
    bench.redis.flush()
    server = bench.start_server(gc_probe=True)  # fresh: freed memory hides costs
    cw = await measure(bench, server, size, "aud")
    bench.stop_server()
    with echo_with_gc_probe(bench.workdir) as echo:
        floor = await measure(bench, echo, size, "audecho")
    return _table(size, cw, floor)


async def _alone(size: Size, which: str, keep: bool) -> dict[str, Any]:
    from .context import QUICK

    workdir = Path(tempfile.mkdtemp(prefix="cw-audience-"))
    bench = Bench(QUICK, workdir, workdir)
    _raise_fd_limit()
    found: dict[str, Any] = {"tree": TREE.label, "size": size.__dict__, "workdir": str(workdir)}
    try:
        if which in ("both", "cuewire"):
            server = bench.start_server(gc_probe=True)
            found["cuewire"] = await measure(bench, server, size, "aud")
            bench.stop_server()
        if which in ("both", "echo"):
            with echo_with_gc_probe(workdir) as echo:
                found["echo"] = await measure(bench, echo, size, "audecho")
    finally:
        bench.close()
    if which == "both":
        print(_table(size, found["cuewire"], found["echo"]).render())
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=0.1, help="events/s per session")
    parser.add_argument("--warmup", type=float, default=10, help="seconds")
    parser.add_argument("--window", type=float, default=30, help="seconds measured")
    parser.add_argument("--fire-share", type=float, default=0.1)
    parser.add_argument("--server", choices=("both", "cuewire", "echo"), default="both")
    parser.add_argument("--ref", help="run a git ref's server instead of the work tree")
    args = parser.parse_args()
    size = Size(args.sessions, args.rate, args.warmup, args.window, args.fire_share)
    with tempfile.TemporaryDirectory(prefix="cw-audience-tree-") as tree:
        if args.ref:
            TREE.export(args.ref, Path(tree))
        found = asyncio.run(_alone(size, args.server, keep=True))
    print(json.dumps(found, indent=1))


if __name__ == "__main__":
    main()
