"""The snippet's ``cuewire.identify(userId, traits, {signature})`` in Chromium: the signature
the site's backend computed travels with the identify, the server verifies it, and an unsigned
identify on a site that requires signatures changes nothing (identity.py)."""

from __future__ import annotations

from playwright.async_api import Page

from cuewire.identity import sign
from cuewire.sites import Site, Sites
from support.browser import BROWSER_TEST, Serve
from support.servers import LiveServer
from support.waiting import eventually

pytest_plugins = ["support.browser"]
pytestmark = BROWSER_TEST

SECRET = "identity-secret-of-the-test-site"


def signed_site(origin: str) -> Sites:
    return Sites({"test-site": Site(origins=[origin], identity_secret=SECRET)})


async def visitor_facts(server: LiveServer, visitor: str) -> dict[str, str]:
    return dict(await server.call(server.services.store.visitor_facts("test-site", visitor)))


async def test_the_snippet_sends_the_signature_and_the_server_verifies_it(
    page: Page, serve: Serve
) -> None:
    server = serve(sites=signed_site)
    await page.goto(server.url + "/guide.html")
    await page.wait_for_function("() => window.cuewire && window.cuewire.version")
    visitor = await page.evaluate("() => localStorage.getItem('cw_vid')")
    await page.evaluate(
        "([id, sig]) => { cuewire.identify('user-99'); cuewire.identify(id, {plan: 'pro'}, "
        "{signature: sig}); }",
        ["user-42", sign(SECRET, "user-42")],
    )
    facts = await eventually(
        lambda: visitor_facts(server, visitor), lambda f: "user_id" in f, what="the identify"
    )
    assert (facts["user_id"], facts["user_verified"], facts["trait:plan"]) == (
        "user-42",
        "1",
        '"pro"',
    )
    linked = await server.call(server.services.store.visitor_of_user("test-site", "user-42"))
    assert linked == visitor
    assert await server.call(server.services.store.visitor_of_user("test-site", "user-99")) is None
