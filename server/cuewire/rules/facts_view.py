"""The fact names rules may test (docs/rules.md, "Facts"), resolved from stored state."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ..facts import path_of
from ..store.base import Facts
from .conditions import MISSING


def walk(value: Any, parts: list[str]) -> Any:
    for part in parts:
        if isinstance(value, dict) and part in value:
            value = value[part]
        else:
            return MISSING
    return value


class FactView:
    """Read-only view of one session, its visitor and (optionally) the triggering event."""

    def __init__(
        self,
        session: Facts,
        visitor: Facts,
        now_ms: int,
        event: dict[str, Any] | None = None,
    ) -> None:
        self.session = session
        self.visitor = visitor
        self.now_ms = now_ms
        self.event = event
        self.url: str = event["url"] if event else session.get("url", "")

    def get(self, name: str) -> Any:
        scope, _, rest = name.partition(".")
        resolver = getattr(self, f"_{scope}", None)
        if resolver is None or not rest:
            return MISSING
        return resolver(rest)

    def _event(self, rest: str) -> Any:
        return walk(self.event, rest.split(".")) if self.event else MISSING

    def _page(self, rest: str) -> Any:
        url = self.url or ""
        if rest == "url":
            return url
        if rest == "path":
            return path_of(url)
        if rest.startswith("query."):
            values = parse_qs(urlsplit(url).query).get(rest[6:])
            return values[0] if values else MISSING
        if rest == "seconds":
            return self._since("page_started")
        if rest in ("scroll", "dwell_ms"):
            return int(self.session.get(rest, 0))
        return MISSING

    def _session(self, rest: str) -> Any:
        head, _, tail = rest.partition(".")
        if head == "count":
            return int(self.session.get(f"n:{tail}", 0))
        if head == "custom":
            return int(self.session.get(f"c:{tail}", 0))
        if rest == "seconds":
            return self._since("started")
        if rest in ("pages", "events"):
            return int(self.session.get(rest, 0))
        if head == "last":
            name, _, prop = tail.partition(".")
            return walk(self._last().get(name), prop.split(".")) if prop else MISSING
        return self.session.get(rest, MISSING)

    def _visitor(self, rest: str) -> Any:
        if rest == "returning":
            return self.session.get("returning") == "1"
        if rest == "sessions":
            return int(self.visitor.get("sessions", 1))
        if rest == "days_since_last_visit":
            prev = self.session.get("prev_seen")
            return (self.now_ms - int(prev)) / 86_400_000 if prev else MISSING
        if rest.startswith("traits."):
            raw = self.visitor.get(f"trait:{rest[7:]}")
            return json.loads(raw) if raw is not None else MISSING
        return self.visitor.get(rest, MISSING)

    def _last(self) -> dict[str, Any]:
        """Props of the latest custom event of each name."""
        return {k[2:]: json.loads(v) for k, v in self.session.items() if k.startswith("p:")}

    def _since(self, field: str) -> Any:
        start = self.session.get(field)
        return (self.now_ms - int(start)) / 1000 if start else MISSING

    def template_context(self) -> dict[str, Any]:
        """What templates see of this view (all values untrusted, autoescaped on render)."""
        traits = {k[6:]: json.loads(v) for k, v in self.visitor.items() if k.startswith("trait:")}
        return {
            "visitor": {
                "returning": self.get("visitor.returning"),
                "sessions": self.get("visitor.sessions"),
                "traits": traits,
            },
            "session": {
                "url": self.url,
                "path": path_of(self.url or "/"),
                "pages": self.get("session.pages"),
                "last": self._last(),
            },
            "event": dict(self.event or {}),
        }
