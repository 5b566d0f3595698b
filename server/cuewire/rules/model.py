"""Typed models of rule files (docs/rules.md). Validation errors carry the path of the field."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType, field

from ..protocol import EVENT_TYPES

RuleId = Annotated[str, Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
Duration = (
    Annotated[str, Meta(pattern=r"^\d+(\.\d+)?\s*(ms|s|m|h|d)$")] | Annotated[float, Meta(gt=0)]
)
Scalar = str | int | float | bool | None

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
OPERATORS = ("equals", "in_", "contains", "glob", "regex", "gt", "gte", "lt", "lte", "exists")


def duration_ms(value: str | float) -> int:
    """``"30s"`` -> 30000; a bare number is seconds."""
    if isinstance(value, str):
        number, unit = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)", value).groups()  # type: ignore[union-attr]
        return round(float(number) * _UNITS[unit] * 1000)
    return round(value * 1000)


class Condition(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """``all`` / ``any`` / ``not`` of conditions, or one operator on one ``fact``."""

    all: list[Condition] | UnsetType = UNSET
    any: list[Condition] | UnsetType = UNSET
    not_: Condition | UnsetType = field(default=UNSET, name="not")
    fact: str | UnsetType = UNSET
    equals: Scalar | UnsetType = UNSET
    in_: list[Scalar] | UnsetType = field(default=UNSET, name="in")
    contains: Scalar | UnsetType = UNSET
    glob: str | UnsetType = UNSET
    regex: str | UnsetType = UNSET
    gt: float | UnsetType = UNSET
    gte: float | UnsetType = UNSET
    lt: float | UnsetType = UNSET
    lte: float | UnsetType = UNSET
    exists: bool | UnsetType = UNSET

    def __post_init__(self) -> None:
        forms = [n for n in ("all", "any", "not_", "fact") if getattr(self, n) is not UNSET]
        ops = [n for n in OPERATORS if getattr(self, n) is not UNSET]
        if len(forms) != 1:
            raise ValueError("a condition is exactly one of: all, any, not, or fact + operator")
        if forms == ["fact"] and len(ops) != 1:
            names = ", ".join(o.rstrip("_") for o in OPERATORS)
            raise ValueError(f"a fact condition needs exactly one operator ({names})")
        if forms != ["fact"] and ops:
            raise ValueError("operators go with `fact`, not with all/any/not")
        if isinstance(self.regex, str):
            try:
                re.compile(self.regex)
            except re.error as exc:
                raise ValueError(f"invalid regex: {exc}") from exc


class Match(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """An event pattern: its type, for ``custom`` events its name, and conditions on fields."""

    type: str
    name: str | UnsetType = UNSET
    where: Condition | UnsetType = UNSET

    def __post_init__(self) -> None:
        if self.type not in EVENT_TYPES:
            raise ValueError(f"unknown event type {self.type!r}; one of: {', '.join(EVENT_TYPES)}")
        if self.name is not UNSET and self.type != "custom":
            raise ValueError("`name` matches custom events only (type: custom)")


class Absence(msgspec.Struct, forbid_unknown_fields=True):
    """``after`` happened and ``missing`` did not follow within ``within``."""

    after: Match
    missing: Match
    within: Duration
    scope: Literal["page", "session"] = "session"

    def __post_init__(self) -> None:
        if duration_ms(self.within) < 100:
            raise ValueError("`within` must be at least 100ms")


class Trigger(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """What makes a rule a candidate: exactly one kind."""

    event: Match | UnsetType = UNSET
    absence: Absence | UnsetType = UNSET

    def __post_init__(self) -> None:
        kinds = [k for k in ("event", "absence") if getattr(self, k) is not UNSET]
        if len(kinds) != 1:
            raise ValueError("a trigger is exactly one of: event, absence")


class Show(msgspec.Struct, forbid_unknown_fields=True):
    template: str
    params: dict[str, Any] = {}


class Rule(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    id: RuleId
    description: str = ""
    enabled: bool = True
    priority: int = 0
    trigger: Trigger
    when: Condition | None = None
    show: Show


class RuleFile(msgspec.Struct, forbid_unknown_fields=True):
    rules: list[Rule]
