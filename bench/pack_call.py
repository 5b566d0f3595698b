"""The server's CPU per batch through the real pipeline and store, by how commands are packed.

The pipeline (seed rules, decided ahead from the facts a session opened with, as a served
connection does) handles ``--sessions`` sessions at once, ``--batches`` batches of one
composition each (bench/ingest_replay.py's: 1 plain event, 5 plain events, a page_view + 4
plain), against our own redis-server, on a fake clock. Its connections pack their commands
with hiredis (store/connection.py) in one turn and with redis-py's own Python packer in the
next, ``--rounds`` times each, in one process; the figure is this process's CPU time per
batch (pipeline, engine, store adapter, redis client; no transport, no validation), median
over rounds, and the ratio hiredis / redis-py. ``--flip`` starts each pair with redis-py's.

``python -m bench.pack_call [--kind plain] [--sessions 64] [--batches 30] [--rounds 10]``
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from cuewire.delivery import Delivery
from cuewire.origin import Origin
from cuewire.pipeline import Pipeline
from cuewire.prediction import KnownFacts
from cuewire.protocol import Prompt
from cuewire.runtime import Runtime
from cuewire.settings import Settings
from cuewire.store import RedisStore, connection, open_store

from .ingest_replay import KINDS, ROOT, Clock, _bodies, open_origin
from .procs import Redis

HIREDIS = connection._Watched.pack_command
SIDES = ("hiredis", "redis-py")


def _pack_with(side: str) -> None:
    if side == "hiredis":
        connection._Watched.pack_command = HIREDIS  # type: ignore[method-assign]
    elif "pack_command" in vars(connection._Watched):
        del connection._Watched.pack_command  # redis-py's, next in the class's MRO


async def _turn(
    store: RedisStore, pipeline: Pipeline, clock: Clock, tag: str, args: argparse.Namespace
) -> float:
    """CPU seconds per batch of ``args.sessions`` new sessions' batches, run concurrently."""

    async def opened(i: int) -> Origin:
        visitor, sid = f"v_{tag}_{i:06d}", f"sid-{tag}-{i}"
        return await open_origin(store, pipeline, clock.now_ms(), visitor, sid)

    async def drive(origin: Origin, i: int) -> None:
        seq = 0
        for b in range(args.batches):
            events: list[dict[str, Any]] = []
            for body in _bodies(args.kind, b):
                seq += 1
                clock.now += 1
                url = f"http://shop.test/product/p{i % 100}"
                events.append({**body, "ts": clock.now, "seq": seq, "url": url})
            await pipeline.process(origin, events, clock.now_ms())

    origins = await asyncio.gather(*(opened(i) for i in range(args.sessions)))
    started = time.process_time()
    await asyncio.gather(*(drive(o, i) for i, o in enumerate(origins)))
    return (time.process_time() - started) / (args.sessions * args.batches)


async def measure(url: str, args: argparse.Namespace) -> dict[str, list[float]]:
    settings = Settings(
        redis_url=url, rules_dir=ROOT / "bench" / "rules", templates_dir=ROOT / "templates"
    )
    clock = Clock()
    seconds: dict[str, list[float]] = {side: [] for side in SIDES}
    async with open_store(settings) as store:
        runtime = Runtime(settings.rules_dir, settings.templates_dir)

        async def emit(sid: str, prompt: Prompt, confirm: bool) -> bool:
            return True

        delivery = Delivery(store, runtime.engine, runtime.catalog, emit, clock)
        pipeline = Pipeline(store, runtime.engine, delivery, KnownFacts())
        await _turn(store, pipeline, clock, "warm", args)
        try:
            for turn in range(2 * args.rounds):
                side = SIDES[(turn + args.flip) % 2]
                _pack_with(side)
                seconds[side].append(await _turn(store, pipeline, clock, str(turn), args))
        finally:
            _pack_with("hiredis")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kind", choices=KINDS, default="plain")
    parser.add_argument("--sessions", type=int, default=64)
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--flip", type=int, choices=(0, 1), default=0)
    args = parser.parse_args()
    import uvloop

    with tempfile.TemporaryDirectory() as tmp:
        server = Redis(Path(tmp))
        try:
            runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
            with runner:
                seconds = runner.run(measure(server.url, args))
        finally:
            server.stop()
    median = {side: statistics.median(s) for side, s in seconds.items()}
    print(f"{args.kind}: {args.sessions} sessions x {args.batches} batches, {args.rounds} rounds")
    for side in SIDES:
        print(f"{side:<10}{median[side] * 1e6:>8.1f} us CPU/batch")
    print(f"hiredis / redis-py {median['hiredis'] / median['redis-py']:.2f}")


if __name__ == "__main__":
    main()
