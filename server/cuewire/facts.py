"""What one event changes in the session and visitor facts.

The store applies these changes atomically (one Lua script per batch); this module decides
them, so both store backends and the rule engine agree on the names.

Session facts:

- ``events``, ``n:<type>``, ``c:<custom name>``: counters; ``pages``: page views (SPA too)
- ``url``, ``path``, ``page_started``: the current page and when it began (server ms)
- ``scroll``, ``dwell_ms``, ``visible``, ``visible_since``: the current page's deepest scroll
  milestone, the active dwell the client reported, and its visibility
- ``active_ms``, ``attention_at``: the current page's attentive time (visible and input
  within the last 15 s) as the client's last ``attention`` or ``visibility`` event reported
  it, and when the last ``attention`` beat came ("" after a page view or a visibility change:
  the beats of an attentive visitor set it again)
- ``last``, ``last_type``: the last event; ``active_at``: the last activity (not idle, not a
  hidden tab, not a prompt shown; an ``attention`` beat, sent while the visitor reads, is)
- ``landing``, ``referrer``: the first page of the session and its referrer
- ``p:<custom name>``: the props of the latest custom event of that name (JSON)
- ``d:<name>.<prop>:<value>``: a distinct value seen (only for props that rules count)
- ``showing``: the id of the prompt on screen, "" when none
- rule state: ``t:<rule>`` pending timer token, ``sq:<rule>`` sequence progress,
  ``w:<rule>:<group>`` window timestamps, ``queued:<rule>`` a queued prompt,
  ``hold:<rule>`` since when a due prompt waits for a tab; ``sid`` the tab to push to
- ``x:<name>`` facts set by rules, ``fired:<rule>``, ``prompts``, ``device``, ``tz``
- ``clk:<name>``: clicks on an element by ``data-cw-track`` name or selector (only the names
  rules test, see :func:`click_changes`)

Visitor facts:

- ``c:<custom name>``, ``at:<custom name>``: custom events over all sessions, and the last ms
- ``clk:<name>``: clicks on an element over all sessions, as on the session
- ``user_id``, ``user_verified`` (1 signed, 0 not), ``trait:<name>``: from identify (traits
  JSON-encoded); ``mail_to``: the ``email`` trait of a verified identify only (mail/)
- ``dismissed``, ``last_dismiss``: prompt dismissals and the last one's ms
- ``optout:<rule>``, ``snooze:<rule>``: ms of "don't show again" / "remind me later"
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any, Final
from urllib.parse import urlsplit

import msgspec

from . import fields

PROMPT_CLOSED = frozenset(
    ("prompt_click", "prompt_dismiss", "prompt_snooze", "prompt_optout", "prompt_expired")
)
# events that are not the visitor acting (a prompt that closed by itself is not either)
PASSIVE = frozenset(("idle", "prompt_shown", "prompt_expired", "visibility"))


def is_activity(event: dict[str, Any]) -> bool:
    return event["type"] not in PASSIVE or (
        event["type"] == "visibility" and event.get("state") == "visible"
    )


class FactChanges(msgspec.Struct, gc=False):
    """Hash changes of one event: increments, sets, set-if-absent; on session and visitor.
    (A msgspec Struct: built in C, its empty containers too, at half the cost of a plain
    class's ``__init__``; one is made for every event. Never in a reference cycle: it holds
    lists and dicts of strings only, so the collector need not track it.)"""

    incr: list[str] = []
    set: dict[str, str] = {}
    setnx: dict[str, str] = {}
    visitor_incr: list[str] = []
    visitor_set: dict[str, str] = {}
    # session fields set to "" only while they still hold the given value
    clear_if: dict[str, str] = {}

    def encoded(self, seq: int, event_json: str) -> list[Any]:
        """One event's entry of the ingest script's batch (see store/lua/ingest.lua)."""
        return [
            seq,
            event_json,
            self.incr,
            self.set,
            self.setnx,
            self.visitor_incr,
            self.visitor_set,
            self.clear_if,
        ]


# Caps on growth (Settings.limits): the kinds of names an event may add, and where.
TRAITS: Final = "traits"  # trait:<name> on the visitor
EVENT_NAMES: Final = "event_names"  # c:<name> on the session and on the visitor
PROP_VALUES: Final = "prop_values"  # d:<name>.<prop>:<value> on the session

# One name an event would add: ("s" session or "v" visitor, its kind, the name).
NewName = tuple[str, str, str]


def new_names(
    event: dict[str, Any], distinct: Mapping[str, frozenset[str]] | None = None
) -> list[NewName]:
    """The names ``event`` may add to the session and visitor hashes, for the caps.

    Only custom events and identify add names; the other types write a fixed set of fields.
    """
    kind = event["type"]
    if kind == "custom":
        name = event["name"]
        props = event.get("props") or {}
        found: list[NewName] = [
            ("s", EVENT_NAMES, fields.custom(name)),
            ("v", EVENT_NAMES, fields.custom(name)),
        ]
        for prop in (distinct or {}).get(name, ()):
            if props.get(prop) is not None:
                found.append(("s", PROP_VALUES, fields.distinct(name, prop, props[prop])))
        return found
    if kind == "identify":
        return [("v", TRAITS, fields.trait(trait)) for trait in event.get("traits", {})]
    return []


@lru_cache(maxsize=4096)
def path_of(url: str) -> str:
    return urlsplit(url).path or "/"


_encoder = msgspec.json.Encoder()


def _json(value: Any) -> str:
    """A value as the hashes keep it: compact JSON (the facts' readers parse it)."""
    return _encoder.encode(value).decode()


def changes_for(
    event: dict[str, Any],
    now_ms: int,
    distinct: Mapping[str, frozenset[str]] | None = None,
    clicks: frozenset[str] = frozenset(),
) -> FactChanges:
    """The fact changes of ``event``; ``distinct`` maps custom event names to the props
    whose distinct values rules count; ``clicks`` are the element names whose clicks rules
    count."""
    kind = event["type"]
    now = str(now_ms)
    counted = fields.COUNT + kind
    if kind == "page_view":  # the commonest rich event: its dicts built whole, in one go
        url = event["url"]
        return FactChanges(
            incr=["events", counted, "pages"],
            set={
                "last": now,
                "last_type": kind,
                "active_at": now,
                "url": url,
                "path": path_of(url),
                "page_started": now,
                "scroll": "0",
                "dwell_ms": "0",
                "active_ms": "0",
                "attention_at": "",
                "visible": "1",
                "visible_since": now,
                "showing": "",
            },
            setnx={"landing": url, "referrer": event.get("referrer") or ""},
        )
    ch = FactChanges(incr=["events", counted], set={"last": now, "last_type": kind})
    if is_activity(event):
        ch.set["active_at"] = now
    if kind == "scroll":
        ch.set["scroll"] = str(event["depth"])
    elif kind == "attention":
        ch.set.update(active_ms=str(event["active_ms"]), attention_at=now)
    elif kind == "visibility":
        visible = event["state"] == "visible"
        ch.set.update(dwell_ms=str(event["dwell_ms"]), visible="1" if visible else "0")
        ch.set["attention_at"] = ""  # no attentive time is presumed across a hidden stretch
        if event.get("active_ms") is not None:
            ch.set["active_ms"] = str(event["active_ms"])
        if visible:
            ch.set["visible_since"] = now
    elif kind == "custom":
        name = event["name"]
        props = event.get("props") or {}
        ch.incr.append(fields.custom(name))
        ch.set[fields.props(name)] = _json(props)
        ch.visitor_incr.append(fields.custom(name))
        ch.visitor_set[fields.last_at(name)] = now
        for prop in (distinct or {}).get(name, ()):
            if props.get(prop) is not None:
                ch.setnx[fields.distinct(name, prop, props[prop])] = now
    elif kind == "click":
        click_changes(event, clicks, ch)
    elif kind == "identify":
        ch.visitor_set["user_id"] = event["user_id"]
        ch.visitor_set["user_verified"] = "1" if event.get("verified") is True else "0"
        for trait, value in event.get("traits", {}).items():
            ch.visitor_set[fields.trait(trait)] = _json(value)
        email = event.get("traits", {}).get("email")
        if event.get("verified") is True and isinstance(email, str):
            ch.visitor_set[fields.MAIL_TO] = email  # where the rule action `email` sends
    if kind in PROMPT_CLOSED:
        # frees the slot only if this prompt still holds it: a late close of a prompt that a
        # higher-priority one replaced must not free the slot of the one on screen
        ch.clear_if["showing"] = event["prompt"]
        if kind == "prompt_dismiss":
            ch.visitor_incr.append("dismissed")
            ch.visitor_set["last_dismiss"] = now
        elif kind == "prompt_snooze":
            ch.visitor_set[fields.snooze(event["rule"])] = now
        elif kind == "prompt_optout":
            ch.visitor_set[fields.optout(event["rule"])] = now
    return ch


def click_changes(event: dict[str, Any], names: frozenset[str], ch: FactChanges) -> None:
    """Count a click on the session and the visitor under each name it goes by that rules
    test (``session.clicks.<name>``): its ``data-cw-track`` value and its selector. Only
    those names: the browser's text never adds fields of its choosing."""
    for name in names & {event.get("track"), event.get("selector")}:
        ch.incr.append(fields.clicks(name))
        ch.visitor_incr.append(fields.clicks(name))
