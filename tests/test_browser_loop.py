"""The whole loop in a real browser: a page carrying the script tag, the snippet's events, the
server's rules and templates, and the prompt mounted back in the page.

Pages: tests/fixtures/pages. Rules: tests/fixtures/rules/rules.yaml (exit intent on
/product/*, and hesitation: a product page view without ``add_to_cart`` within 1 s), both
rendering the ``note`` modal of tests/fixtures/templates.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgpack
import redis.asyncio
from playwright.async_api import Browser, Page, WebSocket, expect

from cuewire.keys import Keys
from support.browser import (
    BROWSER_TEST,
    CHROMIUM,
    CHROMIUM_ARGS,
    NewContext,
    Serve,
    count,
    facts,
    facts_when,
    prompt_host,
    recent_events,
    session_id,
)
from support.servers import LiveServer, site_for
from support.waiting import eventually

pytest_plugins = ["support.browser"]
pytestmark = BROWSER_TEST

EVENT_PACKET, ACK_PACKET = 2, 3  # Socket.IO packet types
BOOTS = "/product/boots.html"
GUIDE = "/guide.html"


async def open_boots_and_add_to_cart(page: Page, server: LiveServer) -> str:
    """A visitor who adds the boots to the cart at once: no hesitation prompt will come."""
    await page.goto(server.url + BOOTS)
    session = await session_id(page)
    await page.get_by_role("button", name="Add to cart").click()
    await facts_when(server, session, lambda f: count(f, "c:add_to_cart") == 1)
    return session


async def test_hesitation_prompt_appears_in_a_shadow_root(page: Page, server: LiveServer) -> None:
    await page.goto(server.url + BOOTS)

    host = prompt_host(page, kind="modal")
    await expect(host).to_have_count(1)
    dialog = host.get_by_role("dialog")
    await expect(dialog).to_be_visible()
    assert await host.evaluate("h => h.shadowRoot !== null && h.shadowRoot.mode === 'open'")
    assert await host.evaluate("h => h.children.length === 0"), "content lives in the shadow root"
    await expect(dialog).to_have_attribute("aria-modal", "true")
    await expect(dialog).to_have_accessible_name("Need help?")
    # Rendered by the server from the note template, with the rule's params and session facts.
    await expect(dialog.locator(".cw-from")).to_have_text(f"You were on {server.url}{BOOTS}")
    await expect(dialog.locator(".cw-name")).to_have_text("Hi there")


async def test_escape_closes_the_modal_and_gives_focus_back(page: Page, server: LiveServer) -> None:
    await page.goto(server.url + BOOTS)
    search = page.get_by_role("searchbox", name="Search the shop")
    await search.focus()

    dialog = prompt_host(page).get_by_role("dialog")
    await expect(dialog).to_be_visible()
    await expect(dialog.get_by_role("button", name="Close")).to_be_focused()
    await page.keyboard.press("Escape")

    await expect(prompt_host(page)).to_have_count(0)
    await expect(search).to_be_focused()


async def test_close_button_closes_the_prompt(page: Page, server: LiveServer) -> None:
    await page.goto(server.url + BOOTS)
    dialog = prompt_host(page).get_by_role("dialog")
    await dialog.get_by_role("button", name="Close").click()
    await expect(prompt_host(page)).to_have_count(0)


async def test_prompt_shown_and_dismiss_reach_the_server(page: Page, server: LiveServer) -> None:
    await page.goto(server.url + BOOTS)
    session = await session_id(page)
    host = prompt_host(page)
    prompt_id = await host.get_attribute("data-cuewire-prompt")

    await facts_when(server, session, lambda f: count(f, "n:prompt_shown") == 1)
    await host.get_by_role("button", name="Close").click()
    await facts_when(server, session, lambda f: count(f, "n:prompt_dismiss") == 1)

    reports = [
        (e["type"], e["prompt"], e["rule"])
        for e in await recent_events(server, session)
        if e["type"].startswith("prompt_")
    ]
    assert reports == [
        ("prompt_shown", prompt_id, "hesitate-product"),
        ("prompt_dismiss", prompt_id, "hesitate-product"),
    ]
    [fired] = await server.call(server.services.store.read_audit("test-site", 10))
    assert (fired["outcome"], fired["rule"], fired["prompt"]) == (
        "fired",
        "hesitate-product",
        prompt_id,
    )


def socketio_packets(ws: WebSocket, into: list[dict[str, Any]]) -> None:
    """Collect the Socket.IO packets the server sends on ``ws`` (msgpack, binary frames)."""

    def received(payload: str | bytes) -> None:
        if isinstance(payload, bytes):
            into.append(msgpack.unpackb(payload))

    ws.on("framereceived", received)


async def test_leaving_through_the_top_of_the_window_shows_the_exit_prompt(
    page: Page, server: LiveServer
) -> None:
    """The snippet connects with ``prompt_in_ack``: the exit prompt comes in the ack of the
    batch that carried the exit intent, and no push of it comes beside."""
    packets: list[dict[str, Any]] = []
    page.on("websocket", lambda ws: socketio_packets(ws, packets))
    session = await open_boots_and_add_to_cart(page, server)

    # Up and out through the top edge. Chromium turns the move past the edge into a mouseout
    # with relatedTarget null and clientY < 0, as a real pointer heading for the tabs does;
    # no synthetic event is needed.
    await page.mouse.move(400, 300)
    await page.mouse.move(400, 40, steps=5)
    await page.mouse.move(400, -20, steps=3)

    dialog = prompt_host(page).get_by_role("dialog")
    await expect(dialog).to_have_accessible_name("Leaving so soon?")
    stored = await facts(server, session)
    assert count(stored, "n:exit_intent") == 1
    acked = [
        prompt["rule"]
        for packet in packets
        if packet.get("type") == ACK_PACKET
        for ack in packet["data"]
        if isinstance(ack, dict)
        for prompt in ack.get("prompts", [])
    ]
    pushed = [p for p in packets if p.get("type") == EVENT_PACKET and p["data"][0] == "prompt"]
    assert (acked, pushed) == (["exit-product"], [])


async def test_spa_navigation_away_before_the_deadline_means_no_hesitation_prompt(
    page: Page, server: LiveServer
) -> None:
    store = server.services.store
    await page.goto(server.url + BOOTS)
    session = await session_id(page)
    due_ms = await eventually(lambda: server.call(store.next_due_ms()), what="a hesitation timer")

    await page.get_by_role("link", name="Fitting guide").click()  # the page's router: pushState
    moved = await facts_when(server, session, lambda f: f.get("path") == GUIDE)
    assert int(moved["page_started"]) < due_ms, "setup: the route changed after the deadline"
    # Every pending deadline has been dealt with once the timer set is empty.
    await eventually(lambda: server.call(store.next_due_ms()), lambda due: due is None)
    await expect(prompt_host(page)).to_have_count(0)

    # Back on a product page of the same app, hesitation is measured again, from that page.
    # The rule fires once per session: the prompt shows that it had not fired for the boots.
    await page.get_by_role("link", name="Wool socks").click()
    dialog = prompt_host(page).get_by_role("dialog")
    socks = f"{server.url}/product/socks.html"
    await expect(dialog.locator(".cw-from")).to_have_text(f"You were on {socks}")
    fired = [
        r for r in await server.call(store.read_audit("test-site", 10)) if r["outcome"] == "fired"
    ]
    assert [(r["rule"], r["url"]) for r in fired] == [("hesitate-product", socks)]


async def test_clicks_scroll_milestones_and_custom_events_arrive_counted(
    page: Page, server: LiveServer
) -> None:
    await page.goto(server.url + GUIDE)
    session = await session_id(page)

    await page.get_by_role("button", name="Get the newsletter").click()
    await page.get_by_role("heading", name="Length").click()
    await page.mouse.move(300, 300)
    while not await page.evaluate("scrollY + innerHeight >= document.body.scrollHeight - 2"):
        await page.mouse.wheel(0, 500)
    await page.evaluate("cuewire.track('size_chart', {size: 43, unit: 'EU', wide: true})")

    stored = await facts_when(
        server, session, lambda f: count(f, "n:scroll") == 5 and count(f, "n:custom") == 1
    )
    assert count(stored, "n:page_view") == 1
    assert count(stored, "n:click") == 2
    assert count(stored, "c:size_chart") == 1
    assert stored["scroll"] == "100"

    events = await recent_events(server, session)
    assert [e["depth"] for e in events if e["type"] == "scroll"] == [25, 50, 75, 90, 100]
    clicks = [e for e in events if e["type"] == "click"]
    assert (clicks[0]["selector"], clicks[0]["text"], clicks[0]["track"]) == (
        "#newsletter",
        "Get the newsletter",
        "newsletter",
    )
    assert clicks[1]["text"] == "Length"
    [custom] = [e for e in events if e["type"] == "custom"]
    assert (custom["name"], custom["props"]) == (
        "size_chart",
        {"size": 43, "unit": "EU", "wide": True},
    )
    assert [e["seq"] for e in events] == list(range(len(events)))


async def test_consent_withdrawn_sends_nothing_afterwards(page: Page, server: LiveServer) -> None:
    sockets: list[WebSocket] = []
    page.on("websocket", lambda ws: sockets.append(ws))
    await page.goto(server.url + GUIDE)
    session = await session_id(page)
    await facts_when(server, session, lambda f: count(f, "n:page_view") == 1)

    [socket] = sockets
    async with socket.expect_event("close"):
        withdrawn_at = await page.evaluate(
            "(() => { cuewire.consent(false); return Date.now(); })()"
        )
    await page.get_by_role("button", name="Get the newsletter").click()
    await page.mouse.move(300, 300)
    await page.mouse.wheel(0, 5000)
    await page.wait_for_function("scrollY + innerHeight >= document.body.scrollHeight - 2")
    await page.evaluate("cuewire.track('withheld', {n: 1})")
    assert await page.evaluate("localStorage.getItem('cw_consent')") == "0"
    assert len(sockets) == 1, "no new connection while consent is withheld"

    # Consent given again: the snippet reconnects and reports the page. Whatever it had kept
    # from the withheld period would have been sent before that page view.
    given_at = await page.evaluate(
        "(() => { const t = Date.now(); cuewire.consent(true); return t; })()"
    )
    stored = await facts_when(server, session, lambda f: count(f, "n:page_view") == 2)
    withheld = [
        e for e in await recent_events(server, session) if withdrawn_at <= e["ts"] < given_at
    ]
    assert withheld == []
    assert count(stored, "n:click") == 0
    assert count(stored, "n:custom") == 0


async def do_not_track_profile(folder: Path) -> Path:
    """A Chromium profile with the browser's own "Send a Do Not Track request" setting on."""
    (folder / "Default").mkdir(parents=True)
    (folder / "Default" / "Preferences").write_text(json.dumps({"enable_do_not_track": True}))
    return folder


async def test_a_site_honouring_dnt_gets_no_session_from_a_do_not_track_browser(
    browser: Browser, serve: Serve, backend_url: str, tmp_path: Path
) -> None:
    # Playwright's extra_http_headers ({"DNT": "1"}) reach page loads but not the WebSocket
    # handshake, and leave navigator.doNotTrack unset: the server would never hear of them.
    # Chromium's own setting is the real thing: DNT: 1 on requests, navigator.doNotTrack "1".
    server = serve(sites=lambda origin: site_for(origin, honor_dnt=True))
    context = await browser.browser_type.launch_persistent_context(
        await do_not_track_profile(tmp_path / "profile"),
        executable_path=CHROMIUM,
        args=CHROMIUM_ARGS,
    )
    try:
        page = await context.new_page()
        await assert_refused_for_dnt(page, server, backend_url)
    finally:
        await context.close()


async def test_a_site_honouring_dnt_gets_no_session_from_a_gpc_browser(
    new_context: NewContext, serve: Serve, backend_url: str
) -> None:
    # Chromium has no Global Privacy Control setting: send the header and expose
    # navigator.globalPrivacyControl, as browsers with GPC do.
    server = serve(sites=lambda origin: site_for(origin, honor_dnt=True))
    context = await new_context(extra_http_headers={"DNT": "1", "Sec-GPC": "1"})
    await context.add_init_script(
        "Object.defineProperty(Navigator.prototype, 'globalPrivacyControl', {get: () => true})"
    )
    await assert_refused_for_dnt(await context.new_page(), server, backend_url)


async def assert_refused_for_dnt(page: Page, server: LiveServer, redis_url: str) -> None:
    async with (
        page.expect_websocket() as opened,
        page.expect_request(server.url + GUIDE) as loaded,
    ):
        await page.goto(server.url + GUIDE)
    request_headers = await (await loaded.value).all_headers()
    assert "1" in (request_headers.get("dnt"), request_headers.get("sec-gpc"))
    socket = await opened.value
    if not socket.is_closed():
        await socket.wait_for_event("close")  # refused with "do-not-track": the snippet stops
    await page.get_by_role("button", name="Get the newsletter").click()
    await page.evaluate("cuewire.track('ignored')")

    assert await page.evaluate("localStorage.getItem('cw_sid')") is None
    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        stored = {k.decode() for k in await client.keys(server.settings.key_prefix + ":*")}
        # nothing of the visitor's: only the server's own keys, its inbox (inbox.py) and the
        # outboxes' streams (outbox.py), whose consumer groups it made at start
        keys = Keys(server.settings.key_prefix)
        own = {keys.inbox(server.services.sockets.process)}
        own |= {keys.outbox(channel, "stream") for channel in server.services.outboxes}
        assert stored <= own, "nothing is stored"
    finally:
        await client.aclose()


async def test_the_snippet_is_served_gzipped_as_javascript_with_an_etag(
    page: Page, server: LiveServer
) -> None:
    async with page.expect_response(lambda r: r.url == server.url + "/cw.js") as served:
        await page.goto(server.url + GUIDE)
    response = await served.value
    headers = await response.all_headers()
    assert "gzip" in (await response.request.all_headers())["accept-encoding"]
    assert headers["content-encoding"] == "gzip"
    assert headers["content-type"] == "application/javascript; charset=utf-8"
    etag = headers["etag"]
    assert etag.startswith('"') and etag.endswith('"')
    assert await page.evaluate("typeof cuewire.version") == "string"

    assert int(headers["content-length"]) < len(await response.body()) / 2
    again = await page.request.get(server.url + "/cw.js", headers={"If-None-Match": etag})
    assert again.status == 304
