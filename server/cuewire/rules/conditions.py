"""Evaluate condition trees against facts (docs/rules.md, "Conditions")."""

from __future__ import annotations

import fnmatch
import functools
import re
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from msgspec import UNSET

from .model import Condition, bound_value

MISSING: Any = object()


class Lookup(Protocol):
    """Where conditions read facts: ``get(name)``, and named segments to expand (a
    :class:`Scope`, or the engine's view of one event, rules/facts_view.py)."""

    @property
    def segments(self) -> Mapping[str, Condition]: ...

    def get(self, name: str) -> Any: ...


class Scope:
    """A :class:`Lookup` over a function."""

    __slots__ = ("get", "segments")

    def __init__(
        self, get: Callable[[str], Any], segments: Mapping[str, Condition] | None = None
    ) -> None:
        self.get = get
        self.segments: Mapping[str, Condition] = {} if segments is None else segments


def evaluate(cond: Condition, lookup: Lookup) -> bool:
    """Whether ``cond`` holds (the hot path: no explanation is built)."""
    if cond.all is not UNSET:
        return all(evaluate(sub, lookup) for sub in cond.all)
    if cond.any is not UNSET:
        return any(evaluate(sub, lookup) for sub in cond.any)
    if cond.not_ is not UNSET:
        return not evaluate(cond.not_, lookup)
    if cond.segment is not UNSET:
        segment = lookup.segments.get(cond.segment)
        return segment is not None and evaluate(segment, lookup)
    return _holds(cond, lookup.get(str(cond.fact)))


def first_failure(cond: Condition, lookup: Lookup) -> str | None:
    """None when ``cond`` holds, else a sentence naming the first condition that failed."""
    if cond.all is not UNSET:
        for sub in cond.all:
            failure = first_failure(sub, lookup)
            if failure:
                return failure
        return None
    if cond.any is not UNSET:
        failures = [first_failure(sub, lookup) for sub in cond.any]
        if all(failures):
            return "none of: " + "; ".join(f for f in failures if f)
        return None
    if cond.not_ is not UNSET:
        return None if first_failure(cond.not_, lookup) else f"not expected: {describe(cond.not_)}"
    if cond.segment is not UNSET:
        segment = lookup.segments.get(cond.segment)
        if segment is None:
            return f"unknown segment {cond.segment!r}"
        failure = first_failure(segment, lookup)
        return f"segment {cond.segment}: {failure}" if failure else None
    actual = lookup.get(str(cond.fact))
    if _holds(cond, actual):
        return None
    shown = "missing" if actual is MISSING else repr(actual)
    return f"{describe(cond)} (was {shown})"


def describe(cond: Condition) -> str:
    if cond.segment is not UNSET:
        return f"segment {cond.segment}"
    if cond.fact is UNSET:
        return "all/any/not group"
    for name in ("equals", "in_", "contains", "glob", "regex", "gt", "gte", "lt", "lte", "exists"):
        value = getattr(cond, name)
        if value is not UNSET:
            return f"{cond.fact} {name.rstrip('_')} {value!r}"
    return str(cond.fact)


@functools.lru_cache(maxsize=4096)
def _glob(pattern: str) -> Callable[[str], re.Match[str] | None]:
    """What ``fnmatch.fnmatchcase(name, pattern)`` tests, compiled once per pattern."""
    return re.compile(fnmatch.translate(pattern)).match


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None or value is MISSING:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _same(actual: Any, expected: Any) -> bool:
    if actual is MISSING:
        return False
    if isinstance(expected, bool):
        return actual is expected or str(actual).lower() in (
            ("1", "true") if expected else ("0", "false")
        )
    if isinstance(expected, int | float):
        return _number(actual) == float(expected)
    if expected is None:
        return actual is None or actual == ""
    return bool(str(actual) == expected)


def _holds(cond: Condition, actual: Any) -> bool:
    if cond.exists is not UNSET:
        present = actual is not MISSING and actual is not None and actual != ""
        return present is cond.exists
    if cond.equals is not UNSET:
        return _same(actual, cond.equals)
    if cond.in_ is not UNSET:
        return any(_same(actual, option) for option in cond.in_)
    if actual is MISSING or actual is None:
        return False
    if cond.contains is not UNSET:
        if isinstance(actual, list | tuple | set):
            return any(_same(item, cond.contains) for item in actual)
        return str(cond.contains) in str(actual)
    if cond.glob is not UNSET:
        return _glob(cond.glob)(str(actual)) is not None
    if cond.regex is not UNSET:
        return re.search(cond.regex, str(actual)) is not None
    number = _number(actual)
    if number is None:
        return False
    for name, test in (
        ("gt", float.__gt__),
        ("gte", float.__ge__),
        ("lt", float.__lt__),
        ("lte", float.__le__),
    ):
        bound = getattr(cond, name)
        if bound is not UNSET:
            return bool(test(number, bound_value(str(cond.fact), bound)))
    return False
