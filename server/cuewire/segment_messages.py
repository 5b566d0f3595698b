"""A Segment message as a Cuewire event: the fields Cuewire reads (:class:`Message`), its
mapping (track: ``custom``, identify: ``identify``, page: ``page_view``; screen, group and
alias are accepted and skipped), its seq from its messageId, its props flattened, its time
from Segment's timestamps, and validation reasons in the message's terms. The HTTP endpoints
are in segment_api.py; docs/integrations.md, "Segment-compatible API", has the mapping."""

from __future__ import annotations

import hashlib
import re
import secrets
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from .codes import Reject
from .errors import ProtocolError
from .protocol import Id, Scalar

MESSAGE_MAX_BYTES = 32 * 1024  # Segment: at most 32 KB per call and per message of a batch
# seqs made from messageIds: below 1e14, so exact as Lua numbers (14 significant digits)
SEQ_BITS = 46
MAPPED = {"track": "custom", "identify": "identify", "page": "page_view"}
NOT_MAPPED = frozenset({"screen", "group", "alias"})
CALLS = (*MAPPED, *sorted(NOT_MAPPED))


class Message(msgspec.Struct, rename="camel"):
    """The fields of a Segment message Cuewire reads; others (integrations, ...) are ignored."""

    type: str | None = None
    user_id: Annotated[str, Meta(min_length=1, max_length=256)] | None = None
    anonymous_id: Id | None = None
    message_id: Annotated[str, Meta(min_length=1, max_length=256)] | None = None
    event: Annotated[str, Meta(min_length=1, max_length=128)] | None = None
    name: str | None = None
    properties: dict[str, Any] | None = None
    traits: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    timestamp: str | None = None
    original_timestamp: str | None = None
    sent_at: str | None = None


class Invalid(ProtocolError):
    """A message Cuewire cannot take: rejected with ``code``."""

    def __init__(self, code: Reject, reason: str) -> None:
        super().__init__(reason)
        self.code = code


_json = msgspec.json.Encoder()


@dataclass(frozen=True)
class Shared:
    """What a batch request gives all its messages: its ``context``, merged under each
    message's own, and its ``sentAt``."""

    context: dict[str, Any]
    sent_at: str | None

    def context_of(self, message: Message) -> dict[str, Any]:
        return {**self.context, **(message.context or {})}


def message_of(raw: Any, shared: Shared, now_ms: int) -> tuple[Message, dict[str, Any]] | str:
    """A message and its Cuewire event (not validated yet), or why it has none (skipped,
    ``not_mapped``); raises for a message Cuewire cannot take."""
    size = len(_json.encode(raw))
    if size > MESSAGE_MAX_BYTES:
        reason = f"message too large: {size} bytes, at most {MESSAGE_MAX_BYTES}"
        raise Invalid(Reject.EVENT_TOO_LARGE, reason)
    message = msgspec.convert(raw, Message)
    if message.type in NOT_MAPPED:
        return f"{message.type}: accepted; no Cuewire event stands for it"
    if message.type == "identify" and message.user_id is None:
        return "identify without userId: Cuewire keeps traits of identified users"
    return message, _event_of(message, shared, now_ms)


def _event_of(message: Message, shared: Shared, now_ms: int) -> dict[str, Any]:
    """The Cuewire event of a track, identify or page message (not validated yet)."""
    kind = message.type
    if kind not in MAPPED:
        raise Invalid(
            Reject.INVALID_EVENT,
            f"type: expected one of {', '.join(CALLS)}, got {kind!r}",
        )
    if message.user_id is None and message.anonymous_id is None:
        raise Invalid(Reject.INVALID_EVENT, f"{kind}: a message needs userId or anonymousId")
    context = shared.context_of(message)
    given = context.get("page")
    page: dict[str, Any] = given if isinstance(given, dict) else {}
    props = message.properties or {}
    event: dict[str, Any] = {
        "type": MAPPED[kind],
        "ts": _event_ms(message, shared.sent_at, now_ms),
        "seq": _seq_of(message.message_id),
        "url": text_of(page.get("url")) or "segment:",
    }
    if kind == "track":
        if message.event is None:
            raise Invalid(Reject.INVALID_EVENT, "track: `event` (its name) is required")
        event.update(name=message.event, props=_scalars(props))
    elif kind == "identify":
        event.update(user_id=message.user_id, traits=_scalars(message.traits or {}))
    else:
        for name in ("url", "path"):
            found = text_of(props.get(name)) or text_of(page.get(name))
            if found:
                event["url"] = found
                break
        title = text_of(props.get("title")) or text_of(page.get("title")) or message.name
        referrer = text_of(props.get("referrer")) or text_of(page.get("referrer"))
        event.update(title=title, referrer=referrer)
    return event


# Cuewire's names in a validation reason, and the message's fields they come from (longest
# first: the first that starts the reason is replaced)
_SEGMENT_NAMES = (
    ("custom.props", "track.properties"),
    ("custom.name", "track.event"),
    ("custom", "track"),
    ("identify.user_id", "identify.userId"),
    ("page_view", "page"),
)


def in_segment_terms(reason: str) -> str:
    """A reason of ``validate_batch`` naming the message's fields, not the event's."""
    for cuewire, segment in _SEGMENT_NAMES:
        if reason.startswith(cuewire):
            return segment + reason[len(cuewire) :]
    return reason


def _seq_of(message_id: str | None) -> int:
    """The seq of a message: from its messageId (the same for every resend), else random."""
    if message_id is None:
        return secrets.randbits(SEQ_BITS)
    digest = hashlib.sha256(message_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") >> (64 - SEQ_BITS)


def _scalars(values: Mapping[str, Any]) -> dict[str, Scalar]:
    """Segment properties or traits as Cuewire props: nested objects flattened to dotted
    names (``address.city``), after the top level's, in order; lists are left out (props
    are scalars). No recursion: the nesting is as deep as a 32 KB message lets a sender make
    it."""
    out: dict[str, Scalar] = {}
    todo: deque[tuple[str, Mapping[str, Any]]] = deque([("", values)])
    while todo:
        prefix, mapping = todo.popleft()
        for key, value in mapping.items():
            if isinstance(value, dict):
                todo.append((f"{prefix}{key}.", value))
            elif not isinstance(value, list):
                out[f"{prefix}{key}"] = value
    return out


def _event_ms(message: Message, batch_sent_at: str | None, now_ms: int) -> int:
    """When the message happened: ``timestamp``; else ``originalTimestamp`` corrected for
    the sender's clock by ``sentAt`` as Segment does; else now. Rules' windows use the
    server's time, never this one (docs/integrations.md)."""
    if message.timestamp is not None:
        return max(0, _iso_ms("timestamp", message.timestamp))
    if message.original_timestamp is None:
        return now_ms
    original = _iso_ms("originalTimestamp", message.original_timestamp)
    sent_at = message.sent_at or batch_sent_at
    if sent_at is None:
        return max(0, original)
    return max(0, now_ms - (_iso_ms("sentAt", sent_at) - original))


_ISO = re.compile(
    r"(\d{4})-(\d{1,2})-(\d{1,2})"
    r"(?:[T ](\d{1,2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?)?"
    r"(Z|[+-]\d{2}(?::?\d{2})?)?",
    re.IGNORECASE,
)


def _iso_ms(name: str, text: str) -> int:
    """An ISO-8601 time as epoch milliseconds (UTC when it names no offset). Lenient as
    Segment's own examples need: one-digit months and days (``2015-2-02T00:30:08.276Z``)."""
    found = _ISO.fullmatch(text.strip())
    try:
        if found is None:
            raise ValueError
        year, month, day, hour, minute, second, fraction, zone = found.groups()
        at = datetime(
            int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0)
        )
    except ValueError:
        raise Invalid(
            Reject.INVALID_EVENT,
            f"{name}: expected an ISO-8601 time such as 2012-12-02T00:30:08.276Z",
        ) from None
    ms = int(at.replace(tzinfo=UTC).timestamp()) * 1000 + int((fraction or "0")[:3].ljust(3, "0"))
    if zone and zone.upper() != "Z":
        digits = zone[1:].replace(":", "")
        minutes = int(digits[:2]) * 60 + int(digits[2:] or 0)
        ms -= (1 if zone[0] == "+" else -1) * minutes * 60_000
    return ms


def text_of(value: Any) -> str | None:
    """``value`` when it is a non-empty string, else None."""
    return value if isinstance(value, str) and value else None
