"""What one event changes in the session and visitor facts.

The store applies these changes atomically (one Lua script per batch); this module decides
them, so the Redis and embedded backends and the rule engine agree on the names:

| session fact | meaning |
|---|---|
| ``events``, ``n:<type>``, ``c:<custom name>`` | counters |
| ``pages`` | page views in the session (SPA route changes included) |
| ``url``, ``path``, ``page_started`` | the current page and when it began (server ms) |
| ``scroll``, ``dwell_ms`` | deepest scroll milestone and active dwell on the current page |
| ``last``, ``last_type`` | server ms of the last event and its type |
| ``landing``, ``referrer`` | the first page of the session and its referrer |
| ``p:<custom name>`` | the props of the latest custom event of that name (JSON) |
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit


@dataclass
class FactChanges:
    """Hash changes of one event: increments, sets, set-if-absent, visitor sets."""

    incr: list[str] = field(default_factory=list)
    set: dict[str, str] = field(default_factory=dict)
    setnx: dict[str, str] = field(default_factory=dict)
    visitor_set: dict[str, str] = field(default_factory=dict)

    def flat(self) -> list[str]:
        """Encode for the ingest script: counts, then the fields and values."""
        out = [str(len(self.incr)), *self.incr]
        for mapping in (self.set, self.setnx, self.visitor_set):
            out.append(str(len(mapping)))
            for k, v in mapping.items():
                out += [k, v]
        return out


def path_of(url: str) -> str:
    return urlsplit(url).path or "/"


def changes_for(event: dict[str, Any], now_ms: int) -> FactChanges:
    kind = event["type"]
    ch = FactChanges(incr=["events", f"n:{kind}"], set={"last": str(now_ms), "last_type": kind})
    if kind == "page_view":
        ch.incr.append("pages")
        ch.set.update(
            url=event["url"],
            path=path_of(event["url"]),
            page_started=str(now_ms),
            scroll="0",
            dwell_ms="0",
        )
        ch.setnx.update(landing=event["url"], referrer=event.get("referrer") or "")
    elif kind == "scroll":
        ch.set["scroll"] = str(event["depth"])
    elif kind == "visibility":
        ch.set["dwell_ms"] = str(event["dwell_ms"])
    elif kind == "custom":
        ch.incr.append(f"c:{event['name']}")
        ch.set[f"p:{event['name']}"] = json.dumps(event.get("props") or {})
    elif kind == "identify":
        ch.visitor_set["user_id"] = event["user_id"]
        for name, value in event.get("traits", {}).items():
            ch.visitor_set[f"trait:{name}"] = json.dumps(value)
    return ch
