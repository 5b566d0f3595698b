"""A page hidden and then visible again, in Chromium with the real snippet and real input.

Headless Chromium keeps a tab that stays visible (another tab in front or a minimised window
change nothing), so the page is hidden the way a phone hides it most often: the visitor goes
to another page and comes back with the back button, and the browser's back-forward cache
shows the same, live document again (Playwright turns that cache off by default; this
module's browser keeps it on). The page then goes `hidden` and `visible` for real, and:

- `visibility` reports both changes, with the page's visible time (the hidden stretch not
  counted) and its attentive time, and the session facts follow;
- on a phone, hidden after the visitor touched the page is `exit_intent {cause: hidden}`;
  hidden without any interaction is no exit intent; on a desktop hiding is none either."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from support.browser import (
    BROWSER_TEST,
    CHROMIUM,
    CHROMIUM_ARGS,
    Serve,
    facts,
    of,
    recent_events,
    stored,
    visit,
)
from support.servers import LiveServer
from support.waiting import WAIT_S

pytest_plugins = ["support.browser"]
pytestmark = BROWSER_TEST


@pytest_asyncio.fixture(loop_scope="session")
async def bfcache_browser() -> AsyncIterator[Browser]:
    """The system Chromium with its back-forward cache on."""
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM,
            args=CHROMIUM_ARGS,
            ignore_default_args=["--disable-back-forward-cache"],
        )
        yield browser
        await browser.close()


@pytest.fixture
def site(serve: Serve) -> LiveServer:
    return serve()  # tests/fixtures/pages: guide.html is an article no rule targets


async def opened(browser: Browser, site: LiveServer, **options: Any) -> tuple[Page, str]:
    context: BrowserContext = await browser.new_context(**options)
    context.set_default_timeout(WAIT_S * 1000)
    page = await context.new_page()
    return page, await visit(page, site, "/guide.html")


async def away_and_back(page: Page, site: LiveServer, seconds: float) -> None:
    """The visitor goes to another page for ``seconds``, then presses back: the same
    document shows again, restored from the back-forward cache."""
    await page.goto(site.url + "/elsewhere.html")  # a page without the snippet
    await asyncio.sleep(seconds)
    await page.go_back(wait_until="commit")  # a restored page sends no new load event
    await page.wait_for_function("document.visibilityState === 'visible'")
    assert await page.evaluate("performance.getEntriesByType('navigation').length") == 1


async def test_hidden_then_visible_again_reports_both_with_visible_and_attentive_time(
    bfcache_browser: Browser, site: LiveServer
) -> None:
    page, sid = await opened(bfcache_browser, site)
    for i in range(4):  # the pointer moves over the text for about a second
        await page.mouse.move(100 + 30 * i, 200, steps=3)
        await asyncio.sleep(0.3)
    await away_and_back(page, site, 2)

    hidden, visible = await stored(site, sid, "visibility", 2)
    assert (hidden["state"], visible["state"]) == ("hidden", "visible")
    assert 1000 <= hidden["dwell_ms"] < 2000 + 1500  # the visible time only ...
    assert visible["dwell_ms"] == hidden["dwell_ms"]  # ... the 2 s away not counted
    assert 900 <= hidden["active_ms"] <= hidden["dwell_ms"]  # the pointer moved all along
    # none of the 2 s away counts; the report on showing is made a moment after the tab
    # shows (the attention and visibility collectors hear of it in turn), and that moment,
    # visible with input in the last 15 s, is attentive
    assert 0 <= visible["active_ms"] - hidden["active_ms"] < 100
    stored_facts = await facts(site, sid)
    assert stored_facts["visible"] == "1" and stored_facts["active_ms"] == str(visible["active_ms"])
    assert len(of(await recent_events(site, sid), "page_view")) == 1  # the same page
    assert of(await recent_events(site, sid), "exit_intent") == []  # not on a desktop


async def test_on_a_phone_hidden_after_a_touch_is_exit_intent_hidden(
    bfcache_browser: Browser, site: LiveServer
) -> None:
    page, sid = await opened(bfcache_browser, site, has_touch=True, is_mobile=True)
    await page.touchscreen.tap(150, 60)
    await away_and_back(page, site, 0.5)
    (exit_intent,) = await stored(site, sid, "exit_intent")
    assert exit_intent["cause"] == "hidden"
    hidden, _ = await stored(site, sid, "visibility", 2)
    assert hidden["state"] == "hidden" and hidden["seq"] < exit_intent["seq"]


async def test_on_a_phone_hidden_without_interaction_is_no_exit_intent(
    bfcache_browser: Browser, site: LiveServer
) -> None:
    page, sid = await opened(bfcache_browser, site, has_touch=True, is_mobile=True)
    await away_and_back(page, site, 0.5)
    await stored(site, sid, "visibility", 2)  # hidden and visible again, both in
    await page.touchscreen.tap(150, 60)  # touched now, after it was hidden: still none
    await stored(site, sid, "click")
    assert of(await recent_events(site, sid), "exit_intent") == []
