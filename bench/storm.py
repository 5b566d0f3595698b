"""A reconnect storm: N tabs connect at once to one ``cuewire serve`` on real Redis.

What a deploy restart causes. Every tab must end with its session (after honouring any
retry-later refusal) and its one event acknowledged; nothing may be lost.
``python -m bench.storm --tabs 10000 [--ref REF]`` prints the figures as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import tempfile
from pathlib import Path
from typing import Any

from .context import ORIGIN, Bench
from .procs import ROOT, SITE, TREE, Redis, Server
from .report import Table, at_most

sys.path.insert(0, str(ROOT / "tests"))
from support.lightclient import storm

RULES = ROOT / "bench" / "rules"


async def run(tabs: int, deadline_s: float) -> dict[str, Any]:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    with tempfile.TemporaryDirectory(prefix="cw-storm-") as tmp:
        workdir = Path(tmp)
        sites = workdir / "sites.yaml"
        sites.write_text(f'sites:\n  {SITE}:\n    origins: ["{ORIGIN}"]\n', encoding="utf-8")
        redis = Redis(workdir)
        server = Server.cuewire(workdir, sites, RULES, redis.url)
        try:
            result = await storm(server.url, ORIGIN, SITE, tabs, deadline_s=deadline_s)
            stored = 0
            for visitor, session in result.sessions.items():
                facts = redis.client.hgetall(f"cw:s:{{{SITE}:{session}}}")
                stored += facts.get("visitor") == visitor and facts.get("n:page_view") == "1"
            log = (workdir / "cuewire.log").read_text(encoding="utf-8", errors="replace")
            (ROOT / "bench" / "results").mkdir(exist_ok=True)
            (Path(tempfile.gettempdir()) / "cw-storm-last.log").write_text(log, encoding="utf-8")
        finally:
            server.stop()
            redis.stop()
    return {
        "tree": TREE.label,
        "tabs": tabs,
        "connected": result.connected,
        "retried": result.retried,
        "retry_answers": result.retries,
        "refused_for_good": result.refused_for_good,
        "transport_errors": result.errors,
        "lost": result.lost,
        "events_acked": result.events_acked,
        "events_stored": stored,
        "refusal_codes": dict(result.codes),
        "seconds_to_all_connected": round(result.seconds, 2),
        "seconds_to_all_done": round(result.finished_s, 2),
        "no_connection_available_in_log": log.count("No connection available"),
    }


async def storm_table(bench: Bench) -> Table:
    """The storm as a bench scenario: a fresh server on the run's Redis."""
    tabs = bench.plan.storm_tabs
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    server = bench.start_server()
    result = await storm(server.url, ORIGIN, SITE, tabs, deadline_s=600)
    bench.stop_server()
    table = Table("storm", f"Reconnect storm: {tabs:,} tabs connect at once to one process")
    table.add("tabs with their session", result.connected)
    table.add("tabs told to retry later (and that came back)", result.retried)
    table.add("retry-later answers honoured", result.retries)
    table.add("transport errors retried", result.errors)
    table.add("refused for good", result.refused_for_good, "", "0", at_most(0))
    table.add("lost (no session by the deadline)", result.lost, "", "0", at_most(0))
    table.add("events acked", result.events_acked)
    table.add("seconds until every tab had its session", round(result.seconds, 1), "s")
    table.details = {"codes": dict(result.codes), "finished_s": round(result.finished_s, 1)}
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tabs", type=int, default=10_000)
    parser.add_argument("--deadline", type=float, default=120, help="seconds")
    parser.add_argument("--ref", help="run a git ref's server instead of the work tree")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cw-storm-tree-") as tree:
        if args.ref:
            TREE.export(args.ref, Path(tree))
        print(json.dumps(asyncio.run(run(args.tabs, args.deadline)), indent=2))


if __name__ == "__main__":
    main()
