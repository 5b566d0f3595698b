"""QA tools (admin/qatools.py, admin/explain_view.py): find sessions by visitor, user id, URL
or rule; reset a test visitor (every key it has); force a rule to fire (pushed to the tab,
audited ``forced``, past caps but not past an opt-out); the explain endpoints, the admin's
and the QA overlay's (a per-site token). Admin-only, CSRF-safe, refusals with codes; on a
real Redis, the embedded store and a Redis Cluster."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest

from cuewire.admin.qa_tokens import admin_subject, issue_token, token_key
from support.servers import WITH_CLUSTER, LiveServer, site_for
from support.visitor import Visitor
from support.waiting import eventually

BACKENDS = WITH_CLUSTER

PASSWORD = "qa-secret-1"
SECRET = "a-test-secret-of-32-characters!!"
BASIC = {"Authorization": "Basic " + base64.b64encode(f"admin:{PASSWORD}".encode()).decode()}
SHOP = "http://shop.test"
SITE = "test-site"


@pytest.fixture
def qa(settings: Any) -> Iterator[LiveServer]:
    with LiveServer(replace(settings, admin_password=PASSWORD, secret=SECRET), site_for) as s:
        yield s


@pytest.fixture
async def http(qa: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=qa.url, headers=BASIC, timeout=10) as client:
        yield client


async def csrf(http: httpx.AsyncClient) -> dict[str, str]:
    """The header the QA page sends with its POSTs: its admin token."""
    token = (await http.get("/qa/api/token")).json()["token"]
    return {"X-Cuewire-Token": token}


def overlay_token(site: str, now_ms: int, ttl_ms: int) -> str:
    """An overlay token as the server signs it (the test knows the server's secret)."""
    subject = f"qa-overlay\0{site}\0{admin_subject('admin', PASSWORD)}"
    return issue_token(token_key(SECRET), subject, now_ms, ttl_ms)


async def audit_of(qa: LiveServer, session: str) -> list[dict[str, str]]:
    records = await qa.call(qa.services.store.read_audit(SITE, 1000))
    return [r for r in records if r["session"] == session]


async def keys_of(qa: LiveServer) -> set[str]:
    store = qa.services.store

    async def scan() -> set[str]:
        return {str(k) async for k in store.client.scan_iter(match=f"{store.keys.prefix}:*")}

    return await qa.call(scan())


# ---------------------------------------------------------------- access


async def test_every_qa_tool_wants_the_admin(qa: LiveServer, http: httpx.AsyncClient) -> None:
    async with httpx.AsyncClient(base_url=qa.url) as anonymous:
        for method, path in (
            ("GET", "/qa/api/search?site=test-site&by=visitor&q=v_x"),
            ("GET", "/qa/api/explain?site=test-site&session=s_x"),
            ("GET", "/qa/api/overlay-token?site=test-site"),
            ("POST", "/qa/api/reset"),
            ("POST", "/qa/api/force"),
        ):
            reply = await anonymous.request(method, path, json={})
            assert reply.status_code == 401, path


async def test_posts_without_the_page_token_or_from_another_origin_are_refused(
    http: httpx.AsyncClient,
) -> None:
    body = {"site": SITE, "visitor": "v_someone01"}
    for headers in (
        {},  # a form posted from another site: Basic auth alone is not enough
        {"X-Cuewire-Token": "1.forged"},
        {**await csrf(http), "Origin": "https://evil.example"},
    ):
        reply = await http.post("/qa/api/reset", json=body, headers=headers)
        assert reply.status_code == 403
        assert reply.json()["code"] == "csrf"
    ok = await http.post("/qa/api/reset", json=body, headers=await csrf(http))
    assert ok.status_code == 200
    bad = await http.post("/qa/api/reset", json={"site": SITE}, headers=await csrf(http))
    assert (bad.status_code, bad.json()["code"]) == (400, "bad_request")
    other = await http.post(
        "/qa/api/reset", json={"site": "nope", "visitor": "v"}, headers=await csrf(http)
    )
    assert (other.status_code, other.json()["code"]) == (404, "unknown_site")


# ---------------------------------------------------------------- search


async def test_search_by_visitor_user_url_and_rule(qa: LiveServer, http: httpx.AsyncClient) -> None:
    async with (
        Visitor(qa.url, visitor="v_alice0001") as alice,
        Visitor(qa.url, visitor="v_bobby0001", tab="tab2") as bob,
    ):
        await alice.send(alice.event("page_view", f"{SHOP}/product/boots"))
        await alice.send(alice.event("identify", f"{SHOP}/product/boots", user_id="u-alice"))
        await bob.send(bob.event("page_view", f"{SHOP}/cart"))
        await alice.wait_prompt(4)  # hesitate-product fires after 1 s on a product page
        a, b = alice.info["session"], bob.info["session"]  # type: ignore[index]

        async def found(by: str, q: str) -> list[str]:
            reply = await http.get("/qa/api/search", params={"site": SITE, "by": by, "q": q})
            assert reply.status_code == 200, reply.text
            return [s["session"] for s in reply.json()["sessions"]]

        assert await found("visitor", "v_alice0001") == [a]
        assert await found("user", "u-alice") == [a]
        assert await found("url", "/cart") == [b]
        assert sorted(await found("url", "shop.test")) == sorted([a, b])
        assert await found("rule", "hesitate-product") == [a]
        assert await found("session", b) == [b]
        assert await found("visitor", "v_nobody0001") == []
        hit = (
            await http.get(
                "/qa/api/search", params={"site": SITE, "by": "visitor", "q": "v_alice0001"}
            )
        ).json()["sessions"][0]
        assert hit["live"] is True and hit["tab"] is True
        assert "hesitate-product" in hit["rules"]
        refused = await http.get("/qa/api/search", params={"site": SITE, "by": "colour", "q": "x"})
        assert (refused.status_code, refused.json()["code"]) == (400, "bad_request")


# ---------------------------------------------------------------- force


async def test_force_fires_past_when_and_caps_is_pushed_and_audited_forced(
    qa: LiveServer, http: httpx.AsyncClient
) -> None:
    async with Visitor(qa.url, visitor="v_forced001") as v:
        await v.send(v.event("page_view", f"{SHOP}/"))  # not a product page: `when` fails
        session = v.info["session"]  # type: ignore[index]
        force = {"site": SITE, "session": session, "rule": "exit-product"}
        for _ in range(2):  # per_session is 1: the second is past the cap
            reply = await http.post("/qa/api/force", json=force, headers=await csrf(http))
            assert reply.status_code == 200, reply.text
            assert reply.json()["outcome"] == "forced" and reply.json()["code"] == ""
        assert [p["rule"] for p in v.prompts] == ["exit-product", "exit-product"]
        assert v.prompts[1]["replaces"] == v.prompts[0]["id"]  # over the prompt on screen
        outcomes = [(r["rule"], r["outcome"], r["cause"]) for r in await audit_of(qa, session)]
        assert outcomes.count(("exit-product", "forced", "forced")) == 2
        assert ("exit-product", "fired", "forced") not in outcomes

        await v.send(
            v.event("prompt_optout", f"{SHOP}/", prompt=v.prompts[1]["id"], rule="exit-product")
        )
        reply = await http.post("/qa/api/force", json=force, headers=await csrf(http))
        assert reply.json()["outcome"] == "suppressed" and reply.json()["code"] == "opted_out"
        assert len(v.prompts) == 2

        unknown = await http.post(
            "/qa/api/force", json={**force, "rule": "no-such"}, headers=await csrf(http)
        )
        assert (unknown.status_code, unknown.json()["code"]) == (404, "unknown_rule")
        gone = await http.post(
            "/qa/api/force", json={**force, "session": "s_gone"}, headers=await csrf(http)
        )
        assert (gone.status_code, gone.json()["code"]) == (404, "unknown_session")

    # the tab is gone: a prompt has nowhere to go (the disconnect releases its socket)
    async def force_again() -> tuple[int, str]:
        reply = await http.post("/qa/api/force", json=force, headers=await csrf(http))
        return reply.status_code, reply.json()["code"]

    await eventually(force_again, lambda answer: answer == (409, "no_tab"))


# ---------------------------------------------------------------- reset


async def test_reset_forgets_every_key_of_the_visitor(
    qa: LiveServer, http: httpx.AsyncClient
) -> None:
    before = await keys_of(qa)
    async with Visitor(qa.url, visitor="v_reset0001") as v:
        resets: list[Any] = []

        async def on_reset(data: Any) -> None:
            resets.append(data)

        v.sio.on("reset", on_reset)
        await v.send(v.event("page_view", f"{SHOP}/product/boots"))
        await v.send(v.event("identify", f"{SHOP}/product/boots", user_id="u-reset"))
        prompt = await v.wait_prompt(4)
        await v.send(v.event("prompt_optout", f"{SHOP}/", prompt=prompt["id"], rule=prompt["rule"]))
        await v.send(v.event("page_view", f"{SHOP}/product/hat"))  # a pending deadline
        session = v.info["session"]  # type: ignore[index]
        explained = (
            await http.get("/qa/api/explain", params={"site": SITE, "session": session})
        ).json()
        hesitate = next(r for r in explained["rules"] if r["rule"] == "hesitate-product")
        assert hesitate["governance"]["opted_out"] is True
        assert hesitate["trigger"]["due_ms"] is not None
        reply = await http.post(
            "/qa/api/reset", json={"site": SITE, "visitor": "v_reset0001"}, headers=await csrf(http)
        )
        assert reply.status_code == 200 and reply.json()["sessions"] == [session]
        assert reply.json()["deleted"] >= 5
        # the open tab is told to start afresh (tests/test_browser_qa_reset.py: the snippet does)
        assert reply.json()["tabs"] == 1
        await eventually(lambda: resets, lambda got: got == [{"code": "visitor_reset"}])
    store = qa.services.store
    await qa.call(store.deferred())
    left = await keys_of(qa) - before
    # only history (the streams, the audited-firing markers, the site's day counters), the
    # per-address rate key and the server processes' own inboxes (the inbox task opens its
    # stream once it runs, which a loaded machine was seen to do after this test began)
    k = store.keys
    history = {k.live(SITE), k.audit(SITE), k.address_rate("127.0.0.1")}
    day_counters = k.counters(SITE, "")
    inboxes = k.inbox("").removesuffix("}")
    assert {
        key
        for key in left
        if key not in history and ":fa:" not in key and not key.startswith((day_counters, inboxes))
    } == set()
    gone = await http.get("/qa/api/explain", params={"site": SITE, "session": session})
    assert (gone.status_code, gone.json()["code"]) == (404, "unknown_session")
    # the visitor comes back new: not returning, no opt-out
    async with Visitor(qa.url, visitor="v_reset0001", session=session) as again:
        assert again.info["session"] != session  # type: ignore[index]
        facts = await qa.call(store.visitor_facts(SITE, "v_reset0001"))
        assert facts["sessions"] == "1" and "optout:hesitate-product" not in facts


# ---------------------------------------------------------------- explain endpoints


async def test_overlay_explain_wants_a_live_token_of_the_site_and_the_sessions_visitor(
    qa: LiveServer, http: httpx.AsyncClient
) -> None:
    async with Visitor(qa.url, visitor="v_overlay01") as v:
        await v.send(v.event("page_view", f"{SHOP}/product/boots"))
        session = v.info["session"]  # type: ignore[index]
        issued = (await http.get("/qa/api/overlay-token", params={"site": SITE})).json()
        params = {"site": SITE, "session": session, "visitor": "v_overlay01"}
        async with httpx.AsyncClient(base_url=qa.url) as page:  # no admin credentials
            origin = {"Origin": qa.origin}
            ok = await page.get(
                "/qa/overlay/explain", params={**params, "token": issued["token"]}, headers=origin
            )
            assert ok.status_code == 200
            assert ok.headers["access-control-allow-origin"] == qa.origin
            rules = {r["rule"]: r for r in ok.json()["rules"]}
            assert rules["hesitate-product"]["state"] == "pending"
            assert rules["hesitate-product"]["watches_page"] is True

            def refused(reply: httpx.Response) -> tuple[int, str]:
                return reply.status_code, reply.json()["code"]

            expiry, _, mac = issued["token"].partition(".")
            tampered = f"{int(expiry) + 60_000}.{mac}"
            now = int(ok.json()["now"])
            for token, code in (
                (tampered, "invalid_token"),
                ("nonsense", "invalid_token"),
                (overlay_token("other-site", now, 60_000), "invalid_token"),
                (overlay_token(SITE, now - 120_000, 60_000), "token_expired"),
            ):
                reply = await page.get("/qa/overlay/explain", params={**params, "token": token})
                assert refused(reply) == (403, code), token
            good = {**params, "token": issued["token"]}
            wrong_visitor = await page.get(
                "/qa/overlay/explain", params={**good, "visitor": "v_other"}
            )
            assert refused(wrong_visitor) == (404, "unknown_session")
            # the overlay token opens no admin route
            admin = await page.get(
                "/qa/api/explain",
                params={"site": SITE, "session": session, "token": issued["token"]},
            )
            assert admin.status_code == 401
            other_origin = await page.get(
                "/qa/overlay/explain", params=good, headers={"Origin": "https://evil.example"}
            )
            assert "access-control-allow-origin" not in other_origin.headers
        one = await http.get(
            "/qa/api/explain", params={"site": SITE, "session": session, "rule": "exit-product"}
        )
        assert [r["rule"] for r in one.json()["rules"]] == ["exit-product"]
        nope = await http.get(
            "/qa/api/explain", params={"site": SITE, "session": session, "rule": "nope"}
        )
        assert (nope.status_code, nope.json()["code"]) == (404, "unknown_rule")
