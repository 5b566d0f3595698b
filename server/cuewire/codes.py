"""Stable codes of rejections and connect refusals (docs/protocol.md).

Code branches on these, never on the words of a reason; the reason is for people.
"""

from __future__ import annotations

from enum import StrEnum


class Reject(StrEnum):
    """Why an event (``index`` >= 0) or a whole batch (``index`` -1) was not accepted."""

    INVALID_EVENT = "invalid_event"  # fails validation; permanent
    EVENT_TOO_LARGE = "event_too_large"  # one event over the size limit; permanent
    BATCH_TOO_LARGE = "batch_too_large"  # more events than one batch may hold; -1; permanent
    INVALID_BATCH = "invalid_batch"  # not a list of maps; -1; permanent
    LIMIT_EXCEEDED = "limit_exceeded"  # a cap on traits, event names or props; permanent
    IDENTITY_UNVERIFIED = "identity_unverified"  # identify without a valid signature; permanent
    RATE_LIMITED = "rate_limited"  # retryable: resend this event later
    STORE_UNAVAILABLE = "store_unavailable"  # retryable, -1: resend the whole batch later
    NOT_CONNECTED = "not_connected"  # -1: reconnect

    @property
    def retryable(self) -> bool:
        return self in (Reject.RATE_LIMITED, Reject.STORE_UNAVAILABLE)


class Refuse(StrEnum):
    """Why a Socket.IO connect was refused (``err.data.code`` in the browser)."""

    INVALID_AUTH = "invalid_auth"
    UNKNOWN_SITE = "unknown_site"
    ORIGIN_NOT_ALLOWED = "origin_not_allowed"
    DO_NOT_TRACK = "do_not_track"
    STORE_UNAVAILABLE = "store_unavailable"  # retry later (retry_ms, with jitter)
    OVERLOADED = "overloaded"  # retry later (retry_ms, with jitter)

    @property
    def retryable(self) -> bool:
        return self in (Refuse.STORE_UNAVAILABLE, Refuse.OVERLOADED)
