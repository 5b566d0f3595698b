"""The funnels page (/qa/funnels) in Chromium: visitors sent through the real server walk a
funnel split by a rule's prompt; the page draws one bar per step and segment with the counts
the store kept, and the same numbers as its JSON. Set CUEWIRE_SCREENSHOTS=1 to refresh
docs/img/qa-funnels.png.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import httpx
from playwright.async_api import expect

from support.browser import BROWSER_TEST, NewContext, Serve, shot
from support.harness import write
from support.visitor import Visitor

pytest_plugins = ["support.browser"]
pytestmark = BROWSER_TEST

PASSWORD = "qa-funnels-1"
SHOP = "http://shop.test"
RULES = """
rules:
  - id: exit-offer
    trigger: {event: {type: exit_intent}}
    show: {template: note}
funnels:
  - id: checkout
    description: Product page, cart, purchase
    within: 30m
    split: exit-offer
    steps:
      - {type: page_view, where: {fact: url, contains: /product/}}
      - {type: custom, name: add_to_cart}
      - {type: custom, name: purchase}
"""
# (saw the exit offer first, how many steps taken) per visitor
WALKS = [(True, 3), (True, 3), (True, 2), (True, 1), (False, 3), (False, 2), (False, 1), (False, 1)]


async def test_the_funnel_page_draws_a_bar_per_step_and_segment(
    new_context: NewContext, serve: Serve, tmp_path: Path
) -> None:
    rules = write(tmp_path / "rules" / "shop.yaml", textwrap.dedent(RULES)).parent
    server = serve(rules_dir=rules, admin_password=PASSWORD)
    for n, (exposed, steps) in enumerate(WALKS):
        async with Visitor(server.url, visitor=f"v_funnel{n:03d}") as v:
            if exposed:
                await v.send(v.event("exit_intent", f"{SHOP}/"))
                await v.wait_prompt()  # the exit offer: the visitor is exposed
            walk = [
                v.event("page_view", f"{SHOP}/product/boots"),
                v.event("custom", name="add_to_cart"),
                v.event("custom", name="purchase"),
            ][:steps]
            ack = await v.send(*walk)
            assert ack["accepted"] == steps

    auth = ("admin", PASSWORD)
    async with httpx.AsyncClient(base_url=server.url, auth=auth) as http:
        body = (await http.get("/qa/funnels.json?site=test-site")).json()
        assert (await http.get("/qa/funnels.json")).status_code == 200
        bad = await http.get("/qa/funnels.json?from=2026-13-01")
        assert (bad.status_code, bad.text.startswith("bad window:")) == (400, True)
        unauthorised = await httpx.AsyncClient(base_url=server.url).get("/qa/funnels.json")
        assert unauthorised.status_code == 401
    [funnel] = body["funnels"]
    assert funnel["segments"]["x:"]["visitors"] == [4, 3, 2]
    assert funnel["segments"]["none"]["visitors"] == [4, 2, 1]
    assert funnel["segments"]["all"]["dropped"] == [0, 3, 2]

    context = await new_context(http_credentials={"username": "admin", "password": PASSWORD})
    page = await context.new_page()
    await page.set_viewport_size({"width": 900, "height": 800})
    await page.goto(f"{server.url}/qa/funnels?site=test-site")
    chart = page.locator('section[data-funnel="checkout"] svg.funnel-chart')
    await expect(chart).to_be_visible()
    bars = chart.locator("rect.bar")
    await expect(bars).to_have_count(6)  # three steps, two segments
    for segment, counts in (("x:", [4, 3, 2]), ("none", [4, 2, 1])):
        for step, count in enumerate(counts, 1):
            bar = chart.locator(f'rect[data-segment="{segment}"][data-step="{step}"]')
            await expect(bar).to_have_attribute("data-visitors", str(count))
    heights = [float(await b.get_attribute("height") or 0) for b in await bars.all()]
    assert heights[0] == max(heights) and min(heights) > 0
    await expect(page.locator(".legend")).to_contain_text("not exposed")
    await page.screenshot(path=shot("qa-funnels.png", tmp_path), full_page=True)
