"""Real attention and mobile exit intent, in Chromium with the real snippet and real input:
a visitor who keeps moving the pointer or scrolls slowly (reading, no clicks) sends `attention`
beats whose `active_ms` grows and an `inactivity` rule leaves them alone, and once they stop
the rule answers; on a touch device a fast scroll back up gives `exit_intent {cause: scroll_up}` (and a
rule on that cause answers, a slow scroll gives none), back-navigation gives `cause: back`;
on a desktop the pointer leaving through the top still gives `cause: mouse_leave`; after
`consent(false)` none of them is sent."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from playwright.async_api import BrowserContext, Page, expect

from support.browser import (
    BROWSER_TEST,
    NewContext,
    Serve,
    facts,
    of,
    prompt_host,
    recent_events,
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
<html lang="en"><head><meta charset="utf-8"><title>Attention</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<script src="/cw.js" data-site="test-site" async></script>
<style>body { font: 16px/1.5 sans-serif; margin: 0; } main { height: 6000px; }</style>
</head><body><main><p id="text">A long article.</p></main></body></html>
"""

RULES = """rules:
  - id: still-there
    trigger: {inactivity: {for: 8s}}
    show: {template: toast, params: {message: "Still there?"}}
  - id: leaving-by-scroll
    trigger:
      event: {type: exit_intent, where: {fact: cause, equals: scroll_up}}
    show: {template: toast, params: {message: "Before you go"}}
policy: {max_prompts_per_session: 0, dismissals: null}
"""
READ_S = 10  # longer than the 8 s of `still-there`; beats come every 5 s, so two by then


@pytest.fixture
def site(serve: Serve, tmp_path: Path) -> LiveServer:
    pages = write(tmp_path / "pages" / "article.html", PAGE).parent
    rules = write(tmp_path / "rules" / "attention.yaml", RULES).parent
    return serve(pages=pages, rules_dir=rules, templates_dir=ROOT / "templates")


async def touch_page(new_context: NewContext) -> tuple[BrowserContext, Page]:
    context = await new_context(
        has_touch=True, is_mobile=True, viewport={"width": 400, "height": 700}
    )
    return context, await context.new_page()


async def swipe(context: BrowserContext, page: Page, y0: int, y1: int, seconds: float) -> None:
    """A real finger dragged from y0 to y1 in about ``seconds`` and lifted (the page flings
    on as a phone's would): y1 < y0 scrolls down the page, y1 > y0 back up.

    Each move is a round trip to Chromium; a flick takes three, so that a loaded machine
    slowing each one down still leaves the finger fast."""
    cdp = await context.new_cdp_session(page)

    async def touch(kind: str, y: float | None = None) -> None:
        points = [] if y is None else [{"x": 200, "y": y}]
        await cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": points})

    steps = 3 if seconds < 0.1 else 10
    await touch("touchStart", y0)
    for i in range(1, steps + 1):
        await touch("touchMove", y0 + (y1 - y0) * i / steps)
        await asyncio.sleep(seconds / steps)
    await touch("touchEnd")
    await asyncio.sleep(1)  # the fling settles
    await cdp.detach()


async def test_a_reader_keeps_active_time_growing_and_no_inactivity_prompt_until_they_stop(
    page: Page, site: LiveServer
) -> None:
    sid = await visit(page, site, "/article.html")
    await page.mouse.move(100, 100)
    for i in range(READ_S):  # reading: the pointer drifts or the page scrolls a little
        if i % 2:
            await page.mouse.wheel(0, 30)  # slowly: no scroll milestone (25 %) is crossed
        else:
            await page.mouse.move(100 + 20 * (i % 4), 120 + 10 * i, steps=3)
        await asyncio.sleep(1)
    beats = await stored(site, sid, "attention", 2)
    assert all(b.get("reading") is True for b in beats)
    events = await recent_events(site, sid)
    assert not {e["type"] for e in events} - {"page_view", "attention"}  # beats only
    growing = [b["active_ms"] for b in beats]
    assert growing == sorted(growing) and growing[-1] > growing[0] >= 3000, growing
    await expect(prompt_host(page)).to_have_count(0)  # 10 s > 8 s, but they were reading
    stopped, stopped_ts = time.monotonic(), await page.evaluate("Date.now()")

    await expect(prompt_host(page)).to_contain_text("Still there?", timeout=20_000)
    assert time.monotonic() - stopped >= 7  # 8 s after the last beat, give or take a poll
    beats = of(await recent_events(site, sid), "attention")
    # no beat after the one that reported the last movement: idle time is not attentive time
    assert beats[-1]["ts"] <= stopped_ts + 5_500, (beats[-1], stopped_ts)
    assert beats[-1]["active_ms"] <= READ_S * 1000 + 5_500
    stored_facts = await facts(site, sid)
    assert int(stored_facts["active_ms"]) == beats[-1]["active_ms"]


async def test_a_fast_scroll_back_up_on_a_phone_is_exit_intent_and_a_rule_answers(
    new_context: NewContext, site: LiveServer
) -> None:
    context, page = await touch_page(new_context)
    sid = await visit(page, site, "/article.html")
    await swipe(context, page, 650, 50, 0.3)  # reading down
    await swipe(context, page, 650, 50, 0.3)
    down = await page.evaluate("scrollY")
    await swipe(context, page, 200, 450, 1.5)  # a slow look back up: not leaving
    assert 0 < await page.evaluate("scrollY") <= down - 200  # it did scroll up
    await asyncio.sleep(0.5)
    assert of(await recent_events(site, sid), "exit_intent") == []
    await swipe(context, page, 100, 650, 0.05)  # a flick back to the top
    (exit_intent,) = await stored(site, sid, "exit_intent")
    assert exit_intent["cause"] == "scroll_up"
    await expect(prompt_host(page)).to_contain_text("Before you go")
    await swipe(context, page, 650, 50, 0.3)
    await swipe(context, page, 100, 650, 0.05)
    await asyncio.sleep(0.5)
    assert len(of(await recent_events(site, sid), "exit_intent")) == 1  # one per page view


async def test_back_navigation_after_a_touch_is_exit_intent_back(
    new_context: NewContext, site: LiveServer
) -> None:
    _, page = await touch_page(new_context)
    sid = await visit(page, site, "/article.html")
    await page.evaluate("history.pushState({}, '', '?step=2')")  # the site's own route
    await page.touchscreen.tap(200, 100)
    await page.evaluate("history.back()")
    (exit_intent,) = await stored(site, sid, "exit_intent")
    assert exit_intent["cause"] == "back"


async def test_the_pointer_leaving_through_the_top_is_still_mouse_leave(
    page: Page, site: LiveServer
) -> None:
    sid = await visit(page, site, "/article.html")
    await page.mouse.move(400, 300)
    await page.mouse.move(400, 40, steps=5)
    await page.mouse.move(400, -20, steps=3)
    (exit_intent,) = await stored(site, sid, "exit_intent")
    assert exit_intent["cause"] == "mouse_leave"
    await expect(prompt_host(page)).to_have_count(0)  # the rule wants scroll_up


async def test_after_consent_false_no_attention_or_exit_intent_is_sent(
    new_context: NewContext, site: LiveServer
) -> None:
    context, page = await touch_page(new_context)
    sid = await visit(page, site, "/article.html")
    await page.evaluate("cuewire.consent(false)")
    await swipe(context, page, 650, 50, 0.3)
    await swipe(context, page, 100, 650, 0.05)
    await asyncio.sleep(5.5)  # a beat passes
    await page.evaluate("cuewire.consent(true); cuewire.track('back')")
    events = await eventually(
        lambda: recent_events(site, sid),
        lambda found: any(e["type"] == "custom" and e["name"] == "back" for e in found),
        what="the custom event sent after consent came back",
    )
    assert not {e["type"] for e in events} & {"attention", "exit_intent", "scroll"}
