"""A reconnect storm (what a deploy restart causes): many tabs connect at once to one
process on real Redis. Connects are admitted a few at a time; past the queue bound the
server answers ``overloaded`` with a jittered ``retry_ms``, the tabs honour it, and every
tab ends with its session and its event stored. ``python -m bench.storm --tabs 10000`` runs
the full-size storm against ``cuewire serve``."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import redis.asyncio as aioredis

from cuewire.settings import Limits, Settings
from support.lightclient import storm
from support.paths import FIXTURES
from support.servers import LiveServer, site_for

TABS = 300


class _Slowed:
    """The real store whose ``open_session`` takes 20 ms longer (a busy Redis), counting how
    many run at once."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self.in_flight = 0
        self.most = 0

    async def open_session(self, *args: Any, **kwargs: Any) -> Any:
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        try:
            await asyncio.sleep(0.02)
            return await self._store.open_session(*args, **kwargs)
        finally:
            self.in_flight -= 1

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


async def test_a_reconnect_storm_is_admitted_in_turn_and_loses_nothing(clean_redis: str) -> None:
    limits = replace(Limits(), connect_concurrency=2, connect_queue=40, connect_retry_ms=300)
    settings = Settings(
        redis_url=clean_redis,
        rules_dir=FIXTURES / "rules",
        templates_dir=FIXTURES / "templates",
        key_prefix="cwstorm",
        limits=limits,
    )
    with LiveServer(settings, site_for) as live:
        slowed = _Slowed(live.services.store)
        live.services.gateway._store = slowed  # type: ignore[assignment]
        result = await storm(live.url, live.origin, "test-site", TABS, deadline_s=50)
    assert slowed.most <= limits.connect_concurrency
    assert (result.connected, result.lost, result.refused_for_good) == (TABS, 0, 0)
    assert result.retried > 0 and set(result.codes) == {"overloaded"}
    assert result.events_acked == TABS
    client = aioredis.from_url(clean_redis, decode_responses=True)
    try:
        stored = 0
        for visitor, session in result.sessions.items():
            facts = await client.hgetall(f"cwstorm:s:{{test-site:{session}}}")
            stored += facts.get("visitor") == visitor and facts.get("n:page_view") == "1"
    finally:
        await client.aclose()
    assert stored == TABS
