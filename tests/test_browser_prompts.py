"""Prompts respect the page, in Chromium with the real snippet: a non-modal prompt closes by
itself when nobody attends to it (and frees the slot), a higher-priority prompt takes the
place of a lower one, a long unbroken string wraps inside the viewport, and Esc gives focus
back to where it was, for every kind. (Not covering the element a rule is about:
tests/test_browser_demo.py, on the demo product page.)"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from support.browser import (
    BROWSER_TEST,
    NewContext,
    Serve,
    facts,
    overlaps,
    prompt_host,
    recent_events,
    session_id,
    visit,
)
from support.harness import write
from support.paths import ROOT
from support.servers import LiveServer
from support.waiting import eventually

pytest_plugins = ["support.browser"]
pytestmark = BROWSER_TEST

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
LONG = "W" * 300
TEXT_PARAMS = (
    "title",
    "message",
    "headline",
    "body",
    "strong",
    "eyebrow",
    "cta",
    "agent",
    "agent_role",
    "code",
    "product_name",
)
QUICK = """{#---
kind: toast
dismiss_after: 1s
description: A toast that closes by itself after one second.
---#}
<style>.cw-quick { position: fixed; right: 20px; bottom: 20px; padding: 12px; background: #fff; }</style>
<div class="cw-quick" role="status">{{ params.get("message", "Quick") }}
<button type="button" data-cw-action="dismiss" aria-label="Close">x</button></div>
"""


def rules() -> str:
    long = ", ".join(f'{p}: "{LONG}"' for p in TEXT_PARAMS)
    out = ["rules:"]
    for name in KINDS:
        rid = name.replace("_", "-")
        out += [
            f"  - id: show-{rid}",
            f"    trigger: {{event: {{type: custom, name: show_{name}}}}}",
            f"    show: {{template: {name}, params: {{cta: Open}}}}",
            f"  - id: long-{rid}",
            f"    trigger: {{event: {{type: custom, name: long_{name}}}}}",
            f"    show: {{template: {name}, params: {{{long}}}}}",
        ]
    out += [
        "  - id: quick",
        "    trigger: {event: {type: custom, name: quick}}",
        "    show: {template: quick}",
        "  - id: low",
        "    priority: 1",
        "    trigger: {event: {type: custom, name: low}}",
        "    show: {template: toast, params: {message: Low}}",
        "  - id: high",
        "    priority: 9",
        "    trigger: {event: {type: custom, name: high}}",
        "    show: {template: slidein, params: {title: High}}",
        "policy: {max_prompts_per_session: 0, dismissals: null}",
    ]
    return "\n".join(out) + "\n"


@pytest.fixture
def kit(serve: Serve, tmp_path: Path) -> LiveServer:
    templates = tmp_path / "templates"
    shutil.copytree(ROOT / "templates", templates)
    write(templates / "quick.html", QUICK)
    folder = write(tmp_path / "rules" / "kit.yaml", rules()).parent
    return serve(rules_dir=folder, templates_dir=templates)


async def track(page: Page, *names: str) -> None:
    await page.evaluate("names => names.forEach(n => cuewire.track(n))", list(names))


async def test_an_unattended_toast_closes_by_itself_and_frees_the_slot(
    page: Page, kit: LiveServer
) -> None:
    session = await visit(page, kit, "/guide.html")
    await track(page, "quick")
    host = prompt_host(page, kind="toast")
    await expect(host).to_have_count(1)
    prompt = await host.get_attribute("data-cuewire-prompt")
    # While the pointer rests on it, it stays.
    await host.locator(".cw-quick").hover()
    await page.wait_for_timeout(1600)
    await expect(host).to_have_count(1)
    await page.mouse.move(5, 5)
    await expect(host).to_have_count(0, timeout=6000)

    async def expired() -> list[dict[str, object]]:
        return [e for e in await recent_events(kit, session) if e["type"] == "prompt_expired"]

    [event] = await eventually(expired, what="the prompt_expired event")
    assert event["prompt"] == prompt and event["rule"] == "quick"
    stored = await facts(kit, session)
    assert stored["showing"] == ""
    vid = await page.evaluate("localStorage.getItem('cw_vid')")
    visitor = await kit.call(kit.services.store.visitor_facts("test-site", vid))
    assert visitor.get("dismissed", "0") == "0", "closing by itself is not a dismissal"
    # The slot is free: the next prompt shows.
    await track(page, "low")
    await expect(prompt_host(page, kind="toast")).to_have_count(1)


async def test_a_higher_priority_prompt_takes_the_place_of_a_lower_one(
    page: Page, kit: LiveServer
) -> None:
    session = await visit(page, kit, "/guide.html")
    await track(page, "low")
    low = prompt_host(page, kind="toast")
    await expect(low).to_have_count(1)
    low_id = await low.get_attribute("data-cuewire-prompt")
    await track(page, "high")
    high = prompt_host(page, kind="slidein")
    await expect(high).to_have_count(1)
    await expect(high.get_by_role("heading", name="High")).to_be_visible()
    await expect(low).to_have_count(0)
    await expect(prompt_host(page)).to_have_count(1)

    audit = await kit.call(kit.services.store.read_audit("test-site", 20))
    replaced = [r for r in audit if r["outcome"] == "replaced"]
    assert [(r["rule"], r["prompt"], r["code"]) for r in replaced] == [
        ("low", low_id, "higher_priority")
    ]
    high_id = await high.get_attribute("data-cuewire-prompt")
    assert (await facts(kit, session))["showing"] == high_id
    closes = [e for e in await recent_events(kit, session) if e.get("prompt") == low_id]
    assert [e["type"] for e in closes] == ["prompt_shown"], "replaced silently, no dismissal"


async def test_a_prompt_moves_off_what_the_site_marks_data_cw_avoid_also_after_scrolling(
    new_context: NewContext, kit: LiveServer
) -> None:
    context = await new_context(viewport={"width": 1280, "height": 800}, reduced_motion="reduce")
    page = await context.new_page()
    await page.goto(kit.url + "/avoid.html")
    await session_id(page)
    await track(page, "show_toast")
    toast = prompt_host(page, kind="toast").get_by_role("status")
    await expect(toast).to_be_visible()
    launcher, promo = page.locator("#launcher"), page.locator("#promo")

    async def clear_of() -> dict[str, float]:
        await page.evaluate(
            "new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))"
        )
        box = await toast.bounding_box()
        assert box is not None
        assert box["x"] >= 0 and box["x"] + box["width"] <= 1280
        assert box["y"] >= 0 and box["y"] + box["height"] <= 800
        for element in (launcher, promo):
            other = await element.bounding_box()
            assert other is not None
            assert not overlaps(box, other), f"the toast {box} covers {other}"
        return box

    first = await clear_of()
    assert first["x"] < 640, "the toast's corner (bottom-right) holds the launcher: bottom-left"
    # Scrolling brings the promotion under the toast's new corner: it moves again.
    await page.evaluate(
        "() => { const p = document.getElementById('promo');"
        " scrollTo(0, p.offsetTop - innerHeight + p.offsetHeight + 20); }"
    )
    second = await clear_of()
    assert second != first


@pytest.mark.parametrize("viewport", [(1280, 800), (390, 844)], ids=["desktop", "phone"])
@pytest.mark.parametrize("name", list(KINDS))
async def test_a_long_unbroken_string_stays_inside_the_viewport(
    new_context: NewContext, kit: LiveServer, name: str, viewport: tuple[int, int]
) -> None:
    width, height = viewport
    context = await new_context(viewport={"width": width, "height": height})
    page = await context.new_page()
    await visit(page, kit, "/guide.html")
    await page.evaluate(
        """([name, long]) => {
            cuewire.identify("u_long", {name: long});
            cuewire.track("product_view", {name: long, price: 129, category: long});
            cuewire.track("add_to_cart", {name: long, price: 189, category: "packs", url: "/" + long});
            cuewire.track("long_" + name);
        }""",
        [name, LONG],
    )
    host = prompt_host(page, kind=KINDS[name])
    await expect(host).to_have_count(1)
    await page.wait_for_timeout(450)  # entrance animations end
    outside = await host.evaluate(
        """(h, vw) => [...h.shadowRoot.querySelectorAll("*")]
            .filter(e => e.getClientRects().length)
            .map(e => [e.localName + "." + e.className, e.getBoundingClientRect()])
            .filter(([, r]) => r.width && (r.left < -1 || r.right > vw + 1))
            .map(([what, r]) => `${what} ${Math.round(r.left)}..${Math.round(r.right)}`)""",
        width,
    )
    assert outside == [], f"{name} at {width}px: {outside[:5]}"


@pytest.mark.parametrize("name", list(KINDS))
async def test_escape_gives_focus_back_to_where_it_was(
    page: Page, kit: LiveServer, name: str
) -> None:
    await visit(page, kit, "/guide.html")
    await page.locator("#newsletter").focus()
    await track(page, "show_" + name)
    host = prompt_host(page, kind=KINDS[name])
    await expect(host).to_have_count(1)
    if KINDS[name] != "modal":  # a modal takes focus; the others get it from the visitor
        await host.get_by_role("button", name="Close", exact=False).first.focus()
    assert await host.evaluate("h => h.shadowRoot.activeElement !== null")
    await page.keyboard.press("Escape")
    await expect(host).to_have_count(0)
    assert await page.evaluate("document.activeElement && document.activeElement.id") == (
        "newsletter"
    )
