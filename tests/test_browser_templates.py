"""The starter kit in the real snippet, in Chromium: each template mounts, a modal takes focus
and keeps it, Esc and the close button close it, nothing shifts the page, the chat prompt's
CTA reaches the site's `prompt:click` hook, and hostile props stay inert."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from support.browser import BROWSER_TEST, Serve, prompt_host, session_id
from support.harness import write
from support.servers import LiveServer
from support.vectors import XSS_VECTORS

pytest_plugins = ["support.browser"]
pytestmark = BROWSER_TEST

ROOT = Path(__file__).resolve().parent.parent
KINDS = {
    "modal": "modal",
    "exit_offer": "modal",
    "discount_countdown": "modal",
    "toast": "toast",
    "banner": "banner",
    "slidein": "slidein",
    "product_reminder": "slidein",
    "chat_help": "chat",
}
VECTORS = XSS_VECTORS


def rules() -> str:
    """One rule per starter template, fired by the custom event ``show_<template>``."""
    out = ["rules:"]
    for name in KINDS:
        out += [
            f"  - id: show-{name.replace('_', '-')}",
            "    trigger:",
            f"      event: {{type: custom, name: show_{name}}}",
            f"    show: {{template: {name}, params: {{cta: Open}}}}",
        ]
    return "\n".join(out) + "\n"


@pytest.fixture
def kit(serve: Serve, tmp_path: Path) -> LiveServer:
    templates = tmp_path / "templates"
    shutil.copytree(ROOT / "templates", templates)
    folder = write(tmp_path / "rules" / "kit.yaml", rules()).parent
    return serve(rules_dir=folder, templates_dir=templates)


async def show(page: Page, server: LiveServer, name: str) -> None:
    await page.goto(server.url + "/guide.html")
    await session_id(page)
    await page.evaluate(
        """name => {
            cuewire.track("product_view", {name: "Trail Runner", price: 129, category: "footwear"});
            cuewire.track("add_to_cart", {name: "Summit 45", price: 189, category: "packs"});
            cuewire.track("show_" + name);
        }""",
        name,
    )


async def inside(page: Page) -> bool:
    """Focus is inside the prompt's shadow root."""
    host = prompt_host(page)
    return bool(await host.evaluate("h => h.shadowRoot.activeElement !== null"))


@pytest.mark.parametrize("name", list(KINDS))
async def test_each_starter_template_mounts_and_closes_on_escape(
    page: Page, kit: LiveServer, name: str
) -> None:
    await page.goto(kit.url + "/guide.html")
    height = await page.evaluate("document.documentElement.scrollHeight")
    await show(page, kit, name)
    host = prompt_host(page, kind=KINDS[name])
    await expect(host).to_have_count(1)
    assert await page.evaluate("document.documentElement.scrollHeight") == height, "no shift"
    if KINDS[name] == "modal":
        dialog = host.get_by_role("dialog")
        await expect(dialog).to_be_visible()
        assert await host.evaluate(
            "h => h.shadowRoot.activeElement.hasAttribute('data-cw-autofocus')"
        )
        for _ in range(8):  # focus stays trapped in the dialog
            await page.keyboard.press("Tab")
            assert await inside(page)
        await page.keyboard.press("Shift+Tab")
        assert await inside(page)
    else:
        await host.locator(".cw-close").focus()
    await page.keyboard.press("Escape")
    await expect(host).to_have_count(0)


@pytest.mark.parametrize("name", list(KINDS))
async def test_each_starter_template_closes_with_its_button(
    page: Page, kit: LiveServer, name: str
) -> None:
    await show(page, kit, name)
    host = prompt_host(page, kind=KINDS[name])
    close = host.get_by_role("button", name="Close", exact=False).first
    await expect(close).to_be_visible()
    await close.click()
    await expect(host).to_have_count(0)


async def test_the_chat_prompt_reaches_the_sites_click_hook(page: Page, kit: LiveServer) -> None:
    """docs/templates.md, "Opening the site's chat"."""
    await page.goto(kit.url + "/guide.html")
    await session_id(page)
    await page.evaluate(
        """() => {
            window.opened = [];
            cuewire.on("prompt:click", (p) => { if (p.kind === "chat") window.opened.push(p.template); });
            cuewire.track("show_chat_help");
        }"""
    )
    host = prompt_host(page, kind="chat")
    await host.get_by_role("button", name="Open").click()
    await expect(host).to_have_count(0)
    assert await page.evaluate("window.opened") == ["chat_help"]
    await page.wait_for_function("location.hash === '#cuewire-chat'")


@pytest.mark.parametrize("start", range(0, len(VECTORS), 6))
async def test_hostile_props_stay_inert_in_the_product_reminder(
    page: Page, kit: LiveServer, start: int
) -> None:
    batch = (VECTORS[start : start + 6] * 2)[:6]
    await page.goto(kit.url + "/guide.html")
    await session_id(page)
    await page.evaluate(
        """v => {
            cuewire.identify("u_xss", {name: v[0]});
            cuewire.track("add_to_cart", {name: v[1], category: v[2], price: v[3], image: v[4], url: v[5]});
            cuewire.track("checkout_started", {items: v[3], total: v[2]});
            cuewire.track("show_product_reminder");
        }""",
        batch,
    )
    host = prompt_host(page, kind="slidein")
    await expect(host.locator(".cw-name")).to_have_count(1)
    await page.evaluate(
        "new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => setTimeout(r))))"
    )
    assert await page.evaluate("typeof window.__cw_xss") == "undefined"
    text = await host.locator(".cw-name").inner_text()
    assert text.rstrip(".") in batch[1] or batch[1].startswith(text.rstrip(". "))
    tags = await host.evaluate("h => [...h.shadowRoot.querySelectorAll('*')].map(e => e.localName)")
    assert not {"script", "iframe", "object", "embed", "details", "marquee", "math"} & set(tags)
