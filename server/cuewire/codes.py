"""Stable codes of the wire protocol (docs/protocol.md, "Codes").

Clients and our own code branch on these; the ``reason`` text beside each is for people and
may change. Add members; never rename or remove one.
"""

from __future__ import annotations

from enum import StrEnum


class Reject(StrEnum):
    """Why an event (or, at index -1, a whole batch) was not accepted."""

    INVALID_EVENT = "invalid_event"  # fails validation; permanent
    EVENT_TOO_LARGE = "event_too_large"  # one event over the size limit; permanent
    BATCH_TOO_LARGE = "batch_too_large"  # more events than one batch may hold; index -1
    INVALID_BATCH = "invalid_batch"  # not a list of maps; index -1
    LIMIT_EXCEEDED = "limit_exceeded"  # a cap on distinct traits / names / props; permanent
    IDENTITY_UNVERIFIED = "identity_unverified"  # identify without a valid signature
    RATE_LIMITED = "rate_limited"  # retryable: resend this event later
    STORE_UNAVAILABLE = "store_unavailable"  # retryable, index -1: resend the batch later
    NOT_CONNECTED = "not_connected"  # index -1: reconnect

    @property
    def retryable(self) -> bool:
        return self in RETRYABLE


RETRYABLE = frozenset({Reject.RATE_LIMITED, Reject.STORE_UNAVAILABLE})


class Refuse(StrEnum):
    """Why a Socket.IO connect was refused (the ``code`` of ``connect_error``'s data)."""

    INVALID_AUTH = "invalid_auth"
    UNKNOWN_SITE = "unknown_site"
    ORIGIN_NOT_ALLOWED = "origin_not_allowed"
    DO_NOT_TRACK = "do_not_track"
    STORE_UNAVAILABLE = "store_unavailable"  # retry after retry_ms
    OVERLOADED = "overloaded"  # retry after retry_ms

    @property
    def retryable(self) -> bool:
        return self in (Refuse.STORE_UNAVAILABLE, Refuse.OVERLOADED)
