"""Attentive time in the facts, in Chromium with the real snippet and real input: a visitor who
reads (a slow, steady scroll and nothing else) or moves the pointer over the page builds up
`page.active_seconds`, and a `dwell {active: true}` rule answers them; the same page left open
and visible with no input counts no attentive time at all, though its `page.seconds` runs on,
and the rule leaves it alone."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from cuewire.rules.facts_view import FactView
from support.browser import (
    BROWSER_TEST,
    NewContext,
    Serve,
    facts,
    of,
    prompt_host,
    recent_events,
    visit,
)
from support.harness import write
from support.paths import ROOT
from support.servers import LiveServer

pytest_plugins = ["support.browser"]
pytestmark = BROWSER_TEST

RULES = """rules:
  - id: enjoying-the-read
    trigger: {dwell: {for: 6s, active: true}}
    show: {template: toast, params: {message: "Enjoying the read?"}}
policy: {max_prompts_per_session: 0, dismissals: null}
"""

READ_S = 8  # past the 6 s the rule asks for, with a 5 s beat by then


@pytest.fixture
def site(serve: Serve, tmp_path: Path) -> LiveServer:
    rules = write(tmp_path / "rules" / "read.yaml", RULES).parent
    return serve(rules_dir=rules, templates_dir=ROOT / "templates")  # guide.html: an article


async def reads(page: Page) -> None:
    """A slow, steady scroll down the article: a little every second, no click, no key."""
    await page.mouse.move(300, 300)
    for _ in range(READ_S):
        await page.mouse.wheel(0, 40)
        await asyncio.sleep(1)


async def points(page: Page) -> None:
    """The pointer drifts over the text every second; the page does not scroll."""
    for i in range(READ_S):
        await page.mouse.move(200 + 15 * (i % 5), 200 + 10 * i, steps=4)
        await asyncio.sleep(1)


async def page_facts(site: LiveServer, sid: str) -> FactView:
    """The server's view of the session's facts now, as a rule reads them."""
    return FactView(await facts(site, sid), {}, int(time.time() * 1000))


async def test_reading_and_pointing_count_as_attentive_time_an_idle_open_tab_does_not(
    new_context: NewContext, site: LiveServer
) -> None:
    reader, pointer, idle = [await (await new_context()).new_page() for _ in range(3)]
    sids = [await visit(p, site, "/guide.html") for p in (reader, pointer, idle)]
    await asyncio.gather(reads(reader), points(pointer), asyncio.sleep(READ_S))

    for page in (reader, pointer):  # 6 s of attention: the dwell rule answered
        await expect(prompt_host(page)).to_contain_text("Enjoying the read?")
    await expect(prompt_host(idle)).to_have_count(0)

    reader_view, pointer_view, idle_view = [await page_facts(site, sid) for sid in sids]
    for view in (reader_view, pointer_view):
        assert 6 <= view.get("page.active_seconds") <= READ_S + 10
    assert idle_view.get("page.seconds") >= READ_S  # open and visible all along ...
    assert idle_view.get("page.active_seconds") == 0  # ... but nobody was there
    assert of(await recent_events(site, sids[2]), "attention") == []
    beats = of(await recent_events(site, sids[0]), "attention")
    assert beats and all(b.get("reading") is True for b in beats)  # reading, not idle
