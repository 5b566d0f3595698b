"""The QA view's "Reset this visitor" with the visitor's tab still open (docs/qa.md): the
server forgets the visitor, then pushes ``reset`` to the tab's socket (docs/protocol.md); the
snippet drops its session id and its unsent events, reconnects under the same visitor id and
opens a fresh session, which the store knows as a new visitor's. A forced rule then reaches
the tab without a reload, on the tab's own process and through the inbox of another one.
"""

from __future__ import annotations

import base64
from typing import Any

import httpx
from playwright.async_api import Page, expect

from cuewire.sockets import parse_address
from support.browser import BROWSER_TEST, Serve, prompt_host, session_id
from support.servers import LiveServer
from support.waiting import eventually

pytest_plugins = ["support.browser"]
pytestmark = BROWSER_TEST

PASSWORD = "qa-reset-1"
SECRET = "a-reset-secret-of-32-characters!"
SITE = "test-site"
RULE = "hesitate-product"  # shows a prompt; its `when` (a product page) is skipped when forced
BASIC = {"Authorization": "Basic " + base64.b64encode(f"admin:{PASSWORD}".encode()).decode()}


async def qa_post(qa: LiveServer, path: str, body: dict[str, str]) -> httpx.Response:
    """A POST of the QA page: the admin's credentials and its CSRF token."""
    async with httpx.AsyncClient(base_url=qa.url, headers=BASIC, timeout=10) as http:
        token = (await http.get("/qa/api/token")).json()["token"]
        return await http.post(path, json=body, headers={"X-Cuewire-Token": token})


async def visitor_of(page: Page) -> str:
    value: str = await page.evaluate("() => localStorage.getItem('cw_vid')")
    return value


async def fresh_session(page: Page, old: str) -> str:
    """The session id the snippet holds once it is no longer ``old``."""
    return await eventually(lambda: session_id(page), lambda s: s != old, what="a new session")


async def reset_then_force(qa: LiveServer, holder: LiveServer, page: Page) -> dict[str, Any]:
    """Reset the visitor of ``page`` (a tab on ``holder``) through ``qa``; check the tab's new
    session, then force a prompt into it: the reset's answer."""
    await page.goto(holder.url + "/guide.html")
    old, visitor = await session_id(page), await visitor_of(page)
    store = holder.services.store

    async def old_facts() -> dict[str, str]:
        return dict(await holder.call(store.session_facts(SITE, old)))

    sid = (await eventually(old_facts, lambda f: bool(f.get("sid")), what="a socket record"))["sid"]
    assert parse_address(sid)[0] == holder.services.sockets.process
    reset = await qa_post(qa, "/qa/api/reset", {"site": SITE, "visitor": visitor})
    assert reset.status_code == 200, reset.text
    assert old in reset.json()["sessions"] and reset.json()["tabs"] == 1

    new = await fresh_session(page, old)
    assert await visitor_of(page) == visitor  # the same visitor id, its state forgotten

    async def new_facts() -> dict[str, str]:
        return dict(await holder.call(store.session_facts(SITE, new)))

    # the tab's page_view (the collectors start over) lands in the new session, with a socket
    facts = await eventually(
        new_facts, lambda f: bool(f.get("sid")) and f.get("n:page_view") == "1"
    )
    assert facts["visitor"] == visitor
    assert await holder.call(store.session_facts(SITE, old)) == {}
    known = await holder.call(store.visitor_facts(SITE, visitor))
    assert known["session"] == new and known["sessions"] == "1"  # new, not returning

    forced = await qa_post(qa, "/qa/api/force", {"site": SITE, "session": new, "rule": RULE})
    assert forced.status_code == 200, forced.text
    assert forced.json()["outcome"] == "forced"
    await expect(prompt_host(page)).to_have_count(1)
    return dict(reset.json())


async def test_a_reset_starts_the_open_tab_afresh_and_a_forced_rule_reaches_it(
    serve: Serve, page: Page
) -> None:
    server = serve(admin_password=PASSWORD, secret=SECRET)
    await reset_then_force(server, server, page)


async def test_a_reset_reaches_a_tab_held_by_another_process_through_its_inbox(
    serve: Serve, page: Page
) -> None:
    """Two server processes on one Redis: the QA view asks A, the tab's socket is on B."""
    qa = serve(admin_password=PASSWORD, secret=SECRET)
    holder = serve(admin_password=PASSWORD, secret=SECRET)
    assert qa.services.sockets.process != holder.services.sockets.process
    registry = holder.services.metrics.registry

    def resets_received() -> float:
        found = registry.get_sample_value("cuewire_inbox_received_total", {"kind": "reset"})
        return found or 0.0

    await reset_then_force(qa, holder, page)
    assert resets_received() == 1  # the one reset crossed to B through its inbox


async def test_the_other_tabs_of_the_session_start_afresh_too(serve: Serve, page: Page) -> None:
    """A session records one socket (its latest tab): the tab told tells the browser's other
    tabs of the session (localStorage), which reconnect too; nothing goes to the old session."""
    server = serve(admin_password=PASSWORD, secret=SECRET)
    store = server.services.store
    await page.goto(server.url + "/guide.html")
    old, visitor = await session_id(page), await visitor_of(page)
    second = await page.context.new_page()  # same storage: the same visitor and session
    await second.goto(server.url + "/guide.html")

    async def old_facts() -> dict[str, str]:
        return dict(await server.call(store.session_facts(SITE, old)))

    await eventually(old_facts, lambda f: f.get("n:page_view") == "2", what="both tabs in it")
    reset = await qa_post(server, "/qa/api/reset", {"site": SITE, "visitor": visitor})
    assert reset.json()["tabs"] == 1  # the socket the session recorded: the second tab's
    for tab in (page, second):
        await eventually(lambda t=tab: t.evaluate("cuewire.stats().reconnects"), lambda n: n >= 1)
    await page.evaluate("cuewire.track('after_reset')")  # the first tab, which was not told

    async def latest() -> dict[str, str]:
        known = await server.call(store.visitor_facts(SITE, visitor))
        return dict(await server.call(store.session_facts(SITE, known.get("session", ""))))

    async def tracked() -> int:
        found = await qa_search(server, visitor)
        counts = [await server.call(store.session_facts(SITE, s)) for s in found]
        return sum(int(f.get("c:after_reset", "0")) for f in counts)

    assert await eventually(tracked, lambda n: n == 1, what="the event in a fresh session") == 1
    assert (await latest())["visitor"] == visitor
    assert await old_facts() == {}  # nothing rebuilt the forgotten session


async def qa_search(qa: LiveServer, visitor: str) -> list[str]:
    """The live sessions of ``visitor`` the QA search finds."""
    async with httpx.AsyncClient(base_url=qa.url, headers=BASIC, timeout=10) as http:
        params = {"site": SITE, "by": "visitor", "q": visitor}
        found = (await http.get("/qa/api/search", params=params)).json()["sessions"]
    return [s["session"] for s in found if s["live"]]
