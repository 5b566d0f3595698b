"""The live QA view (/qa) in Chromium: the deep link docs/qa.md recommends
(``/qa?site=...&session=...``) shows the followed session at once, and keeps following it
after the server drops the admin socket (the page reconnects and says hello again).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from playwright.async_api import Page, expect

from support.browser import BROWSER_TEST, NewContext, Serve
from support.harness import write
from support.servers import LiveServer
from support.visitor import Visitor

pytest_plugins = ["support.browser"]
pytestmark = BROWSER_TEST

PASSWORD = "qa-browser-1"
PRODUCT = "http://shop.test/product/boots"
RULES = """
rules:
  - id: cart-left
    trigger:
      absence:
        after: {type: custom, name: add_to_cart}
        missing: {type: custom, name: purchase}
        within: 10m
    show: {template: note}
  - id: exit-offer
    trigger: {event: {type: exit_intent}}
    show: {template: note}
"""


def qa_server(serve: Serve, tmp_path: Path) -> LiveServer:
    rules = write(tmp_path / "rules" / "qa.yaml", textwrap.dedent(RULES)).parent
    return serve(rules_dir=rules, admin_password=PASSWORD)


async def qa_page(new_context: NewContext, server: LiveServer, path: str) -> Page:
    context = await new_context(http_credentials={"username": "admin", "password": PASSWORD})
    page = await context.new_page()
    await page.goto(server.url + path)
    await expect(page.locator("#status")).to_have_text("live")
    return page


async def test_the_deep_link_shows_the_visitor_events_timers_and_why_not(
    new_context: NewContext, serve: Serve, tmp_path: Path
) -> None:
    server = qa_server(serve, tmp_path)
    async with Visitor(server.url, visitor="v_deeplink01") as v:
        assert v.info
        session = v.info["session"]
        ack = await v.send(v.event("page_view", PRODUCT), v.event("custom", name="add_to_cart"))
        assert ack["accepted"] == 2

        qa = await qa_page(new_context, server, f"/qa?site=test-site&session={session}")
        await expect(qa.locator("#session-title")).to_have_text(f"Session {session}")
        meta = qa.locator("#session-meta")
        await expect(meta).to_contain_text("visitor v_deeplink01")
        await expect(meta).to_contain_text("2 events")
        timer = qa.locator('#timers li[data-rule="cart-left"]')
        await expect(timer).to_be_visible()
        await expect(timer.locator(".left")).to_contain_text(" s")
        await expect(qa.locator('#rules tr[data-rule="cart-left"]')).to_have_attribute(
            "data-state", "pending"
        )
        await expect(qa.locator('#rules tr[data-rule="exit-offer"]')).to_have_attribute(
            "data-state", "waiting"
        )
        await expect(qa.locator('#events li[data-type="custom"]')).to_have_count(1)


async def test_a_followed_session_keeps_updating_after_the_admin_socket_is_dropped(
    new_context: NewContext, serve: Serve, tmp_path: Path
) -> None:
    server = qa_server(serve, tmp_path)
    async with Visitor(server.url, visitor="v_followed01") as v:
        assert v.info
        session = v.info["session"]
        await v.send(v.event("page_view", PRODUCT), v.event("custom", name="add_to_cart"))

        qa = await qa_page(new_context, server, "/qa?site=test-site")
        await qa.locator(f'#sessions [data-session="{session}"]').click()
        meta = qa.locator("#session-meta")
        await expect(meta).to_contain_text("2 events")
        await qa.evaluate(
            """() => {
                window.cwStates = [];
                new MutationObserver(() => window.cwStates.push(document.body.dataset.connection))
                    .observe(document.body, {attributes: true, attributeFilter: ["data-connection"]});
            }"""
        )

        namespace = server.services.sio.namespace_handlers["/admin"]

        async def drop_admins() -> int:
            sids = list(namespace.feeds)
            for sid in sids:
                await server.services.sio.disconnect(sid, namespace="/admin")
            return len(sids)

        assert await server.call(drop_admins()) == 1
        await qa.wait_for_function(
            "() => window.cwStates.includes('closed') && "
            "document.body.dataset.connection === 'connected'"
        )
        await v.send(v.event("page_view", PRODUCT + "?size=42"))
        await expect(meta).to_contain_text("3 events")
        await expect(qa.locator('#events li[data-type="page_view"]')).to_have_count(2)
        await expect(qa.locator('#timers li[data-rule="cart-left"]')).to_be_visible()


async def test_a_refused_admin_socket_says_why_and_stays_closed(
    new_context: NewContext, serve: Serve, tmp_path: Path
) -> None:
    """The server refuses the namespace (here a forged token in place of the one the page
    fetches): the page shows the server's reason and does not try again."""
    server = qa_server(serve, tmp_path)
    context = await new_context(http_credentials={"username": "admin", "password": PASSWORD})
    page = await context.new_page()
    await page.route(
        "**/qa/api/token", lambda route: route.fulfill(json={"token": "9999999999999.forged"})
    )
    sockets: list[str] = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    await page.goto(server.url + "/qa?site=test-site")
    await expect(page.locator("#status")).to_have_text("refused: admin login required")
    assert await page.evaluate("() => document.body.dataset.connection") == "refused"
    assert len(sockets) == 1
