"""The path of one batch: store it, let the engine decide, apply timers, deliver prompts.

Transport-free, so the gateway, the backend-events endpoint and tests share it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .delivery import Delivery
from .facts import changes_for, new_names
from .identity import is_verified
from .origin import Origin
from .protocol import Prompt
from .rules.engine import Engine
from .store.base import Admitted, Commit, Gate, Ingested, Store


@dataclass(frozen=True)
class Processed:
    admitted: Admitted  # which events the gate let in (the others were not stored)
    prompt: Prompt | None  # the prompt the batch showed on its own tab, if any


class Pipeline:
    def __init__(self, store: Store, engine: Callable[[], Engine], delivery: Delivery) -> None:
        self._store = store
        self._engine = engine
        self._delivery = delivery

    async def process(
        self,
        origin: Origin,
        events: list[dict[str, Any]],
        now_ms: int,
        gate: Gate | None = None,
    ) -> Processed:
        """Apply one batch of valid events, those ``gate`` admits (all without one); return
        what it admitted and the prompt the batch caused, if any."""
        engine = self._engine()
        events = [_unsigned(e) for e in events]
        rules = engine.rules
        changes = [changes_for(e, now_ms, rules.distinct, rules.clicks) for e in events]
        names = [new_names(e, rules.distinct) for e in events] if gate else None
        ingested = await self._store.ingest(
            origin, events, changes, now_ms, rules.fields_json, gate, names
        )
        prompt = await self._decide(origin, events, ingested, now_ms)
        return Processed(ingested.admitted, prompt)

    async def _decide(
        self, origin: Origin, events: list[dict[str, Any]], ingested: Ingested, now_ms: int
    ) -> Prompt | None:
        engine = self._engine()
        # new events, and resends of events whose actions were never applied (a failed commit)
        fresh = [e for e, todo in zip(events, ingested.todo, strict=True) if todo]
        if not fresh:
            return None
        for event in fresh:
            if event["type"] == "identify" and is_verified(event):
                # only a verified identify links (identity.py): backend events by user_id
                # then reach this visitor; an unverified one never replaces that link
                await self._store.link_user(origin.site, event["user_id"], origin.visitor)
        decision = engine.on_events(
            origin.site,
            origin.session,
            origin.visitor,
            fresh,
            ingested.session,
            ingested.visitor,
            now_ms,
        )
        if not decision.actions and not decision.candidates:
            return None  # nothing to apply; a resend is decided again, to the same effect
        # The actions, with the seqs marked done, in one atomic step (with governance's
        # grants when the batch fires): if it fails the client resends and the batch is
        # decided again; if another process did it first, stop here.
        seqs = [int(e["seq"]) for e in fresh]
        if decision.candidates:
            commit = Commit(origin, seqs, decision.actions)
            return await self._delivery.resolve(origin, decision.candidates, commit)
        await self._store.commit(origin, seqs, decision.actions)
        return None


def _unsigned(event: dict[str, Any]) -> dict[str, Any]:
    """The event without an identify signature: a credential, never stored (identity.py)."""
    if "signature" not in event:
        return event
    return {k: v for k, v in event.items() if k != "signature"}
