"""The older collectors in Chromium with the real snippet and real input (nothing here sends
an event by hand; page.evaluate only reads): a pointer resting on a tracked element gives
`hover` with the rest's duration when it leaves, scrolling a tracked element into view gives
`element_visible` once, 30 s without input give `idle` and the next input `active` (the page's
clock is Playwright's, run forward), and leaving a page gives `visibility` hidden with that page's visible time (headless Chromium
cannot hide a tab that stays: see the last test)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from support.browser import (
    BROWSER_TEST,
    NewContext,
    Serve,
    center,
    count,
    facts,
    of,
    recent_events,
    stored,
    visit,
)
from support.harness import write
from support.servers import LiveServer

pytest_plugins = ["support.browser"]
pytestmark = BROWSER_TEST

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Collectors</title>
<script src="/cw.js" data-site="test-site" async></script>
<style>
  body { font: 16px/1.5 sans-serif; margin: 0; }
  #price { position: absolute; left: 40px; top: 40px; width: 240px; height: 80px; }
  #reviews { position: absolute; left: 40px; top: 2400px; width: 400px; height: 200px; }
</style></head>
<body>
<div id="price" data-cw-track="price">49 EUR</div>
<section id="reviews" data-cw-track="reviews">Reviews</section>
</body></html>
"""


@pytest.fixture
def shop(serve: Serve, tmp_path: Path) -> LiveServer:
    return serve(pages=write(tmp_path / "pages" / "collectors.html", PAGE).parent)


async def test_a_rest_on_a_tracked_element_is_a_hover_of_its_duration(
    new_context: NewContext, shop: LiveServer
) -> None:
    context = await new_context(viewport={"width": 1280, "height": 800})
    page = await context.new_page()
    sid = await visit(page, shop, "/collectors.html")
    await page.mouse.move(*await center(page, "#price"), steps=4)
    await asyncio.sleep(0.4)
    await page.mouse.move(900, 500)  # a short rest: under a second, no hover
    await page.mouse.move(*await center(page, "#price"), steps=4)
    await asyncio.sleep(1.4)
    await asyncio.sleep(0.1)
    events = await recent_events(shop, sid)
    assert of(events, "hover") == []  # still resting: nothing said yet
    await page.mouse.move(900, 500)
    (hover,) = await stored(shop, sid, "hover")
    assert hover["element"] == "price"
    assert 1400 <= hover["ms"] < 5000
    # a rest that ends in a click is no hover
    await page.mouse.move(*await center(page, "#price"), steps=4)
    await asyncio.sleep(1.2)
    await page.mouse.down()
    await page.mouse.up()
    await page.mouse.move(900, 500)
    await asyncio.sleep(0.3)
    assert len(of(await recent_events(shop, sid), "hover")) == 1
    assert count(await facts(shop, sid), "n:hover") == 1


async def test_a_tracked_element_scrolled_into_view_is_visible_once(
    new_context: NewContext, shop: LiveServer
) -> None:
    context = await new_context(viewport={"width": 1280, "height": 800})
    page = await context.new_page()
    sid = await visit(page, shop, "/collectors.html")
    (price,) = await stored(shop, sid, "element_visible")  # in view at load
    assert price["element"] == "price" and price["ratio"] == 1.0
    await asyncio.sleep(0.3)
    assert len(of(await recent_events(shop, sid), "element_visible")) == 1  # reviews is below
    await page.mouse.move(600, 400)
    for _ in range(6):
        await page.mouse.wheel(0, 400)
        await asyncio.sleep(0.05)
    _, reviews = await stored(shop, sid, "element_visible", 2)
    assert reviews["element"] == "reviews" and 0.5 <= reviews["ratio"] <= 1.0
    await page.mouse.wheel(0, -2400)  # back up and down again: each is reported once a page
    await asyncio.sleep(0.3)
    await page.mouse.wheel(0, 2400)
    await asyncio.sleep(0.5)
    assert len(of(await recent_events(shop, sid), "element_visible")) == 2


async def test_thirty_seconds_without_input_are_idle_and_the_next_input_is_active(
    new_context: NewContext, shop: LiveServer
) -> None:
    context = await new_context(viewport={"width": 1280, "height": 800})
    page = await context.new_page()
    await page.clock.install()
    sid = await visit(page, shop, "/collectors.html")
    await page.mouse.move(300, 300)
    await page.clock.run_for(20_000)
    await page.mouse.move(320, 320)  # input: the quiet time starts again
    await page.clock.run_for(20_000)
    await asyncio.sleep(0.3)
    assert of(await recent_events(shop, sid), "idle") == []
    await page.clock.run_for(11_000)
    (idle,) = await stored(shop, sid, "idle")
    assert 30_000 <= idle["ms"] < 31_000
    await page.keyboard.press("ArrowDown")
    (active,) = await stored(shop, sid, "active")
    assert active["seq"] > idle["seq"]


async def test_a_page_left_reports_it_hidden_with_its_own_visible_time(
    new_context: NewContext, shop: LiveServer
) -> None:
    # Headless Chromium keeps every tab visible (another tab in front, a minimised window, a
    # frozen lifecycle state leave visibilityState "visible"), and Playwright turns the
    # back-forward cache off: leaving the page is the real way to hide it here.
    context = await new_context(viewport={"width": 1280, "height": 800})
    page = await context.new_page()
    sid = await visit(page, shop, "/collectors.html")
    await page.mouse.move(300, 300)
    await asyncio.sleep(1.0)
    await page.goto(shop.url + "/collectors.html?next")
    (hidden,) = await stored(shop, sid, "visibility")
    assert hidden["state"] == "hidden" and 1000 <= hidden["dwell_ms"] < 5000
    assert hidden["url"].endswith("/collectors.html")
    await asyncio.sleep(0.2)
    await page.goto(shop.url + "/collectors.html?third")
    _, second = await stored(shop, sid, "visibility", 2)
    assert second["state"] == "hidden" and second["url"].endswith("?next")
    assert 200 <= second["dwell_ms"] < hidden["dwell_ms"]  # that page's own time, not a sum
    assert count(await facts(shop, sid), "n:visibility") == 2
