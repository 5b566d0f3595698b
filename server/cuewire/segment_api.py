"""The Segment-compatible HTTP Tracking API: ``POST /v1/track``, ``/v1/identify``,
``/v1/page``, ``/v1/screen``, ``/v1/group``, ``/v1/alias`` and ``/v1/batch``.

A backend or a CDP that already sends Segment-format messages feeds Cuewire's rules
unchanged: each message becomes a Cuewire event (track: ``custom``, identify: ``identify``,
page: ``page_view``) and goes the backend events' way (``backend.ingest_for``) into its
visitor's session, so a track ``Order Completed`` cancels a cart-abandonment deadline as the
browser's own event would. docs/integrations.md, "Segment-compatible API", has the mapping
(segment_messages.py makes each message's event).

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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from .backend import ingest_for, read_capped
from .clock import Clock
from .codes import Reject, Skip
from .device import device_class
from .errors import StoreError
from .identity import trusted
from .pipeline import Pipeline
from .protocol import Rejection, error_reason
from .segment_messages import (
    CALLS,
    MESSAGE_MAX_BYTES,
    Invalid,
    Message,
    Shared,
    in_segment_terms,
    message_of,
    text_of,
)
from .settings import Settings
from .sites import Sites
from .store.redis import RedisStore
from .store.shared import guard
from .validation import Indexed, validate_batch

BATCH_MAX_BYTES = 500 * 1024  # Segment: at most 500 KB per batch request
DEDUPE_WINDOW_MS = 24 * 3600 * 1000  # how long an applied messageId is remembered
SEGMENT_TAB = "segment"  # the "tab" whose seqs the store de-duplicates, per visitor session


class Skipped(msgspec.Struct, frozen=True):
    """A message accepted but not applied: branch on ``code``, a :class:`~cuewire.codes.Skip`."""

    index: int
    code: Skip
    reason: str


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
        shared = Shared(
            context if isinstance(context, dict) else {},
            text_of(raw.get("sentAt")) if call is None else None,
        )
        try:
            outcome = await self._apply(site, messages, shared)
        except StoreError:
            return _error(503, Reject.STORE_UNAVAILABLE, "store unavailable, resend later")
        return _answer_of(outcome, single=call is not None)

    async def _apply(self, site: str, messages: list[Any], shared: Shared) -> _Outcome:
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
            agent = text_of(shared.context_of(message).get("userAgent"))
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
        self, messages: list[Any], shared: Shared, now_ms: int, outcome: _Outcome
    ) -> list[tuple[int, Message, dict[str, Any]]]:
        """The messages that become Cuewire events, each with its event (valid, as
        ``validate_batch`` checks the browser's); a rejection or a skip for every other."""
        parsed: list[tuple[int, Message, dict[str, Any]]] = []
        for index, raw in enumerate(messages):
            try:
                found = message_of(raw, shared, now_ms)
            except msgspec.ValidationError as exc:
                outcome.reject(index, Reject.INVALID_EVENT, error_reason(exc))
                continue
            except Invalid as exc:
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
                outcome.reject(index, rejection.code, in_segment_terms(rejection.reason))
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


NO_VISITOR = (
    "unknown visitor: send anonymousId (Cuewire's visitor id), or a userId that a visitor "
    "was verified as (an identify with anonymousId and userId links them)"
)


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
    return text_of(body.get("writeKey")) or ""


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
