"""Validation of one batch of events at the edge, shared by the socket and the HTTP API.

A batch is checked for its shape and size before any event is parsed; every event is then
validated on its own, so the valid ones go on beside the rejected ones (docs/protocol.md).
"""

from __future__ import annotations

from typing import Any

import msgspec

from .codes import Reject
from .errors import IdentityUnverified
from .identity import verify
from .protocol import Rejection, event_map, event_reason, parse_struct
from .settings import Limits
from .sites import Site

Indexed = list[tuple[int, dict[str, Any]]]

_json = msgspec.json.Encoder()


def validate_batch(
    batch: Any, limits: Limits, site: Site | None = None
) -> tuple[Indexed, list[Rejection]]:
    """Valid events with their index in the batch, and a rejection for every invalid one.

    A batch that is not a list, or holds more than ``limits.max_batch_events`` events, gets
    one rejection at index -1 and no event of it is parsed. With ``site``, identify events
    are checked against its identity policy (identity.py).
    """
    if not isinstance(batch, list):
        return [], [Rejection(-1, Reject.INVALID_BATCH, "events must be a list of event maps")]
    if len(batch) > limits.max_batch_events:
        reason = (
            f"batch too large: {len(batch)} events, at most {limits.max_batch_events} per batch"
        )
        return [], [Rejection(-1, Reject.BATCH_TOO_LARGE, reason)]
    valid: Indexed = []
    rejected: list[Rejection] = []
    for index, raw in enumerate(batch):
        try:
            typed = parse_struct(raw)
        except msgspec.ValidationError as exc:
            rejected.append(Rejection(index, Reject.INVALID_EVENT, event_reason(raw, exc)))
            continue
        # the struct encodes to the very bytes of its map (same keys, order and values)
        size = len(_json.encode(typed))
        if size > limits.max_event_bytes:
            reason = (
                f"{raw['type']}: event too large: {size} bytes encoded, "
                f"at most {limits.max_event_bytes}"
            )
            rejected.append(Rejection(index, Reject.EVENT_TOO_LARGE, reason))
            continue
        event = event_map(typed)
        if site is not None and event["type"] == "identify":
            try:
                event = verify(site, event)
            except IdentityUnverified as exc:
                rejected.append(Rejection(index, Reject.IDENTITY_UNVERIFIED, str(exc)))
                continue
        valid.append((index, event))
    return valid, rejected
