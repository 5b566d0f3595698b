"""The fact names rules may test (docs/rules.md, "Facts"), resolved from stored state."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qs, urlsplit

import msgspec

from .. import fields
from ..clock import DAY_MS
from ..facts import path_of
from ..learn.features import features
from ..learn.models import NO_MODELS, Models
from ..store.base import Facts
from .conditions import MISSING
from .model import Condition

# JSON facts (props, traits, set facts), decoded on the firing path: msgspec takes 0.24 us
# for a product's props where json.loads took 1.9
_json_decode = msgspec.json.Decoder().decode

HOUR_MS = 3_600_000
# The snippet beats every 5 s while there was input and counts a visitor attentive for 15 s
# after an input: after a beat, at least 10 s more are attentive even if no input follows.
ATTENTION_TAIL_MS = 10_000


def walk(value: Any, parts: list[str]) -> Any:
    for part in parts:
        if isinstance(value, dict) and part in value:
            value = value[part]
        else:
            return MISSING
    return value


def _int(value: str | None) -> int:
    try:
        return int(value) if value else 0
    except ValueError:
        return 0


class FactView:
    """Read-only view of one session, its visitor and (optionally) the triggering event."""

    __slots__ = (
        "event",
        "memo",
        "models",
        "now_ms",
        "path_memo",
        "segment",
        "segments",
        "session",
        "url",
        "vector",
        "visitor",
    )

    def __init__(
        self,
        session: Facts,
        visitor: Facts,
        now_ms: int,
        event: dict[str, Any] | None = None,
        segments: Mapping[str, Condition] | None = None,
        models: Models = NO_MODELS,
    ) -> None:
        self.session = session
        self.visitor = visitor
        self.now_ms = now_ms
        self.event = event
        self.url: str = event["url"] if event else session.get("url", "")
        # the view is its conditions' Lookup itself: a Scope over self.get would be a
        # reference cycle per event, left to the garbage collector
        self.segments: Mapping[str, Condition] = {} if segments is None else segments
        self.path_memo: tuple[str, str] | None = None
        self.memo: dict[str, Any] | None = None
        self.models = models
        self.vector: tuple[float, ...] | None = None
        self.segment: str | None = None  # visitor.segment, once a rule read it

    def read(self, name: str) -> Any:
        """:meth:`get`, remembered: for the alpha index, which reads a fact once per event
        (no fact a rule can test changes while the engine handles one event)."""
        memo = self.memo
        if memo is None:
            memo = self.memo = {}
        elif name in memo:
            return memo[name]
        value = memo[name] = self.get(name)
        return value

    def get(self, name: str) -> Any:
        scope, _, rest = name.partition(".")
        resolver = _RESOLVERS.get(scope)
        if resolver is None or not rest:
            return MISSING
        return resolver(self, rest)

    def _event(self, rest: str) -> Any:
        return walk(self.event, rest.split(".")) if self.event else MISSING

    def _page(self, rest: str) -> Any:
        url = self.url or ""
        if rest == "url":
            return url
        if rest == "path":
            if self.path_memo is None or self.path_memo[0] != url:  # delivery may set url later
                # ingest stores the path beside the url of the latest page: reuse it
                same = self.session.get("url") == url and self.session.get("path")
                self.path_memo = (url, same or path_of(url))
            return self.path_memo[1]
        if rest.startswith("query."):
            values = parse_qs(urlsplit(url).query).get(rest[6:])
            return values[0] if values else MISSING
        if rest == "seconds":
            return self._since(self.session.get("page_started"))
        if rest == "active_seconds":
            return self.active_ms() / 1000
        if rest == "scroll":
            return _int(self.session.get("scroll"))
        if rest == "attention_seconds":  # as the snippet last reported it (attention events)
            return _int(self.session.get("active_ms")) / 1000
        return MISSING

    def active_ms(self) -> int:
        """Attentive time on the current page (visible, and input, scroll or pointer movement
        within the last 15 s): what the snippet last reported, plus the stretch since its last
        ``attention`` beat that is surely attentive (at most :data:`ATTENTION_TAIL_MS`, and
        only while the page is visible)."""
        return _int(self.session.get("active_ms")) + self.attentive_tail()

    def attentive_tail(self) -> int:
        """Time since the last ``attention`` beat counted as attentive; 0 once the visitor has
        been idle long enough that only a new beat can tell (or the page is hidden)."""
        beat = self.session.get("attention_at")
        if not beat or self.session.get("visible", "1") != "1":
            return 0
        return min(ATTENTION_TAIL_MS, max(0, self.now_ms - _int(beat)))

    def idle_for_attention(self) -> bool:
        """No attentive time is accruing: only the next ``attention`` beat can add some."""
        beat = self.session.get("attention_at")
        return not beat or self.now_ms - _int(beat) >= ATTENTION_TAIL_MS

    def features(self) -> tuple[float, ...]:
        """The session's feature vector (learn/features.py), once per view."""
        if self.vector is None:
            self.vector = features(self.session, self.visitor)
        return self.vector

    def _session(self, rest: str) -> Any:
        head, _, tail = rest.partition(".")
        s = self.session
        if head == "propensity":
            model = self.models.propensity
            if model is None or tail != model.spec.target:
                return MISSING
            return model.score(self.features())
        if head == "count":
            return _int(s.get(fields.count(tail)))
        if head == "custom":
            return _int(s.get(fields.custom(tail)))
        if head == "last":
            name, _, prop = tail.partition(".")
            return walk(self._last().get(name), prop.split(".")) if prop else MISSING
        if head == "clicks":
            return _int(s.get(fields.clicks(tail)))
        if head == "distinct":
            prefix = fields.distinct_prefix(tail)
            return sum(1 for k in s if k.startswith(prefix))
        if head == "facts":
            return _decoded(s.get(fields.fact(tail)))
        if head == "utm":
            values = parse_qs(urlsplit(s.get("landing", "")).query).get(f"utm_{tail}")
            return values[0] if values else MISSING
        if rest == "seconds":
            return self._since(s.get("started"))
        if rest == "idle_seconds":
            return self._since(s.get("active_at") or s.get("started"))
        if rest in ("pages", "events", "prompts"):
            return _int(s.get(rest))
        if rest in ("local_hour", "local_weekday"):
            return self._local(rest)
        if rest in ("landing", "referrer", "device"):
            return s.get(rest, MISSING)
        return MISSING

    def _local(self, what: str) -> Any:
        tz = self.session.get("tz")
        if tz is None:
            return MISSING
        local_ms = self.now_ms - _int(tz) * 60_000  # tz is JavaScript's getTimezoneOffset()
        if what == "local_hour":
            return (local_ms // HOUR_MS) % 24
        return (local_ms // DAY_MS + 3) % 7  # 0 = Monday (1970-01-01 was a Thursday)

    def _visitor(self, rest: str) -> Any:
        head, _, tail = rest.partition(".")
        v = self.visitor
        if rest == "returning":
            return self.session.get("returning") == "1"
        if rest == "segment":
            segments = self.models.segments
            if segments is None:
                return MISSING
            self.segment = segments.assign(self.features())
            return self.segment
        if rest == "sessions":
            return _int(v.get("sessions")) or 1
        if rest == "days_since_last_visit":
            prev = self.session.get("prev_seen")
            return (self.now_ms - int(prev)) / DAY_MS if prev else MISSING
        if head == "traits":
            return _decoded(v.get(fields.trait(tail)))
        if head == "facts":
            return _decoded(v.get(fields.fact(tail)))
        if head == "custom":
            return _int(v.get(fields.custom(tail)))
        if head == "clicks":
            return _int(v.get(fields.clicks(tail)))
        if head == "since":
            return self._since(v.get(fields.last_at(tail)))
        if head == "shown":
            return _int(v.get(fields.shown(tail)))
        if rest in ("user_id", "first_seen"):
            return v.get(rest, MISSING)
        return MISSING

    def _last(self) -> dict[str, Any]:
        """Props of the latest custom event of each name."""
        return {
            k.removeprefix(fields.PROPS): _json_decode(v)
            for k, v in self.session.items()
            if k.startswith(fields.PROPS)
        }

    def _since(self, start: str | None) -> Any:
        return (self.now_ms - int(start)) / 1000 if start else MISSING

    def template_context(self) -> dict[str, Any]:
        """What templates see of this view (all values untrusted, autoescaped on render).
        Its fields are among those a rule set with shows reads (rules/reads.py: props and
        traits by prefix), so a prompt renders ahead of its store call (fold.py)."""
        traits = {
            k.removeprefix(fields.TRAIT): _json_decode(v)
            for k, v in self.visitor.items()
            if k.startswith(fields.TRAIT)
        }
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


# a fact name's first part -> what resolves the rest of it (event.*, page.*, ...)
_RESOLVERS: dict[str, Callable[[FactView, str], Any]] = {
    "event": FactView._event,
    "page": FactView._page,
    "session": FactView._session,
    "visitor": FactView._visitor,
}


def _decoded(raw: str | None) -> Any:
    if raw is None:
        return MISSING
    try:
        return _json_decode(raw)
    except ValueError:
        return raw
