"""The live rule set and template catalog, with hot reload that keeps the last good set."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError, Problem, SourceError
from .goals import MEASURE_FILE, Goals
from .learn.models import ModelFiles
from .mail.templates import EmailCatalog
from .measures import Measures
from .render import Catalog
from .rules.engine import Engine
from .rules.index import RuleSet
from .rules.loader import load_rules, rule_files

log = logging.getLogger(__name__)


EMAIL_TEMPLATES = "email"  # the email templates' folder, inside the templates folder


@dataclass(frozen=True)
class Loaded:
    engine: Engine
    catalog: Catalog
    emails: EmailCatalog


def load_sources(rules_dir: Path, templates_dir: Path, models: ModelFiles | None = None) -> Loaded:
    """Load and check templates (prompts, then emails), then the rules that use them, and the
    learned models (by default those in ``<rules_dir>/models/``). Raises SourceError."""
    catalog = Catalog.load(templates_dir)
    emails = EmailCatalog.load(templates_dir / EMAIL_TEMPLATES)
    found = load_rules(rules_dir, catalog.names, emails.names)
    goals_file = rules_dir / MEASURE_FILE
    try:
        goals = Goals.load(goals_file)
    except ConfigError as exc:
        raise SourceError([Problem(goals_file, 1, 1, str(exc))]) from exc
    measures = Measures(goals, found.funnels, [rule.id for rule in found.rules])
    learned = (models or ModelFiles.beside(rules_dir)).load()
    rules = RuleSet(found.rules, found.segments, found.policy, measures, learned, catalog.reads())
    return Loaded(Engine(rules), catalog, emails)


def _fingerprint(
    rules_dir: Path, templates_dir: Path, models: ModelFiles
) -> tuple[tuple[str, int, int], ...]:
    emails = templates_dir / EMAIL_TEMPLATES
    files = [
        *rule_files(rules_dir),
        rules_dir / MEASURE_FILE,
        *sorted(templates_dir.glob("*")),
        *sorted(emails.glob("*")),
        *models.paths(),
    ]
    stats = []
    for path in files:
        try:
            st = path.stat()
        except OSError:
            continue
        stats.append((str(path), st.st_mtime_ns, st.st_size))
    return tuple(stats)


class Runtime:
    """Holds what is live. ``engine`` and ``catalog`` always return a complete, valid set."""

    def __init__(
        self, rules_dir: Path, templates_dir: Path, models: ModelFiles | None = None
    ) -> None:
        self.rules_dir = rules_dir
        self.templates_dir = templates_dir
        # models are reloaded with the rules: a retrained file goes live like an edited rule
        self.models = models or ModelFiles.beside(rules_dir)
        self._loaded = load_sources(rules_dir, templates_dir, self.models)
        self._seen = _fingerprint(rules_dir, templates_dir, self.models)
        self.last_error: str | None = None
        self.generation = 1
        self._reloading = asyncio.Lock()  # two overlapping reloads must not let the older win

    def engine(self) -> Engine:
        return self._loaded.engine

    def catalog(self) -> Catalog:
        return self._loaded.catalog

    def emails(self) -> EmailCatalog:
        return self._loaded.emails

    async def reload_if_changed(self) -> bool:
        """Reload off the event loop when a file changed; True when a new set went live."""
        async with self._reloading:
            return await self._reload_if_changed()

    async def _reload_if_changed(self) -> bool:
        seen = await asyncio.to_thread(
            _fingerprint, self.rules_dir, self.templates_dir, self.models
        )
        if seen == self._seen:
            return False
        try:
            loaded = await asyncio.to_thread(
                load_sources, self.rules_dir, self.templates_dir, self.models
            )
        except SourceError as exc:
            self._seen = seen
            self.last_error = str(exc)
            log.error("reload failed, keeping the last good rules and templates:\n%s", exc)
            return False
        # Any other exception leaves ``_seen`` as it was, so the restarted watcher tries again.
        self._seen = seen
        self._loaded = loaded
        self.last_error = None
        self.generation += 1
        log.info("reloaded %d rules, %d templates", len(loaded.engine.rules), len(loaded.catalog))
        return True

    async def watch(self, interval_s: float) -> None:
        """Reload whenever a file changes; runs until cancelled (app.py supervises it: an
        unexpected exception is logged, shown in /healthz, and the watcher restarts)."""
        while True:
            await asyncio.sleep(interval_s)
            await self.reload_if_changed()
