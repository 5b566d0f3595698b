"""What the ``cuewire`` commands share: the flags for the rule and template folders and
for a site's store, and the settings a command runs with (the environment, then its flags)."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from .paths import or_shipped
from .settings import Settings


def add_folders(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rules", type=Path, help="rules folder (CUEWIRE_RULES_DIR)")
    parser.add_argument("--templates", type=Path, help="templates folder (CUEWIRE_TEMPLATES_DIR)")


def add_store(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--site", default="demo", help="the site key (default demo)")
    parser.add_argument(
        "--redis-url", required=True, help="the server's store (CUEWIRE_KEY_PREFIX applies)"
    )


def settings_from(args: argparse.Namespace, **extra: object) -> Settings:
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
