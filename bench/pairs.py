"""Two trees in turns, one command: ``python -m bench.pairs --base REF [--head REF]``.

On this shared machine the same code's CPU per batch moves by 1.5x within minutes, so one
run of each tree, minutes apart, ranks nothing. This runs the ingest scenario (``--quick``
windows) on the head (the work tree, or ``--head REF``) and on ``--base REF`` in turns, the
first of each round alternating, each run with its own redis-server and fresh servers
(Cuewire and the echo, both from that tree), and prints per round the server CPU per batch
of each, then the medians of the per-round ratios head / base and how many rounds the head
was lower. The echo's ratio says how much of a change is the transport floor's.

``--scenario latency`` runs the latency scenario instead and compares, per level, the p99 of
both servers and Cuewire's CPU (each run about two minutes).

``python -m bench.pairs --base 70f2f56 [--head HEAD] [--rounds 4] [--scenario latency]``;
``--head-redis unix`` (or ``--base-redis``) gives that side's server its Redis over the unix
socket instead of TCP: ``--base HEAD --head-redis unix`` compares the two ways on the same
code.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .cli import ensure_tools
from .procs import BENCH, ROOT, TREE, Tree

METRICS = ("cuewire", "echo")  # whose server CPU per batch (the ingest table's details)


@dataclass
class Side:
    name: str  # "head" or "base"
    tree: Tree
    redis_via: str = "tcp"  # how its server reaches Redis: loopback TCP or the unix socket


def _ingest_figures(details: dict[str, Any]) -> dict[str, float]:
    """Each server's CPU per batch, in microseconds."""
    return {m: float(details[m]["server_cpu_us_per_batch"]) for m in METRICS}


def _latency_figures(details: dict[str, Any]) -> dict[str, float]:
    """Per level, each server's event -> prompt p99 (ms) and Cuewire's CPU (% of a core)."""
    out: dict[str, float] = {}
    for name, levels in (("cuewire", details["levels"]), ("echo", details["echo"])):
        for n, level in levels.items():
            out[f"{name} p99 {n}"] = float(level["prompt_ms"]["p99"] or 0)
            if name == "cuewire":
                out[f"{name} cpu {n}"] = float(level["cpu"].get("server_pct_core", 0))
    return out


# scenario -> what of its table's details a round compares (lower is better for all)
FIGURES = {"ingest": _ingest_figures, "latency": _latency_figures}


async def _once(side: Side, scenario: str, results: Path) -> dict[str, float]:
    """One run of ``scenario`` on ``side``'s tree: the figures it compares."""
    from .context import QUICK, Bench
    from .scenarios import ingest, latency

    TREE.root, TREE.label = side.tree.root, side.tree.label  # what the servers run
    workdir = Path(tempfile.mkdtemp(prefix="cw-bench-pair-"))
    bench = Bench(QUICK, workdir, results, side.redis_via)
    try:
        table = await (ingest if scenario == "ingest" else latency)(bench)
    finally:
        bench.close()
        shutil.rmtree(workdir, ignore_errors=True)
    return FIGURES[scenario](table.details)


def _export(ref: str) -> Tree:
    tree = Tree(ROOT, "work tree")
    tree.export(ref, Path(tempfile.mkdtemp(prefix="cw-bench-tree-")))
    return tree


def summarise(rounds: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, Any]]:
    """Per figure: the median ratio head / base over the rounds and the rounds head was
    lower."""
    out: dict[str, dict[str, Any]] = {}
    for m in rounds[0]["head"]:
        ratios = [r["head"][m] / max(r["base"][m], 1e-9) for r in rounds]
        out[m] = {
            "median_ratio": round(statistics.median(ratios), 2),
            "head_lower": sum(1 for x in ratios if x < 1),
            "rounds": len(ratios),
        }
    return out


async def run(
    head: Side, base: Side, rounds: int, results: Path, scenario: str = "ingest"
) -> dict[str, Any]:
    done: list[dict[str, dict[str, float]]] = []
    for i in range(rounds):
        order = (head, base) if i % 2 == 0 else (base, head)
        figures = {side.name: await _once(side, scenario, results) for side in order}
        done.append(figures)
        shown = ", ".join(
            f"{m} {figures['head'][m]:g} / {figures['base'][m]:g}" for m in figures["head"]
        )
        print(f"round {i + 1} (head / base): {shown}", flush=True)
    return {"scenario": scenario, "rounds": done, "summary": summarise(done)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.pairs", description=__doc__)
    parser.add_argument("--base", required=True, help="the git ref to compare against")
    parser.add_argument("--head", help="a git ref (default: the work tree)")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument(
        "--scenario",
        choices=sorted(FIGURES),
        default="ingest",
        help="ingest: each server's CPU per batch; latency: per level, the p99 of both servers"
        " and Cuewire's CPU",
    )
    for name in ("head", "base"):
        parser.add_argument(
            f"--{name}-redis",
            choices=("tcp", "unix"),
            default="tcp",
            help=f"how the {name}'s server reaches Redis (the same tree both ways compares them)",
        )
    parser.add_argument("--results", type=Path, default=BENCH / "results")
    args = parser.parse_args(argv)
    ensure_tools()
    head_tree = _export(args.head) if args.head else Tree(ROOT, "work tree")
    head = Side("head", head_tree, args.head_redis)
    base = Side("base", _export(args.base), args.base_redis)
    sys.path[:0] = [str(ROOT / "server"), str(ROOT)]
    try:
        found = asyncio.run(run(head, base, args.rounds, args.results, args.scenario))
    finally:
        for side in (head, base):
            if side.tree.root != ROOT:
                shutil.rmtree(side.tree.root, ignore_errors=True)
    found["head"], found["base"] = head.tree.label, base.tree.label
    found["redis"] = {"head": head.redis_via, "base": base.redis_via}
    for m, s in found["summary"].items():
        print(
            f"{m}: head / base, median of the rounds' ratios {s['median_ratio']}x;"
            f" head lower in {s['head_lower']} of {s['rounds']}"
        )
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    path = args.results / f"{stamp}-pairs.json"
    path.write_text(json.dumps(found, indent=1) + "\n", encoding="utf-8")
    print(f"results in {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
