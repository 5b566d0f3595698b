"""The ``cuewire`` command: serve, demo, check, audit, explain, record, replay, export, segment,
train."""

from __future__ import annotations

import argparse
import asyncio
import logging
import secrets
import socket
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from . import inspect_cli
from .cli_args import add_folders, add_store, settings_from
from .errors import ConfigError, CuewireError, Problem, RuleError, SourceError
from .learn import cli as learn_cli
from .paths import describe, shipped
from .settings import Settings
from .sites import Sites


def _server(parser: argparse.ArgumentParser, port: int) -> None:
    add_folders(parser)
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
    add_folders(check)
    check.add_argument("--sites", type=Path, help="also check this sites file")
    inspect_cli.add_commands(sub)
    export = sub.add_parser("export", help="load events and decisions into a warehouse")
    postgres = export.add_subparsers(dest="sink", required=True).add_parser(
        "postgres", help="into PostgreSQL, exactly once, until stopped (docs/export.md)"
    )
    add_store(postgres)
    add_folders(postgres)
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
    settings = settings_from(args, sites_file=args.sites)
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
    settings = settings_from(
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

    settings = settings_from(args)
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


def cmd_export(args: argparse.Namespace) -> int:
    from .export.command import export_postgres

    settings = settings_from(args, export_dsn=args.dsn)
    sites, idle_ms = args.site.split(","), round(args.claim_idle_s * 1000)
    asyncio.run(export_postgres(settings, sites, args.consumer, args.batch, idle_ms))
    return 0


COMMANDS = {
    "serve": cmd_serve,
    "demo": cmd_demo,
    "check": cmd_check,
    "export": cmd_export,
    **inspect_cli.COMMANDS,
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
