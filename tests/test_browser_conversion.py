"""Conversion over time on /qa/metrics in Chromium: a scripted experiment (two variants and
a holdout over five UTC days) written through the live server's store; the page draws, per
arm and day, a dot at the day's rate with its 95 % interval as a line, as metrics.json gives
them, and the difference from the holdout beyond noise over the window. Set
CUEWIRE_SCREENSHOTS=1 to refresh docs/img/qa-conversion.png.
"""

from __future__ import annotations

from pathlib import Path

import httpx
from playwright.async_api import expect

from cuewire.clock import day_of
from support.browser import BROWSER_TEST, NewContext, Serve, shot
from support.experiment import DAY_MS, Experiment

pytest_plugins = ["support.browser"]
pytestmark = BROWSER_TEST

PASSWORD = "qa-conversion-1"
START = 1_795_564_800_000  # 2026-11-25 00:00 UTC
DAYS = 5
CONVERTS = {"a": 0.3, "b": 0.45, "holdout": 0.1}
WINDOW = "from=2026-11-24&to=2026-11-30"  # a day before the experiment, a day after


async def test_the_metrics_page_draws_each_days_rate_with_its_interval(
    new_context: NewContext, serve: Serve, tmp_path: Path
) -> None:
    server = serve(admin_password=PASSWORD)
    shop = Experiment(server.services.store, "test-site", "size-help")
    await server.call(shop.run(START, DAYS, 30, CONVERTS))

    auth = ("admin", PASSWORD)
    async with httpx.AsyncClient(base_url=server.url, auth=auth) as http:
        body = (await http.get(f"/qa/metrics.json?site=test-site&{WINDOW}")).json()
    [rule] = body["rules"]
    series = rule["series"]
    days = [day_of(START + n * DAY_MS) for n in range(DAYS + 1)]  # to the window's last day
    assert series["days"] == days and series["reference"] == "holdout"

    context = await new_context(http_credentials={"username": "admin", "password": PASSWORD})
    page = await context.new_page()
    await page.set_viewport_size({"width": 1000, "height": 900})
    await page.goto(f"{server.url}/qa/metrics?site=test-site&{WINDOW}")
    section = page.locator('section[data-rule="size-help"]')
    rates = section.locator("svg.conversion-chart.rates")
    await expect(rates).to_be_visible()
    await expect(rates.locator("g.point")).to_have_count(len(CONVERTS) * DAYS)  # not day 6
    for arm in series["arms"]:
        for p in arm["points"][:DAYS]:
            n = shop.visitors[(p["day"], arm["variant"])]
            x = shop.converted[(p["day"], arm["variant"])]
            assert (p["visitors"], p["converted"], p["rate"]) == (n, x, x / n)
            at = f'[data-variant="{arm["variant"]}"][data-day="{p["day"]}"]'
            dot = rates.locator(f"g.point{at}")
            await expect(dot).to_have_attribute("data-rate", str(p["rate"]))
            await expect(dot).to_have_attribute("data-low", str(p["ci"][0]))
            await expect(dot).to_have_attribute("data-high", str(p["ci"][1]))
            line = dot.locator("line.ci")
            top, bottom = [float(await line.get_attribute(k) or 0) for k in ("y2", "y1")]
            assert bottom - top > 5  # the interval is drawn, as a line with a height
            await expect(dot.locator("title")).to_contain_text(f"({x}/{n}), 95 % CI")

    diffs = section.locator("svg.conversion-chart.differences")
    for d in series["differences"]:
        window = diffs.locator(f'g.point[data-variant="{d["variant"]}"][data-day="window"]')
        beyond = d["window"]["ci"][0] > 0
        await expect(window).to_have_attribute("data-beyond", str(beyond).lower())
    b_window = next(d for d in series["differences"] if d["variant"] == "b")["window"]
    assert b_window["ci"][0] > 0  # 45 % against 10 % over 150 visitors each: beyond noise
    await expect(section.locator('p.verdict[data-variant="b"]')).to_contain_text(
        "the prompt helps, beyond noise"
    )
    await expect(section.locator(".conversion .legend")).to_contain_text("holdout")
    await section.screenshot(path=shot("qa-conversion.png", tmp_path))

    # the window shows in the date fields; a later start redraws from that day on
    await expect(page.locator("#from")).to_have_value("2026-11-24")
    await expect(page.locator("#to")).to_have_value("2026-11-30")
    await page.locator("#from").fill("2026-11-27")
    await expect(rates.locator("g.point")).to_have_count(len(CONVERTS) * 3)  # 27th to 29th
    assert "from=2026-11-27" in page.url
