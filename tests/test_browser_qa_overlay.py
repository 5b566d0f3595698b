"""QA mode in Chromium: a page of the site opened with ``?cuewire_qa=TOKEN`` (a token the QA
view issues per site) loads the overlay bundle cw-qa.js and shows which rules watch the page
and their state, on the tab's later pages too until it is closed; without the parameter
nothing is fetched or shown; a tampered token is
refused with its code. And the QA view's explain panel and tools: force a rule into the
visitor's page from /qa.

Set CUEWIRE_SCREENSHOTS=1 to refresh docs/img/qa-overlay.png and docs/img/qa-explain.png.
"""

from __future__ import annotations

import base64
import os
import re
from pathlib import Path

import httpx
from playwright.async_api import Page, expect

from support.browser import BROWSER_TEST, NewContext, Serve, prompt_host, session_id
from support.harness import write
from support.paths import ROOT
from support.servers import LiveServer

pytest_plugins = ["support.browser"]
pytestmark = BROWSER_TEST

PASSWORD = "qa-overlay-1"
BASIC = {"Authorization": "Basic " + base64.b64encode(f"admin:{PASSWORD}".encode()).decode()}
PRODUCT = "/product/boots.html"
OVERLAY = "[data-cuewire-qa]"


RULES = """
rules:
  - id: exit-product
    priority: 20
    trigger: {event: {type: exit_intent}}
    when: {fact: page.path, glob: "/product/*"}
    show: {template: note, params: {headline: "Leaving so soon?"}}
  - id: hesitate-product
    priority: 10
    trigger:
      absence:
        after: {type: page_view}
        missing: {type: custom, name: add_to_cart}
        within: 3s
    when: {fact: page.path, glob: "/product/*"}
    show: {template: note, params: {headline: "Need help?"}}
  - id: browse-3
    trigger: {count: {of: {type: page_view}, at_least: 3, within: 5m}}
    set: [{name: browsing}]
"""


def qa_server(serve: Serve, tmp_path: Path) -> LiveServer:
    """The fixture pages; two rules on product pages (hesitate-product: 3 s there), one
    counting page views."""
    rules = write(tmp_path / "rules" / "rules.yaml", RULES).parent
    return serve(rules_dir=rules, admin_password=PASSWORD)


def overlay_token(server: LiveServer) -> str:
    reply = httpx.get(f"{server.url}/qa/api/overlay-token?site=test-site", headers=BASIC)
    assert reply.status_code == 200, reply.text
    return str(reply.json()["token"])


def screenshot_path(name: str, tmp_path: Path) -> Path:
    wanted = os.environ.get("CUEWIRE_SCREENSHOTS") == "1"
    path = (ROOT / "docs" / "img" if wanted else tmp_path) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


async def test_the_overlay_lists_the_rules_watching_the_page_and_their_state(
    page: Page, serve: Serve, tmp_path: Path
) -> None:
    server = qa_server(serve, tmp_path)
    await page.set_viewport_size({"width": 900, "height": 560})
    await page.goto(f"{server.url}{PRODUCT}?cuewire_qa={overlay_token(server)}")
    overlay = page.locator(OVERLAY).locator(".box")  # the host is an empty fixed-position box
    await expect(overlay).to_be_visible()
    await expect(overlay).to_contain_text("3 of 3 rules watch this page")
    await expect(overlay.locator('li[data-rule="browse-3"]')).to_contain_text("1/3 in window")
    hesitate = overlay.locator('li[data-rule="hesitate-product"]')
    await expect(hesitate).to_have_attribute("data-state", "pending")
    await expect(hesitate).to_contain_text("deadline in")
    await expect(overlay.locator('li[data-rule="exit-product"]')).to_have_attribute(
        "data-state", "waiting"
    )
    await expect(
        prompt_host(page).get_by_role("dialog")
    ).to_be_visible()  # the 1 s hesitation fired
    await expect(hesitate).to_have_attribute("data-state", "fired")
    await expect(hesitate).to_contain_text("held: cap_session")
    await page.keyboard.press("Escape")  # the modal prompt closes; then the overlay
    await expect(prompt_host(page)).to_have_count(0)
    await page.screenshot(path=screenshot_path("qa-overlay.png", tmp_path))
    # QA mode lasts for the tab: the next page shows the overlay without the parameter
    await page.goto(server.url + "/guide.html")
    await expect(overlay).to_contain_text("1 of 3 rules watch this page")
    await overlay.get_by_role("button", name="Close the QA overlay").click()
    await expect(overlay).to_have_count(0)
    await page.goto(server.url + PRODUCT)  # closed: QA mode ended for the tab
    await session_id(page)
    await expect(page.locator(OVERLAY)).to_have_count(0)


async def test_without_the_parameter_no_overlay_is_fetched_or_shown(
    page: Page, serve: Serve, tmp_path: Path
) -> None:
    server = qa_server(serve, tmp_path)
    fetched: list[str] = []
    page.on("request", lambda request: fetched.append(request.url))
    await page.goto(server.url + PRODUCT)
    await session_id(page)  # the snippet is connected and running
    await expect(prompt_host(page).get_by_role("dialog")).to_be_visible()
    assert not [url for url in fetched if "cw-qa.js" in url or "/qa/" in url]
    await expect(page.locator(OVERLAY)).to_have_count(0)


async def test_a_tampered_token_is_refused_with_its_code(
    page: Page, serve: Serve, tmp_path: Path
) -> None:
    server = qa_server(serve, tmp_path)
    expiry, _, mac = overlay_token(server).partition(".")
    tampered = f"{int(expiry) + 3_600_000}.{mac}"  # a longer life, with the same signature
    await page.goto(f"{server.url}{PRODUCT}?cuewire_qa={tampered}")
    await session_id(page)
    box = page.locator(OVERLAY).locator(".box")
    await expect(box).to_have_attribute("data-refused", "invalid_token")
    await expect(box).to_contain_text("Refused (invalid_token)")
    await expect(box.locator("li")).to_have_count(0)  # no rule is shown


async def test_the_qa_view_explains_the_session_and_forces_a_rule_into_its_page(
    page: Page, new_context: NewContext, serve: Serve, tmp_path: Path
) -> None:
    server = qa_server(serve, tmp_path)
    await page.goto(server.url + "/guide.html")  # not a product page: no rule's `when` holds
    session = await session_id(page)
    context = await new_context(
        http_credentials={"username": "admin", "password": PASSWORD},
        viewport={"width": 1400, "height": 1000},
    )
    qa = await context.new_page()
    await qa.goto(f"{server.url}/qa?site=test-site&session={session}")
    await expect(qa.locator("#status")).to_have_text("live")
    row = qa.locator('#explain tr[data-rule="hesitate-product"]')
    await expect(row).to_have_attribute("data-state", "blocked")
    failing = row.locator('li.fail[data-fact="page.path"]')
    await expect(failing).to_contain_text("page.path glob '/product/*'")
    await expect(failing).to_contain_text('= "/guide.html"')
    await expect(row).to_contain_text("session 0/1")
    await expect(qa.locator('#explain tr[data-rule="browse-3"]')).to_contain_text("all 1/3")

    await qa.locator("#force-rule").select_option("exit-product")
    await qa.get_by_role("button", name="Force it now").click()
    await expect(qa.locator("#tool-status")).to_have_text("force exit-product: forced")
    await expect(
        prompt_host(page).get_by_role("dialog")
    ).to_be_visible()  # pushed into the visitor's tab
    forced = qa.locator('#audit tr[data-rule="exit-product"]')
    await expect(forced).to_have_attribute("data-outcome", "forced")
    await expect(qa.locator('#explain tr[data-rule="exit-product"]')).to_contain_text("session 1/1")

    await qa.locator("#search-by").select_option("url")
    await qa.locator("#search-q").fill("/guide.html")
    await qa.get_by_role("button", name="Find").click()
    await expect(qa.locator(f'#search-results button[data-session="{session}"]')).to_be_visible()
    # what the search covered: a URL search without the export reads the streams only
    covered = re.compile(r"^searched the last \d+ stream entries, since .+\. Covered since .+\.$")
    await expect(qa.locator("#search-covered")).to_have_text(covered)
    await qa.get_by_role("button", name="QA link…").click()
    link = re.compile(re.escape(f"{server.url}/guide.html?cuewire_qa=") + r"\d+\.[0-9a-f]{64}$")
    await expect(qa.locator("#qa-link")).to_have_value(link)
    await qa.locator("#explain-title").scroll_into_view_if_needed()
    await qa.screenshot(path=screenshot_path("qa-explain.png", tmp_path), full_page=True)
