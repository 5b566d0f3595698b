"""Redis's own cost of the ingest script, without the network: record, then replay.

The real pipeline (engine, store, seed rules, decided ahead from the facts a session opened
with, as a served connection does) handles ``--sessions`` sessions of ``--batches`` batches
of one composition each (the redis_cost scenario's: 1 plain event, 5 plain events, a
page_view + 4 plain) on a fake clock, against our own redis-server, and every script call it
makes is recorded. The calls are then replayed, ``--rounds`` times, on the emptied server:
the sessions' opens first, then the ingest calls alone, pipelined, measured. Per ingest call:
Redis CPU (INFO cpu, user + sys), the script's time (commandstats, EVALSHA usec_per_call) and
the commands run inside it. Run it in two checkouts to compare their scripts.

``python -m bench.ingest_replay [--sessions 200] [--batches 10] [--rounds 3]``
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cuewire.delivery import Delivery
from cuewire.origin import Origin
from cuewire.pipeline import Pipeline
from cuewire.prediction import KnownFacts
from cuewire.protocol import Prompt
from cuewire.runtime import Runtime
from cuewire.settings import Settings
from cuewire.store import RedisStore, open_store
from cuewire.store.scripts import ingest_script

from .procs import Redis
from .validation_call import MIX

ROOT = Path(__file__).resolve().parent.parent
SITE = "bench"
# the load generator's events (bench/loadgen/loadgen.mjs), as validation_call.py has them
PLAIN: list[dict[str, Any]] = [e for e in MIX if e["type"] not in ("page_view", "idle")]
PAGE_VIEW = next(e for e in MIX if e["type"] == "page_view")
KINDS = ("single", "plain", "page_view")


@dataclass
class Clock:
    now: int = 1_764_000_000_000

    def now_ms(self) -> int:
        return self.now


@dataclass(frozen=True)
class Call:
    script: str  # the Lua text
    keys: list[str]
    args: list[str]
    ingest: bool


async def open_origin(
    store: RedisStore, pipeline: Pipeline, now_ms: int, visitor: str, sid: str
) -> Origin:
    """A new session of ``visitor`` with its facts learned, so its batches are decided ahead
    from the first, as a served connection's are."""
    got = await store.open_session(SITE, visitor, None, now_ms, fields=pipeline.fields())
    if got.facts is not None:
        pipeline.learn(SITE, got.session, got.facts)
    return Origin(SITE, visitor, got.session, "tab1", sid)


def _bodies(kind: str, step: int) -> list[dict[str, Any]]:
    if kind == "single":
        return [PLAIN[step % len(PLAIN)]]
    plain = [PLAIN[(step + j) % len(PLAIN)] for j in range(5)]
    return plain if kind == "plain" else [PAGE_VIEW, *plain[:4]]


def _recording(store: RedisStore, calls: list[Call]) -> None:
    """Record the store's ingest and open-session calls into ``calls``."""
    coalescer, opener = store._calls, store._sessions._open
    ingest_text = ingest_script()
    call = coalescer.call

    async def recorded_call(script: Any, keys: list[str], args: list[Any]) -> Any:
        text = str(script.script)
        calls.append(Call(text, list(keys), [str(a) for a in args], text == ingest_text))
        return await call(script, keys, args)

    class RecordedOpen:
        script = opener.script

        async def __call__(self, keys: list[str], args: list[Any]) -> Any:
            calls.append(Call(str(opener.script), list(keys), [str(a) for a in args], False))
            return await opener(keys=keys, args=args)

    coalescer.call = recorded_call  # type: ignore[method-assign]
    store._sessions._open = RecordedOpen()  # type: ignore[assignment]


async def record(url: str, kind: str, sessions: int, batches: int) -> list[Call]:
    settings = Settings(
        redis_url=url, rules_dir=ROOT / "bench" / "rules", templates_dir=ROOT / "templates"
    )
    calls: list[Call] = []
    clock = Clock()
    async with open_store(settings) as store:
        _recording(store, calls)
        runtime = Runtime(settings.rules_dir, settings.templates_dir)

        async def emit(sid: str, prompt: Prompt, confirm: bool) -> bool:
            return True

        delivery = Delivery(store, runtime.engine, runtime.catalog, emit, clock)
        pipeline = Pipeline(store, runtime.engine, delivery, KnownFacts())
        for i in range(sessions):
            origin = await open_origin(store, pipeline, clock.now_ms(), f"v_{i:08d}", f"sid-{i}")
            seq = 0
            for b in range(batches):
                events = []
                for body in _bodies(kind, b):
                    seq += 1
                    clock.now += 500
                    url = f"http://shop.test/product/p{i % 100}"
                    events.append({**body, "ts": clock.now, "seq": seq, "url": url})
                await pipeline.process(origin, events, clock.now_ms())
    return calls


def replay(server: Redis, calls: list[Call]) -> tuple[float, float, float]:
    """Redis CPU us, script us and commands inside it, per ingest call."""
    r = server.client
    r.flushall()
    shas = {c.script: r.script_load(c.script) for c in calls}
    pipe = r.pipeline(transaction=False)
    for c in calls:
        if not c.ingest:
            pipe.evalsha(shas[c.script], len(c.keys), *c.keys, *c.args)
    pipe.execute()
    r.config_resetstat()
    before = r.info("cpu")
    ingests = [c for c in calls if c.ingest]
    for c in ingests:
        pipe.evalsha(shas[c.script], len(c.keys), *c.keys, *c.args)
        if len(pipe) >= 50:
            pipe.execute()
    pipe.execute()
    after = r.info("cpu")
    stats = r.info("commandstats")
    n = max(len(ingests), 1)
    cpu = sum(after[k] - before[k] for k in ("used_cpu_user", "used_cpu_sys")) * 1e6 / n
    inside = sum(v["calls"] for k, v in stats.items() if k.split("|")[0] not in IGNORED)
    return cpu, float(stats["cmdstat_evalsha"]["usec_per_call"]), inside / n


IGNORED = ("cmdstat_evalsha", "cmdstat_config", "cmdstat_info")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--kinds", default=",".join(KINDS), help="comma-separated compositions")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = Redis(Path(tmp))
        try:
            print(f"redis-server {server.version()}, {args.sessions} sessions x {args.batches}")
            print(f"{'batch':<10}{'calls':>7}{'Redis CPU us':>14}{'script us':>11}{'commands':>10}")
            for kind in args.kinds.split(","):
                calls = asyncio.run(record(server.url, kind, args.sessions, args.batches))
                runs = [replay(server, calls) for _ in range(args.rounds)]
                cpu, script, inside = (statistics.median(x) for x in zip(*runs, strict=True))
                count = sum(c.ingest for c in calls)
                print(f"{kind:<10}{count:>7}{cpu:>14.1f}{script:>11.1f}{inside:>10.1f}")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
