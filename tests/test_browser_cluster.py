"""The whole loop in a real browser on a Redis Cluster: a live server whose redis:// URL names
a node of the test's own 3-primary cluster (conftest.py ``redis_cluster``).

Pages, rules and templates as in test_browser_loop.py.
"""

from __future__ import annotations

import pytest
from playwright.async_api import Page, expect

from support.browser import count, facts, facts_when, prompt_host, recent_events, session_id
from support.servers import LiveServer
from support.waiting import eventually

pytest_plugins = ["support.browser"]
pytestmark = [
    pytest.mark.asyncio(loop_scope="session"),
    pytest.mark.parametrize("backend_url", ["cluster"], indirect=True),
]

BOOTS = "/product/boots.html"


async def test_the_whole_loop_on_a_redis_cluster(page: Page, server: LiveServer) -> None:
    """A live server on the test's 3-node Redis Cluster: the snippet's events are stored, the
    hesitation deadline fires from its shard, and the exit-intent rule fires on an event."""
    store = server.services.store
    assert store.keys.cluster, "the server found the cluster behind its redis:// URL"
    await page.goto(server.url + BOOTS)
    session = await session_id(page)

    dialog = prompt_host(page).get_by_role("dialog")  # the deadline's prompt, after 1 s
    await expect(dialog).to_have_accessible_name("Need help?")
    await dialog.get_by_role("button", name="Close").click()
    await facts_when(server, session, lambda f: count(f, "n:prompt_dismiss") == 1)

    await page.mouse.move(400, 300)  # up and out through the top edge: exit intent
    await page.mouse.move(400, 40, steps=5)
    await page.mouse.move(400, -20, steps=3)
    await expect(dialog).to_have_accessible_name("Leaving so soon?")

    stored = await facts(server, session)
    assert count(stored, "n:page_view") == 1 and count(stored, "n:exit_intent") == 1
    types = [e["type"] for e in await recent_events(server, session)]
    assert "page_view" in types and "exit_intent" in types
    fired = [
        r for r in await server.call(store.read_audit("test-site", 10)) if r["outcome"] == "fired"
    ]
    assert [r["rule"] for r in fired] == ["hesitate-product", "exit-product"]
    # The deadline went to its visitor's shard, in a slot of its own, and was acked there.
    assert await server.call(store.next_due_ms()) is None
    # The QA view's live stream (another slot: written after each batch) has the batches.
    live = await eventually(lambda: server.call(store.read_live("test-site", 100)))
    assert {entry["session"] for entry in live} == {session}
