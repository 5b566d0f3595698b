"""The CPU of validating one event at the edge, as ``validate_batch`` does it and the plain way.

The events are the load generator's mix (bench/loadgen/loadgen.mjs: a page_view, then scrolls,
clicks, hovers, custom events...), in batches of ``--batch``. ``validate_batch`` is measured
beside the plain definition it must agree with (tests/test_validation.py): convert to the
union of the wire models, back to a map, JSON-encode it for its size. Both in one process,
taking turns, ``--rounds`` times; the figure is the median CPU time per event.

``python -m bench.validation_call [--batches 20000] [--batch 5] [--rounds 5]``
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import msgspec

from cuewire.protocol import AnyEvent
from cuewire.settings import Limits
from cuewire.validation import validate_batch

URL = "http://127.0.0.1:8000/product/p17"
TS = 1_764_680_000_000
MIX: list[dict[str, Any]] = [
    {"type": "page_view", "referrer": "https://search.example/", "title": "Product"},
    {"type": "scroll", "depth": 25},
    {"type": "element_visible", "element": "reviews", "ratio": 0.5},
    {"type": "hover", "element": "price", "ms": 450},
    {"type": "scroll", "depth": 50},
    {"type": "click", "selector": "#size-m", "text": "M", "track": "size"},
    {"type": "custom", "name": "product_view", "props": {"product_id": "p17", "price": 49.5}},
    {"type": "scroll", "depth": 75},
    {"type": "visibility", "state": "visible", "dwell_ms": 1200},
    {"type": "idle", "ms": 5000},
]

_json = msgspec.json.Encoder()


def plain(batch: list[dict[str, Any]], limits: Limits) -> int:
    """The plain definition's work for a batch of valid events: the number accepted."""
    accepted = 0
    for raw in batch:
        event = msgspec.to_builtins(msgspec.convert(raw, AnyEvent))
        if len(_json.encode(event)) <= limits.max_event_bytes:
            accepted += 1
    return accepted


def fast(batch: list[dict[str, Any]], limits: Limits) -> int:
    return len(validate_batch(batch, limits)[0])


def batches(count: int, size: int) -> list[list[dict[str, Any]]]:
    out = []
    for b in range(count):
        out.append(
            [
                {**MIX[(b * size + i) % len(MIX)], "ts": TS, "seq": b * size + i, "url": URL}
                for i in range(size)
            ]
        )
    return out


def cpu_per_event(
    validate: Callable[[list[dict[str, Any]], Limits], int], work: list[list[dict[str, Any]]]
) -> float:
    limits = Limits()
    events = sum(len(batch) for batch in work)
    started = time.process_time()
    accepted = sum(validate(batch, limits) for batch in work)
    spent = time.process_time() - started
    if accepted != events:
        raise SystemExit(f"{validate.__name__} accepted {accepted} of {events} valid events")
    return spent / events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    work = batches(args.batches, args.batch)
    seconds: dict[str, list[float]] = {"validate_batch": [], "plain": []}
    for _ in range(args.rounds):
        seconds["validate_batch"].append(cpu_per_event(fast, work))
        seconds["plain"].append(cpu_per_event(plain, work))
    median = {name: statistics.median(s) for name, s in seconds.items()}
    print(f"{args.batches} batches of {args.batch} events, the load generator's mix")
    print(f"{'path':<16}{'us CPU/event':>14}{'x plain':>9}")
    for name, s in median.items():
        print(f"{name:<16}{s * 1e6:>14.2f}{s / median['plain']:>9.2f}")


if __name__ == "__main__":
    main()
