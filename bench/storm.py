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

from .context import ORIGIN
from .procs import ROOT, SITE, TREE, Redis, Server

sys.path.insert(0, str(ROOT / "tests"))
from lightclient import storm

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
