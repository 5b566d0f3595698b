"""``cuewire audit``, ``explain``, ``record`` and ``replay``: what a site's store holds, why
its rules did or did not fire, and its sessions saved and run again through a rule set."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
from collections.abc import Callable
from pathlib import Path

from .cli_args import add_folders, add_store, settings_from
from .codes import Outcome
from .errors import SourceError


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The four commands' parsers, on ``cuewire``'s subcommands."""
    audit = sub.add_parser("audit", help="print the latest firings and suppressions of a site")
    add_store(audit)
    audit.add_argument("-n", type=int, default=20, help="how many records (default 20)")
    audit.add_argument("--session", help="only this session")
    audit.add_argument("--rule", help="only this rule")
    audit.add_argument("--outcome", choices=[str(o) for o in Outcome])
    audit.add_argument("--json", action="store_true", help="one JSON object per line")
    audit.add_argument("--missed", action="store_true", help="firings the rules expect, unaudited")
    add_folders(audit)
    explain = sub.add_parser("explain", help="why each rule did or did not fire in a session")
    explain.add_argument("session", help="the session id (see the QA view or `cuewire audit`)")
    add_store(explain)
    add_folders(explain)
    explain.add_argument("--json", action="store_true")
    record = sub.add_parser("record", help="save a site's recent sessions to a JSON-lines file")
    add_store(record)
    record.add_argument("--out", type=Path, required=True, help="the file to write")
    record.add_argument(
        "--max-batches", type=int, default=10_000, help="at most this many batches (default 10000)"
    )
    replay = sub.add_parser("replay", help="run recorded sessions through a rule set")
    replay.add_argument("file", type=Path, help="a file written by `cuewire record`")
    add_folders(replay)
    replay.add_argument("--json", action="store_true")


def _when(ms: str | int | None) -> str:
    import datetime

    if not ms:
        return "-"
    stamp = datetime.datetime.fromtimestamp(int(ms) / 1000, datetime.UTC)
    return stamp.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _columns(rows: list[list[str]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def cmd_audit(args: argparse.Namespace) -> int:
    from .store import open_store
    from .store.firing_writes import AUDIT_MAXLEN

    if args.missed:
        from .missed import main as missed

        return missed(settings_from(args), args.site, args.json)
    wanted = {"session": args.session, "rule": args.rule, "outcome": args.outcome}
    filtered = any(wanted.values())

    async def read() -> list[dict[str, str]]:
        async with open_store(settings_from(args)) as store:
            records = await store.read_audit(args.site, AUDIT_MAXLEN if filtered else args.n)
        kept = [r for r in records if all(r.get(k) == v for k, v in wanted.items() if v)]
        return kept[-args.n :] if args.n > 0 else []

    records = asyncio.run(read())
    if args.json:
        for record in records:
            print(json.dumps(record, sort_keys=True))
        return 0
    if not records:
        print(f"no audit records for site {args.site!r}" + (" with these filters" * filtered))
        return 0
    rows = [["at (UTC)", "outcome", "rule", "variant", "session", "cause", "reason / prompt"]]
    for r in records:
        said = r.get("reason") or r.get("prompt") or ""
        if r.get("code"):  # a suppression or drop: its stable code, then the text
            said = f"{r['code']}: {said}"
        rows.append(
            [
                _when(r.get("at")),
                r.get("outcome", ""),
                r.get("rule", ""),
                r.get("variant") or "-",
                r.get("session", ""),
                r.get("cause", ""),
                said,
            ]
        )
    _columns(rows)
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    from .clock import SystemClock
    from .explain import RuleStatus, explain
    from .runtime import load_sources
    from .store import open_store

    settings = settings_from(args)
    loaded = load_sources(settings.rules_dir, settings.templates_dir)
    now = SystemClock().now_ms()

    async def read() -> tuple[dict[str, str], list[RuleStatus]]:
        async with open_store(settings) as store:
            facts = await store.session_facts(args.site, args.session)
            states = await explain(store, loaded.engine, args.site, args.session, now)
        return facts, states

    facts, states = asyncio.run(read())
    if not facts:
        print(f"no session {args.session!r} on site {args.site!r} (sessions end after 30 min)")
        return 1
    if args.json:
        print(json.dumps([dataclasses.asdict(s) for s in states], indent=2))
        return 0
    print(
        f"session {args.session} of visitor {facts.get('visitor', '?')}: "
        f"{facts.get('events', '0')} events, {facts.get('pages', '0')} pages, "
        f"last on {facts.get('url', '-')}; rules from {settings.rules_dir}"
    )
    _columns([["rule", "state", "detail"], *([s.rule, s.state, s.detail] for s in states)])
    return 0


def cmd_record(args: argparse.Namespace) -> int:
    from .replay import record
    from .store import open_store

    async def run() -> tuple[int, int]:
        async with open_store(settings_from(args)) as store:
            with args.out.open("w", encoding="utf-8") as out:
                return await record(store, args.site, out, args.max_batches)

    batches, audit = asyncio.run(run())
    print(
        f"recorded {batches} batches and {audit} audit records of site {args.site!r} to {args.out}"
    )
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from .replay import Recording, replay

    settings = settings_from(args)
    recording = Recording.load(args.file)
    try:
        result = asyncio.run(
            replay(recording, settings.rules_dir, settings.templates_dir, settings.session_ttl_s)
        )
    except SourceError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result.to_json(), indent=2, sort_keys=True))
        return 0
    print(
        f"replayed {result.sessions} sessions, {result.batches} batches ({result.events} events) "
        f"from {_when(result.first_ms)} to {_when(result.last_ms)} UTC "
        f"through {settings.rules_dir}"
    )
    for line in result.table():
        print(line)
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "audit": cmd_audit,
    "explain": cmd_explain,
    "record": cmd_record,
    "replay": cmd_replay,
}
