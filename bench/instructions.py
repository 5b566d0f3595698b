"""Instructions per event through the rule engine and the facts path, counted by valgrind.

The seed scenarios of bench/rulescale.py (the stream its durable_rules comparison runs: the
engine's decision, the fact changes of each event and the facts the process predicts after
it) run under ``valgrind --tool=callgrind``, which counts instructions, not seconds: the same
count for the same code whatever else the shared machine does. So a change to the engine or
the facts path is measured on a busy machine, beside the ref it changes::

    python -m bench.instructions --ref HEAD~3

counts the work tree and the ref (its server/ exported to a temp dir) and prints their ratio.
Each count is (3 passes - 1 pass) / 2 over the stream: start-up and imports cancel out.
PYTHONHASHSEED is fixed, so dict and set layouts are the same in every run. It needs valgrind
(Debian's package); the time ratio against durable_rules stays `python -m bench --only rules`.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from .procs import ROOT, BenchError, Tree

PASSES = (1, 3)
PASS = """
import sys
from bench.rulescale import SEED, event_stream, run_cuewire_whole, seed_rules
stream, rules = event_stream(int(sys.argv[2])), seed_rules(SEED)
for _ in range(int(sys.argv[1])):
    run_cuewire_whole(rules, stream)
"""
# ``--firing``: bench/firing_call.py's rounds (argv[2] sessions each), its own redis-server
FIRING = """
import asyncio, sys, tempfile, uvloop
from pathlib import Path
from bench.firing_call import measure
from bench.procs import Redis
with tempfile.TemporaryDirectory() as tmp:
    server = Redis(Path(tmp))
    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(measure(server.url, int(sys.argv[2]), int(sys.argv[1])))
    finally:
        server.stop()
"""
COLLECTED = re.compile(r"Collected : (\d+)")


def collected(tree: Tree, program: str, passes: int, events: int, workdir: Path) -> int:
    """Instructions of one process that runs ``program``'s stream ``passes`` times."""
    env = {**os.environ, "PYTHONPATH": tree.pythonpath, "PYTHONHASHSEED": "0"}
    out = workdir / f"callgrind.{passes}.out"
    valgrind = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]
    run = subprocess.run(
        [*valgrind, sys.executable, "-c", program, str(passes), str(events)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
    )
    found = COLLECTED.search(run.stderr)
    if run.returncode != 0 or found is None:
        raise BenchError(f"callgrind run of {tree.label} failed:\n{run.stderr[-2000:]}")
    return int(found.group(1))


def per_event(tree: Tree, program: str, events: int) -> float:
    with tempfile.TemporaryDirectory(prefix="cw-instr-") as tmp:
        low, high = (collected(tree, program, n, events, Path(tmp)) for n in PASSES)
    return (high - low) / (PASSES[1] - PASSES[0]) / events


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ref", default="HEAD", help="git ref to compare with (HEAD)")
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument(
        "--firing",
        action="store_true",
        help="count bench.firing_call's rounds instead: per session, a page view, a click,"
        " a plain batch and one that fires (through the real pipeline and a redis-server)",
    )
    args = parser.parse_args(argv)
    program, events = (FIRING, 50) if args.firing else (PASS, args.events)
    what = "per session round (firing_call)" if args.firing else "per event (engine and facts)"
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed: apt-get install valgrind")
    with tempfile.TemporaryDirectory(prefix="cw-ref-") as tmp:
        ref = Tree(ROOT, "")
        ref.export(args.ref, Path(tmp))
        counted = {
            label: per_event(tree, program, events)
            for label, tree in (
                ("work tree", Tree(ROOT, "work tree")),
                (ref.label, ref),
            )
        }
    (mine, theirs) = counted.values()
    for label, n in counted.items():
        print(f"{label:>24}: {n:,.0f} instructions {what}")
    print(f"{'work tree / ref':>24}: {mine / theirs:.3f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
