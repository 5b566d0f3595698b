"""Signals in the moment, in Chromium with the real snippet and a real pointer: a pointer held
on a tracked element gives `hesitation` events while it stays (and a rule on them shows a
prompt before it leaves; the `hover` of the whole rest follows when it leaves), three fast
clicks give one `rage_click`, a click that changes nothing gives a `dead_click` and one whose
handler changes the page none, and after `consent(false)` none of them is sent."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from cuewire.sites import Site, Sites
from support.browser import (
    BROWSER_TEST,
    NewContext,
    Serve,
    center,
    count,
    facts,
    of,
    overlaps,
    prompt_host,
    recent_events,
    session_id,
    stored,
    visit,
)
from support.harness import write
from support.paths import ROOT
from support.servers import LiveServer
from support.waiting import eventually

pytest_plugins = ["support.browser"]
pytestmark = BROWSER_TEST

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Signals</title>
<script src="/cw.js" data-site="test-site" data-hesitation="600,1500" async></script>
<style>
  body { font: 16px/1.5 sans-serif; margin: 0; }
  #price { position: absolute; left: 40px; top: 40px; width: 240px; height: 80px; }
  #nothing, #adds { position: absolute; top: 200px; width: 160px; height: 40px; }
  #nothing { left: 40px; } #adds { left: 240px; }
  #rage { position: absolute; left: 440px; top: 200px; width: 160px; height: 40px; }
  #out { position: absolute; top: 300px; left: 40px; }
</style></head>
<body>
<div id="price" data-cw-track="price">49 EUR</div>
<button id="nothing" type="button">Does nothing</button>
<button id="adds" type="button">Add</button>
<button id="rage" type="button" data-cw-track="rage">Apply</button>
<p id="out"></p>
<div id="card" style="position: absolute; left: 40px; top: 400px; width: 160px; height: 40px;
  cursor: pointer">Card</div>
<p id="plain" style="position: absolute; left: 240px; top: 400px; width: 160px;">Plain text</p>
<script>
  document.getElementById("adds").addEventListener("click", () => {
    document.getElementById("out").textContent = "added";
  });
</script>
</body></html>
"""

RULES = """rules:
  - id: price-doubt
    trigger:
      event:
        type: hesitation
        where: {all: [{fact: element, equals: price}, {fact: ms, gte: 1500}]}
    show: {template: toast, params: {message: "Price match guaranteed", position: top-left}}
policy: {max_prompts_per_session: 0, dismissals: null}
"""


@pytest.fixture
def shop(serve: Serve, tmp_path: Path) -> LiveServer:
    pages = write(tmp_path / "pages" / "signals.html", PAGE).parent
    rules = write(tmp_path / "rules" / "signals.yaml", RULES).parent
    return serve(pages=pages, rules_dir=rules, templates_dir=ROOT / "templates")


async def test_a_pointer_held_on_a_tracked_element_hesitates_and_a_rule_answers_while_it_stays(
    new_context: NewContext, shop: LiveServer
) -> None:
    context = await new_context(viewport={"width": 1280, "height": 800}, reduced_motion="reduce")
    page = await context.new_page()
    sid = await visit(page, shop, "/signals.html")
    await page.mouse.move(*await center(page, "#price"), steps=4)

    first, second = await stored(shop, sid, "hesitation", 2)
    assert [first["ms"], second["ms"]] == [600, 1500]
    assert first["element"] == second["element"] == "price"
    assert first["selector"] == "#price"
    # the rule on the 1.5 s threshold shows its prompt while the pointer is still there
    await expect(prompt_host(page)).to_have_count(1)
    await expect(prompt_host(page)).to_contain_text("Price match guaranteed")
    # its corner (top-left) holds the price: the prompt moves off the element of the event
    toast = prompt_host(page, kind="toast").get_by_role("status")
    await page.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
    box, price = await toast.bounding_box(), await page.locator("#price").bounding_box()
    assert box is not None and price is not None
    assert not overlaps(box, price), f"the toast {box} covers the price {price}"
    events = await recent_events(shop, sid)
    assert of(events, "hover") == []  # nothing told the server the pointer left

    await page.mouse.move(5, 400)
    (hover,) = await stored(shop, sid, "hover")
    assert hover["element"] == "price" and hover["ms"] >= 1500
    assert len(of(await recent_events(shop, sid), "hesitation")) == 2  # one per threshold
    assert count(await facts(shop, sid), "n:hesitation") == 2  # session.count.hesitation


async def test_a_finger_held_on_a_call_to_action_hesitates_and_a_tap_does_not(
    new_context: NewContext, shop: LiveServer
) -> None:
    context = await new_context(
        has_touch=True, is_mobile=True, viewport={"width": 800, "height": 600}
    )
    page = await context.new_page()
    sid = await visit(page, shop, "/signals.html")
    cdp = await context.new_cdp_session(page)

    async def touch(kind: str, x: float = 0, y: float = 0) -> None:
        points = [] if kind == "touchEnd" else [{"x": x, "y": y}]
        await cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": points})

    x, y = await center(page, "#nothing")
    await touch("touchStart", x, y)
    await asyncio.sleep(0.2)
    await touch("touchEnd")  # a tap: over before the first threshold
    await page.evaluate("cuewire.track('tapped')")
    await touch("touchStart", x, y)
    first, second = await stored(shop, sid, "hesitation", 2)  # while the finger is down
    await touch("touchEnd")
    assert [first["ms"], second["ms"]] == [600, 1500]
    assert first["selector"] == "#nothing" and first.get("element") is None
    events = await recent_events(shop, sid)
    tapped = next(e for e in events if e["type"] == "custom" and e["name"] == "tapped")
    assert first["seq"] > tapped["seq"]  # the tap gave none


async def test_three_fast_clicks_in_one_spot_are_one_rage_click(
    page: Page, shop: LiveServer
) -> None:
    sid = await visit(page, shop, "/signals.html")
    x, y = await center(page, "#rage")
    for dx in (0, 4, -3, 2):
        await page.mouse.click(x + dx, y + dx)
    (rage,) = await stored(shop, sid, "rage_click")
    assert rage["count"] == 4
    assert rage["selector"] == "#rage" and rage["track"] == "rage"
    assert rage["text"] == "Apply"
    # two clicks apart are not rage; the burst above was reported once
    await page.mouse.click(x, y)
    await asyncio.sleep(1.0)
    await page.mouse.click(x, y)
    await asyncio.sleep(1.0)
    page_clicks = of(await recent_events(shop, sid), "click")
    assert len(page_clicks) == 6
    events = await recent_events(shop, sid)
    assert len(of(events, "rage_click")) == 1
    # the pointer rested 2 s on the button, but it was clicked: that is no hesitation
    assert of(events, "hesitation") == []
    assert count(await facts(shop, sid), "n:rage_click") == 1


async def test_a_rage_burst_cut_short_by_leaving_the_page_is_still_reported(
    page: Page, shop: LiveServer
) -> None:
    sid = await visit(page, shop, "/signals.html")
    x, y = await center(page, "#rage")
    for _ in range(3):
        await page.mouse.click(x, y)
    await page.goto(shop.url + "/signals.html?next")  # well within the burst's 700 ms
    (rage,) = await stored(shop, sid, "rage_click")
    assert rage["count"] == 3 and rage["url"].endswith("/signals.html")


async def test_a_click_that_changes_nothing_is_dead_and_one_that_changes_the_page_is_not(
    page: Page, shop: LiveServer
) -> None:
    sid = await visit(page, shop, "/signals.html")
    await page.mouse.click(*await center(page, "#adds"))
    await expect(page.locator("#out")).to_have_text("added")
    await asyncio.sleep(1.3)  # past the dead-click second of the click on #adds
    await page.mouse.click(*await center(page, "#nothing"))

    (dead,) = await stored(shop, sid, "dead_click")
    assert dead["selector"] == "#nothing"
    assert dead["text"] == "Does nothing"
    clicks = of(await recent_events(shop, sid), "click")
    assert [c["selector"] for c in clicks] == ["#adds", "#nothing"]
    # the dead click came after both clicks: the one on #adds had its second and gave none
    assert dead["seq"] > clicks[-1]["seq"]

    # a pointer cursor looks clickable; plain text does not
    await page.mouse.click(*await center(page, "#plain"))
    await asyncio.sleep(1.3)
    await page.mouse.click(*await center(page, "#card"))
    _, card = await stored(shop, sid, "dead_click", 2)
    assert card["selector"] == "#card"
    assert [d["selector"] for d in of(await recent_events(shop, sid), "dead_click")] == [
        "#nothing",
        "#card",
    ]


async def test_after_consent_false_no_signal_is_sent(page: Page, shop: LiveServer) -> None:
    sid = await visit(page, shop, "/signals.html")
    await page.evaluate("cuewire.consent(false)")
    await page.mouse.move(*await center(page, "#price"), steps=4)
    await asyncio.sleep(1.8)  # both hesitation thresholds pass
    x, y = await center(page, "#rage")
    for _ in range(3):
        await page.mouse.click(x, y)
    await page.mouse.click(*await center(page, "#nothing"))
    await asyncio.sleep(1.3)  # the rage burst ended and the dead-click second passed
    await page.evaluate("cuewire.consent(true); cuewire.track('back')")

    events = await eventually(
        lambda: recent_events(shop, sid),
        lambda found: any(e["type"] == "custom" and e["name"] == "back" for e in found),
        what="the custom event sent after consent came back",
    )
    kinds = {e["type"] for e in events}
    assert not kinds & {"hesitation", "rage_click", "dead_click", "click", "hover"}, kinds


async def test_the_demo_shop_answers_a_pointer_resting_on_the_price(
    new_context: NewContext, serve: Serve
) -> None:
    shop = serve(
        pages=ROOT / "demo-site",
        rules_dir=ROOT / "rules" / "demo",
        templates_dir=ROOT / "templates",
        sites=lambda origin: Sites({"demo": Site(origins=[origin])}),
    )
    context = await new_context(viewport={"width": 1280, "height": 800}, reduced_motion="reduce")
    page = await context.new_page()
    await page.goto(shop.url + "/product/storm-shell.html")
    sid = await session_id(page)
    price = page.locator('[data-cw-track="price"]')
    await expect(price).not_to_be_empty()
    await price.hover()

    toast = prompt_host(page, kind="toast").get_by_role("status")
    await expect(toast).to_contain_text("Price match promise")
    events = await recent_events(shop, sid, site="demo")
    assert [e["ms"] for e in of(events, "hesitation")] == [1500, 4000]
    assert of(events, "hover") == []  # the pointer has not left the price
