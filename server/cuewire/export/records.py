"""Export records, schema version 1 (docs/export.md): what a warehouse receives.

Two source streams, one record kind each (plus conversions, derived by the sink):

- the live stream (``keys.live``): one entry per accepted batch, ``at`` (server ms),
  ``session``, ``visitor``, ``events`` (a JSON list), ``device`` (the session's device class,
  when the session has one): one :class:`EventRecord` per event;
- the audit stream (``keys.audit``, audit.py): one entry per candidate firing: one
  :class:`DecisionRecord` (fired, suppressed with its code and reason, holdout, queued,
  replaced, dropped).

A record's ``id`` is its stream entry id (plus the event's index in its batch): with the site,
the key a sink de-duplicates on. Add fields; never rename or remove one (a new shape is
``v: 2``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

VERSION = 1


class Kind(StrEnum):
    EVENT = "event"
    DECISION = "decision"
    CONVERSION = "conversion"


class Source(StrEnum):
    """The stream a record comes from."""

    LIVE = "live"
    AUDIT = "audit"


class Unreadable(ValueError):
    """A stream entry that does not hold what its stream promises (reported, never loaded)."""


@dataclass(frozen=True)
class EventRecord:
    site: str
    entry: str  # the live stream entry id (one batch)
    index: int  # the event's place in its batch
    at_ms: int  # when the server accepted the batch
    session: str
    visitor: str
    type: str
    event: dict[str, Any]  # the event as the browser or backend sent it (validated)
    device: str = ""  # the session's device class (device.py) when the batch was stored

    def to_json(self) -> dict[str, Any]:
        return {
            "v": VERSION,
            "kind": str(Kind.EVENT),
            "site": self.site,
            "id": f"{self.entry}/{self.index}",
            "at": self.at_ms,
            "session": self.session,
            "visitor": self.visitor,
            "type": self.type,
            "device": self.device,
            "event": self.event,
        }


DECISION_FIELDS = (
    "outcome",
    "code",
    "reason",
    "rule",
    "session",
    "visitor",
    "cause",
    "prompt",
    "template",
    "variant",
    "url",
    "firing",
)


@dataclass(frozen=True)
class DecisionRecord:
    site: str
    entry: str  # the audit stream entry id
    at_ms: int
    latency_ms: int
    fields: Mapping[str, str]  # DECISION_FIELDS, "" when absent
    event: dict[str, Any]  # the triggering event

    def __getitem__(self, name: str) -> str:
        return self.fields[name]

    def to_json(self) -> dict[str, Any]:
        return {
            "v": VERSION,
            "kind": str(Kind.DECISION),
            "site": self.site,
            "id": self.entry,
            "at": self.at_ms,
            "latency_ms": self.latency_ms,
            **self.fields,
            "event": self.event,
        }


@dataclass(frozen=True)
class ConversionRecord:
    site: str
    decision: str  # the converted decision's id (its audit entry)
    rule: str
    variant: str
    visitor: str
    decided_at_ms: int
    goal: str  # the goal event's id (``<live entry>/<index>``)
    converted_at_ms: int

    def to_json(self) -> dict[str, Any]:
        return {
            "v": VERSION,
            "kind": str(Kind.CONVERSION),
            "site": self.site,
            "id": self.decision,
            "rule": self.rule,
            "variant": self.variant,
            "visitor": self.visitor,
            "decided_at": self.decided_at_ms,
            "goal": self.goal,
            "at": self.converted_at_ms,
        }


def _ms(fields: Mapping[str, str], name: str) -> int:
    raw = fields.get(name, "")
    if not raw.isdigit():
        raise Unreadable(f"field {name!r} is {raw!r}, not a time in ms")
    return int(raw)


def _object(raw: str, what: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise Unreadable(f"{what} is not JSON: {exc}") from exc


def events_of(site: str, entry: str, fields: Mapping[str, str]) -> list[EventRecord]:
    """The records of one live stream entry; Unreadable when it is not a batch."""
    at = _ms(fields, "at")
    events = _object(fields.get("events", ""), "events")
    if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
        raise Unreadable("events is not a list of objects")
    session, visitor, device = (fields.get(f, "") for f in ("session", "visitor", "device"))
    return [
        EventRecord(site, entry, i, at, session, visitor, str(e.get("type", "")), e, device)
        for i, e in enumerate(events)
    ]


def decision_of(site: str, entry: str, fields: Mapping[str, str]) -> DecisionRecord:
    """The record of one audit stream entry; Unreadable when it is not an audit record."""
    if not fields.get("outcome") or not fields.get("rule"):
        raise Unreadable("no outcome or rule")
    event = _object(fields.get("event") or "{}", "event")
    latency = fields.get("latency_ms", "0")
    return DecisionRecord(
        site,
        entry,
        _ms(fields, "at"),
        int(latency) if latency.isdigit() else 0,
        {name: fields.get(name, "") for name in DECISION_FIELDS},
        event if isinstance(event, dict) else {},
    )
