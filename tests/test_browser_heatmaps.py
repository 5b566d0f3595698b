"""Heatmaps in Chromium (docs/qa.md, "Heatmaps"): real clicks on the demo shop's product page
are counted per selector and per position cell, and /qa/heatmap draws them over the page,
the clicked element highlighted with its count when its selector is hovered.
Set CUEWIRE_SCREENSHOTS=1 to refresh docs/img/qa-heatmap.png."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from playwright.async_api import Page, expect

from cuewire.heatmaps import GRID
from cuewire.sites import Site, Sites
from support.browser import BROWSER_TEST, NewContext, Serve, session_id
from support.paths import ROOT
from support.servers import LiveServer
from support.waiting import eventually

pytest_plugins = ["support.browser"]
pytestmark = BROWSER_TEST

PASSWORD = "qa-heatmap-1"
PRODUCT = "/product/trail-runner.html"
ADD = '[data-cw-track="add-to-cart"]'
PRICE = '[data-cw-track="price"]'
SCREENSHOT = ROOT / "docs" / "img" / "qa-heatmap.png"


def demo_pages(serve: Serve) -> LiveServer:
    """The demo shop's pages on the live server, whose own origin is the site ``demo``."""
    return serve(
        pages=ROOT / "demo-site",
        sites=lambda origin: Sites({"demo": Site(origins=[origin])}),
        admin_password=PASSWORD,
    )


async def cell_of(page: Page, selector: str) -> str:
    """The grid cell of the element's centre, computed from the page's own geometry."""
    where: list[float] = await page.locator(selector).evaluate(
        """(el) => {
            const r = el.getBoundingClientRect();
            const doc = document.documentElement;
            return [(r.left + r.width / 2) / innerWidth,
                    (r.top + r.height / 2 + scrollY) / doc.scrollHeight];
        }"""
    )
    col, row = (min(GRID - 1, int(round(v * 1000) * GRID // 1000)) for v in where)
    return f"{col}:{row}"


async def test_clicks_on_the_product_page_are_counted_and_drawn_over_it(
    serve: Serve, new_context: NewContext, tmp_path: Path
) -> None:
    server = demo_pages(serve)
    shopper = await (await new_context(viewport={"width": 1280, "height": 800})).new_page()
    await shopper.goto(server.url + PRODUCT)
    await session_id(shopper)
    await expect(shopper.locator(ADD)).to_be_visible()
    for _ in range(2):
        await shopper.locator(ADD).click()
        await shopper.wait_for_timeout(800)  # apart: two clicks, not a burst
    await shopper.locator(PRICE).click()
    add_cell, price_cell = await cell_of(shopper, ADD), await cell_of(shopper, PRICE)
    add = "#main > div.product > div.product-info > button.btn.btn-primary"

    qa = await new_context(
        viewport={"width": 1500, "height": 1000},
        http_credentials={"username": "admin", "password": PASSWORD},
    )
    api = f"{server.url}/qa/api/heatmap?site=demo&days=1&path={PRODUCT}"

    async def heatmap() -> dict[str, Any]:
        response = await qa.request.get(api)
        assert response.ok
        body: dict[str, Any] = await response.json()
        return body

    def counted(body: dict[str, Any]) -> bool:
        return body["totals"].get("click", 0) >= 3

    body = await eventually(heatmap, counted, what="three clicks counted")
    assert body["totals"]["click"] == 3
    by_selector = {s["selector"]: s["counts"] for s in body["selectors"]}
    assert by_selector[add] == {"click": 2}
    cells = {f"{c['col']}:{c['row']}": c["counts"] for c in body["cells"]}
    assert cells[add_cell].get("click") == 2 + (price_cell == add_cell)
    assert cells[price_cell].get("click", 0) >= 1
    assert body["page_url"] == server.url + PRODUCT

    unknown = await qa.request.get(f"{server.url}/qa/api/heatmap?site=nope&days=1")
    assert unknown.status == 404 and (await unknown.json())["code"] == "unknown_site"
    bad = await qa.request.get(f"{server.url}/qa/api/heatmap?site=demo&days=0")
    assert bad.status == 400 and (await bad.json())["code"] == "bad_request"
    anonymous = await (await new_context()).request.get(api)
    assert anonymous.status == 401

    page = await qa.new_page()
    await page.goto(f"{server.url}/qa/heatmap?site=demo&days=1&path={PRODUCT}")
    await expect(page.locator("body")).to_have_attribute("data-ready", "1")
    await expect(page.locator("#overlay rect.cell")).not_to_have_count(0)
    item = page.locator(f'#selectors li[data-selector="{add}"]')
    await expect(item).to_contain_text("2 clicks")
    await item.hover()
    spot = page.locator("#overlay rect.spot.on")
    await expect(spot).to_have_count(1)
    await expect(page.locator("#overlay .tag")).to_have_text("2 clicks")
    # the highlight is on the button as the iframe renders it
    button = await page.frame_locator("#frame").locator(ADD).bounding_box()
    box = await spot.bounding_box()
    assert button is not None and box is not None
    assert abs(box["x"] + box["width"] / 2 - (button["x"] + button["width"] / 2)) < 2
    assert abs(box["y"] + box["height"] / 2 - (button["y"] + button["height"] / 2)) < 2
    wanted = os.environ.get("CUEWIRE_SCREENSHOTS") == "1"
    await page.screenshot(path=SCREENSHOT if wanted else tmp_path / SCREENSHOT.name)

    # one kind at a time: there were no rage clicks
    await page.locator("#kind").select_option("rage_click")
    await expect(page.locator("#overlay rect.cell")).to_have_count(0)
    await expect(page.locator("#selectors li")).to_have_count(0)
    await page.locator("#kind").select_option("click")
    await expect(page.locator("#selectors li")).to_have_count(2)
