"""The writes of a batch's firings decided ahead, as its store call gets them (fold.lua): each
outcome's facts and audit record (encoded as record.lua's, firing_writes.record_entry), so
the script that asks governance also writes what its answer leaves, in one round trip.

One Redis only: on a cluster the audit stream (``{a:site}``) and the counters are in another
slot than the session, so no request carries its writes and delivery writes them after the
call (one more round trip, as for a firing not decided ahead)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..keys import Keys
from .base import Outcomes
from .firing_writes import AUDIT_MAXLEN, AUDITED_TTL_S, record_entry
from .scripts import ops_of, slot_in


def outcomes_arg(
    k: Keys, site: str, outcomes: list[Outcomes | None], keys: list[str]
) -> list[dict[str, Any] | None]:
    """fold.lua's ``p`` of each request (None: the caller writes its outcome after the call,
    as every one on a cluster); the keys they touch are added to ``keys``."""
    if k.cluster:
        return [None for _ in outcomes]
    slot = slot_in(keys)
    return [None if o is None else _arg(k, site, o, keys, slot) for o in outcomes]


def _arg(
    k: Keys, site: str, o: Outcomes, keys: list[str], slot: Callable[[str], int]
) -> dict[str, Any]:
    audit = slot(k.audit(site))
    fired, _ = record_entry(k, site, o.fired, slot)
    if o.job is not None:  # the grant's webhook, queued with its record (record.lua's "o")
        fired["o"] = {"k": slot(k.outbox(o.job.channel, "stream")), "j": o.job.job}
    refused, _ = record_entry(k, site, o.refused, slot)
    arg: dict[str, Any] = {
        "a": audit,
        "n": AUDIT_MAXLEN,
        "l": AUDITED_TTL_S,
        "g": {"o": ops_of(k, list(o.granted), keys), "r": fired},
        "s": {"r": refused, "rs": o.reasons},
    }
    if o.queued is not None and o.queues:
        queued, _ = record_entry(k, site, o.queued, slot)
        arg["q"] = {"c": sorted(o.queues), "o": ops_of(k, list(o.queue), keys), "r": queued}
    return arg
