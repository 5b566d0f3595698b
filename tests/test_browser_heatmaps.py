"""Heatmaps in Chromium (docs/qa.md, "Heatmaps"): real clicks on the demo shop's product page
are counted per selector and per position cell, and /qa/heatmap draws them over the page,
the clicked element highlighted with its count when its selector is hovered.
A page its scripts build is drawn with its scripts, isolated in an opaque origin.
Set CUEWIRE_SCREENSHOTS=1 to refresh docs/img/qa-heatmap.png and qa-heatmap-scripts.png."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from playwright.async_api import BrowserContext, Page, expect

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
SCRIPTS_SCREENSHOT = ROOT / "docs" / "img" / "qa-heatmap-scripts.png"


def demo_pages(serve: Serve) -> LiveServer:
    """The demo shop's pages on the live server, whose own origin is the site ``demo``."""
    return serve(
        pages=ROOT / "demo-site",
        sites=lambda origin: Sites({"demo": Site(origins=[origin])}),
        admin_password=PASSWORD,
    )


@dataclass(frozen=True)
class Built:
    """The script-built page served, clicked by a visitor, and a QA browser context."""

    server: LiveServer
    pages: Path
    cell: str  # the grid cell of the button's centre, as the visitor's page had it
    qa: BrowserContext


def serve_page(
    serve: Serve, tmp_path: Path, name: str, html: str, site: str
) -> tuple[LiveServer, Path]:
    """A server of one page, ``name``, for site key ``site``, with the QA views on; and the
    folder it serves the page from."""
    pages = tmp_path / "pages"
    pages.mkdir()
    (pages / name).write_text(html)

    def sites(origin: str) -> Sites:
        return Sites({site: Site(origins=[origin])})

    return serve(pages=pages, sites=sites, admin_password=PASSWORD), pages


async def built_page_clicked(
    serve: Serve, new_context: NewContext, tmp_path: Path, clicks: int
) -> Built:
    """Serves BUILT, has a visitor click its button ``clicks`` times (apart: not a burst)."""
    server, pages = serve_page(serve, tmp_path, "built.html", BUILT, "spa")
    visitor = await (await new_context(viewport={"width": 1024, "height": 800})).new_page()
    await visitor.goto(server.url + "/built.html")
    await session_id(visitor)
    for _ in range(clicks):
        await visitor.locator("#buy").click()
        await visitor.wait_for_timeout(800)
    cell = await cell_of(visitor, "#buy")
    await visitor.close()
    qa = await new_context(
        viewport={"width": 1500, "height": 1000},
        http_credentials={"username": "admin", "password": PASSWORD},
    )
    return Built(server, pages, cell, qa)


async def heatmap_of(built: Built) -> dict[str, Any]:
    """The built page's heatmap as /qa/api/heatmap answers it."""
    api = f"{built.server.url}/qa/api/heatmap?site=spa&days=1&path=/built.html"
    response = await built.qa.request.get(api)
    assert response.ok
    body: dict[str, Any] = await response.json()
    return body


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


# --- a page its scripts build: the rendering with the page's scripts ---------------------

BUILT = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Built by its script</title>
<script src="/cw.js" data-site="spa" async></script>
<style>body { margin: 0; font: 16px sans-serif; }</style></head>
<body><div id="app"></div>
<script>
  // the whole page is built here: without its scripts the page is an empty #app
  const app = document.getElementById("app");
  const part = (height) => {
    const div = document.createElement("div");
    div.style.height = height + "px";
    app.append(div);
  };
  const head = document.createElement("header");
  head.style.cssText = "height: 900px; padding: 24px 32px; box-sizing: border-box";
  head.innerHTML = "<h1>Built by its script</h1><p>Nothing of this page is in its HTML.</p>";
  app.append(head);
  const buy = document.createElement("button");
  buy.id = "buy";
  buy.textContent = "Buy";
  buy.style.cssText = "position: absolute; left: 620px; top: 700px; width: 160px; height: 60px";
  buy.addEventListener("click", () => { buy.textContent = "Bought"; });
  app.append(buy);
  part(600);
  if (window.parent !== window) {
    // framed: what a hostile page would try against the QA page around it
    const mark = (name, value) => { document.documentElement.dataset[name] = value; };
    try {
      parent.document.body.dataset.reached = "yes";
      mark("parentDocument", "reached");
    } catch (e) {
      mark("parentDocument", "blocked");
    }
    try {
      mark("storage", localStorage.length >= 0 ? "reached" : "?");
    } catch (e) {
      mark("storage", "blocked");
    }
    fetch("/qa/api/token", { credentials: "include" })
      .then((r) => r.text())
      .then(() => mark("token", "reached"), () => mark("token", "blocked"));
  }
</script>
</body></html>
"""


async def test_a_page_built_by_its_scripts_is_drawn_with_its_scripts_isolated(
    serve: Serve, new_context: NewContext, tmp_path: Path
) -> None:
    """The page's content is built by a script: the static rendering has none of it, so the
    heatmap renders it with its scripts, in an opaque origin, and the cell of the clicks is
    drawn over the button as the script placed it. The framed page reaches nothing of the QA
    page, and its snippet, refused for its origin "null", records nothing."""
    built = await built_page_clicked(serve, new_context, tmp_path, clicks=2)
    server, qa, visitor_cell = built.server, built.qa, built.cell

    async def heatmap() -> dict[str, Any]:
        return await heatmap_of(built)

    body = await eventually(
        heatmap, lambda b: b["totals"].get("click", 0) >= 2, what="two clicks counted"
    )
    assert body["totals"]["click"] == 2  # and maybe hesitation: the pointer rested on it
    clicked = {
        f"{c['col']}:{c['row']}": c["counts"]["click"]
        for c in body["cells"]
        if c["counts"].get("click")
    }
    assert clicked == {visitor_cell: 2}

    page = await qa.new_page()
    await page.goto(f"{server.url}/qa/heatmap?site=spa&days=1&path=/built.html")
    await expect(page.locator("body")).to_have_attribute("data-ready", "1")
    # auto: the static rendering has no #buy, so the page is rendered with its scripts
    await expect(page.locator("body")).to_have_attribute("data-render", "scripts")
    await expect(page.locator("#frame")).to_have_attribute("sandbox", "allow-scripts")
    await expect(page.locator("body")).to_have_attribute("data-measured", "1500")
    await expect(page.locator("#note")).to_contain_text("with the page's scripts")
    await expect(page.locator("#selectors li")).to_have_count(1)
    await expect(page.locator("#selectors li")).to_contain_text("2 clicks")
    await expect(page.locator("#selectors li")).not_to_contain_text("not on this rendering")

    # the cell is drawn over the button as the page's script placed it in the frame
    cell = page.locator(f'#overlay rect.cell[data-cell="{visitor_cell}"]')
    await expect(cell).to_have_count(1)
    frame = page.frame(name="cuewire-heatmap")
    assert frame is not None
    button = await frame.locator("#buy").bounding_box()
    box = await cell.bounding_box()
    assert button is not None and box is not None
    centre_x = button["x"] + button["width"] / 2
    centre_y = button["y"] + button["height"] / 2
    assert box["x"] - 2 <= centre_x <= box["x"] + box["width"] + 2
    assert box["y"] - 2 <= centre_y <= box["y"] + box["height"] + 2
    stage = await page.locator("#frame").bounding_box()
    assert stage is not None
    # the cell is where the grid puts it: twentieths of the frame's width and of its height
    col, row = (int(v) for v in visitor_cell.split(":"))
    assert abs(box["x"] - (stage["x"] + col * stage["width"] / GRID)) < 2
    assert abs(box["y"] - (stage["y"] + row * 1500 / GRID)) < 2
    assert abs(box["height"] - 1500 / GRID) < 2

    wanted = os.environ.get("CUEWIRE_SCREENSHOTS") == "1"
    await page.locator("#pick").hover()  # no cell's title over the screenshot
    shot = SCRIPTS_SCREENSHOT if wanted else tmp_path / SCRIPTS_SCREENSHOT.name
    await page.screenshot(path=shot)

    # the framed page reaches nothing of the QA page
    root = frame.locator("html")
    await expect(root).to_have_attribute("data-parent-document", "blocked")
    await expect(root).to_have_attribute("data-storage", "blocked")
    await expect(root).to_have_attribute("data-token", "blocked")
    assert await page.locator("body").get_attribute("data-reached") is None
    assert await frame.evaluate("() => { try { return origin; } catch { return '?'; } }") == "null"

    # its snippet connected from origin "null" and was refused: a click in it records nothing
    refused = await frame.wait_for_function("() => window.cuewire?.stats?.().refused")
    assert await refused.json_value() == "origin_not_allowed"
    metrics = await (await qa.request.get(server.url + "/metrics")).text()
    line = 'cuewire_connects_refused_total{code="origin_not_allowed"} '
    assert float(metrics.split(line, 1)[1].split()[0]) >= 1
    await page.locator("#overlay").evaluate("(svg) => { svg.style.pointerEvents = 'none'; }")
    await frame.locator("#buy").click()
    await expect(frame.locator("#buy")).to_have_text("Bought")  # the click happened in it
    assert (await heatmap())["totals"]["click"] == 2
    assert await frame.evaluate("() => window.cuewire.stats().batches") == 0

    # the static rendering, on request: the page without its scripts has no button to box
    await page.locator("#render").select_option("static")
    await expect(page.locator("body")).to_have_attribute("data-render", "static")
    await expect(page.locator("#frame")).to_have_attribute("sandbox", "allow-same-origin")
    await expect(page.locator("#selectors li")).to_contain_text("not on this rendering")
    assert "render=static" in page.url


async def test_without_the_snippet_in_the_frame_the_rows_are_drawn_over_800px(
    serve: Serve, new_context: NewContext, tmp_path: Path
) -> None:
    """A page whose snippet does not say how tall it is (here: removed after the visit) is
    drawn with its scripts over 800px, and the page says so."""
    built = await built_page_clicked(serve, new_context, tmp_path, clicks=1)
    server, qa, cell = built.server, built.qa, built.cell
    (built.pages / "built.html").write_text(
        BUILT.replace('<script src="/cw.js"', '<script src="/x.js"')
    )

    async def clicks() -> int:
        n: int = (await heatmap_of(built))["totals"].get("click", 0)
        return n

    await eventually(clicks, lambda n: n >= 1, what="the click counted")
    page = await qa.new_page()
    await page.goto(f"{server.url}/qa/heatmap?site=spa&days=1&path=/built.html&render=scripts")
    await expect(page.locator("body")).to_have_attribute("data-ready", "1")
    await expect(page.locator("body")).to_have_attribute("data-render", "scripts")
    await expect(page.locator("#note")).to_contain_text("did not say how tall it is")
    # built by its script all the same, and the rows drawn over 800px
    frame = page.frame(name="cuewire-heatmap")
    assert frame is not None
    await expect(frame.locator("#buy")).to_be_visible()
    assert await page.locator("body").get_attribute("data-measured") is None
    drawn = await page.locator(f'#overlay rect.cell[data-cell="{cell}"]').bounding_box()
    stage = await page.locator("#frame").bounding_box()
    assert drawn is not None and stage is not None
    assert abs(stage["height"] - 800) < 1
    assert abs(drawn["y"] - (stage["y"] + int(cell.split(":")[1]) * 800 / GRID)) < 2


# --- a responsive page: one grid per layout class ----------------------------------------

RESPONSIVE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Responsive</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<script src="/cw.js" data-site="rsp" async></script>
<style>
  body { margin: 0; font: 16px sans-serif; }
  main { position: relative; height: 1600px; }
  #buy { position: absolute; width: 160px; height: 56px; }
  /* phones: the button low down on the left; desktops: high up on the right */
  @media (max-width: 767px) { #buy { left: 24px; top: 1150px; } }
  @media (min-width: 768px) and (max-width: 1279px) { #buy { left: 330px; top: 600px; } }
  @media (min-width: 1280px) { #buy { right: 60px; top: 180px; } }
</style></head>
<body><main><h1>One button, three places</h1><button id="buy" type="button">Buy</button></main>
<script>
  const buy = document.getElementById("buy");
  buy.addEventListener("click", () => { buy.textContent = "Bought"; });
</script>
</body></html>
"""
PHONE = {
    "viewport": {"width": 390, "height": 844},
    "is_mobile": True,
    "has_touch": True,
    "device_scale_factor": 3,
    "user_agent": (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15"
        " (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"
    ),
}
LAYOUT_SCREENSHOT = ROOT / "docs" / "img" / "qa-heatmap-mobile.png"


async def test_a_phone_and_a_desktop_are_drawn_apart_each_as_its_layout_renders(
    serve: Serve, new_context: NewContext, tmp_path: Path
) -> None:
    """A phone (emulated: touch, 390px) taps the button of a responsive page, a desktop clicks
    it where its own layout puts it. Each layout class has its own grid: the QA heatmap of
    each draws the cell over the button as a frame as wide as that class renders it (the
    class's most common viewport width: here the visitor's own)."""
    server, _ = serve_page(serve, tmp_path, "responsive.html", RESPONSIVE, "rsp")
    phone = await (await new_context(**PHONE)).new_page()
    await phone.goto(server.url + "/responsive.html")
    await session_id(phone)
    assert await phone.evaluate("() => innerWidth") == 390
    await phone.locator("#buy").tap()  # touch events, then the click the browser makes of them
    await expect(phone.locator("#buy")).to_have_text("Bought")
    desktop = await (await new_context(viewport={"width": 1440, "height": 900})).new_page()
    await desktop.goto(server.url + "/responsive.html")
    await session_id(desktop)
    await desktop.locator("#buy").click()
    await expect(desktop.locator("#buy")).to_have_text("Bought")
    cells = {"mobile": await cell_of(phone, "#buy"), "desktop": await cell_of(desktop, "#buy")}
    assert cells["mobile"] != cells["desktop"]  # the layouts put the button apart

    qa = await new_context(
        viewport={"width": 1900, "height": 1100},
        http_credentials={"username": "admin", "password": PASSWORD},
    )
    api = f"{server.url}/qa/api/heatmap?site=rsp&days=1&path=/responsive.html"

    async def heatmap(layout: str = "") -> dict[str, Any]:
        response = await qa.request.get(api + (f"&layout={layout}" if layout else ""))
        assert response.ok
        body: dict[str, Any] = await response.json()
        return body

    def clicked(body: dict[str, Any]) -> dict[str, int]:
        return {
            f"{c['col']}:{c['row']}": c["counts"]["click"]
            for c in body["cells"]
            if c["counts"].get("click")
        }

    # no class named: every click in one grid, as before the classes
    every = await eventually(
        heatmap, lambda b: b["totals"].get("click", 0) >= 2, what="both clicks counted"
    )
    assert (every["layout"], every["width"], every["totals"]["click"]) == ("all", 1024, 2)
    assert clicked(every) == {cells["mobile"]: 1, cells["desktop"]: 1}
    for layout, width in (("mobile", 390), ("desktop", 1440)):
        body = await heatmap(layout)
        assert (body["layout"], body["width"]) == (layout, width)
        assert clicked(body) == {cells[layout]: 1}
        assert body["totals"]["click"] == 1
    assert clicked(await heatmap("tablet")) == {}
    bad = await qa.request.get(api + "&layout=watch")
    assert bad.status == 400 and (await bad.json())["code"] == "bad_request"

    page = await qa.new_page()
    for layout, width in (("mobile", 390), ("desktop", 1440)):
        await page.goto(f"{server.url}/qa/heatmap?site=rsp&days=1&path=/responsive.html")
        await expect(page.locator("body")).to_have_attribute("data-ready", "1")
        await expect(page.locator("body")).to_have_attribute("data-layout", "all")
        await page.locator("#kind").select_option("click")
        await page.locator("#layout").select_option(layout)
        await expect(page.locator("body")).to_have_attribute("data-layout", layout)
        await expect(page.locator("body")).to_have_attribute("data-ready", "1")
        assert f"layout={layout}" in page.url
        await expect(page.locator("#shown")).to_contain_text(f"Layout: {layout}")
        await expect(page.locator("#shown")).to_contain_text(f"drawn {width}px wide")
        await expect(page.locator("#hint")).to_contain_text("Counted over all layouts")
        await expect(page.locator("#layout option:checked")).to_have_text(f"{layout} (1)")
        stage = await page.locator("#frame").bounding_box()
        assert stage is not None and abs(stage["width"] - width) < 1
        # only this class's cell, and over the button as a frame this wide lays it out
        drawn = page.locator("#overlay rect.cell")
        await expect(drawn).to_have_count(1)
        await expect(drawn).to_have_attribute("data-cell", cells[layout])
        button = await page.frame_locator("#frame").locator("#buy").bounding_box()
        box = await drawn.bounding_box()
        assert button is not None and box is not None
        centre_x = button["x"] + button["width"] / 2
        centre_y = button["y"] + button["height"] / 2
        assert box["x"] - 2 <= centre_x <= box["x"] + box["width"] + 2
        assert box["y"] - 2 <= centre_y <= box["y"] + box["height"] + 2
        if layout == "mobile":
            wanted = os.environ.get("CUEWIRE_SCREENSHOTS") == "1"
            await page.locator("#pick").hover()  # no cell's title over the screenshot
            shot = LAYOUT_SCREENSHOT if wanted else tmp_path / LAYOUT_SCREENSHOT.name
            await page.screenshot(path=shot, full_page=True)
