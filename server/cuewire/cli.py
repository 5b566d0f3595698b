"""The ``cuewire`` command: serve, demo, check, audit, explain, record, replay, export, segment,
train."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import secrets
import socket
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from .codes import Outcome
from .errors import ConfigError, CuewireError, Problem, RuleError, SourceError
from .learn import cli as learn_cli
from .paths import describe, or_shipped, shipped
from .settings import Settings
from .sites import Sites


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rules", type=Path, help="rules folder (CUEWIRE_RULES_DIR)")
    parser.add_argument("--templates", type=Path, help="templates folder (CUEWIRE_TEMPLATES_DIR)")


def _server(parser: argparse.ArgumentParser, port: int) -> None:
    _common(parser)
    parser.add_argument("--host", help="address to listen on (CUEWIRE_HOST)")
    parser.add_argument("--port", type=int, help=f"port (CUEWIRE_PORT, default {port})")
    parser.add_argument(
        "--redis-url",
        help="redis://HOST:PORT/DB (one Redis or any node of a cluster), rediss://, unix://,"
        " redis+sentinel://SENTINEL[,SENTINEL]/SERVICE; none: embedded store (CUEWIRE_REDIS_URL)",
    )
    parser.add_argument("--log-level", default="info")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cuewire", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the server for your sites")
    _server(serve, Settings().port)
    serve.add_argument(
        "--sites", type=Path, help="sites file: site keys and allowed origins (CUEWIRE_SITES_FILE)"
    )
    serve.add_argument(
        "--workers",
        type=_positive,
        help="server processes sharing the port (default: one per core with Redis, "
        "1 on the embedded store; see docs/deploy.md)",
    )
    demo = sub.add_parser("demo", help="run the demo shop with the example rules")
    _server(demo, Settings().port)
    check = sub.add_parser(
        "check", help="validate rules, templates and a sites file; print file:line:col"
    )
    check.add_argument(
        "folders",
        nargs="*",
        type=Path,
        help="rule set folders, each checked on its own (default: --rules or ./rules)",
    )
    _common(check)
    check.add_argument("--sites", type=Path, help="also check this sites file")
    audit = sub.add_parser("audit", help="print the latest firings and suppressions of a site")
    _store(audit)
    audit.add_argument("-n", type=int, default=20, help="how many records (default 20)")
    audit.add_argument("--session", help="only this session")
    audit.add_argument("--rule", help="only this rule")
    audit.add_argument("--outcome", choices=[str(o) for o in Outcome])
    audit.add_argument("--json", action="store_true", help="one JSON object per line")
    audit.add_argument("--missed", action="store_true", help="firings the rules expect, unaudited")
    _common(audit)
    explain = sub.add_parser("explain", help="why each rule did or did not fire in a session")
    explain.add_argument("session", help="the session id (see the QA view or `cuewire audit`)")
    _store(explain)
    _common(explain)
    explain.add_argument("--json", action="store_true")
    record = sub.add_parser("record", help="save a site's recent sessions to a JSON-lines file")
    _store(record)
    record.add_argument("--out", type=Path, required=True, help="the file to write")
    record.add_argument(
        "--max-batches", type=int, default=10_000, help="at most this many batches (default 10000)"
    )
    replay = sub.add_parser("replay", help="run recorded sessions through a rule set")
    replay.add_argument("file", type=Path, help="a file written by `cuewire record`")
    _common(replay)
    replay.add_argument("--json", action="store_true")
    export = sub.add_parser("export", help="load events and decisions into a warehouse")
    postgres = export.add_subparsers(dest="sink", required=True).add_parser(
        "postgres", help="into PostgreSQL, exactly once, until stopped (docs/export.md)"
    )
    _store(postgres)
    _common(postgres)
    postgres.add_argument("--dsn", help="postgresql://USER@HOST/DB (CUEWIRE_EXPORT_DSN)")
    postgres.add_argument("--consumer", default=socket.gethostname(), help="consumer name")
    postgres.add_argument("--batch", type=_positive, default=500, help="entries per batch")
    postgres.add_argument("--claim-idle-s", type=float, default=30.0, help="take over after")
    learn_cli.add_commands(sub)
    return parser


def _positive(raw: str) -> int:
    value = int(raw)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{raw}: give at least 1")
    return value


def _store(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--site", default="demo", help="the site key (default demo)")
    parser.add_argument(
        "--redis-url", required=True, help="the server's store (CUEWIRE_KEY_PREFIX applies)"
    )


def _settings(args: argparse.Namespace, **extra: object) -> Settings:
    """Settings from the environment, overridden by the flags that were given."""
    overrides: dict[str, object] = {
        "rules_dir": getattr(args, "rules", None),
        "templates_dir": getattr(args, "templates", None),
        "host": getattr(args, "host", None),
        "port": getattr(args, "port", None),
        "redis_url": getattr(args, "redis_url", None),
    }
    overrides.update({k: v for k, v in extra.items() if v is not None})
    settings = Settings.from_env(overrides)
    # Outside the repository there is no ./templates: use the starter kit shipped with cuewire.
    templates = or_shipped(settings.templates_dir, Settings().templates_dir, "templates")
    return replace(settings, templates_dir=templates)


def plural(count: int, noun: str) -> str:
    """``1 rule``, ``2 rules``."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _folders(settings: Settings) -> str:
    """Which rules and templates folders a command uses (said at start)."""
    rules = describe(settings.rules_dir)
    templates = describe(settings.templates_dir, Settings().templates_dir)
    return f"rules from {rules}, templates from {templates}"


def _run(settings: Settings, sites: Sites, log_level: str) -> None:
    """One server in this process."""
    import uvicorn

    from .app import create_app
    from .transport import uvicorn_options
    from .workers import event_loop, tune_gc

    app = create_app(settings, sites)
    tune_gc()
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=log_level,
        loop=event_loop(),
        lifespan="on",
        timeout_graceful_shutdown=5,
        **uvicorn_options(settings.limits.max_payload_bytes),
    )


def cmd_serve(args: argparse.Namespace) -> int:
    settings = _settings(args, sites_file=args.sites)
    if settings.sites_file is None:
        raise ConfigError(
            "no sites file: pass --sites FILE or set CUEWIRE_SITES_FILE (see docs/deploy.md)"
        )
    from .workers import serve_workers, worker_count

    sites = Sites.load(settings.sites_file)
    workers = worker_count(args.workers, settings)
    print(f"Cuewire: {_folders(settings)}, sites from {settings.sites_file}", flush=True)
    if workers > 1:
        print(f"Cuewire: {workers} workers on port {settings.port}", flush=True)
        return serve_workers(settings, workers, args.log_level)
    _run(settings, sites, args.log_level)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    settings = _settings(
        args,
        rules_dir=args.rules or shipped("rules") / "demo",
        templates_dir=args.templates or shipped("templates"),
        demo_site_dir=shipped("demo-site"),
    )
    if not settings.smtp_url:  # emails go to the demo's own mailbox (/qa/mail)
        settings = replace(settings, demo_mail_sink=True, mail_unverified=True, mail_poll_s=0.5)
    if not settings.admin_password:  # a fresh one per run, never a built-in default
        settings = replace(settings, admin_password=secrets.token_urlsafe(9))
    origins = [f"http://{h}:{settings.port}" for h in ("127.0.0.1", "localhost", settings.host)]
    base = f"http://127.0.0.1:{settings.port}"
    print(
        f"Cuewire demo shop: {base}/\n"
        f"QA view: {base}/qa   studio: {base}/studio   mailbox: {base}/qa/mail   "
        f"(user {settings.admin_user}, password {settings.admin_password})\n"
        "Ctrl+C to stop.",
        flush=True,
    )
    _run(settings, Sites.demo(sorted(set(origins))), args.log_level)
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from .rules.loader import rule_sets
    from .runtime import load_sources
    from .sites import sites_problems

    settings = _settings(args)
    templates = settings.templates_dir
    shown = describe(templates, Settings().templates_dir)
    problems: list[Problem] = []
    said: list[str] = []
    for folder in args.folders or [settings.rules_dir]:
        try:
            loaded = load_sources(folder, templates)
        except RuleError as exc:
            sets = rule_sets(folder)
            if not sets:
                problems += exc.problems
                continue
            # A folder of rule sets (rules/ holds demo/ and examples/): each is one set.
            names = ", ".join(p.name for p in sets)
            said.append(f"{folder} holds {len(sets)} rule sets ({names}): checked one by one")
            for one in sets:
                try:
                    loaded = load_sources(one, templates)
                except SourceError as inner:
                    problems += inner.problems
                    continue
                said.append(_ok(len(loaded.engine.rules), one, len(loaded.catalog), shown))
            continue
        except SourceError as exc:
            problems += exc.problems
            continue
        said.append(_ok(len(loaded.engine.rules), folder, len(loaded.catalog), shown))
    if args.sites is not None:
        found = sites_problems(args.sites)
        problems += found
        if not found:
            said.append(f"ok: sites file {args.sites}")
    if problems:
        for problem in problems:
            print(problem, file=sys.stderr)
        print(plural(len(problems), "problem"), file=sys.stderr)
        return 1
    for line in said:
        print(line)
    return 0


def _ok(rules: int, folder: Path, templates: int, shown: str) -> str:
    where = describe(folder)
    return f"ok: {plural(rules, 'rule')} in {where}, {plural(templates, 'template')} in {shown}"


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

        return missed(_settings(args), args.site, args.json)
    wanted = {"session": args.session, "rule": args.rule, "outcome": args.outcome}
    filtered = any(wanted.values())

    async def read() -> list[dict[str, str]]:
        async with open_store(_settings(args)) as store:
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

    settings = _settings(args)
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
        async with open_store(_settings(args)) as store:
            with args.out.open("w", encoding="utf-8") as out:
                return await record(store, args.site, out, args.max_batches)

    batches, audit = asyncio.run(run())
    print(
        f"recorded {batches} batches and {audit} audit records of site {args.site!r} to {args.out}"
    )
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from .replay import Recording, replay

    settings = _settings(args)
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


def cmd_export(args: argparse.Namespace) -> int:
    from .export.command import export_postgres

    settings = _settings(args, export_dsn=args.dsn)
    sites, idle_ms = args.site.split(","), round(args.claim_idle_s * 1000)
    asyncio.run(export_postgres(settings, sites, args.consumer, args.batch, idle_ms))
    return 0


COMMANDS = {
    "serve": cmd_serve,
    "demo": cmd_demo,
    "check": cmd_check,
    "audit": cmd_audit,
    "explain": cmd_explain,
    "record": cmd_record,
    "replay": cmd_replay,
    "export": cmd_export,
    **learn_cli.COMMANDS,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=getattr(args, "log_level", "info").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return COMMANDS[args.command](args)
    except CuewireError as exc:
        code = getattr(exc, "code", None)
        print(f"cuewire: {f'[{code}] ' if code else ''}{exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
