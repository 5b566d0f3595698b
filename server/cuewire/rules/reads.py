"""Which fields of the session and visitor hashes the engine reads for a rule set: what a
store call returns (and what a process keeps per session, prediction.py), so neither grows
with the hashes nor, for the rules' own state (read by prefix), with the rules."""

from __future__ import annotations

import json
from dataclasses import dataclass

from msgspec import UNSET

from .. import fields
from ..learn import features
from ..template_reads import ALL, TemplateReads
from .model import Condition, Rule

# The session and visitor fields every batch's engine run may read (facts_view.py, engine.py),
# whatever the rules say.
SESSION_FIELDS = (
    *("started", "active_at", "page_started", "url", "path", "landing", "referrer", "device"),
    "tz",
    *("pages", "events", "prompts", "scroll", "dwell_ms", "visible", "visible_since"),
    *("active_ms", "attention_at"),
    *("returning", "prev_seen", "last", "last_type"),
)
VISITOR_FIELDS = ("sessions", "user_id", "user_verified", "first_seen")


# The hash field prefix of ``session.<head>.<name>`` and ``visitor.<head>.<name>`` facts
# (facts_view.FactView reads them there).
SESSION_FACT_FIELDS = {
    "count": fields.COUNT,
    "custom": fields.CUSTOM,
    "clicks": fields.CLICKS,
    "facts": fields.FACT,
}
VISITOR_FACT_FIELDS = {
    "traits": fields.TRAIT,
    "facts": fields.FACT,
    "custom": fields.CUSTOM,
    "clicks": fields.CLICKS,
    "since": fields.LAST_AT,
    "shown": fields.SHOWN,
}


@dataclass(frozen=True)
class Fields:
    """What ingest.lua returns of the session and visitor hashes: exact fields, and fields
    by prefix (``d:<name>.<prop>:`` values, ``w:<rule>:`` windows, ``queued:``)."""

    session: tuple[str, ...]
    session_prefixes: tuple[str, ...]
    visitor: tuple[str, ...]
    visitor_prefixes: tuple[str, ...] = ()

    def encoded(self) -> str:
        """The JSON ingest.lua reads (computed once per rule set)."""
        spec = {
            "s": list(self.session),
            "sp": list(self.session_prefixes),
            "v": list(self.visitor),
            "vp": list(self.visitor_prefixes),
        }
        return json.dumps(spec, separators=(",", ":"))


def fact_fields(name: str, session: set[str], prefixes: set[str], visitor: set[str]) -> None:
    """Add the hash fields fact ``name`` reads (facts_view.FactView) to the sets."""
    scope, _, rest = name.partition(".")
    head, _, tail = rest.partition(".")
    if name == "visitor.segment" or name.startswith("session.propensity."):
        session.update(features.SESSION_FIELDS)  # the feature vector's facts
        visitor.update(features.VISITOR_FIELDS)
    elif scope == "session":
        if head == "last":
            session.add(fields.props(tail.partition(".")[0]))
        elif head == "distinct":
            prefixes.add(fields.distinct_prefix(tail))
        else:
            prefix = SESSION_FACT_FIELDS.get(head)
            if prefix and tail:
                session.add(prefix + tail)
    elif scope == "visitor":
        prefix = VISITOR_FACT_FIELDS.get(head)
        if prefix and tail:
            visitor.add(prefix + tail)


def _facts_of(cond: Condition | None, found: set[str], segments: dict[str, Condition]) -> None:
    if cond is None:
        return
    for sub in [*(cond.all or []), *(cond.any or [])] + (
        [cond.not_] if cond.not_ is not UNSET else []
    ):
        _facts_of(sub, found, segments)
    if isinstance(cond.fact, str):
        found.add(cond.fact)


def fields_of(
    rules: list[Rule],
    segments: dict[str, Condition],
    clicks: frozenset[str],
    templates: TemplateReads = ALL,
) -> Fields:
    """The fields the engine reads for ``rules``: fixed ones, the rules' state (by prefix, so
    the list, and what a store call costs, does not grow with the rules), the facts their
    conditions (and the segments) name, and, with live shows, what ``templates`` read."""
    session, visitor = set(SESSION_FIELDS), set(VISITOR_FIELDS)
    prefixes = {fields.TIMER, fields.FIRED, fields.SEQUENCE, fields.QUEUED}
    if any(rule.trigger.count is not UNSET for rule in rules):
        prefixes.add(fields.WINDOW)
    names: set[str] = set()
    for rule in rules:
        _facts_of(rule.when, names, segments)
        if rule.trigger.facts is not UNSET:
            _facts_of(rule.trigger.facts, names, segments)
    for segment in segments.values():
        _facts_of(segment, names, segments)
    for name in names:
        fact_fields(name, session, prefixes, visitor)
    for click in clicks:
        session.add(fields.clicks(click))
        visitor.add(fields.clicks(click))
    visitor_prefixes = {fields.SHOWN}
    if any(rule.show is not None and rule.mode != "shadow" for rule in rules):
        # what templates read (FactView.template_context; the rest is in SESSION_FIELDS and
        # VISITOR_FIELDS): a show renders before its store call, from these (fold.py)
        if templates.traits is None:
            visitor_prefixes.add(fields.TRAIT)
        else:
            visitor.update(fields.trait(name) for name in templates.traits)
        if templates.last is None:
            prefixes.add(fields.PROPS)
        else:
            session.update(fields.props(name) for name in templates.last)
    return Fields(
        tuple(sorted(session)),
        tuple(sorted(prefixes)),
        tuple(sorted(visitor)),
        tuple(sorted(visitor_prefixes)),
    )
