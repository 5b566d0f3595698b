"""Load every rule file under a folder; collect all problems as file:line:col."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
from msgspec import UNSET

from ..errors import Problem, RuleError
from ..sources import YamlDoc, read_yaml
from .model import PATTERN_HINTS, Condition, Funnel, Policy, Rule, RuleFile

RULE_SUFFIXES = (".yaml", ".yml")


@dataclass
class LoadedRules:
    rules: list[Rule] = field(default_factory=list)
    segments: dict[str, Condition] = field(default_factory=dict)
    policy: Policy | None = None
    funnels: list[Funnel] = field(default_factory=list)


def rule_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*") if p.suffix in RULE_SUFFIXES and p.is_file())


def rule_sets(folder: Path) -> list[Path]:
    """The subfolders of a folder of rule sets (like the repository's rules/, with demo/ and
    examples/): no rule file of its own and two or more subfolders holding rule files. Empty
    for an ordinary rule set."""
    if not folder.is_dir() or any(p.suffix in RULE_SUFFIXES for p in folder.iterdir()):
        return []
    sets = sorted(p for p in folder.iterdir() if p.is_dir() and rule_files(p))
    return sets if len(sets) >= 2 else []


def load_rules(folder: Path, templates: Iterable[str] | None = None) -> LoadedRules:
    """All enabled rules, segments and the policy under ``folder``; raise :class:`RuleError`
    listing every problem. ``templates``, when given, are the template names rules may show."""
    known = set(templates) if templates is not None else None
    problems: list[Problem] = []
    loaded = LoadedRules()
    first_seen: dict[str, Problem] = {}
    policy_at: Problem | None = None
    checks: list[tuple[YamlDoc, int, Rule]] = []
    funnels: list[tuple[YamlDoc, int, Funnel]] = []
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
            problems.append(doc.validation_problem(exc, hints=PATTERN_HINTS))
            continue
        for index, rule in enumerate(parsed.rules):
            problems += _duplicate(doc, index, rule, first_seen)
            checks.append((doc, index, rule))
            loaded.rules.append(rule)
        for name, condition in parsed.segments.items():
            if name in loaded.segments:
                problems.append(
                    doc.problem(["segments", name], f"segment {name!r} is defined twice")
                )
            loaded.segments[name] = condition
        if parsed.policy is not None:
            if policy_at is not None:
                problems.append(
                    doc.problem(
                        ["policy"],
                        f"policy is already set at {policy_at.path}:{policy_at.line}; set it once",
                    )
                )
            policy_at = doc.problem(["policy"], "")
            loaded.policy = parsed.policy
        for index, funnel in enumerate(parsed.funnels):
            funnels.append((doc, index, funnel))
    for doc, index, rule in checks:
        problems += _references(doc, index, rule, known, loaded.segments)
    problems += _funnel_problems(funnels, {rule.id for _, _, rule in checks})
    loaded.funnels = [funnel for _, _, funnel in funnels]
    if problems:
        raise RuleError(problems)
    loaded.rules = [r for r in loaded.rules if r.enabled]
    return loaded


def _duplicate(
    doc: YamlDoc, index: int, rule: Rule, first_seen: dict[str, Problem]
) -> list[Problem]:
    here: list[str | int] = ["rules", index, "id"]
    if rule.id not in first_seen:
        first_seen[rule.id] = doc.problem(here, "")
        return []
    origin = first_seen[rule.id]
    return [
        doc.problem(
            here, f"duplicate rule id {rule.id!r} (first defined at {origin.path}:{origin.line})"
        )
    ]


def _funnel_problems(funnels: list[tuple[YamlDoc, int, Funnel]], rules: set[str]) -> list[Problem]:
    """Funnel ids are unique; a funnel splits by a rule that exists."""
    found: list[Problem] = []
    first: dict[str, Problem] = {}
    for doc, index, funnel in funnels:
        here: list[str | int] = ["funnels", index]
        if funnel.id in first:
            at = first[funnel.id]
            message = f"duplicate funnel id {funnel.id!r} (first defined at {at.path}:{at.line})"
            found.append(doc.problem([*here, "id"], message))
        else:
            first[funnel.id] = doc.problem([*here, "id"], "")
        if funnel.split is not None and funnel.split not in rules:
            found.append(doc.problem([*here, "split"], f"unknown rule {funnel.split!r}"))
    return found


def _references(
    doc: YamlDoc, index: int, rule: Rule, known: set[str] | None, segments: dict[str, Condition]
) -> list[Problem]:
    """Templates and segments a rule names must exist."""
    here: list[str | int] = ["rules", index]
    found: list[Problem] = []
    if known is not None and rule.show is not None:
        choices = ", ".join(sorted(known)) or "none found"
        named: list[tuple[list[str | int], str]] = [(["show", "template"], rule.show.template)]
        named += [
            (["show", "variants", i, "template"], v.template)
            for i, v in enumerate(rule.show.variants)
            if v.template is not None
        ]
        for where, name in named:
            if name not in known:
                found.append(
                    doc.problem([*here, *where], f"unknown template {name!r} (known: {choices})")
                )
    facts = rule.trigger.facts
    for key, cond in (("when", rule.when), ("trigger", facts if facts is not UNSET else None)):
        for name in _segment_names(cond):
            if name not in segments:
                found.append(doc.problem([*here, key], f"unknown segment {name!r}"))
    return found


def _segment_names(cond: Condition | None) -> Iterator[str]:
    if cond is None:
        return
    if isinstance(cond.segment, str):
        yield cond.segment
    for sub in [*(cond.all or []), *(cond.any or [])]:
        yield from _segment_names(sub)
    if cond.not_ is not UNSET:
        yield from _segment_names(cond.not_)
