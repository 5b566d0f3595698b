"""The dead letters page (/qa/deadletters) in Chromium: a webhook the receiver refused is
listed with its code and detail, and its "Retry" button sends it again."""

from __future__ import annotations

import textwrap
from pathlib import Path

from playwright.async_api import expect

from cuewire.sites import Site, Sites
from support.browser import BROWSER_TEST, NewContext, Serve
from support.harness import write
from support.receiver import Receiver
from support.visitor import Visitor
from support.waiting import eventually

pytest_plugins = ["support.browser"]
pytestmark = BROWSER_TEST

PASSWORD = "qa-dead-letters-1"
RULE = """
rules:
  - id: exit-hook
    trigger: {{event: {{type: exit_intent}}}}
    webhook: {{url: "{url}"}}
"""


async def test_a_refused_webhook_is_listed_and_its_retry_button_sends_it_again(
    new_context: NewContext, serve: Serve, tmp_path: Path
) -> None:
    async with Receiver(answers=[422]) as receiver:
        rules = write(
            tmp_path / "rules" / "hook.yaml", textwrap.dedent(RULE.format(url=receiver.url))
        )

        def sites(origin: str) -> Sites:
            return Sites({"test-site": Site(origins=[origin], webhook_secret="s" * 24)})

        server = serve(
            rules_dir=rules.parent, admin_password=PASSWORD, sites=sites, outbox_poll_s=0.02
        )
        async with Visitor(server.url, visitor="v_deadpage01") as v:
            await v.send(v.event("exit_intent", "http://shop.test/"))
        await eventually(lambda: len(receiver.got) == 1, what="the refused post")
        context = await new_context(http_credentials={"username": "admin", "password": PASSWORD})
        page = await context.new_page()
        await page.goto(server.url + "/qa/deadletters")
        row = page.locator("#channels tbody tr")
        await expect(row).to_have_count(1)
        await expect(row).to_contain_text("refused")
        await expect(row).to_contain_text("HTTP 422")
        await expect(row).to_contain_text(receiver.url)
        webhook_id = receiver.got[0].headers["webhook-id"]
        await row.get_by_role("button", name="Retry").click()
        await expect(page.locator("#status")).to_have_text(f"queued {webhook_id} again")
        await eventually(lambda: receiver.accepted() == {webhook_id: 1}, what="the retry taken")
        await page.reload()
        await expect(page.locator("#channels h3", has_text="webhooks:")).to_contain_text(
            "webhooks: 0 dead"
        )
        await expect(row).to_have_count(0)
