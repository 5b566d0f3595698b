"""Events from the site's backend: ``POST /v1/events`` with the site's API key.

A purchase the backend records cancels a cart-abandonment deadline and counts as a
conversion, exactly as if the browser had sent it (docs/protocol.md, "Backend events").
By ``user_id``, events go only to the visitor last *verified* as that user (identity.py): an
unsigned identify from a browser can never redirect them.
"""

from __future__ import annotations

import secrets
from typing import Annotated, Any

import msgspec
from msgspec import Meta
from starlette.requests import Request
from starlette.responses import JSONResponse

from .clock import Clock
from .codes import Reject
from .errors import StoreError
from .gate import backend_gate, sort_out
from .identity import trusted
from .origin import Origin
from .pipeline import Pipeline
from .protocol import Id, Rejection, error_reason
from .settings import Limits, Settings
from .sites import Sites
from .store.base import Store
from .validation import Indexed, validate_batch

BACKEND_TAB = "backend"


class BackendBatch(msgspec.Struct, forbid_unknown_fields=True):
    site: Annotated[str, Meta(min_length=1, max_length=128)]
    events: list[Any]
    visitor: Id | None = None
    user_id: Annotated[str, Meta(min_length=1, max_length=256)] | None = None


class BackendEvents:
    def __init__(
        self, settings: Settings, sites: Sites, store: Store, pipeline: Pipeline, clock: Clock
    ) -> None:
        self._settings = settings
        self._sites = sites
        self._store = store
        self._pipeline = pipeline
        self._clock = clock

    async def endpoint(self, request: Request) -> JSONResponse:
        body = await read_capped(request, self._settings.limits.max_payload_bytes)
        if body is None:
            return _error(
                413,
                Reject.BATCH_TOO_LARGE,
                f"payload too large: at most {self._settings.limits.max_payload_bytes} bytes",
            )
        try:
            batch = msgspec.json.decode(body, type=BackendBatch)
        except msgspec.ValidationError as exc:
            return _error(422, Reject.INVALID_BATCH, error_reason(exc))
        except msgspec.DecodeError as exc:
            return _error(400, Reject.INVALID_BATCH, f"invalid JSON: {exc}")
        except RecursionError:  # msgspec's decoder recurses per nesting level
            return _error(400, Reject.INVALID_BATCH, "invalid JSON: nested too deeply")
        site = self._sites.get(batch.site)
        key = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if (
            site is None
            or not site.api_key
            # bytes: compare_digest refuses str with non-ASCII characters
            or not secrets.compare_digest(key.encode(), site.api_key.encode())
        ):
            return _error(401, Reject.UNAUTHORIZED, "unknown site or wrong API key")
        try:
            visitor = batch.visitor or (
                await self._store.visitor_of_user(batch.site, batch.user_id)
                if batch.user_id
                else None
            )
        except StoreError:
            return _error(503, Reject.STORE_UNAVAILABLE, "store unavailable, resend later")
        if visitor is None:
            reason = NO_VISITOR if batch.user_id is None else NO_VERIFIED_LINK
            return _error(404, Reject.UNKNOWN_VISITOR, reason)
        now = self._clock.now_ms()
        valid, rejected = validate_batch(batch.events, self._settings.limits)
        # the backend holds the API key: its identify events are verified (identity.py)
        valid = [(i, trusted(e) if e["type"] == "identify" else e) for i, e in valid]
        try:
            valid, session = await ingest_for(
                self._store,
                self._pipeline,
                self._settings.limits,
                batch.site,
                visitor,
                BACKEND_TAB,
                valid,
                rejected,
                now,
            )
        except StoreError:
            return _error(503, Reject.STORE_UNAVAILABLE, "store unavailable, resend later")
        return JSONResponse(
            {
                "accepted": len(valid),
                "rejected": [msgspec.to_builtins(r) for r in rejected],
                "session": session,
            }
        )


async def ingest_for(
    store: Store,
    pipeline: Pipeline,
    limits: Limits,
    site: str,
    visitor: str,
    tab: str,
    valid: Indexed,
    rejected: list[Rejection],
    now_ms: int,
    describe: dict[str, str] | None = None,
) -> tuple[Indexed, str]:
    """Valid events a server sends for ``visitor`` as ``tab``, through the pipeline into the
    visitor's live session (a new one if it expired): the events the gate admitted (a
    rejection into ``rejected`` for each other) and the session. ``describe``: fields the
    session records (open_session)."""
    current = (await store.visitor_facts(site, visitor)).get("session")
    opened = await store.open_session(site, visitor, current, now_ms, describe)
    facts = await store.session_facts(site, opened.session, visitor)
    if valid:
        origin = Origin(site, visitor, opened.session, tab, facts.get("sid", ""))
        gate = backend_gate(limits)
        done = await pipeline.process(origin, [event for _, event in valid], now_ms, gate)
        valid, _ = sort_out(valid, rejected, done.admitted, gate)
    return valid, opened.session


NO_VISITOR = "unknown visitor: send `visitor` (the browser's visitor id) or `user_id`"
NO_VERIFIED_LINK = (
    "no visitor is verified as this user_id: events by user_id go only to a visitor whose "
    "identify carried a valid signature (the site's identity_secret, docs/protocol.md); "
    "send `visitor` instead, or sign identify"
)


async def read_capped(request: Request, limit: int) -> bytes | None:
    """The request body, or None as soon as it is known to pass ``limit`` bytes: by its
    Content-Length before reading, else while it streams in (nothing larger is buffered)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                return None
        except ValueError:
            return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _error(status: int, code: Reject, message: str) -> JSONResponse:
    return JSONResponse({"error": message, "code": str(code)}, status_code=status)
