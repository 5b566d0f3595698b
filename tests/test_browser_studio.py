"""/studio in Chromium, used the way a designer would: every preview mounted in its own open
shadow root with its styles adopted under the page's strict CSP; a copied starter template
with new text and colour appears without a restart; a broken save shows file:line."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from playwright.async_api import ConsoleMessage, Page, expect

from support.browser import BROWSER_TEST, NewContext, Serve
from support.harness import write
from support.servers import LiveServer

pytest_plugins = ["support.browser"]
pytestmark = BROWSER_TEST

ROOT = Path(__file__).resolve().parent.parent
AUTH = {"username": "admin", "password": "studio-test"}
RULES = """\
rules:
  - id: newsletter
    trigger:
      event: {type: custom, name: subscribe}
    show:
      template: modal
      variants:
        - {id: calm, params: {title: "A calm headline"}}
        - {id: loud, params: {title: "A LOUD HEADLINE", accent: "#b4432a"}}
  - id: flash-sale
    trigger:
      event: {type: custom, name: flash}
    show:
      template: discount_countdown
      params: {seconds: 2, code: FLASH}
"""


@pytest.fixture
def templates(tmp_path: Path) -> Path:
    folder = tmp_path / "templates"
    shutil.copytree(ROOT / "templates", folder)
    return folder


@pytest.fixture
def studio(serve: Serve, tmp_path: Path, templates: Path) -> LiveServer:
    rules = write(tmp_path / "rules" / "newsletter.yaml", RULES).parent
    return serve(rules_dir=rules, templates_dir=templates, admin_password=AUTH["password"])


async def open_studio(new_context: NewContext, server: LiveServer, **options: object) -> Page:
    context = await new_context(
        http_credentials=AUTH, viewport={"width": 1300, "height": 900}, **options
    )
    page = await context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on(
        "console",
        lambda m: problems.append(m.text) if _is_problem(m) else None,
    )
    page.problems = problems  # type: ignore[attr-defined]
    await page.goto(server.url + "/studio/")
    return page


def _is_problem(message: ConsoleMessage) -> bool:
    return message.type == "error" or "Content Security Policy" in message.text


def preview(page: Page, key: str):  # type: ignore[no-untyped-def]
    return page.locator(f'[data-cuewire-prompt="{key}"]')


async def test_every_preview_is_mounted_in_its_own_shadow_root(
    new_context: NewContext, studio: LiveServer
) -> None:
    page = await open_studio(new_context, studio)
    catalog = studio.services.runtime.catalog()
    keys = [f"template:{n}:{v}" for n in catalog.names for v in catalog.get(n).samples]
    keys += ["rule:newsletter:calm", "rule:newsletter:loud", "rule:flash-sale:"]
    await expect(page.locator("[data-cuewire-prompt]")).to_have_count(len(keys))
    for key in keys:
        host = preview(page, key)
        assert await host.evaluate("h => h.shadowRoot.mode === 'open' && h.children.length === 0")
        sheets = await host.evaluate("h => h.shadowRoot.adoptedStyleSheets.length")
        assert sheets == 1, f"{key}: its <style> became an adopted stylesheet"
        assert await host.evaluate("h => !h.shadowRoot.querySelector('style, script')")
    modal = preview(page, "template:modal:default")
    await expect(modal.get_by_role("dialog")).to_have_accessible_name(
        "Get one good hiking guide a month"
    )
    loud = preview(page, "rule:newsletter:loud").locator(".cw-primary")
    await expect(loud).to_have_css("background-color", "rgb(180, 67, 42)")
    await expect(page.locator("#status")).to_have_attribute("data-state", "live")
    assert page.problems == []  # type: ignore[attr-defined]


async def test_a_copied_template_with_new_text_and_colour_appears_live(
    new_context: NewContext, studio: LiveServer, templates: Path
) -> None:
    """The walkthrough of docs/templates.md: copy, change the words and the accent, save."""
    page = await open_studio(new_context, studio)
    await expect(preview(page, "template:modal:default")).to_have_count(1)

    source = (templates / "modal.html").read_text()
    copy = source.replace("Get one good hiking guide a month", "Join the trail club").replace(
        "--cw-accent: #1f5f4a;", "--cw-accent: #7b2cbf;"
    )
    assert copy.count("#7b2cbf") == 1
    (templates / "club.html").write_text(copy)

    club = preview(page, "template:club:default")
    await expect(club.locator(".cw-title")).to_have_text("Join the trail club")
    await expect(club.locator(".cw-primary")).to_have_css("background-color", "rgb(123, 44, 191)")

    (templates / "club.html").write_text(copy.replace("Join the trail club", "Join us"))
    await expect(club.locator(".cw-title")).to_have_text("Join us")
    assert page.problems == []  # type: ignore[attr-defined]


async def test_a_broken_save_shows_file_and_line_over_the_last_good_preview(
    new_context: NewContext, studio: LiveServer, templates: Path
) -> None:
    page = await open_studio(new_context, studio)
    path = templates / "toast.html"
    good = path.read_text()
    await expect(preview(page, "template:toast:default")).to_have_count(1)
    line = good[: good.index('<p class="cw-message">')].count("\n") + 1
    path.write_text(good.replace('<p class="cw-message">', '<p class="cw-message">{{ 1 +'))

    await expect(page.locator("#banner")).to_be_visible()
    card = page.locator(".card", has=preview(page, "template:toast:default"))
    await expect(card.locator(".error")).to_contain_text(f"{path}:{line}:1: ")
    await expect(card.locator(".stage")).to_have_class("stage is-stale")
    await expect(card.locator(".badge.stale")).to_be_visible()
    await expect(preview(page, "template:toast:default").locator(".cw-title")).to_have_text(
        "Nice pick!"
    )

    path.write_text(good)
    await expect(page.locator("#banner")).to_be_hidden()
    await expect(card.locator(".error")).to_be_hidden()


async def test_the_dark_theme_and_reduced_motion_switches(
    new_context: NewContext, studio: LiveServer
) -> None:
    page = await open_studio(new_context, studio, color_scheme="light")
    card = preview(page, "template:modal:default").locator(".cw-card")
    await expect(card).to_have_css("background-color", "rgb(255, 255, 255)")
    await page.select_option("#theme", "dark")
    await expect(card).to_have_css("background-color", "rgb(29, 35, 42)")

    clock = preview(page, "template:discount_countdown:default").locator(".cw-clock")
    await expect(clock).to_be_visible()
    await page.check("#motion")
    await expect(clock).to_be_hidden()
    static = preview(page, "template:discount_countdown:default").locator(".cw-static")
    await expect(static).to_have_text("15 minutes")


SHOWN_DIGITS = """clock => [...clock.children].map(box => {
    if (!box.classList.contains("cw-digit")) return box.textContent;
    const top = box.getBoundingClientRect().top;
    const digits = [...box.querySelectorAll(".cw-strip span")];
    const shown = digits.find(d => Math.abs(d.getBoundingClientRect().top - top) < 2);
    return shown ? shown.textContent : "?";
}).join("")"""


async def test_the_countdown_ticks_without_script(
    new_context: NewContext, studio: LiveServer
) -> None:
    page = await open_studio(new_context, studio)
    clock = preview(page, "template:discount_countdown:last-minute").locator(".cw-clock")
    first = await clock.evaluate(SHOWN_DIGITS)
    assert first in ("01:00", "00:59", "00:58"), first
    await page.wait_for_timeout(2100)
    later = await clock.evaluate(SHOWN_DIGITS)
    assert "00:55" <= later < first, (first, later)


async def test_the_countdown_says_when_the_offer_has_ended(
    new_context: NewContext, studio: LiveServer
) -> None:
    page = await open_studio(new_context, studio)
    sale = preview(page, "rule:flash-sale:")
    await expect(sale.locator(".cw-clock")).to_be_visible()
    await expect(sale.locator(".cw-ended")).to_be_hidden()
    await expect(sale.locator(".cw-ended")).to_be_visible(timeout=4000)
    await expect(sale.locator(".cw-clock")).to_be_hidden()
    await expect(sale.locator(".cw-bar span")).to_have_css("transform", "matrix(0, 0, 0, 1, 0, 0)")


ACTIVE = """\
{#---
kind: toast
description: A template with active content, which the snippet's sanitizer removes.
sample:
  prompt: {id: p_sample, rule: active, variant: null}
---#}
<div class="cw-active">
  <script>window.cwRan = "script"</script>
  <img src="missing.png" onerror="window.cwRan = 'onerror'" alt="">
  <a class="js" href="java&#9;script:window.cwRan='href'">a link</a>
  <iframe srcdoc="<p>framed</p>"></iframe>
  <button type="button" class="bad" data-cw-action="click"
    data-cw-href="javascript:window.cwRan='action'">bad</button>
  <button type="button" class="ftp" data-cw-action="click" data-cw-href="ftp://x.test/">ftp</button>
  <button type="button" class="good" data-cw-action="click" data-cw-href="/cart">good</button>
</div>
"""


async def test_previews_go_through_the_snippets_own_sanitizer(
    new_context: NewContext, studio: LiveServer, templates: Path
) -> None:
    """studio.js is built from client-js with render.ts's parse and safeHref: what a visitor's
    page would strip is stripped in the preview, and a click action shows its link only when
    the snippet would follow it."""
    write(templates / "active.html", ACTIVE)
    page = await open_studio(new_context, studio)
    host = preview(page, "template:active:default")
    await expect(host.locator(".good")).to_be_visible()
    cleaned = await host.evaluate(
        """h => {
            const root = h.shadowRoot;
            return {
                active: root.querySelectorAll("script, iframe").length,
                onerror: root.querySelector("img").hasAttribute("onerror"),
                href: root.querySelector("a.js").hasAttribute("href"),
                action: root.querySelector(".bad").hasAttribute("data-cw-href"),
            };
        }"""
    )
    assert cleaned == {"active": 0, "onerror": False, "href": False, "action": False}

    card = page.locator(".card", has=page.locator(".name", has_text="active"))
    await host.locator(".ftp").click()  # the snippet follows http(s), mailto and tel only
    await expect(card.locator(".log")).to_have_text(
        'prompt_click (and cuewire.on("prompt:click") handlers)'
    )
    await card.get_by_role("button", name="Show again").click()
    await host.locator(".good").click()
    await expect(card.locator(".log")).to_have_text(
        'prompt_click → /cart (and cuewire.on("prompt:click") handlers)'
    )
    assert await page.evaluate("() => window.cwRan") is None
