"""Shared pieces of the browser tests: one Chromium for the whole test session, a fresh
context per test, live servers that serve test pages next to the snippet, and waits.

A browser test module starts with::

    pytest_plugins = ["support.browser"]
    pytestmark = BROWSER_TEST

``BROWSER_TEST`` runs the test on the session's event loop (where the browser lives) and on
the Redis store only: the protocol tests already cover both backends, and one browser pass
keeps the suite short.

PYTEST_DONT_REWRITE: test modules import helpers from here before ``pytest_plugins`` registers
it, so pytest could not rewrite its asserts anyway (it has none; it raises AssertionError).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import pytest
import pytest_asyncio
from playwright.async_api import (
    Browser,
    BrowserContext,
    Locator,
    Page,
    async_playwright,
    expect,
)

from cuewire.settings import Settings
from cuewire.sites import Sites

from .paths import FIXTURES, ROOT
from .servers import LiveServer, site_for
from .waiting import WAIT_S, eventually

T = TypeVar("T")

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PAGES = FIXTURES / "pages"
expect.set_options(timeout=WAIT_S * 1000)
PROMPT = "[data-cuewire-prompt]"

BROWSER_TEST = [
    pytest.mark.asyncio(loop_scope="session"),
    pytest.mark.parametrize("backend_url", ["redis"], indirect=True),
]

Serve = Callable[..., LiveServer]
NewContext = Callable[..., Awaitable[BrowserContext]]


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browser() -> AsyncIterator[Browser]:
    """The system Chromium, launched once (Playwright never downloads a browser here)."""
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        await chromium.close()


@pytest_asyncio.fixture(loop_scope="session")
async def new_context(browser: Browser) -> AsyncIterator[NewContext]:
    """Opens fresh browser contexts (own storage, own visitor id); closes them after the test."""
    opened: list[BrowserContext] = []

    async def open_context(**options: Any) -> BrowserContext:
        context = await browser.new_context(**options)
        context.set_default_timeout(WAIT_S * 1000)
        opened.append(context)
        return context

    yield open_context
    for context in opened:
        await context.close()


@pytest_asyncio.fixture(loop_scope="session")
async def page(new_context: NewContext) -> Page:
    """A page in a fresh context: a first-time visitor."""
    context = await new_context()
    return await context.new_page()


@pytest.fixture
def serve(settings: Settings) -> Iterator[Serve]:
    """Starts live servers that serve ``pages`` at "/" next to /cw.js; stops them afterwards.

    ``serve(pages=..., sites=..., **settings_changes)``; the default serves
    tests/fixtures/pages with the site key ``test-site`` allowed on the server's own origin.
    """
    started: list[LiveServer] = []

    def start(
        *, pages: Path = PAGES, sites: Callable[[str], Sites] = site_for, **changes: Any
    ) -> LiveServer:
        server = LiveServer(replace(settings, demo_site_dir=pages, **changes), sites)
        started.append(server.__enter__())
        return server

    yield start
    for server in reversed(started):
        server.__exit__(None, None, None)


@pytest.fixture
def server(serve: Serve) -> LiveServer:
    """tests/fixtures/pages with the fixture rules and templates."""
    return serve()


def prompt_host(page: Page, kind: str | None = None) -> Locator:
    """The host element of a mounted prompt (its open shadow root holds the prompt)."""
    return page.locator(PROMPT if kind is None else f'{PROMPT}[data-cw-kind="{kind}"]')


async def session_id(page: Page) -> str:
    """The session id the server handed to the snippet (kept in localStorage ``cw_sid``)."""
    handle = await page.wait_for_function(
        """() => {
            try { return JSON.parse(localStorage.getItem("cw_sid")).id; } catch { return null; }
        }"""
    )
    value: str = await handle.json_value()
    return value


async def facts(server: LiveServer, session: str, site: str = "test-site") -> dict[str, str]:
    """The session facts hash as the server stored it."""
    return dict(await server.call(server.services.store.session_facts(site, session)))


async def facts_when(
    server: LiveServer,
    session: str,
    until: Callable[[dict[str, str]], bool],
    *,
    site: str = "test-site",
    timeout: float = WAIT_S,
) -> dict[str, str]:
    """Waits until the stored session facts satisfy ``until`` and returns them."""
    return await eventually(
        lambda: facts(server, session, site), until, timeout=timeout, what="the session facts"
    )


async def recent_events(
    server: LiveServer, session: str, site: str = "test-site"
) -> list[dict[str, Any]]:
    """The session's recent events as stored, oldest first."""
    newest_first = await server.call(server.services.store.recent_events(site, session, 100))
    return list(reversed(newest_first))


def count(stored: dict[str, str], key: str) -> int:
    """A counter of the session facts (``n:<event type>``, ``c:<custom name>``), 0 if absent."""
    return int(stored.get(key, "0"))


def of(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    """The events of one type."""
    return [e for e in events if e["type"] == kind]


async def stored(server: LiveServer, sid: str, kind: str, n: int = 1) -> list[dict[str, Any]]:
    """The stored events of a type in a session, once there are at least ``n`` of them."""
    found = await eventually(
        lambda: recent_events(server, sid),
        lambda events: len(of(events, kind)) >= n,
        what=f"{n} {kind} event(s) stored",
    )
    return of(found, kind)


async def visit(page: Page, server: LiveServer, path: str) -> str:
    """Open ``path`` of ``server`` in ``page``: the session id the snippet got."""
    await page.goto(server.url + path)
    return await session_id(page)


async def center(page: Page, selector: str) -> tuple[float, float]:
    """Where the pointer goes to rest on the element ``selector``."""
    box = await page.locator(selector).bounding_box()
    assert box is not None
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def overlaps(a: dict[str, float], b: dict[str, float]) -> bool:
    """Whether two bounding boxes (Playwright's x, y, width, height) share any area."""
    return (
        a["x"] < b["x"] + b["width"]
        and b["x"] < a["x"] + a["width"]
        and a["y"] < b["y"] + b["height"]
        and b["y"] < a["y"] + a["height"]
    )


DOCS_IMG = ROOT / "docs" / "img"


def shot(name: str, tmp_path: Path) -> Path:
    """Where a screenshot goes: docs/img/ with CUEWIRE_SCREENSHOTS=1 (to refresh the docs'),
    else the test's own folder."""
    wanted = os.environ.get("CUEWIRE_SCREENSHOTS") == "1"
    path = (DOCS_IMG if wanted else tmp_path) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    return path
