"""The server's CPU per batch that fires a prompt, beside a plain batch, through the real
pipeline and store.

``--sessions`` sessions open on a product page (a page view and a click, decided ahead from
the facts each session opened with, as a served connection does), against our own
redis-server, on a fake clock. Each round then sends every session one plain event (a
click) and one ``exit_intent``, which the seed rule ``exit-intent-product`` answers with its
modal (bench/rules/seed.yaml: the latency scenario's prompt), all sessions at once. The
figure is this process's CPU time (its collector tuned as the server's) per batch of each
kind, median over ``--rounds``: the firing's plan, its governance request, its prompt
rendered ahead in the template sandbox (remembered since 2026-12-04, render_cache.py:
every session's modal reads the same values), its audit records, the store call and the emit
(no transport, no validation). In the
latency scenario half of the events in the measured window fire, so this is most of its
CPU. Compare commits by running it in each checkout (``PYTHONPATH=<tree>/server``).

``python -m bench.firing_call [--sessions 300] [--rounds 7]``
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from cuewire.delivery import Delivery
from cuewire.pipeline import Pipeline
from cuewire.prediction import KnownFacts
from cuewire.protocol import Prompt
from cuewire.runtime import Runtime
from cuewire.settings import Settings
from cuewire.store import RedisStore, open_store
from cuewire.workers import tune_gc

from .ingest_replay import PAGE_VIEW, PLAIN, ROOT, Clock, open_origin
from .procs import Redis
from .scenarios import LATENCY_RULE


async def _cpu_per_batch(batches: list[Awaitable[Any]]) -> float:
    started = time.process_time()
    await asyncio.gather(*batches)
    return (time.process_time() - started) / len(batches)


async def _round(
    store: RedisStore, pipeline: Pipeline, clock: Clock, tag: str, sessions: int
) -> tuple[float, float]:
    """CPU seconds per plain batch and per firing batch of ``sessions`` new sessions."""

    async def opened(i: int) -> Callable[[dict[str, Any], int], Awaitable[Any]]:
        """A session on a product page (a page view, a click): what sends its next batch."""
        visitor, sid = f"v_{tag}_{i:06d}", f"sid-{tag}-{i}"
        origin = await open_origin(store, pipeline, clock.now_ms(), visitor, sid)
        url = f"http://shop.test/product/p{i % 100}"

        def send(body: dict[str, Any], seq: int) -> Awaitable[Any]:
            event = {**body, "ts": clock.now, "seq": seq, "url": url}
            return pipeline.process(origin, [event], clock.now_ms())

        await send(PAGE_VIEW, 1)
        await send(PLAIN[0], 2)
        return send

    sends = await asyncio.gather(*(opened(i) for i in range(sessions)))
    clock.now += 1000
    plain = await _cpu_per_batch([send(PLAIN[1], 3) for send in sends])
    firing = await _cpu_per_batch([send({"type": "exit_intent"}, 4) for send in sends])
    return plain, firing


async def measure(url: str, sessions: int, rounds: int) -> tuple[list[float], list[float], int]:
    settings = Settings(
        redis_url=url, rules_dir=ROOT / "bench" / "rules", templates_dir=ROOT / "templates"
    )
    clock = Clock()
    shown: list[Prompt] = []
    async with open_store(settings) as store:
        runtime = Runtime(settings.rules_dir, settings.templates_dir)

        async def emit(sid: str, prompt: Prompt, confirm: bool) -> bool:
            shown.append(prompt)
            return True

        delivery = Delivery(store, runtime.engine, runtime.catalog, emit, clock)
        pipeline = Pipeline(store, runtime.engine, delivery, KnownFacts())
        tune_gc()  # as `cuewire serve` does once the app is built
        await _round(store, pipeline, clock, "warm", sessions)
        shown.clear()
        figures = [await _round(store, pipeline, clock, str(r), sessions) for r in range(rounds)]
    fired = sum(1 for p in shown if p.rule == LATENCY_RULE)
    return [p for p, _ in figures], [f for _, f in figures], fired


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    import uvloop

    with tempfile.TemporaryDirectory() as tmp:
        server = Redis(Path(tmp))
        try:
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                plain, firing, fired = runner.run(measure(server.url, args.sessions, args.rounds))
        finally:
            server.stop()
    if fired != args.sessions * args.rounds:
        raise SystemExit(f"firing_call: {fired} prompts, {args.sessions * args.rounds} expected")
    p, f = statistics.median(plain) * 1e6, statistics.median(firing) * 1e6
    print(f"{args.sessions} sessions x {args.rounds} rounds (median), CPU per batch:")
    print(f"plain   {p:8.1f} us")
    print(f"firing  {f:8.1f} us  ({f / p:.2f}x plain)")


if __name__ == "__main__":
    main()
