"""The ``cuewire`` command: serve, demo, check, audit."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from .errors import ConfigError, CuewireError, SourceError
from .paths import shipped
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
        "--redis-url", help="redis://HOST:PORT/DB; none: embedded store (CUEWIRE_REDIS_URL)"
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
    demo = sub.add_parser("demo", help="run the demo shop with the example rules")
    _server(demo, Settings().port)
    check = sub.add_parser("check", help="validate rules and templates; print file:line:col")
    _common(check)
    audit = sub.add_parser("audit", help="print the latest firings of a site")
    audit.add_argument("--site", default="demo")
    audit.add_argument("--redis-url", required=True)
    audit.add_argument("-n", type=int, default=20)
    return parser


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
    return Settings.from_env(overrides)


def _run(settings: Settings, sites: Sites, log_level: str) -> None:
    import uvicorn

    from .app import create_app

    app = create_app(settings, sites)
    loop = "uvloop" if _has("uvloop") else "asyncio"
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=log_level,
        loop=loop,
        ws="websockets-sansio",
        lifespan="on",
    )


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def cmd_serve(args: argparse.Namespace) -> int:
    settings = _settings(args, sites_file=args.sites)
    if settings.sites_file is None:
        raise ConfigError(
            "no sites file: pass --sites FILE or set CUEWIRE_SITES_FILE (see docs/deploy.md)"
        )
    _run(settings, Sites.load(settings.sites_file), args.log_level)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    settings = _settings(
        args,
        rules_dir=args.rules or shipped("rules") / "demo",
        templates_dir=args.templates or shipped("templates"),
        demo_site_dir=shipped("demo-site"),
    )
    origins = [f"http://{h}:{settings.port}" for h in ("127.0.0.1", "localhost", settings.host)]
    print(f"Cuewire demo shop: http://127.0.0.1:{settings.port}/  (Ctrl+C to stop)", flush=True)
    _run(settings, Sites.demo(sorted(set(origins))), args.log_level)
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from .runtime import load_sources

    settings = _settings(args)
    rules_dir = args.rules or settings.rules_dir
    templates_dir = args.templates or settings.templates_dir
    try:
        loaded = load_sources(rules_dir, templates_dir)
    except SourceError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print(f"{len(exc.problems)} problem(s)", file=sys.stderr)
        return 1
    print(
        f"ok: {len(loaded.engine.rules)} rules in {rules_dir}, "
        f"{len(loaded.catalog)} templates in {templates_dir}"
    )
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    from .store import open_store

    async def show() -> None:
        store = open_store(Settings(redis_url=args.redis_url))
        try:
            for record in await store.read_audit(args.site, args.n):
                print(json.dumps(record, sort_keys=True))
        finally:
            await store.aclose()

    asyncio.run(show())
    return 0


COMMANDS = {"serve": cmd_serve, "demo": cmd_demo, "check": cmd_check, "audit": cmd_audit}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=getattr(args, "log_level", "info").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return COMMANDS[args.command](args)
    except CuewireError as exc:
        print(f"cuewire: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
