"""The studio's previews pack without holes: cards of different heights (a toast's stage is
220px, a chat's 580px) flow down columns instead of rows as tall as their tallest card."""

from __future__ import annotations

import pytest

from support.browser import BROWSER_TEST, NewContext, Serve
from support.paths import ROOT

pytest_plugins = ["support.browser"]
pytestmark = BROWSER_TEST

AUTH = {"username": "admin", "password": "studio-test"}

# For each card, the empty space between it and the next card below it in its column.
HOLES = """() => {
  const cards = [...document.querySelectorAll('#templates .card')]
    .map(c => c.getBoundingClientRect())
    .filter(r => r.width > 0);
  const holes = [];
  for (const r of cards) {
    const below = cards.filter(o => Math.abs(o.left - r.left) < 2 && o.top >= r.bottom);
    if (below.length) holes.push(Math.min(...below.map(o => o.top)) - r.bottom);
  }
  return {cards: cards.length, columns: new Set(cards.map(r => Math.round(r.left))).size, holes};
}"""


@pytest.mark.parametrize("size", [(1280, 800), (1920, 1080)], ids=["1280x800", "1920x1080"])
async def test_studio_previews_leave_no_large_gaps(
    serve: Serve, new_context: NewContext, size: tuple[int, int]
) -> None:
    server = serve(
        rules_dir=ROOT / "rules" / "demo",
        templates_dir=ROOT / "templates",
        admin_password=AUTH["password"],
    )
    width, height = size
    context = await new_context(http_credentials=AUTH, viewport={"width": width, "height": height})
    page = await context.new_page()
    await page.goto(server.url + "/studio/")
    await page.locator("#templates .card .stage").first.wait_for()
    layout = await page.evaluate(HOLES)
    assert layout["cards"] > 10
    assert layout["columns"] == (3 if width >= 1600 else 2)
    assert max(layout["holes"]) <= 21, layout  # the 20px gap between cards, nothing more
