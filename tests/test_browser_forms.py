"""Forms and copied content in Chromium with the real snippet, a real pointer and keyboard: a
focused field left without input gives `form_hesitation` (and a rule on it shows a prompt
while the visitor is still in the field), a field emptied and typed again gives
`field_retyped`, leaving or hiding the page after input gives `form_abandon` with the fields'
focus times (a submit gives them with the `submit`), copying or selecting the text of a
tracked element gives `copy`; no value or copied text is ever sent, and after
`consent(false)` none of them is."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, expect

from support.browser import (
    BROWSER_TEST,
    Serve,
    count,
    facts,
    of,
    prompt_host,
    recent_events,
    stored,
    visit,
)
from support.harness import write
from support.paths import ROOT
from support.servers import LiveServer
from support.waiting import eventually

pytest_plugins = ["support.browser"]
pytestmark = BROWSER_TEST

EMAIL, NAME, CARD = "ann@example.org", "Ann Lee", "4111111111111111"

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Checkout</title>
<script src="/cw.js" data-site="test-site" data-form-hesitation="700" async></script>
</head>
<body>
<p>Use <b id="coupon" data-cw-track="coupon">SPRING25</b> at the checkout.
  <span id="plain">Plain words here.</span></p>
<form id="checkout" action="/done.html">
  <input name="email" type="email" autocomplete="email">
  <input name="name" type="text">
  <input name="card" type="text" autocomplete="cc-number">
  <input name="password" type="password" autocomplete="new-password">
  <button id="pay" type="submit">Pay</button>
</form>
</body></html>
"""

RULES = """rules:
  - id: checkout-stuck
    trigger:
      event:
        type: form_hesitation
        where: {all: [{fact: form, equals: checkout}, {fact: field, equals: card}]}
    show: {template: toast, params: {message: "Questions about paying?"}}
policy: {max_prompts_per_session: 0, dismissals: null}
"""


@pytest.fixture
def shop(serve: Serve, tmp_path: Path) -> LiveServer:
    pages = write(tmp_path / "pages" / "checkout.html", PAGE).parent
    write(pages / "done.html", "<!doctype html><title>Done</title><p>Thanks</p>")
    rules = write(tmp_path / "rules" / "forms.yaml", RULES).parent
    return serve(pages=pages, rules_dir=rules, templates_dir=ROOT / "templates")


def field(page: Page, name: str) -> Any:
    return page.locator(f'#checkout [name="{name}"]')


def no_values(events: list[dict[str, Any]]) -> None:
    text = json.dumps(events)
    for value in (EMAIL, NAME, CARD, "secret-pw", "SPRING25", "Plain"):
        assert value not in text, f"{value!r} was sent"


async def test_a_field_left_without_input_hesitates_and_a_rule_answers_in_the_field(
    page: Page, shop: LiveServer
) -> None:
    sid = await visit(page, shop, "/checkout.html")
    await field(page, "email").click()
    await page.keyboard.type(EMAIL)  # at once: no hesitation on the e-mail
    await page.keyboard.press("Tab")  # to the name: it waits 700 ms without input
    (first,) = await stored(shop, sid, "form_hesitation")
    assert first == first | {"form": "checkout", "field": "name", "ms": 700}
    await field(page, "card").click()
    _, card = await stored(shop, sid, "form_hesitation", 2)
    assert card["field"] == "card"
    await expect(prompt_host(page)).to_contain_text("Questions about paying?")
    await expect(field(page, "card")).to_be_focused()
    await page.keyboard.type(CARD)
    await asyncio.sleep(1.0)
    events = await recent_events(shop, sid)
    assert [e["field"] for e in of(events, "form_hesitation")] == ["name", "card"]
    assert count(await facts(shop, sid), "n:form_hesitation") == 2
    no_values(events)


async def test_a_field_emptied_and_typed_again_is_retyped(page: Page, shop: LiveServer) -> None:
    sid = await visit(page, shop, "/checkout.html")
    await field(page, "email").click()
    await page.keyboard.type("ann@exmaple")
    await page.keyboard.press("Backspace")  # correcting part of it is no retype
    await page.keyboard.type("e")
    await page.keyboard.press("Control+A")
    await page.keyboard.press("Backspace")
    await page.keyboard.type(EMAIL)
    await field(page, "password").click()
    await page.keyboard.type("secret-pw")
    for _ in "secret-pw":
        await page.keyboard.press("Backspace")
    await page.keyboard.type("secret-pw")
    first, second = await stored(shop, sid, "field_retyped", 2)
    assert [first["field"], second["field"]] == ["email", "password"]
    assert first["form"] == "checkout"
    await asyncio.sleep(0.3)
    events = await recent_events(shop, sid)
    assert len(of(events, "field_retyped")) == 2  # once per emptying, not per key
    no_values(events)


async def test_leaving_a_form_after_input_abandons_it_with_the_focus_times(
    page: Page, shop: LiveServer
) -> None:
    sid = await visit(page, shop, "/checkout.html")
    await field(page, "email").click()
    await page.keyboard.type(EMAIL)
    await asyncio.sleep(0.3)
    await field(page, "name").click()
    await page.keyboard.type(NAME)
    await field(page, "card").click()  # focused, never typed into
    await page.goto(shop.url + "/done.html")

    (abandon,) = await stored(shop, sid, "form_abandon")
    assert abandon["form"] == "checkout" and abandon["fields_touched"] == 2
    assert abandon["url"].endswith("/checkout.html")
    times = abandon["field_ms"]
    assert set(times) == {"email", "name", "card"}
    assert times["email"] >= 300 and all(ms >= 0 for ms in times.values())
    events = await recent_events(shop, sid)
    assert [e["action"] for e in of(events, "form")] == ["focus", "abandon"]
    no_values(events)


async def test_a_submitted_form_sends_its_focus_times_and_is_not_abandoned(
    page: Page, shop: LiveServer
) -> None:
    sid = await visit(page, shop, "/checkout.html")
    await field(page, "email").click()
    await page.keyboard.type(EMAIL)
    await asyncio.sleep(0.2)
    await page.keyboard.press("Tab")
    await page.keyboard.type(NAME)
    await page.keyboard.press("Enter")
    await page.wait_for_url("**/done.html?*")
    submit = (await stored(shop, sid, "form", 2))[-1]
    assert submit["action"] == "submit" and set(submit["field_ms"]) == {"email", "name"}
    assert submit["field_ms"]["email"] >= 200
    await page.goto(shop.url + "/checkout.html")
    await asyncio.sleep(0.5)
    events = await recent_events(shop, sid)
    assert of(events, "form_abandon") == []
    no_values(events)


async def test_copying_or_selecting_tracked_text_sends_its_length(
    page: Page, shop: LiveServer
) -> None:
    await page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    sid = await visit(page, shop, "/checkout.html")
    await page.locator("#plain").dblclick()  # untracked: nothing
    await asyncio.sleep(0.8)
    await page.locator("#coupon").dblclick()  # selects the word
    (selected,) = await stored(shop, sid, "copy")
    assert selected == selected | {"element": "coupon", "chars": 8, "action": "select"}
    await page.keyboard.press("Control+C")
    _, copied = await stored(shop, sid, "copy", 2)
    assert copied == copied | {"element": "coupon", "chars": 8, "action": "copy"}
    await asyncio.sleep(0.8)
    events = await recent_events(shop, sid)
    assert len(of(events, "copy")) == 2  # the selection resting on is not sent again
    assert count(await facts(shop, sid), "n:copy") == 2
    no_values(of(events, "copy"))  # (a click reports a button's text, as it always has)


async def test_after_consent_false_no_form_or_copy_signal_is_sent(
    page: Page, shop: LiveServer
) -> None:
    sid = await visit(page, shop, "/checkout.html")
    await page.evaluate("cuewire.consent(false)")
    await field(page, "email").click()
    await page.keyboard.type("a")
    await page.keyboard.press("Backspace")
    await page.keyboard.type("b")
    await field(page, "name").click()
    await asyncio.sleep(1.0)  # past the 700 ms hesitation
    await page.locator("#coupon").dblclick()
    await page.keyboard.press("Control+C")
    await asyncio.sleep(0.8)
    await page.evaluate("cuewire.consent(true); cuewire.track('back')")
    events = await eventually(
        lambda: recent_events(shop, sid),
        lambda found: any(e["type"] == "custom" and e["name"] == "back" for e in found),
        what="the custom event sent after consent came back",
    )
    kinds = {e["type"] for e in events}
    assert not kinds & {"form_hesitation", "field_retyped", "copy", "form"}, kinds
