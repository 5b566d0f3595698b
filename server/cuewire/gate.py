"""The limits a batch passes before it is stored, and the rejections for what they keep out.

The store applies them in the call that stores the batch (ingest.lua): rate limits per visitor
and per address, caps on distinct names. Here: the gate of a connection or of the backend API,
and the acks' rejections from what the store admitted.
"""

from __future__ import annotations

from typing import Any

from .codes import Reject
from .facts import EVENT_NAMES, PROP_VALUES, TRAITS
from .protocol import Rejection
from .ratelimit import Rate
from .settings import Limits
from .store.base import Admitted, Gate

Indexed = list[tuple[int, dict[str, Any]]]
UNLIMITED = Rate(0, 0)


def caps(limits: Limits) -> dict[str, int]:
    return {
        TRAITS: limits.max_traits,
        EVENT_NAMES: limits.max_event_names,
        PROP_VALUES: limits.max_prop_values,
    }


def browser_gate(limits: Limits, address: str) -> Gate:
    """A browser's batches: rate limits per visitor and per address, and the caps."""
    return Gate(
        address,
        Rate(limits.events_per_second, limits.event_burst),
        Rate(limits.address_events_per_second, limits.address_event_burst),
        caps(limits),
    )


def backend_gate(limits: Limits) -> Gate:
    """The backend API's batches (authenticated by the site's API key, sent for many
    visitors from few addresses): the caps only."""
    return Gate("", UNLIMITED, UNLIMITED, caps(limits))


def sort_out(
    valid: Indexed, rejected: list[Rejection], admitted: Admitted, gate: Gate
) -> tuple[Indexed, int | None]:
    """The events ``gate`` admitted; a rejection into ``rejected`` for each other (sorted by
    index), and the ``retry_ms`` of the rate-limited ones (None when none was)."""
    kept: Indexed = []
    for position, (index, event) in enumerate(valid):
        if position >= admitted.granted:
            rate = gate.visitor_rate
            reason = (
                f"rate limit: at most {rate.per_second:g} events/s per visitor "
                f"(bursts of {rate.burst}); resend later"
            )
            rejected.append(Rejection(index, Reject.RATE_LIMITED, reason))
        elif cap := admitted.capped[position]:
            reason = (
                f"{event['type']}: limit exceeded: at most {gate.caps.get(cap, 0)} "
                f"distinct {cap.replace('_', ' ')} (see docs/protocol.md, Limits)"
            )
            rejected.append(Rejection(index, Reject.LIMIT_EXCEEDED, reason))
        else:
            kept.append((index, event))
    rejected.sort(key=lambda r: r.index)
    retry = admitted.retry_ms if admitted.granted < len(valid) else None
    return kept, retry
