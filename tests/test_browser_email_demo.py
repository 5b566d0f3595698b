"""The demo's email, end to end in Chromium: a shopper types an email at checkout and leaves
without ordering; the demo rule checkout-left-email (rules/demo/email.yaml, its 20 s cut to
2 s through rule configuration only) emails a reminder to the demo's own SMTP sink, and the
mailbox page (/qa/mail, linked from the demo panel's "What to try") shows it, its HTML part inert in a
sandboxed iframe."""

from __future__ import annotations

import json
from pathlib import Path

from playwright.async_api import expect

from cuewire.sites import Site, Sites
from support.browser import BROWSER_TEST, NewContext, Serve
from support.demo_rules import demo_rules_with_window
from support.paths import ROOT
from support.waiting import eventually

pytest_plugins = ["support.browser"]
pytestmark = BROWSER_TEST

RULE = "checkout-left-email"


async def test_a_shopper_who_left_the_checkout_gets_the_reminder_in_the_demo_mailbox(
    serve: Serve, new_context: NewContext, tmp_path: Path
) -> None:
    server = serve(
        pages=ROOT / "demo-site",
        rules_dir=demo_rules_with_window(tmp_path / "rules", RULE),
        templates_dir=ROOT / "templates",
        sites=lambda origin: Sites({"demo": Site(origins=[origin])}),
        demo_mail_sink=True,
        mail_unverified=True,
        mail_poll_s=0.05,
        admin_password="pw-of-the-test",
    )
    context = await new_context(
        http_credentials={"username": "admin", "password": "pw-of-the-test"}
    )
    page = await context.new_page()
    await page.goto(server.url + "/")
    cart = [{"id": "trail-runner", "qty": 1, "size": "42"}]
    await page.evaluate(f"localStorage.setItem('nw_cart', {json.dumps(json.dumps(cart))})")
    await page.goto(server.url + "/checkout.html")
    await page.get_by_label("Full name").fill("Ada")
    await page.get_by_label("Email").fill("ada@example.com")
    await page.get_by_label("Street address").focus()  # the email field's change
    await page.goto(server.url + "/index.html")  # leaves without ordering

    sink = server.services.mail_sink
    assert sink is not None
    await eventually(lambda: len(sink.messages), lambda n: n == 1, what="the reminder email")
    [mail] = sink.messages
    assert mail.recipients == ["ada@example.com"]
    assert mail.message["Subject"] == "You left something in your cart"

    mailbox = await context.new_page()
    await mailbox.goto(server.url + "/qa/mail")
    frame = mailbox.frame_locator("iframe[sandbox]")
    await expect(frame.get_by_role("heading", name="Your cart is waiting")).to_be_visible()
    link = frame.get_by_role("link", name="Back to my cart")
    await expect(link).to_have_attribute("href", server.url + "/cart.html")
    assert await mailbox.evaluate("window.__cw_xss") is None
