"""Load every rule file under a folder; collect all problems as file:line:col."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import msgspec

from ..errors import Problem, RuleError
from ..sources import YamlDoc, read_yaml
from .model import Rule, RuleFile

RULE_SUFFIXES = (".yaml", ".yml")


def rule_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*") if p.suffix in RULE_SUFFIXES and p.is_file())


def load_rules(folder: Path, templates: Iterable[str] | None = None) -> list[Rule]:
    """All enabled rules under ``folder``; raise :class:`RuleError` listing every problem.

    ``templates``, when given, are the template names a rule may show.
    """
    known = set(templates) if templates is not None else None
    problems: list[Problem] = []
    rules: list[Rule] = []
    first_seen: dict[str, Problem] = {}
    for path in rule_files(folder):
        doc = read_yaml(path)
        if isinstance(doc, Problem):
            problems.append(doc)
            continue
        if doc.data is None:
            continue
        try:
            parsed = msgspec.convert(doc.data, RuleFile)
        except msgspec.ValidationError as exc:
            problems.append(doc.validation_problem(exc))
            continue
        for index, rule in enumerate(parsed.rules):
            problems += _check(doc, index, rule, known, first_seen)
            rules.append(rule)
    if problems:
        raise RuleError(problems)
    return [r for r in rules if r.enabled]


def _check(
    doc: YamlDoc, index: int, rule: Rule, known: set[str] | None, first_seen: dict[str, Problem]
) -> list[Problem]:
    here: list[str | int] = ["rules", index]
    found: list[Problem] = []
    if rule.id in first_seen:
        origin = first_seen[rule.id]
        found.append(
            doc.problem(
                [*here, "id"],
                f"duplicate rule id {rule.id!r} (first defined at {origin.path}:{origin.line})",
            )
        )
    else:
        first_seen[rule.id] = doc.problem([*here, "id"], "")
    if known is not None and rule.show.template not in known:
        choices = ", ".join(sorted(known)) or "none found"
        found.append(
            doc.problem(
                [*here, "show", "template"],
                f"unknown template {rule.show.template!r} (known: {choices})",
            )
        )
    return found
