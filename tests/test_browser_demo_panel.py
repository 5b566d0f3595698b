"""The demo shop's controls never cover the shop: a strip in the page's flow, floating in the
margin only where the margin holds it (demo-site/assets/shop.css)."""

from __future__ import annotations

import pytest

from cuewire.sites import Site, Sites
from support.browser import BROWSER_TEST, NewContext, Serve
from support.paths import ROOT

pytest_plugins = ["support.browser"]
pytestmark = BROWSER_TEST

PAGES = ["/", "/product/trail-runner.html", "/category/shoes.html", "/cart.html", "/spa.html"]

# Leaf elements of the shop (text, buttons, images) whose box meets the panel's box.
COVERED = """() => {
  const panel = document.querySelector('.demo-panel').getBoundingClientRect();
  const covered = [];
  for (const el of document.querySelectorAll('header *, main *, footer *')) {
    if (el.children.length || el.closest('.demo-panel')) continue;
    const r = el.getBoundingClientRect();
    if (!r.width || !r.height) continue;
    if (r.left < panel.right && r.right > panel.left && r.top < panel.bottom && r.bottom > panel.top)
      covered.push(`${el.tagName.toLowerCase()} "${(el.textContent || '').trim().slice(0, 30)}"`);
  }
  return covered;
}"""


@pytest.mark.parametrize("size", [(1280, 800), (1920, 1080)], ids=["1280x800", "1920x1080"])
async def test_the_open_demo_panel_covers_no_shop_content(
    serve: Serve, new_context: NewContext, size: tuple[int, int]
) -> None:
    server = serve(
        pages=ROOT / "demo-site",
        rules_dir=ROOT / "rules" / "demo",
        templates_dir=ROOT / "templates",
        sites=lambda origin: Sites({"demo": Site(origins=[origin])}),
    )
    width, height = size
    context = await new_context(viewport={"width": width, "height": height})
    page = await context.new_page()
    for path in PAGES:
        await page.goto(server.url + path)
        await page.locator(".demo-panel summary").first.wait_for()
        # fully open, "What to try" too: its tallest state
        await page.evaluate(
            "document.querySelectorAll('.demo-panel details').forEach(d => { d.open = true })"
        )
        for scroll in (0, 600):
            await page.evaluate(f"window.scrollTo(0, {scroll})")
            assert await page.evaluate(COVERED) == [], (path, size, scroll)
    await page.goto(server.url + "/")
    box = await page.locator(".demo-panel").bounding_box()
    assert box is not None
    if width >= 1880:  # beside the shop, where the margin holds it, and in view
        assert box["x"] + box["width"] <= (width - 1160) / 2
        assert box["y"] + box["height"] <= height
    else:  # a strip above the header
        header = await page.locator(".site-header").bounding_box()
        assert header is not None and box["y"] + box["height"] <= header["y"]
