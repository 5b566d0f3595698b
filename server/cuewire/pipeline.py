"""The path of one batch: store it, let the engine decide, apply timers, deliver prompts.

Transport-free, so the gateway, the backend-events endpoint and tests share it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .delivery import Delivery
from .facts import changes_for
from .protocol import Prompt
from .rules.engine import Engine
from .store.base import Store


@dataclass(frozen=True)
class Origin:
    """Who sent a batch: site, visitor, session, tab, and the socket to answer on."""

    site: str
    visitor: str
    session: str
    tab: str
    sid: str


class Pipeline:
    def __init__(self, store: Store, engine: Callable[[], Engine], delivery: Delivery) -> None:
        self._store = store
        self._engine = engine
        self._delivery = delivery

    def distinct(self) -> Mapping[str, frozenset[str]]:
        """Custom event props whose distinct values the live rules count."""
        return self._engine().rules.distinct

    async def process(
        self, origin: Origin, events: list[dict[str, Any]], now_ms: int
    ) -> Prompt | None:
        """Apply one batch of valid events; return the prompt it caused, if any."""
        engine = self._engine()
        changes = [changes_for(e, now_ms, engine.rules.distinct) for e in events]
        ingested = await self._store.ingest(
            origin.site,
            origin.session,
            origin.visitor,
            origin.tab,
            origin.sid,
            events,
            changes,
            now_ms,
        )
        fresh = [e for e, is_new in zip(events, ingested.fresh, strict=True) if is_new]
        if not fresh:
            return None
        for event in fresh:
            if event["type"] == "identify":
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
        if decision.actions:
            await self._store.apply(decision.actions)
        if not decision.candidates:
            return None
        return await self._delivery.resolve(
            origin.site, origin.session, origin.visitor, origin.sid, decision.candidates
        )
