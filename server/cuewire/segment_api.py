"""The Segment-compatible HTTP Tracking API: ``POST /v1/track``, ``/v1/identify``,
``/v1/page``, ``/v1/screen``, ``/v1/group``, ``/v1/alias`` and ``/v1/batch``.

A backend or a CDP that already sends Segment-format messages feeds Cuewire's rules
unchanged: each message becomes a Cuewire event (track: ``custom``, identify: ``identify``,
page: ``page_view``) and goes the backend events' way (``backend.ingest_for``) into its
visitor's session, so a track ``Order Completed`` cancels a cart-abandonment deadline as the
browser's own event would. docs/integrations.md, "Segment-compatible API", has the mapping.

- The write key (HTTP Basic user, empty password, or ``writeKey`` in the body) names the site
  (``write_key`` in the sites file, sites.py). It vouches for the sender, as the API key does
  for ``/v1/events``: an identify with ``anonymousId`` and ``userId`` links the user to that
  visitor (verified, identity.py).
- ``anonymousId`` is Cuewire's visitor id; without it ``userId`` names the visitor last
  verified as that user (or linked by an identify earlier in the same request).
- ``messageId`` de-duplication, twice over: the message's seq is derived from its messageId,
  so the store's own per-session seq check (ingest.lua, in the call that stores the batch)
  applies a resend once, even one racing its original; and the site's seen set (a Redis
  sorted set, :data:`DEDUPE_WINDOW_MS`) skips a resend that comes after the session ended.
  A messageId is marked seen only after its event is stored.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import secrets
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
from msgspec import Meta
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from .backend import ingest_for, read_capped
from .clock import Clock
from .codes import Reject, Skip
from .device import device_class
from .errors import ProtocolError, StoreError
from .identity import trusted
from .pipeline import Pipeline
from .protocol import Id, Rejection, Scalar, error_reason
from .settings import Settings
from .sites import Sites
from .store.redis import RedisStore
from .store.shared import guard
from .validation import Indexed, validate_batch

MESSAGE_MAX_BYTES = 32 * 1024  # Segment: at most 32 KB per call and per message of a batch
BATCH_MAX_BYTES = 500 * 1024  # Segment: at most 500 KB per batch request
DEDUPE_WINDOW_MS = 24 * 3600 * 1000  # how long an applied messageId is remembered
SEGMENT_TAB = "segment"  # the "tab" whose seqs the store de-duplicates, per visitor session
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


class Skipped(msgspec.Struct, frozen=True):
    """A message accepted but not applied: branch on ``code``, a :class:`~cuewire.codes.Skip`."""

    index: int
    code: Skip
    reason: str


class _Invalid(ProtocolError):
    """A message Cuewire cannot take: rejected with ``code``."""

    def __init__(self, code: Reject, reason: str) -> None:
        super().__init__(reason)
        self.code = code


@dataclass(frozen=True)
class _Todo:
    """A message to apply: its index, visitor, messageId, user agent and Cuewire event."""

    index: int
    visitor: str
    message_id: str | None
    agent: str | None
    event: dict[str, Any]


@dataclass
class _Outcome:
    """What became of a request's messages: the ones to apply, and the others."""

    todo: list[_Todo] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    def reject(self, index: int, code: Reject, reason: str) -> None:
        self.rejected.append(Rejection(index, code, reason))

    def skip(self, index: int, code: Skip, reason: str) -> None:
        self.skipped.append(Skipped(index, code, reason))


_json = msgspec.json.Encoder()


@dataclass(frozen=True)
class SegmentApi:
    """The endpoints, on the server's sites, store, pipeline and clock."""

    _settings: Settings
    _sites: Sites
    _store: RedisStore
    _pipeline: Pipeline
    _clock: Clock

    def routes(self) -> list[Route]:
        """One route per Segment call, and ``/v1/batch``."""
        routes = [Route(f"/v1/{call}", self._endpoint(call), methods=["POST"]) for call in CALLS]
        return [*routes, Route("/v1/batch", self._endpoint(None), methods=["POST"])]

    def _endpoint(self, call: str | None) -> Callable[[Request], Awaitable[JSONResponse]]:
        async def endpoint(request: Request) -> JSONResponse:
            return await self._answer(request, call)

        return endpoint

    async def _answer(self, request: Request, call: str | None) -> JSONResponse:
        """``call``: the message type of a single call; None for ``/v1/batch``."""
        limit = MESSAGE_MAX_BYTES if call else BATCH_MAX_BYTES
        body = await read_capped(request, limit)
        if body is None:
            code = Reject.EVENT_TOO_LARGE if call else Reject.BATCH_TOO_LARGE
            what = "a call" if call else "a batch request"
            return _error(400, code, f"payload too large: at most {limit} bytes per {what}")
        try:
            raw = msgspec.json.decode(body)
        except msgspec.DecodeError as exc:
            return _error(400, Reject.INVALID_BATCH, f"invalid JSON: {exc}")
        except RecursionError:
            return _error(400, Reject.INVALID_BATCH, "invalid JSON: nested too deeply")
        if not isinstance(raw, dict):
            return _error(400, Reject.INVALID_BATCH, "the body must be a JSON object")
        site = self._sites.by_write_key(_write_key(request, raw))
        if site is None:
            return _error(
                401,
                Reject.UNAUTHORIZED,
                "unknown write key: send a site's write_key (sites file) as the HTTP Basic "
                "user with an empty password, or as `writeKey` in the body",
            )
        if call is None:
            messages = raw.get("batch")
            if not isinstance(messages, list):
                return _error(400, Reject.INVALID_BATCH, "batch: expected an array of messages")
        else:
            messages = [{**raw, "type": call}]
        context = raw.get("context") if call is None else None
        shared = _Shared(
            context if isinstance(context, dict) else {},
            _text(raw.get("sentAt")) if call is None else None,
        )
        try:
            outcome = await self._apply(site, messages, shared)
        except StoreError:
            return _error(503, Reject.STORE_UNAVAILABLE, "store unavailable, resend later")
        return _answer_of(outcome, single=call is not None)

    async def _apply(self, site: str, messages: list[Any], shared: _Shared) -> _Outcome:
        now = self._clock.now_ms()
        outcome = _Outcome()
        parsed = self._parse(messages, shared, now, outcome)
        seen = await self._seen(site, [m.message_id for _, m, _ in parsed if m.message_id], now)
        # user id -> its visitor: looked up, or linked by an identify earlier in the request
        links: dict[str, str | None] = {}
        for index, message, event in parsed:
            if message.message_id in seen:
                outcome.skip(index, Skip.DUPLICATE, f"messageId {message.message_id!r} seen")
                continue
            visitor = message.anonymous_id
            user = message.user_id
            if visitor is None and user is not None:
                if user not in links:  # one look-up per user and request
                    links[user] = await self._store.visitor_of_user(site, user)
                visitor = links[user]
            if visitor is None:
                outcome.reject(index, Reject.UNKNOWN_VISITOR, NO_VISITOR)
                continue
            if event["type"] == "identify" and message.anonymous_id is not None:
                links[event["user_id"]] = visitor
            if message.message_id:
                seen.add(message.message_id)  # a repeat later in this request is skipped
            agent = _text(shared.context_of(message).get("userAgent"))
            outcome.todo.append(_Todo(index, visitor, message.message_id, agent, event))
        for visitor, group in _by_visitor(outcome.todo, self._settings.limits.max_batch_events):
            valid: Indexed = [(todo.index, todo.event) for todo in group]
            agent = next((todo.agent for todo in group if todo.agent), None)
            describe = {"device": device_class(agent)} if agent else None
            stored, _ = await ingest_for(
                self._store,
                self._pipeline,
                self._settings.limits,
                site,
                visitor,
                SEGMENT_TAB,
                valid,
                outcome.rejected,
                now,
                describe,
            )
            kept = {index for index, _ in stored}
            done = [t.message_id for t in group if t.message_id and t.index in kept]
            await self._mark(site, done, now)
        outcome.rejected.sort(key=lambda r: r.index)
        return outcome

    def _parse(
        self, messages: list[Any], shared: _Shared, now_ms: int, outcome: _Outcome
    ) -> list[tuple[int, Message, dict[str, Any]]]:
        """The messages that become Cuewire events, each with its event (valid, as
        ``validate_batch`` checks the browser's); a rejection or a skip for every other."""
        parsed: list[tuple[int, Message, dict[str, Any]]] = []
        for index, raw in enumerate(messages):
            try:
                found = _message_of(raw, shared, now_ms)
            except msgspec.ValidationError as exc:
                outcome.reject(index, Reject.INVALID_EVENT, error_reason(exc))
                continue
            except _Invalid as exc:
                outcome.reject(index, exc.code, str(exc))
                continue
            except RecursionError:
                outcome.reject(index, Reject.INVALID_EVENT, "message nested too deeply")
                continue
            if isinstance(found, str):
                outcome.skip(index, Skip.NOT_MAPPED, found)
                continue
            message, event = found
            valid, rejected = validate_batch([event], self._settings.limits)
            for rejection in rejected:
                outcome.reject(index, rejection.code, _in_segment_terms(rejection.reason))
            for _, checked in valid:
                # the write key vouches for the sender, as the API key does (backend.py)
                if checked["type"] == "identify":
                    checked = trusted(checked)
                parsed.append((index, message, checked))
        return parsed

    async def _seen(self, site: str, message_ids: list[str], now_ms: int) -> set[str]:
        """The messageIds applied within the dedupe window."""
        if not message_ids:
            return set()
        key = self._store.keys.segment_seen(site)
        async with guard("read the seen messageIds"):
            until = await self._store.client.zmscore(key, message_ids)
        return {m for m, u in zip(message_ids, until, strict=True) if u and u > now_ms}

    async def _mark(self, site: str, message_ids: list[str], now_ms: int) -> None:
        """Remember messageIds once their events are stored; forget the expired ones."""
        if not message_ids:
            return
        key = self._store.keys.segment_seen(site)
        until = now_ms + DEDUPE_WINDOW_MS
        async with guard("mark the messageIds seen"):
            pipe = self._store.client.pipeline(transaction=False)
            pipe.zadd(key, dict.fromkeys(message_ids, until))
            pipe.zremrangebyscore(key, 0, now_ms)
            pipe.pexpire(key, DEDUPE_WINDOW_MS)
            await pipe.execute()


@dataclass(frozen=True)
class _Shared:
    """What a batch request gives all its messages: its ``context``, merged under each
    message's own, and its ``sentAt``."""

    context: dict[str, Any]
    sent_at: str | None

    def context_of(self, message: Message) -> dict[str, Any]:
        return {**self.context, **(message.context or {})}


NO_VISITOR = (
    "unknown visitor: send anonymousId (Cuewire's visitor id), or a userId that a visitor "
    "was verified as (an identify with anonymousId and userId links them)"
)


def _message_of(raw: Any, shared: _Shared, now_ms: int) -> tuple[Message, dict[str, Any]] | str:
    """A message and its Cuewire event (not validated yet), or why it has none (skipped,
    ``not_mapped``); raises for a message Cuewire cannot take."""
    size = len(_json.encode(raw))
    if size > MESSAGE_MAX_BYTES:
        reason = f"message too large: {size} bytes, at most {MESSAGE_MAX_BYTES}"
        raise _Invalid(Reject.EVENT_TOO_LARGE, reason)
    message = msgspec.convert(raw, Message)
    if message.type in NOT_MAPPED:
        return f"{message.type}: accepted; no Cuewire event stands for it"
    if message.type == "identify" and message.user_id is None:
        return "identify without userId: Cuewire keeps traits of identified users"
    return message, _event_of(message, shared, now_ms)


def _event_of(message: Message, shared: _Shared, now_ms: int) -> dict[str, Any]:
    """The Cuewire event of a track, identify or page message (not validated yet)."""
    kind = message.type
    if kind not in MAPPED:
        raise _Invalid(
            Reject.INVALID_EVENT,
            f"type: expected one of {', '.join(CALLS)}, got {kind!r}",
        )
    if message.user_id is None and message.anonymous_id is None:
        raise _Invalid(Reject.INVALID_EVENT, f"{kind}: a message needs userId or anonymousId")
    context = shared.context_of(message)
    given = context.get("page")
    page: dict[str, Any] = given if isinstance(given, dict) else {}
    props = message.properties or {}
    event: dict[str, Any] = {
        "type": MAPPED[kind],
        "ts": _event_ms(message, shared.sent_at, now_ms),
        "seq": _seq_of(message.message_id),
        "url": _text(page.get("url")) or "segment:",
    }
    if kind == "track":
        if message.event is None:
            raise _Invalid(Reject.INVALID_EVENT, "track: `event` (its name) is required")
        event.update(name=message.event, props=_scalars(props))
    elif kind == "identify":
        event.update(user_id=message.user_id, traits=_scalars(message.traits or {}))
    else:
        for name in ("url", "path"):
            found = _text(props.get(name)) or _text(page.get(name))
            if found:
                event["url"] = found
                break
        title = _text(props.get("title")) or _text(page.get("title")) or message.name
        referrer = _text(props.get("referrer")) or _text(page.get("referrer"))
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


def _in_segment_terms(reason: str) -> str:
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
        raise _Invalid(
            Reject.INVALID_EVENT,
            f"{name}: expected an ISO-8601 time such as 2012-12-02T00:30:08.276Z",
        ) from None
    ms = int(at.replace(tzinfo=UTC).timestamp()) * 1000 + int((fraction or "0")[:3].ljust(3, "0"))
    if zone and zone.upper() != "Z":
        digits = zone[1:].replace(":", "")
        minutes = int(digits[:2]) * 60 + int(digits[2:] or 0)
        ms -= (1 if zone[0] == "+" else -1) * minutes * 60_000
    return ms


def _by_visitor(todo: list[_Todo], most: int) -> list[tuple[str, list[_Todo]]]:
    """The messages grouped by visitor, in order of first appearance, in groups of at most
    ``most`` (the store's batch)."""
    groups: dict[str, list[_Todo]] = {}
    for item in todo:
        groups.setdefault(item.visitor, []).append(item)
    return [
        (visitor, group[start : start + most])
        for visitor, group in groups.items()
        for start in range(0, len(group), most)
    ]


def _write_key(request: Request, body: dict[str, Any]) -> str:
    """The write key: HTTP Basic's user (the password is empty), else ``writeKey``."""
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(credentials.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return ""
        return decoded.partition(":")[0]
    return _text(body.get("writeKey")) or ""


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _answer_of(outcome: _Outcome, single: bool) -> JSONResponse:
    """Segment's ``{"success": true}``, with the rejected and skipped messages by index. A
    single call that was rejected answers 400 with its code."""
    body: dict[str, Any] = {"success": not (single and outcome.rejected)}
    if outcome.rejected:
        body["rejected"] = [msgspec.to_builtins(r) for r in outcome.rejected]
    if outcome.skipped:
        body["skipped"] = [msgspec.to_builtins(s) for s in outcome.skipped]
    if single and outcome.rejected:
        first = outcome.rejected[0]
        body.update(code=str(first.code), reason=first.reason)
        return JSONResponse(body, status_code=400)
    return JSONResponse(body)


def _error(status: int, code: Reject, reason: str) -> JSONResponse:
    return JSONResponse({"success": False, "code": str(code), "reason": reason}, status)
