"""The funnels page (/qa/funnels) in Chromium: visitors sent through the real server walk a
funnel split by a rule's prompt; the page draws one bar per step and segment with the counts
the store kept, and the same numbers as its JSON. Set CUEWIRE_SCREENSHOTS=1 to refresh
docs/img/qa-funnels.png.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import httpx
import pytest
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
    await expect(chart.locator("g.bar rect")).to_have_count(6)  # three steps, two segments
    bars = await chart.evaluate(DRAWN)
    for segment, counts in (("x:", [4, 3, 2]), ("none", [4, 2, 1])):
        mine = [b for b in bars if b["segment"] == segment]
        assert [(b["step"], b["visitors"]) for b in mine] == [
            (str(step), str(count)) for step, count in enumerate(counts, 1)
        ]
        first = mine[0]
        for bar, count in zip(mine, counts, strict=True):
            # a bar's height is its step's share of the first step's, on one baseline
            assert bar["height"] / first["height"] == pytest.approx(count / counts[0], abs=0.01)
            assert bar["y"] + bar["height"] == pytest.approx(first["y"] + first["height"])
            assert bar["width"] == pytest.approx(first["width"]) and bar["width"] > 10
        for step, (bar, count) in enumerate(zip(mine[1:], counts[1:], strict=True), 2):
            share = round(100 * count / counts[step - 2])  # of the step before
            assert bar["title"].endswith(f": {count} ({share} % of step {step - 1})")
        assert first["title"].endswith(f": {counts[0]}")
    await expect(chart.locator("text")).to_contain_text(["1. page_view (where …)"])
    await expect(page.locator(".funnel-drawing")).to_contain_text("not exposed")
    await page.screenshot(path=shot("qa-funnels.png", tmp_path), full_page=True)

    # without script the page is its tables, with the same numbers
    plain = await new_context(
        http_credentials={"username": "admin", "password": PASSWORD}, java_script_enabled=False
    )
    static = await plain.new_page()
    await static.goto(f"{server.url}/qa/funnels?site=test-site")
    table = static.locator('section[data-funnel="checkout"] table.funnel-table')
    await expect(table.locator("tbody tr").nth(1)).to_contain_text("3 (75%)")
    await expect(static.locator("svg.funnel-chart")).to_have_count(0)


# the bars a chart drew: their geometry, title and the figures the page tagged them with
DRAWN = """(svg) => [...svg.querySelectorAll("g.bar > rect")].map((r) => ({
  ...r.dataset, title: r.querySelector("title")?.textContent ?? "",
  x: +r.getAttribute("x"), y: +r.getAttribute("y"),
  width: +r.getAttribute("width"), height: +r.getAttribute("height")}))"""


XSS = "<img src=x onerror=window.__cw_xss=1>"


async def test_step_names_from_rule_files_are_drawn_as_text_never_markup(
    new_context: NewContext, serve: Serve, tmp_path: Path
) -> None:
    rules = f"""
    funnels:
      - id: hostile
        steps:
          - {{type: page_view}}
          - {{type: custom, name: "{XSS}"}}
    """
    folder = write(tmp_path / "rules" / "shop.yaml", textwrap.dedent(rules)).parent
    server = serve(rules_dir=folder, admin_password=PASSWORD)
    context = await new_context(http_credentials={"username": "admin", "password": PASSWORD})
    page = await context.new_page()
    await page.goto(f"{server.url}/qa/funnels?site=test-site")
    chart = page.locator('section[data-funnel="hostile"] svg.funnel-chart')
    await expect(chart.locator("g.bar rect")).to_have_count(2)
    await expect(chart.locator('g.bar rect[data-step="2"] title')).to_contain_text(XSS)
    await expect(chart).to_contain_text(f"2. custom {XSS[:13]}")  # cut at 22 characters
    assert await page.locator("main img").count() == 0
    assert await page.evaluate("window.__cw_xss") is None
