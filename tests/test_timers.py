"""Timers: durable deadlines in the store, claimed once, re-checked when they fall due."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from cuewire.settings import Settings
from cuewire.store import RedisStore, open_store
from support.harness import Harness, VisitorSession
from support.servers import WITH_CLUSTER

BACKENDS = WITH_CLUSTER

PRODUCT = "http://shop.test/product/boots"


async def on_a_product_page(
    store: RedisStore, settings: Settings
) -> tuple[Harness, VisitorSession]:
    """A visitor who just opened a product page: the 1 s hesitation deadline is running."""
    h = Harness(store, settings)
    v = await h.visit()
    await v.send("page_view", PRODUCT)
    return h, v


async def test_hesitation_fires_when_its_deadline_passes(
    store: RedisStore, settings: Settings
) -> None:
    h, _v = await on_a_product_page(store, settings)
    await h.pass_time(0.9)
    assert h.shown == []
    await h.pass_time(0.1)
    assert h.rules_shown == ["hesitate-product"]
    assert h.shown[0][0] == "sid-v_harness01"


async def test_the_awaited_event_cancels_the_deadline(
    store: RedisStore, settings: Settings
) -> None:
    h, v = await on_a_product_page(store, settings)
    await v.send("custom", PRODUCT, name="add_to_cart")
    await h.pass_time(60)
    assert h.shown == []


async def test_a_page_scoped_deadline_dies_with_its_page_even_in_a_spa(
    store: RedisStore, settings: Settings
) -> None:
    h, v = await on_a_product_page(store, settings)
    await h.pass_time(0.5)
    await v.send("page_view", "http://shop.test/cart", spa=True)
    await h.pass_time(60)
    assert h.shown == []


async def test_moving_to_another_product_restarts_the_deadline(
    store: RedisStore, settings: Settings
) -> None:
    h, v = await on_a_product_page(store, settings)
    await h.pass_time(0.6)
    await v.send("page_view", "http://shop.test/product/tent")
    await h.pass_time(0.6)
    assert h.shown == []
    await h.pass_time(0.4)
    assert h.rules_shown == ["hesitate-product"]
    assert "/product/tent" in h.shown[0][1].html


async def test_a_pending_deadline_survives_a_server_restart(
    store: RedisStore, settings: Settings
) -> None:
    if settings.redis_url is None:
        pytest.skip("the embedded store lives and dies with its process, by design")
    h, _v = await on_a_product_page(store, settings)
    async with open_store(settings) as restarted_store:
        after = Harness(restarted_store, settings, clock=h.clock)
        await after.pass_time(1)
        assert after.rules_shown == ["hesitate-product"]


async def test_two_processes_claiming_the_same_deadline_fire_it_once(
    store: RedisStore, settings: Settings
) -> None:
    h, _v = await on_a_product_page(store, settings)
    async with contextlib.AsyncExitStack() as stack:
        other = (
            await stack.enter_async_context(open_store(settings)) if settings.redis_url else store
        )
        second = Harness(other, settings, clock=h.clock)
        h.clock.advance(1)
        await asyncio.gather(*(x.timers.tick() for x in (h, second, h, second)))
        assert len(h.shown) + len(second.shown) == 1


async def test_a_due_prompt_waits_for_a_tab_to_reconnect(
    store: RedisStore, settings: Settings
) -> None:
    h, v = await on_a_product_page(store, settings)
    await store.release_socket("test-site", v.origin.session, v.origin.sid)
    await h.pass_time(1)
    assert h.shown == []
    await v.send("visibility", PRODUCT, state="visible", dwell_ms=900)  # the tab is back
    await h.pass_time(0.5)
    assert h.rules_shown == ["hesitate-product"]


async def test_a_due_prompt_is_dropped_when_no_tab_returns(
    store: RedisStore, settings: Settings
) -> None:
    h, v = await on_a_product_page(store, settings)
    await store.release_socket("test-site", v.origin.session, v.origin.sid)
    await h.pass_time(60)
    assert h.shown == []
    assert await store.next_due_ms() is None
