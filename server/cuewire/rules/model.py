"""Typed models of rule files (docs/rules.md). Validation errors carry the path of the field."""

from __future__ import annotations

import functools
import hashlib
import re
from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType, field

from ..protocol import EVENT_TYPES

RuleId = Annotated[str, Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
DURATION_PATTERN = r"^\d+(\.\d+)?\s*(ms|s|m|h|d)$"
DurationText = Annotated[
    str,
    Meta(pattern=DURATION_PATTERN, description='"250ms", "30s", "10m", "24h", "2 h", "30d"'),
]
Duration = DurationText | Annotated[float, Meta(gt=0)]
Bound = float | DurationText  # gt/gte/lt/lte: a number, or a duration for a time fact
Scalar = str | int | float | bool | None
Selector = Annotated[str, Meta(min_length=1, max_length=256)]  # a CSS selector
# A share of visitors, "0%" to "100%" (decimals allowed): the pattern itself refuses 150%,
# so `cuewire check` points at the field
PERCENT_PATTERN = r"^(100(\.0+)?|\d{1,2}(\.\d+)?)\s*%$"
PERCENT_TEXT = 'a share of visitors from "0%" to "100%", e.g. "10%" or "2.5%"'
Percent = Annotated[str, Meta(pattern=PERCENT_PATTERN, description=PERCENT_TEXT)]
# What `cuewire check` says instead of msgspec's "Expected `str` matching regex ..."
PATTERN_HINTS = {
    PERCENT_PATTERN: PERCENT_TEXT,
    DURATION_PATTERN: 'a duration such as "250ms", "30s", "10m", "24h" or "30d"',
}

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
OPERATORS = ("equals", "in_", "contains", "glob", "regex", "gt", "gte", "lt", "lte", "exists")


@functools.lru_cache(maxsize=1024)
def duration_ms(value: str | float) -> int:
    """``"30s"`` -> 30000, ``"24h"`` -> 86400000; a bare number is seconds."""
    if isinstance(value, str):
        number, unit = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)", value).groups()  # type: ignore[union-attr]
        return round(float(number) * _UNITS[unit] * 1000)
    return round(value * 1000)


def time_unit_s(fact: str) -> float | None:
    """Seconds per unit of a time fact (``visitor.days_since_last_visit``: 86400); None for
    a fact that is not a time."""
    if fact in (
        *("page.seconds", "page.active_seconds", "page.attention_seconds"),
        *("session.seconds", "session.idle_seconds"),
    ):
        return 1.0
    if fact.startswith("visitor.since."):
        return 1.0
    if fact == "visitor.days_since_last_visit":
        return 86400.0
    if fact.startswith("event.") and (fact == "event.ms" or fact.endswith("_ms")):
        return 0.001
    return None


@functools.lru_cache(maxsize=4096)
def bound_value(fact: str, bound: str | float) -> float:
    """A comparison bound as a number: a duration (``lt: 24h``) in the unit of the time fact
    it compares with (``visitor.days_since_last_visit``: 1.0). The rule keeps its text, so
    ``explain`` shows what was written."""
    if isinstance(bound, str):
        return duration_ms(bound) / 1000 / (time_unit_s(fact) or 1.0)
    return float(bound)


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
    gt: Bound | UnsetType = UNSET
    gte: Bound | UnsetType = UNSET
    lt: Bound | UnsetType = UNSET
    lte: Bound | UnsetType = UNSET
    exists: bool | UnsetType = UNSET
    segment: str | UnsetType = UNSET

    def __post_init__(self) -> None:
        forms = [
            n for n in ("all", "any", "not_", "fact", "segment") if getattr(self, n) is not UNSET
        ]
        ops = [n for n in OPERATORS if getattr(self, n) is not UNSET]
        if len(forms) != 1:
            raise ValueError(
                "a condition is exactly one of: all, any, not, segment, or fact + operator"
            )
        if forms == ["fact"] and len(ops) != 1:
            names = ", ".join(o.rstrip("_") for o in OPERATORS)
            raise ValueError(f"a fact condition needs exactly one operator ({names})")
        if forms != ["fact"] and ops:
            raise ValueError("operators go with `fact`, not with all/any/not/segment")
        if isinstance(self.regex, str):
            try:
                re.compile(self.regex)
            except re.error as exc:
                raise ValueError(f"invalid regex: {exc}") from exc
        for name in ("gt", "gte", "lt", "lte"):
            bound = getattr(self, name)
            # a duration (see bound_value) needs a time fact
            if isinstance(bound, str) and time_unit_s(str(self.fact)) is None:
                raise ValueError(
                    f"`{name}: {bound}` is a duration, which compares only with a time fact "
                    "(page.seconds, page.active_seconds, page.attention_seconds, session.seconds, "
                    "session.idle_seconds, visitor.since.<name>, "
                    "visitor.days_since_last_visit, event.ms); write a number here"
                )


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
        _at_least(self.within, "within")


class Inactivity(msgspec.Struct, forbid_unknown_fields=True):
    """No activity in the session (any tab) for ``for``."""

    for_: Duration = field(name="for")

    def __post_init__(self) -> None:
        _at_least(self.for_, "for")


class Dwell(msgspec.Struct, forbid_unknown_fields=True):
    """``for`` spent on the current page; ``active`` counts only time the page was visible."""

    for_: Duration = field(name="for")
    active: bool = True

    def __post_init__(self) -> None:
        _at_least(self.for_, "for")


class Sequence(msgspec.Struct, forbid_unknown_fields=True):
    """``steps`` happened in this order, the last within ``within`` of the first."""

    steps: Annotated[list[Match], Meta(min_length=2, max_length=8)]
    within: Duration

    def __post_init__(self) -> None:
        _at_least(self.within, "within")


class Count(msgspec.Struct, forbid_unknown_fields=True):
    """At least ``at_least`` events matching ``of`` within a sliding ``within`` window,
    counted per value of ``group_by`` (an event field such as ``props.category``) if given."""

    of: Match
    at_least: Annotated[int, Meta(ge=1, le=1000)]
    within: Duration
    group_by: str | None = None

    def __post_init__(self) -> None:
        _at_least(self.within, "within")


TRIGGER_KINDS = ("event", "facts", "absence", "inactivity", "dwell", "sequence", "count")


class Trigger(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """What makes a rule a candidate: exactly one kind."""

    event: Match | UnsetType = UNSET
    facts: Condition | UnsetType = UNSET
    absence: Absence | UnsetType = UNSET
    inactivity: Inactivity | UnsetType = UNSET
    dwell: Dwell | UnsetType = UNSET
    sequence: Sequence | UnsetType = UNSET
    count: Count | UnsetType = UNSET

    def __post_init__(self) -> None:
        kinds = [k for k in TRIGGER_KINDS if getattr(self, k) is not UNSET]
        if len(kinds) != 1:
            raise ValueError(f"a trigger is exactly one of: {', '.join(TRIGGER_KINDS)}")

    @property
    def kind(self) -> str:
        return next(k for k in TRIGGER_KINDS if getattr(self, k) is not UNSET)


class Variant(msgspec.Struct, forbid_unknown_fields=True):
    id: Annotated[str, Meta(pattern=r"^[A-Za-z0-9_.-]{1,32}$")]
    weight: Annotated[float, Meta(gt=0)] = 1.0
    template: str | None = None
    params: dict[str, Any] = {}


class Show(msgspec.Struct, forbid_unknown_fields=True):
    """Render ``template`` (or a weighted variant's) with ``params`` and push it."""

    template: str
    params: dict[str, Any] = {}
    variants: list[Variant] = []
    holdout: Annotated[float, Meta(ge=0, lt=1)] = 0.0
    experiment: str | None = None
    # CSS selectors of page elements the prompt must not cover (the snippet places it beside
    # them or in another corner), e.g. the product's "Add to cart" button.
    avoid: Annotated[list[Selector], Meta(max_length=8)] = []

    def __post_init__(self) -> None:
        ids = [v.id for v in self.variants]
        if len(set(ids)) != len(ids):
            raise ValueError("variant ids must be unique")


class Webhook(msgspec.Struct, forbid_unknown_fields=True):
    """POST the firing as JSON to ``url`` (signed when the site has a webhook secret)."""

    url: Annotated[str, Meta(pattern=r"^https?://")]
    headers: dict[str, str] = {}


class SetFact(msgspec.Struct, forbid_unknown_fields=True):
    """Set a fact other rules can test: ``session.facts.<name>`` or ``visitor.facts.<name>``."""

    name: Annotated[str, Meta(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
    value: Scalar = True
    scope: Literal["session", "visitor"] = "session"


class Limit(msgspec.Struct, forbid_unknown_fields=True):
    """How often a rule may fire."""

    per_session: Annotated[int, Meta(ge=0)] = 1
    per_visitor_day: Annotated[int, Meta(ge=0)] = 0
    per_visitor_week: Annotated[int, Meta(ge=0)] = 0
    cooldown: Duration | None = None


class Rule(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    id: RuleId
    description: str = ""
    enabled: bool = True
    priority: int = 0
    trigger: Trigger
    when: Condition | None = None
    show: Show | None = None
    webhook: Webhook | None = None
    set: list[SetFact] = []
    limit: Limit = field(default_factory=Limit)
    on_conflict: Literal["drop", "queue"] = "drop"
    max_late: Duration | None = None  # a deadline due longer ago is dropped; policy default
    # shadow: evaluated and governed as if live, audited `shadow_fired`, acts on nothing
    mode: Literal["live", "shadow"] = "live"
    rollout: Percent | None = None  # live for this share of visitors only (experiments.py)

    def __post_init__(self) -> None:
        if self.show is None and self.webhook is None and not self.set:
            raise ValueError("a rule needs at least one action: show, webhook or set")


class DismissPolicy(msgspec.Struct, forbid_unknown_fields=True):
    count: Annotated[int, Meta(ge=1)] = 2
    pause: Duration = "24h"


class Policy(msgspec.Struct, forbid_unknown_fields=True):
    """Site-wide governance, set once (in any one rule file)."""

    max_prompts_per_session: Annotated[int, Meta(ge=0)] = 0
    one_prompt_at_a_time: bool = True
    snooze: Duration = "1h"
    dismissals: DismissPolicy | None = field(default_factory=DismissPolicy)
    max_late: Duration = "2m"  # a deadline due longer ago than this (an outage) is dropped


class Funnel(msgspec.Struct, forbid_unknown_fields=True):
    """Steps visitors take in order (funnels.py): each step an event pattern, as a trigger's;
    ``within``: the time from the first step to the last (none: no limit); ``split``: a rule
    whose exposure (and variant) splits the counts, "did the prompt help?"."""

    id: Annotated[str, Meta(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
    steps: Annotated[list[Match], Meta(min_length=2, max_length=12)]
    description: str = ""
    within: Duration | None = None
    split: RuleId | None = None


class RuleFile(msgspec.Struct, forbid_unknown_fields=True):
    rules: list[Rule] = []
    segments: dict[Annotated[str, Meta(pattern=r"^[A-Za-z0-9_.-]{1,64}$")], Condition] = {}
    policy: Policy | None = None
    funnels: list[Funnel] = []


def rollout_share(rollout: str | None) -> float:
    """``"10%"`` -> 0.1; no rollout -> 1.0 (every visitor)."""
    return 1.0 if rollout is None else float(rollout.rstrip().rstrip("%")) / 100


def digest(rule: Rule) -> str:
    """A short digest of ``rule`` as loaded (every field, comments and layout aside): the
    audit records carry it, so `cuewire audit --missed` can tell a rule changed since."""
    return hashlib.sha256(msgspec.json.encode(rule)).hexdigest()[:12]


def _at_least(value: str | float, name: str) -> None:
    if duration_ms(value) < 100:
        raise ValueError(f"`{name}` must be at least 100ms")
