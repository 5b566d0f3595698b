"""Untrusted browser text comes back in a prompt as inert text, never as markup or script.

Every line of shared/testdata/xss-vectors.txt goes in the way a hostile page or visitor
could put it: as ``identify`` traits and as ``track`` props (and one in the page URL). A rule
fires on the custom event and a template prints those values in text and attribute
positions. The prompt then renders in Chromium, where ``window.__cw_xss`` must stay undefined.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import quote

import pytest
from playwright.async_api import Page, expect

from support.browser import BROWSER_TEST, Serve, prompt_host, session_id
from support.harness import write
from support.servers import LiveServer
from support.vectors import XSS_VECTORS

pytest_plugins = ["support.browser"]
pytestmark = BROWSER_TEST

VECTORS = XSS_VECTORS
BATCH = 12  # vectors per page load: one prompt, one session each
BATCHES = [VECTORS[i : i + BATCH] for i in range(0, len(VECTORS), BATCH)]

ECHO_RULE = """\
rules:
  - id: echo
    trigger:
      event: {type: custom, name: echo}
    show: {template: echo}
"""

ECHO_TEMPLATE = """\
{#---
kind: toast
description: Prints untrusted visitor input back, in text and attribute positions.
sample:
  visitor: {traits: {name: Ada, v0: "<b>"}}
  session: {url: "http://localhost/guide.html"}
  event: {type: custom, name: echo, props: {v0: "<b>"}}
---#}
<div class="cw-echo" role="status">
  <p class="cw-name">{{ visitor.traits.get("name", "") }}</p>
  <p class="cw-url">{{ session.url }}</p>
  <ul class="cw-traits">
  {% for key, value in visitor.traits.items() %}
    <li data-key="{{ key }}" title="{{ value }}">{{ value }}</li>
  {% endfor %}
  </ul>
  <ul class="cw-props">
  {% for key, value in event.get("props", {}).items() %}
    <li data-key="{{ key }}" title="{{ value }}">{{ value }}</li>
  {% endfor %}
  </ul>
</div>
"""
TEMPLATE_TAGS = {"DIV", "P", "UL", "LI"}


@pytest.fixture
def echo_server(serve: Serve, tmp_path: Path) -> LiveServer:
    rules = write(tmp_path / "rules" / "echo.yaml", ECHO_RULE).parent
    templates = write(tmp_path / "templates" / "echo.html", ECHO_TEMPLATE).parent
    return serve(rules_dir=rules, templates_dir=templates)


def attribute_kept(value: str) -> str | None:
    """What the snippet leaves of an attribute value: it drops javascript: and vbscript:
    values (ignoring control characters and spaces, as URL parsing does), a second line of
    defence behind the server's escaping."""
    bare = re.sub(r"[\x00-\x20]", "", value)
    return None if re.match(r"(?i)(javascript|vbscript):", bare) else value


async def echoed(page: Page, list_class: str) -> dict[str, tuple[str, str | None]]:
    """``data-key`` -> (text, title attribute) of the prompt's list items."""
    items = prompt_host(page).locator(f".{list_class} li")
    rows = await items.evaluate_all(
        "els => els.map(el => [el.dataset.key, el.textContent, el.getAttribute('title')])"
    )
    return {key: (text, title) for key, text, title in rows}


@pytest.mark.parametrize(
    "batch", BATCHES, ids=[f"vectors{i * BATCH}+" for i in range(len(BATCHES))]
)
async def test_untrusted_text_renders_inert_in_the_prompt(
    page: Page, echo_server: LiveServer, batch: list[str]
) -> None:
    await page.goto(f"{echo_server.url}/guide.html?q={quote(batch[0])}")
    await session_id(page)
    values = {f"v{i}": vector for i, vector in enumerate(batch)}
    await page.evaluate(
        """values => {
            cuewire.identify("u_xss", {name: values.v0, ...values});
            cuewire.track("echo", values);
        }""",
        values,
    )

    host = prompt_host(page, kind="toast")
    await expect(host.locator(".cw-props li")).to_have_count(len(batch))
    # Give anything injected its chance to run: two frames and a task after the mount.
    await page.evaluate(
        "new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => setTimeout(r))))"
    )

    assert await page.evaluate("typeof window.__cw_xss") == "undefined"
    tags = await host.evaluate("h => [...h.shadowRoot.querySelectorAll('*')].map(e => e.tagName)")
    assert set(tags) <= TEMPLATE_TAGS, "no element came from the input"
    await expect(host.locator(".cw-name")).to_have_text(batch[0])
    await expect(host.locator(".cw-url")).to_have_text(
        f"{echo_server.url}/guide.html?q={quote(batch[0])}"
    )
    for list_class in ("cw-traits", "cw-props"):
        shown = await echoed(page, list_class)
        for key, vector in values.items():
            text, title = shown[key]
            assert text == vector, f"{list_class} {key}: {vector!r} came out as {text!r}"
            assert title == attribute_kept(vector), f"{list_class} {key}: title {title!r}"


async def test_template_syntax_in_visitor_input_is_not_evaluated(
    page: Page, echo_server: LiveServer
) -> None:
    await page.goto(echo_server.url + "/guide.html")
    await session_id(page)
    await page.evaluate(
        """cuewire.track("echo", {
            jinja: "{{ 7*7 }}",
            loop: "{% for x in range(999999999) %}{% endfor %}",
            escape: "{{ ''.__class__.__mro__[1].__subclasses__() }}",
            js: "${7*7}",
        })"""
    )
    props = prompt_host(page).locator(".cw-props")
    await expect(props.locator('[data-key="jinja"]')).to_have_text("{{ 7*7 }}")
    await expect(props.locator('[data-key="loop"]')).to_have_text(
        "{% for x in range(999999999) %}{% endfor %}"
    )
    await expect(props.locator('[data-key="escape"]')).to_have_text(
        "{{ ''.__class__.__mro__[1].__subclasses__() }}"
    )
    await expect(props.locator('[data-key="js"]')).to_have_text("${7*7}")
    assert "49" not in await props.inner_text()
