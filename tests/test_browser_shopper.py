"""A shopper walks the demo shop in Chromium with the demo rule set (rules/demo/), and QA
watches in /qa: hesitation on a product page, cart abandonment, exit intent, scroll depth on
the journal article, new vs returning visitor. Each walk checks the prompt in the page, its
audit record, and the same firing in the QA view.

The demo timings (seconds) are shortened further through configuration only: a copy of
rules/demo/ whose durations are scaled by a factor, so the code path is the one a person
trying the demo runs. Set CUEWIRE_SCREENSHOTS=1 to refresh the screenshots in docs/img/.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import yaml
from playwright.async_api import Page, expect

from cuewire.sites import Site, Sites
from support.browser import BROWSER_TEST, NewContext, Serve, prompt_host, session_id, shot
from support.harness import write
from support.paths import ROOT
from support.servers import LiveServer
from support.waiting import eventually

pytest_plugins = ["support.browser"]
pytestmark = BROWSER_TEST

DEMO_RULES = ROOT / "rules" / "demo"
DEMO_TEMPLATES = ("toast", "chat_help", "exit_offer")  # the shipped templates the demo shows
PASSWORD = "shopper-qa"
DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s)$")
TIMED_KEYS = {"within", "for", "pause", "snooze", "cooldown"}


def scaled(value: Any, factor: float) -> Any:
    """Every duration under a timing key of a rule file, times ``factor``."""
    if isinstance(value, dict):
        return {
            key: (
                _scale(item, factor)
                if key in TIMED_KEYS and isinstance(item, str)
                else scaled(item, factor)
            )
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [scaled(item, factor) for item in value]
    return value


def _scale(duration: str, factor: float) -> str:
    found = DURATION.match(duration.replace(" ", ""))
    if found is None:
        return duration
    ms = float(found[1]) * (1 if found[2] == "ms" else 1000)
    return f"{max(100, round(ms * factor))}ms"


def demo_copy(tmp_path: Path, factor: float) -> tuple[Path, Path]:
    """rules/demo/ with its timings times ``factor``, and the templates it shows."""
    rules, templates = tmp_path / "rules", tmp_path / "templates"
    for path in sorted(DEMO_RULES.iterdir()):
        if path.suffix in (".yaml", ".yml"):
            config = yaml.safe_load(path.read_text(encoding="utf-8"))
            write(rules / path.name, yaml.safe_dump(scaled(config, factor), sort_keys=False))
        elif path.is_file():
            write(rules / path.name, path.read_text(encoding="utf-8"))
    templates.mkdir()
    for name in DEMO_TEMPLATES:
        shutil.copy(ROOT / "templates" / f"{name}.html", templates)
    return rules, templates


def demo_shop(serve: Serve, tmp_path: Path, factor: float) -> LiveServer:
    rules, templates = demo_copy(tmp_path, factor)
    return serve(
        pages=ROOT / "demo-site",
        rules_dir=rules,
        templates_dir=templates,
        sites=lambda origin: Sites({"demo": Site(origins=[origin])}),
        admin_password=PASSWORD,
    )


async def shopper(new_context: NewContext) -> Page:
    context = await new_context(viewport={"width": 1280, "height": 800}, reduced_motion="reduce")
    return await context.new_page()


async def fired_record(server: LiveServer, session: str, rule: str) -> dict[str, str]:
    """The audit record of ``rule`` firing in ``session`` (waits for it)."""

    async def records() -> list[dict[str, str]]:
        found = await server.call(server.services.store.read_audit("demo", 200))
        return [r for r in found if r["session"] == session and r["rule"] == rule]

    hits = await eventually(records, what=f"an audit record of {rule}")
    [record] = hits
    return record


async def qa_shows(
    new_context: NewContext,
    server: LiveServer,
    session: str,
    rule: str,
    screenshot: Path | None = None,
) -> Page:
    """Opens /qa as the admin, picks the session in the live list, and waits for the firing
    of ``rule`` in its "Fired and suppressed" table."""
    context = await new_context(
        viewport={"width": 1500, "height": 1000},
        http_credentials={"username": "admin", "password": PASSWORD},
        reduced_motion="reduce",
    )
    qa = await context.new_page()
    await qa.goto(server.url + "/qa?site=demo")
    await expect(qa.locator("#status")).to_have_text("live")
    await qa.locator(f'#sessions [data-session="{session}"]').click()
    await expect(qa.locator("#session-title")).to_have_text(f"Session {session}")
    row = qa.locator(f'#audit tr[data-rule="{rule}"][data-outcome="fired"]')
    await expect(row).to_be_visible()
    await expect(qa.locator(f'#feed li[data-rule="{rule}"][data-outcome="fired"]')).to_be_visible()
    await expect(qa.locator(f'#rules tr[data-rule="{rule}"]')).to_have_attribute(
        "data-state", "fired"
    )
    if screenshot is not None:
        await qa.screenshot(path=screenshot)
    return qa


async def test_hesitating_on_a_product_page_opens_the_chat(
    serve: Serve, new_context: NewContext, tmp_path: Path
) -> None:
    server = demo_shop(serve, tmp_path, factor=0.25)  # 8 s -> 2 s
    page = await shopper(new_context)
    await page.goto(server.url + "/product/ridge-hiker.html")
    session = await session_id(page)

    chat = prompt_host(page, kind="chat").get_by_role("dialog")
    await expect(chat).to_be_visible(timeout=8_000)
    await expect(chat).to_have_accessible_name(re.compile("^Need help choosing the "))
    record = await fired_record(server, session, "hesitation-product")
    assert (record["template"], record["cause"], record["url"]) == (
        "chat_help",
        "absence",
        server.url + "/product/ridge-hiker.html",
    )
    await qa_shows(
        new_context, server, session, "hesitation-product", shot("qa-live.png", tmp_path)
    )


async def test_a_cart_left_behind_brings_a_reminder(
    serve: Serve, new_context: NewContext, tmp_path: Path
) -> None:
    server = demo_shop(serve, tmp_path, factor=0.2)  # reminder 45 s -> 9 s, idle offer 3 s
    page = await shopper(new_context)
    await page.goto(server.url + "/")
    first = await session_id(page)
    await page.get_by_role("button", name="New session").click()  # a returning visitor: no welcome
    await page.wait_for_function(
        f"() => JSON.parse(localStorage.getItem('cw_sid') || 'null')?.id !== {first!r}"
    )
    await page.goto(server.url + "/product/daypack-22.html")
    session = await session_id(page)
    await page.get_by_role("button", name="Add to cart").click()
    await expect(page.get_by_text("to your cart")).to_be_visible()
    await page.goto(server.url + "/cart.html")

    # keep browsing the cart (clicks are activity), no checkout: only the reminder is due
    toast = prompt_host(page, kind="toast").get_by_role("status")
    heading = page.get_by_role("heading", level=1)

    async def browsing() -> bool:
        await heading.click()
        return await toast.is_visible()

    await eventually(browsing, timeout=15, what="the cart reminder")
    await expect(toast).to_contain_text("Your cart is waiting for you")
    record = await fired_record(server, session, "cart-left")
    assert (record["template"], record["cause"]) == ("toast", "absence")
    audit = await server.call(server.services.store.read_audit("demo", 200))
    assert "cart-idle-offer" not in {r["rule"] for r in audit if r["session"] == session}
    await qa_shows(new_context, server, session, "cart-left")


async def test_leaving_a_product_page_shows_the_exit_offer_of_its_variant(
    serve: Serve, new_context: NewContext, tmp_path: Path
) -> None:
    server = demo_shop(serve, tmp_path, factor=1)
    page = await shopper(new_context)
    await page.goto(server.url + "/product/storm-shell.html")
    session = await session_id(page)
    await page.mouse.move(600, 400)
    await page.mouse.move(600, 40, steps=5)
    await page.mouse.move(600, -20, steps=3)  # out through the top edge

    dialog = prompt_host(page, kind="modal").get_by_role("dialog")
    await expect(dialog).to_be_visible()
    record = await fired_record(server, session, "exit-intent-product")
    code = {"discount": "WELCOME10", "free-shipping": "SHIPFREE"}[record["variant"]]
    await expect(dialog).to_contain_text(code)
    assert (record["template"], record["cause"]) == ("exit_offer", "event")
    await page.screenshot(path=shot("demo-exit-intent.png", tmp_path))
    qa = await qa_shows(new_context, server, session, "exit-intent-product")
    await expect(qa.locator('#audit tr[data-rule="exit-intent-product"]')).to_contain_text(
        record["variant"]
    )

    await dialog.get_by_role("button", name=re.compile("^Claim ")).click()
    await expect(dialog).to_be_hidden()

    async def counted() -> dict[str, Any]:
        reply = await qa.request.get(server.url + "/qa/metrics.json?site=demo")
        [rule] = [r for r in (await reply.json())["rules"] if r["rule"] == "exit-intent-product"]
        [row] = [v for v in rule["variants"] if v["variant"] == record["variant"]]
        return dict(row)

    row = await eventually(counted, lambda r: r["clicked"] == 1, what="the click in the metrics")
    assert (row["eligible"], row["fired"], row["shown"], row["converted"]) == (1, 1, 1, 0)
    metrics = await qa.context.new_page()
    await metrics.goto(server.url + "/qa/metrics?site=demo")
    table_row = metrics.locator(
        f'section[data-rule="exit-intent-product"] tr[data-variant="{record["variant"]}"]'
    )
    await expect(table_row.locator("td")).to_have_text(
        ["1", "0", "1", "0", "1", "1", "0", "0", "0.0 %", "0.0 % \u2013 79.3 %"]
    )
    await metrics.screenshot(path=shot("qa-metrics.png", tmp_path), full_page=True)


async def test_reading_down_the_journal_article_offers_the_shoes(
    serve: Serve, new_context: NewContext, tmp_path: Path
) -> None:
    server = demo_shop(serve, tmp_path, factor=1)
    page = await shopper(new_context)
    await page.goto(server.url + "/blog/choosing-trail-shoes.html")
    session = await session_id(page)
    await page.mouse.move(640, 400)
    for _ in range(40):  # a reader scrolling down, not a jump to the end
        await page.mouse.wheel(0, 250)
        depth = await page.evaluate(
            "(scrollY + innerHeight) / document.documentElement.scrollHeight"
        )
        if depth >= 0.8:
            break

    toast = prompt_host(page, kind="toast").get_by_role("status")
    await expect(toast).to_contain_text("Enjoying the guide?")
    record = await fired_record(server, session, "article-reader")
    assert record["event"] and '"depth":75' in record["event"]
    await qa_shows(new_context, server, session, "article-reader")


async def test_new_visitors_get_a_welcome_returning_ones_their_cart(
    serve: Serve, new_context: NewContext, tmp_path: Path
) -> None:
    server = demo_shop(serve, tmp_path, factor=0.2)  # welcome after 2 s without activity
    page = await shopper(new_context)
    await page.goto(server.url + "/")
    first = await session_id(page)
    welcome = prompt_host(page, kind="toast").get_by_role("status")
    await expect(welcome).to_contain_text("Welcome! First order?", timeout=8_000)
    await fired_record(server, first, "first-visit-welcome")

    await page.goto(server.url + "/product/summit-45.html")
    await page.get_by_role("button", name="Add to cart").click()
    await expect(page.get_by_text("to your cart")).to_be_visible()
    await page.get_by_role("button", name="New session").click()  # the same visitor comes back
    await page.wait_for_function(
        f"() => JSON.parse(localStorage.getItem('cw_sid') || 'null')?.id !== {first!r}"
    )
    second = await session_id(page)
    reminder = prompt_host(page, kind="toast").get_by_role("status")
    await expect(reminder).to_contain_text("Your cart still holds your picks")
    record = await fired_record(server, second, "returning-cart")
    assert (
        record["visitor"] == (await fired_record(server, first, "first-visit-welcome"))["visitor"]
    )

    qa = await qa_shows(new_context, server, second, "returning-cart")
    welcome_row = qa.locator('#rules tr[data-rule="first-visit-welcome"]')
    await expect(welcome_row).to_have_attribute("data-state", "blocked")
    await expect(welcome_row).to_contain_text("visitor.returning equals False")
    await expect(qa.locator("#session-meta")).to_contain_text("returning visitor")
