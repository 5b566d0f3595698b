"""Teardown of the signal collectors, in Chromium with the real snippet and real input:
`consent(false)` removes every listener the collectors added (the page's listeners are those
of a page where consent was never given) and `consent(true)` adds them back once, not twice;
`cuewire.stop()` removes the snippet's listeners altogether; a timer a collector had pending
(hesitation while the pointer rests, a dead click or rage burst being watched, a focused
field) never fires after `consent(false)`, even when consent comes back at once; and after
`consent(false)` or `stop()`, real pointer, keyboard and touch input sends nothing."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest
from playwright.async_api import BrowserContext, Page

from support.browser import (
    BROWSER_TEST,
    NewContext,
    Serve,
    center,
    of,
    recent_events,
    session_id,
    stored,
)
from support.harness import write
from support.servers import LiveServer
from support.waiting import eventually

pytest_plugins = ["support.browser"]
pytestmark = BROWSER_TEST

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Teardown</title>
<script src="/cw.js" data-site="test-site" data-hesitation="1500,2500"
  data-form-hesitation="1500" data-consent="CONSENT" async></script>
<style>
  body { font: 16px/1.5 sans-serif; margin: 0; } main { height: 4000px; }
  #price { position: absolute; left: 40px; top: 40px; width: 240px; height: 80px; }
  #nothing { position: absolute; left: 40px; top: 200px; width: 160px; height: 40px; }
  form { position: absolute; left: 40px; top: 300px; }
</style></head>
<body><main>
<div id="price" data-cw-track="price">49 EUR</div>
<button id="nothing" type="button">Does nothing</button>
<form id="checkout"><input id="email" name="email" autocomplete="off"></form>
</main></body></html>
"""

# What the collectors listen to on window and document (the snippet's own transport listens
# to pagehide, pageshow and visibilitychange whatever the consent).
LIBRARY = Counter({"offline": 1, "pagehide": 1})
COLLECTOR_TYPES = {"pointerover", "pointerdown", "click", "keydown", "copy", "focusin", "input"}


@pytest.fixture
def site(serve: Serve, tmp_path: Path) -> LiveServer:
    pages = tmp_path / "pages"
    write(pages / "open.html", PAGE.replace("CONSENT", "optional"))
    write(pages / "optin.html", PAGE.replace("CONSENT", "required"))
    write(
        pages / "bare.html",
        PAGE.replace("<script ", "<template ").replace("</script>", "</template>"),
    )
    return serve(pages=pages)


async def listeners(context: BrowserContext, page: Page) -> Counter[str]:
    """The event listeners on window and document, by type, as DevTools lists them."""
    cdp = await context.new_cdp_session(page)
    found: Counter[str] = Counter()
    for target in ("window", "document"):
        handle = await cdp.send("Runtime.evaluate", {"expression": target})
        listed = await cdp.send(
            "DOMDebugger.getEventListeners", {"objectId": handle["result"]["objectId"]}
        )
        found.update(item["type"] for item in listed["listeners"])
    await cdp.detach()
    return found


async def opened(
    new_context: NewContext, path: str, **options: object
) -> tuple[BrowserContext, Page]:
    context = await new_context(**options)
    page = await context.new_page()
    await page.goto(path)
    await page.wait_for_function("window.cuewire && typeof window.cuewire.version === 'string'")
    return context, page


async def test_consent_false_removes_every_collector_listener_and_true_adds_them_once(
    new_context: NewContext, site: LiveServer
) -> None:
    context = await new_context()
    bare = await context.new_page()
    await bare.goto(site.url + "/bare.html")
    await bare.wait_for_function("document.readyState === 'complete'")  # as opened() waits
    without_snippet = await listeners(context, bare)  # the page's own (and Playwright's)
    _, page = await opened(new_context, site.url + "/optin.html")
    context = page.context
    never_granted = await listeners(context, page)
    # no consent: no collector listens, only the snippet's transport (storage: another tab's
    # reset of the session, identity.ts)
    assert set(never_granted - without_snippet) == {
        "pagehide",
        "pageshow",
        "visibilitychange",
        "offline",
        "storage",
    }

    await page.evaluate("cuewire.consent(true)")
    granted = await listeners(context, page)
    assert set(granted - never_granted) >= COLLECTOR_TYPES
    await page.evaluate("cuewire.consent(false)")
    assert await listeners(context, page) == never_granted
    await page.evaluate("cuewire.consent(true)")
    assert await listeners(context, page) == granted  # started again, not twice

    await page.evaluate("cuewire.stop()")
    # nothing of the snippet is left but the two listeners socket.io's engine adds once when
    # the bundle loads (module level: they act on open connections only, and none is left)
    assert await listeners(context, page) - without_snippet == LIBRARY
    await page.evaluate("cuewire.consent(true)")  # after stop, calls do nothing
    assert await listeners(context, page) - without_snippet == LIBRARY


async def rest_after_clicks(page: Page) -> None:
    """Real input that leaves timers pending in three collectors: three fast clicks on a button
    that does nothing (a rage burst and a dead click watched), then the pointer comes to rest
    on the price (hesitation)."""
    x, y = await center(page, "#nothing")
    for _ in range(3):
        await page.mouse.click(x, y)
    await page.mouse.move(*await center(page, "#price"), steps=3)


async def focus_and_wait(page: Page) -> None:
    """A click into a field that is then left empty (form hesitation pending)."""
    await page.mouse.click(*await center(page, "#email"))


async def test_timers_pending_at_consent_false_never_fire_even_when_consent_comes_back(
    new_context: NewContext, site: LiveServer
) -> None:
    (_, control), (_, page) = [await opened(new_context, site.url + "/open.html") for _ in "ab"]
    control_sid, sid = await session_id(control), await session_id(page)
    phases = {
        rest_after_clicks: ("rage_click", "dead_click", "hesitation"),
        focus_and_wait: ("form_hesitation",),
    }
    for leave_pending, kinds in phases.items():
        await leave_pending(control)  # the same input, consent kept: each timer fires
        for kind in kinds:
            await stored(site, control_sid, kind)

        await leave_pending(page)
        await page.evaluate("cuewire.consent(false); cuewire.consent(true)")
        await asyncio.sleep(3)  # every threshold has passed; the pointer still rests
    await page.evaluate("cuewire.track('checked')")
    events = await eventually(
        lambda: recent_events(site, sid),
        lambda found: any(e["type"] == "custom" for e in found),
        what="the custom event sent after the pauses",
    )
    pending = {kind for kinds in phases.values() for kind in kinds}
    assert not {e["type"] for e in events} & pending, events
    assert len(of(events, "page_view")) == 3  # the collectors started again, each time


async def touch(context: BrowserContext, page: Page) -> None:
    """A finger drags up the page (it scrolls down) and taps the button."""
    cdp = await context.new_cdp_session(page)
    for kind, y in (("touchStart", 600), ("touchMove", 400), ("touchMove", 200), ("touchEnd", 0)):
        points = [] if kind == "touchEnd" else [{"x": 200, "y": y}]
        await cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": points})
    await cdp.detach()
    await page.touchscreen.tap(*await center(page, "#nothing"))


async def landed(site: LiveServer, sid: str) -> list[dict[str, object]]:
    """The session's stored events once the batches in flight have landed: the page view is
    there and two reads half a second apart agree."""
    seen: list[list[dict[str, object]]] = []

    async def read() -> list[dict[str, object]]:
        seen.append(await recent_events(site, sid))
        return seen[-1]

    return await eventually(
        read,
        lambda now: len(seen) > 1 and now == seen[-2] and bool(of(now, "page_view")),
        interval=0.5,
        what="the events sent before the call, stored",
    )


@pytest.mark.parametrize("call", ["cuewire.consent(false)", "cuewire.stop()"])
async def test_after_consent_false_or_stop_real_input_sends_nothing(
    new_context: NewContext, site: LiveServer, call: str
) -> None:
    context, page = await opened(new_context, site.url + "/open.html", has_touch=True)
    sid = await session_id(page)
    frames: list[object] = []
    page.on("websocket", lambda ws: ws.on("framesent", frames.append))
    await page.evaluate(call)
    sent = len(frames)
    before = await landed(site, sid)  # what was sent before the call, stored

    await rest_after_clicks(page)  # pointer
    await focus_and_wait(page)
    await page.keyboard.type("someone@example.com")  # keyboard, into the focused field
    await page.keyboard.press("Tab")
    await touch(context, page)  # touch
    await page.mouse.wheel(0, 1500)
    await page.mouse.move(300, -10, steps=3)  # out through the top: exit intent on a desktop
    await asyncio.sleep(3)

    assert len(frames) == sent
    assert await recent_events(site, sid) == before
