"""Conversion over time on /qa/metrics in Chromium: a scripted experiment (two variants and
a holdout over five UTC days) written through the live server's store; the page draws, per
arm and day, a dot at the day's rate with its 95 % interval as a line, as metrics.json gives
them, and the difference from the holdout beyond noise over the window. Set
CUEWIRE_SCREENSHOTS=1 to refresh docs/img/qa-conversion.png.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Locator, expect

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
    await expect(rates.locator("g.point circle")).to_have_count(len(CONVERTS) * DAYS)  # not day 6
    dots, rules = await drawn(rates)
    for arm in series["arms"]:
        mine = [d for d in dots if d["variant"] == arm["variant"]]
        assert [d["day"] for d in mine] == days[:DAYS]  # a dot a day, none on the quiet day
        assert [d["cx"] for d in mine] == sorted(d["cx"] for d in mine)
        for p, dot in zip(arm["points"][:DAYS], mine, strict=True):
            n = shop.visitors[(p["day"], arm["variant"])]
            x = shop.converted[(p["day"], arm["variant"])]
            assert (p["visitors"], p["converted"], p["rate"]) == (n, x, x / n)
            assert (dot["value"], dot["low"], dot["high"]) == (p["rate"], *p["ci"])
            assert f"({x}/{n}), 95 % CI" in dot["title"]
    assert len(rules) == len(dots)
    on_scale(dots, rules)

    diffs = section.locator("svg.conversion-chart.differences")
    await expect(diffs.locator("g.point circle")).to_have_count(2 * (DAYS + 1))  # b, a; window
    dots, rules = await drawn(diffs)
    on_scale(dots, rules)
    for d in series["differences"]:
        [window] = [p for p in dots if p["variant"] == d["variant"] and p["day"] == "window"]
        beyond = d["window"]["ci"][0] > 0
        assert (window["beyond"], window["low"], window["high"]) == (beyond, *d["window"]["ci"])
        assert (window["fill"] == "#fff") is not beyond  # filled: beyond noise
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
    await expect(rates.locator("g.point circle")).to_have_count(len(CONVERTS) * 3)  # 27th to 29th
    assert "from=2026-11-27" in page.url


XSS = "<img src=x onerror=window.__cw_xss=1>"


async def test_rule_and_variant_ids_are_drawn_as_text_never_markup(
    new_context: NewContext, serve: Serve
) -> None:
    server = serve(admin_password=PASSWORD)
    shop = Experiment(server.services.store, "test-site", f"r{XSS}")
    await server.call(shop.run(START, 2, 10, {XSS: 0.5, "holdout": 0.1}))
    context = await new_context(http_credentials={"username": "admin", "password": PASSWORD})
    page = await context.new_page()
    await page.goto(f"{server.url}/qa/metrics?site=test-site&{WINDOW}")
    rates = page.locator("svg.conversion-chart.rates")
    await expect(rates.locator("g.point circle")).to_have_count(2 * 2)
    await expect(rates).to_have_attribute(
        "aria-label", f"Daily conversion rate by variant of r{XSS}"
    )
    await expect(rates.locator("g.point circle title").first).to_contain_text(XSS)
    diffs = page.locator("svg.conversion-chart.differences")
    await expect(diffs.locator("g.point circle title").last).to_contain_text(
        f"{XSS} \u2212 holdout"
    )
    await expect(page.locator(".conversion .legend")).to_contain_text(XSS)
    assert await page.locator("main img").count() == 0
    assert await page.evaluate("window.__cw_xss") is None


Drawn = list[dict[str, Any]]


async def drawn(chart: Locator) -> tuple[Drawn, Drawn]:
    """The dots and interval rules a chart drew: their position in the SVG and the figures
    the page tagged them with (data-*)."""
    read = """(svg, kind) => [...svg.querySelectorAll(`g.${kind} > ${kind === "ci" ? "line" : "circle"}`)]
      .map((e) => ({...e.dataset, title: e.querySelector("title")?.textContent ?? "",
        fill: e.getAttribute("fill"), cx: +e.getAttribute("cx"), cy: +e.getAttribute("cy"),
        y1: +e.getAttribute("y1"), y2: +e.getAttribute("y2")}))"""
    dots, rules = [await chart.evaluate(read, kind) for kind in ("point", "ci")]
    for mark in dots + rules:
        for key in ("value", "low", "high"):
            mark[key] = float(mark[key])
        mark["beyond"] = mark["beyond"] == "true"
    return dots, rules


def on_scale(dots: Drawn, rules: Drawn) -> None:
    """Every dot's height and every interval's ends on one linear y scale: the chart is drawn
    from the figures it is tagged with (two dots of different values fix the scale)."""
    a, b = min(dots, key=lambda d: d["value"]), max(dots, key=lambda d: d["value"])
    assert b["value"] > a["value"]
    per = (b["cy"] - a["cy"]) / (b["value"] - a["value"])
    assert per < 0  # up is more

    def y(v: float) -> float:
        return a["cy"] + per * (v - a["value"])

    for dot in dots:
        assert dot["cy"] == pytest.approx(y(dot["value"]), abs=0.5)
    for rule in rules:
        assert (rule["y1"], rule["y2"]) == pytest.approx((y(rule["low"]), y(rule["high"])), abs=0.5)
        assert rule["y1"] - rule["y2"] > 5  # the interval is drawn, as a line with a height
