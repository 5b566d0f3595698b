"""``cuewire segment`` and ``cuewire train``: fit the learned models on recorded sessions (a
``cuewire record`` file, a site's live stream in Redis, or the PostgreSQL export's events) and
write their JSON files."""

from __future__ import annotations

import argparse
import asyncio
import datetime
import io
import json
import sys
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
    where.add_argument(
        "--from-export",
        dest="export",
        nargs="?",
        const="",
        metavar="DSN",
        help="read the site's events from the PostgreSQL export (default CUEWIRE_EXPORT_DSN)",
    )
    parser.add_argument(
        "--site", default="demo", help="the site key with --redis or --from-export (default demo)"
    )
    parser.add_argument(
        "--max-batches",
        type=int,
        default=100_000,
        help="with --redis or --from-export: the latest this many",
    )
    parser.add_argument("--since", type=_time, help="only batches received at or after (ISO)")
    parser.add_argument("--until", type=_time, help="only batches received before (ISO)")
    parser.add_argument(
        "--store", help="replay the sessions into this Redis (default: the embedded store)"
    )
    parser.add_argument("--goal", default=PURCHASE, help="the custom event that converts")
    parser.add_argument("--out", type=Path, required=True, help="the model file to write")


def _time(raw: str) -> datetime.datetime:
    """An ISO 8601 date or time; UTC unless it names its offset."""
    try:
        at = datetime.datetime.fromisoformat(raw)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{raw}: not an ISO date or time") from exc
    return at if at.tzinfo else at.replace(tzinfo=datetime.UTC)


def add_commands(sub: Any) -> None:
    segment = sub.add_parser("segment", help="fit behavioural segments (k-means) on sessions")
    _source(segment)
    segment.add_argument("--k", type=int, default=4, help="how many segments (default 4)")
    train = sub.add_parser("train", help="train the purchase propensity model on sessions")
    _source(train)


def _ms(at: datetime.datetime | None) -> int | None:
    return None if at is None else round(at.timestamp() * 1000)


def _window(recording: Recording, args: argparse.Namespace) -> Recording:
    """The batches received in ``[--since, --until)`` (the export filters in its query)."""
    since, until = _ms(args.since), _ms(args.until)
    if since is None and until is None:
        return recording
    recording.batches = [
        b
        for b in recording.batches
        if (since is None or b.at >= since) and (until is None or b.at < until)
    ]
    return recording


async def _from_export(args: argparse.Namespace) -> Recording:
    from ..export.sessions import read_sessions

    dsn = args.export or Settings.from_env().export_dsn
    if not dsn:
        raise ConfigError("no export DSN: pass --from-export DSN or set CUEWIRE_EXPORT_DSN")
    read = await read_sessions(dsn, args.site, args.since, args.until, args.max_batches)
    if read.dropped:
        print(
            f"cuewire: kept the latest {len(read.recording.batches)} of {read.batches} batches "
            "(raise --max-batches, or narrow with --since and --until)",
            file=sys.stderr,
        )
    return read.recording


async def _recording(args: argparse.Namespace) -> Recording:
    if args.export is not None:
        return await _from_export(args)
    if args.recording is not None:
        return _window(Recording.load(args.recording), args)
    from ..replay import record
    from ..store import open_store

    out = io.StringIO()
    async with open_store(Settings.from_env({"redis_url": args.redis})) as store:
        await record(store, args.site, out, args.max_batches)
    recorded = Recording.read(out.getvalue().splitlines(), f"{args.redis} site {args.site}")
    return _window(recorded, args)


def _where(args: argparse.Namespace) -> str:
    if args.recording is not None:
        return str(args.recording)
    window = "".join(
        f" {flag} {at.isoformat()}"
        for flag, at in (("since", args.since), ("until", args.until))
        if at is not None
    )
    return f"site {args.site!r}{window}"


def _rows(args: argparse.Namespace) -> list[Row]:
    async def run() -> list[Row]:
        return await rows(await _recording(args), args.store, args.goal)

    found = asyncio.run(run())
    if not found:
        raise ConfigError(f"no recorded sessions to learn from in {_where(args)}")
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
