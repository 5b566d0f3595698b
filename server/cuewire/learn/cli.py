"""``cuewire segment`` and ``cuewire train``: fit the learned models on recorded sessions (a
``cuewire record`` file, or a site's live stream in Redis) and write their JSON files."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..replay import Recording
from ..settings import Settings
from .dataset import Row, rows
from .features import PURCHASE


def _source(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--from", dest="recording", type=Path, help="a `cuewire record` file")
    where.add_argument("--redis", help="read the site's live stream from this Redis")
    parser.add_argument("--site", default="demo", help="the site key with --redis (default demo)")
    parser.add_argument(
        "--max-batches", type=int, default=100_000, help="with --redis: at most this many"
    )
    parser.add_argument(
        "--store", help="replay the sessions into this Redis (default: the embedded store)"
    )
    parser.add_argument("--goal", default=PURCHASE, help="the custom event that converts")
    parser.add_argument("--out", type=Path, required=True, help="the model file to write")


def add_commands(sub: Any) -> None:
    segment = sub.add_parser("segment", help="fit behavioural segments (k-means) on sessions")
    _source(segment)
    segment.add_argument("--k", type=int, default=4, help="how many segments (default 4)")
    train = sub.add_parser("train", help="train the purchase propensity model on sessions")
    _source(train)


async def _recording(args: argparse.Namespace) -> Recording:
    if args.recording is not None:
        return Recording.load(args.recording)
    from ..replay import record
    from ..store import open_store

    out = io.StringIO()
    async with open_store(Settings.from_env({"redis_url": args.redis})) as store:
        await record(store, args.site, out, args.max_batches)
    return Recording.read(out.getvalue().splitlines(), f"{args.redis} site {args.site}")


def _rows(args: argparse.Namespace) -> list[Row]:
    async def run() -> list[Row]:
        return await rows(await _recording(args), args.store, args.goal)

    found = asyncio.run(run())
    if not found:
        raise ConfigError("no recorded sessions to learn from")
    return found


def _write(path: Path, model: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(model, indent=1) + "\n", encoding="utf-8")


def cmd_segment(args: argparse.Namespace) -> int:
    from .training import fit_segments

    model = fit_segments(_rows(args), args.k)
    _write(args.out, model)
    print(f"{model['id']}: {args.k} segments of {model['metrics']['sessions']} sessions")
    for segment in model["segments"]:
        print(f"  {segment['size']:>6}  {segment['name']}")
    print(f"wrote {args.out}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from .training import fit_propensity

    model = fit_propensity(_rows(args), args.goal)
    _write(args.out, model)
    m = model["metrics"]
    print(
        f"{model['id']}: AUC {m['auc']:.3f} on {m['held_out']} held-out sessions "
        f"(constant baseline {m['baseline_auc']:.3f}); {m['sessions']} sessions, "
        f"{m['conversion_rate']:.1%} reached {args.goal!r}"
    )
    print(f"wrote {args.out}")
    return 0


COMMANDS = {"segment": cmd_segment, "train": cmd_train}
