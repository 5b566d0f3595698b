"""The Segment-compatible HTTP Tracking API (cuewire.segment_api): Segment's own documented
payloads feed Cuewire's rules as Cuewire events would.

The payloads below are the examples of Segment's HTTP Tracking API documentation
(segmentio/segment-docs, src/connections/sources/catalog/libraries/server/http-api/index.md)
verbatim, but for the write key: their ``YOUR_WRITE_KEY`` is shorter than a site's
``write_key`` may be, so the tests send the site's. Both store backends, a live server, real
sockets and HTTP.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import textwrap
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from cuewire import fields
from cuewire.errors import ConfigError
from cuewire.explain import explain
from cuewire.settings import Settings
from cuewire.sites import Site, Sites, sites_problems
from support.harness import write
from support.servers import LiveServer, RedisServer
from support.visitor import Visitor

WRITE_KEY = "segment-write-key-of-the-test-site"
# the purchase by the names Segment's documentation and e-commerce spec give it
CART = """
rules:
  - id: cart-reminder
    trigger:
      absence:
        after: {type: custom, name: add_to_cart}
        missing:
          type: custom
          where: {fact: name, in: [Item Purchased, Order Completed]}
        within: 10m
    show: {template: note}
"""

# Segment's examples, verbatim ("writeKey" is replaced by the site's in `keyed`)
IDENTIFY = {
    "userId": "019mr8mf4r",
    "traits": {"email": "pgibbons@example.com", "name": "Peter Gibbons", "industry": "Technology"},
    "context": {"ip": "24.5.68.47"},
    "timestamp": "2012-12-02T00:30:08.276Z",
    "writeKey": "YOUR_WRITE_KEY",
}
TRACK = {
    "userId": "019mr8mf4r",
    "event": "Item Purchased",
    "properties": {"name": "Leap to Conclusions Mat", "revenue": 14.99},
    "context": {"ip": "24.5.68.47"},
    "timestamp": "2012-12-02T00:30:12.984Z",
    "writeKey": "YOUR_WRITE_KEY",
}
PAGE = {
    "userId": "019mr8mf4r",
    "name": "Tracking HTTP API",
    "timestamp": "2012-12-02T00:31:29.738Z",
    "writeKey": "YOUR_WRITE_KEY",
}
SCREEN = {
    "userId": "019mr8mf4r",
    "name": "Tracking HTTP API",
    "timestamp": "2012-12-02T00:31:29.738Z",
    "writeKey": "YOUR_WRITE_KEY",
}
BATCH = {
    "batch": [
        {
            "type": "identify",
            "userId": "019mr8mf4r",
            "traits": {"email": "jake@yahoo.com", "name": "Jake Peterson", "age": 26},
            "timestamp": "2012-12-02T00:30:08.276Z",
        },
        {
            "type": "track",
            "userId": "019mr8mf4r",
            "event": "Song Played",
            "properties": {"name": "Fallin for You", "artist": "Dierks Bentley"},
            "timestamp": "2012-12-02T00:30:12.984Z",
        },
        {
            "type": "identify",
            "userId": "971mj8mk7p",
            "traits": {"email": "cindy@example.com", "name": "Cindy Gonzalez", "age": 23},
            "timestamp": "2015-2-02T00:30:08.276Z",
        },
        {
            "type": "track",
            "userId": "971mj8mk7p",
            "event": "Song Played",
            "properties": {"name": "Get Right", "artist": "Jennifer Lopez"},
            "timestamp": "2015-2-02T00:30:12.984Z",
        },
    ],
    "writeKey": "YOUR_WRITE_KEY",
    "context": {"device": {"type": "phone", "name": "Apple iPhone 6"}},
}
JAKE, CINDY = "v_jake00001", "v_cindy0001"  # Cuewire visitor ids of the batch's two users


def keyed(payload: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A deep copy of a documented payload with the site's write key (and ``changes``)."""
    return {**copy.deepcopy(payload), "writeKey": WRITE_KEY, **changes}


@pytest.fixture
def server(settings: Settings, tmp_path: Path) -> Iterator[LiveServer]:
    """A live server whose ``test-site`` has a write key and the cart rule above."""
    write(tmp_path / "rules" / "cart.yaml", textwrap.dedent(CART))

    def sites(origin: str) -> Sites:
        return Sites({"test-site": Site(origins=[origin], write_key=WRITE_KEY)})

    with LiveServer(replace(settings, rules_dir=tmp_path / "rules"), sites) as live:
        yield live


async def post(
    server: LiveServer, call: str, body: Any, headers: dict[str, str] | None = None
) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.post(f"{server.url}/v1/{call}", json=body, headers=headers)


async def link(server: LiveServer, user_id: str, visitor: str) -> None:
    """Segment's identify of ``user_id`` from the browser's visitor (its anonymousId)."""
    response = await post(server, "identify", keyed(IDENTIFY, userId=user_id, anonymousId=visitor))
    assert response.json() == {"success": True}


async def visitor_facts(server: LiveServer, visitor: str) -> dict[str, str]:
    return dict(await server.call(server.services.store.visitor_facts("test-site", visitor)))


async def session_facts(server: LiveServer, visitor: str) -> dict[str, str]:
    session = (await visitor_facts(server, visitor))["session"]
    store = server.services.store
    return dict(await server.call(store.session_facts("test-site", session, visitor)))


async def rule_state(server: LiveServer, session: str) -> str:
    services = server.services
    engine = services.runtime.engine()
    now = services.clock.now_ms()
    states = await server.call(explain(services.store, engine, "test-site", session, now))
    return {s.rule: s.state for s in states}["cart-reminder"]


async def test_the_documented_track_cancels_a_cart_abandonment_deadline(
    server: LiveServer,
) -> None:
    async with Visitor(server.url, visitor="v_shopper01") as shopper:
        await shopper.send(shopper.event("custom", name="add_to_cart"))
        assert shopper.info is not None
        session = shopper.info["session"]
        assert await rule_state(server, session) == "pending"
        await link(server, "019mr8mf4r", "v_shopper01")

        response = await post(server, "track", keyed(TRACK))

        assert response.status_code == 200
        assert response.json() == {"success": True}
        assert await rule_state(server, session) != "pending"  # the purchase cancelled it
        facts = await session_facts(server, "v_shopper01")
        assert facts[fields.custom("Item Purchased")] == "1"
        assert facts[fields.props("Item Purchased")] == (
            '{"name":"Leap to Conclusions Mat","revenue":14.99}'
        )


async def test_identify_with_an_anonymous_id_links_the_user_to_that_visitor(
    server: LiveServer,
) -> None:
    await link(server, "019mr8mf4r", "v_browser01")

    facts = await visitor_facts(server, "v_browser01")
    assert (facts["user_id"], facts["user_verified"]) == ("019mr8mf4r", "1")
    assert facts[fields.trait("email")] == '"pgibbons@example.com"'
    store = server.services.store
    assert await server.call(store.visitor_of_user("test-site", "019mr8mf4r")) == "v_browser01"

    # the documented identify, by userId alone, now reaches the linked visitor; nested
    # traits are flattened to dotted names, lists left out
    traits = {"industry": "Staplers", "address": {"city": "Austin"}, "tags": ["a", "b"]}
    changed = keyed(IDENTIFY, traits=traits)
    assert (await post(server, "identify", changed)).json() == {"success": True}
    facts = await visitor_facts(server, "v_browser01")
    assert facts[fields.trait("industry")] == '"Staplers"'
    assert facts[fields.trait("address.city")] == '"Austin"'
    assert fields.trait("tags") not in facts


async def test_the_documented_page_sets_the_page_facts_from_its_context(
    server: LiveServer,
) -> None:
    await link(server, "019mr8mf4r", "v_reader001")
    context = {
        "page": {"url": "https://shop.example/pricing?plan=pro", "title": "Pricing"},
        "userAgent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile/15E148",
    }

    response = await post(server, "page", keyed(PAGE, context=context))

    assert response.json() == {"success": True}
    facts = await session_facts(server, "v_reader001")
    assert (facts["url"], facts["path"]) == ("https://shop.example/pricing?plan=pro", "/pricing")
    assert facts[fields.count("page_view")] == "1"
    assert facts["device"] == "mobile"


async def test_the_documented_batch_reaches_each_users_visitor(server: LiveServer) -> None:
    await link(server, "019mr8mf4r", JAKE)
    await link(server, "971mj8mk7p", CINDY)

    response = await post(server, "batch", keyed(BATCH))

    assert response.status_code == 200
    assert response.json() == {"success": True}
    for visitor, email in ((JAKE, '"jake@yahoo.com"'), (CINDY, '"cindy@example.com"')):
        assert (await visitor_facts(server, visitor))[fields.trait("email")] == email
        assert (await session_facts(server, visitor))[fields.custom("Song Played")] == "1"


async def test_a_batch_sent_twice_is_applied_once(server: LiveServer) -> None:
    await link(server, "019mr8mf4r", JAKE)
    await link(server, "971mj8mk7p", CINDY)
    batch = keyed(BATCH)
    for n, message in enumerate(batch["batch"]):
        message["messageId"] = f"msg-{n}"
    batch["batch"].append(batch["batch"][1])  # and once more in the same request

    first = await post(server, "batch", batch)
    again = await post(server, "batch", batch)  # a retry after a timeout

    assert [(s["index"], s["code"]) for s in first.json()["skipped"]] == [(4, "duplicate")]
    assert again.status_code == 200
    assert [(s["index"], s["code"]) for s in again.json()["skipped"]] == [
        (i, "duplicate") for i in range(5)
    ]
    # lost memory of the messageIds (a crash after the store call, before the mark): the
    # seqs made from them still stop the resend in the store call itself
    store = server.services.store
    await server.call(store.client.delete(store.keys.segment_seen("test-site")))
    assert (await post(server, "batch", batch)).json()["skipped"] == first.json()["skipped"]
    for visitor in (JAKE, CINDY):
        assert (await session_facts(server, visitor))[fields.custom("Song Played")] == "1"
        assert (await visitor_facts(server, visitor))[fields.custom("Song Played")] == "1"


async def test_an_invalid_message_is_rejected_by_index_and_the_rest_is_kept(
    server: LiveServer,
) -> None:
    await link(server, "019mr8mf4r", JAKE)
    track = copy.deepcopy(BATCH["batch"][1])
    messages = [
        track,
        {**track, "event": None},
        {**track, "timestamp": "yesterday"},
        {**track, "properties": {"notes": "x" * 33_000}},
        {**track, "userId": "nobody-links-this-user"},
        {**track, "type": "screen"},
        {**track, "properties": {f"p{n}": n for n in range(51)}},
    ]

    response = await post(server, "batch", keyed(BATCH, batch=messages))

    assert response.status_code == 200
    body = response.json()
    assert body["success"] is True
    assert [(r["index"], r["code"]) for r in body["rejected"]] == [
        (1, "invalid_event"),
        (2, "invalid_event"),
        (3, "event_too_large"),
        (4, "unknown_visitor"),
        (6, "invalid_event"),
    ]
    assert body["rejected"][1]["reason"].startswith("timestamp: expected an ISO-8601 time")
    assert body["rejected"][4]["reason"].startswith("track.properties: ")  # 50 at most
    assert [(s["index"], s["code"]) for s in body["skipped"]] == [(5, "not_mapped")]
    assert (await session_facts(server, JAKE))[fields.custom("Song Played")] == "1"


async def test_a_single_invalid_call_answers_400_with_its_code(server: LiveServer) -> None:
    response = await post(server, "track", keyed(TRACK, userId="nobody-links-this-user"))

    assert response.status_code == 400
    assert response.json()["code"] == "unknown_visitor"
    assert (await post(server, "screen", keyed(SCREEN))).json()["skipped"][0]["code"] == (
        "not_mapped"
    )


async def test_the_write_key_authenticates_as_http_basic_or_in_the_body(
    server: LiveServer,
) -> None:
    await link(server, "019mr8mf4r", JAKE)
    unkeyed = {k: v for k, v in TRACK.items() if k != "writeKey"}

    def basic(key: str) -> dict[str, str]:
        return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}

    for body, headers in (
        (TRACK, None),  # the documentation's placeholder key
        (keyed(TRACK, writeKey="a-wrong-key-of-some-length"), None),
        (unkeyed, None),
        (unkeyed, basic("a-wrong-key-of-some-length")),
    ):
        refused = await post(server, "track", body, headers)
        assert refused.status_code == 401
        assert refused.json()["code"] == "unauthorized"
    assert fields.custom("Item Purchased") not in await session_facts(server, JAKE)

    accepted = await post(server, "track", unkeyed, basic(WRITE_KEY))
    assert accepted.json() == {"success": True}
    assert (await session_facts(server, JAKE))[fields.custom("Item Purchased")] == "1"


async def test_payloads_past_segments_size_limits_are_refused_with_a_code(
    server: LiveServer,
) -> None:
    big = {"notes": "x" * 33_000}
    call = await post(server, "track", keyed(TRACK, properties=big))
    assert call.status_code == 400
    assert call.json()["code"] == "event_too_large"

    track = {**BATCH["batch"][1], "properties": {"notes": "x" * 30_000}}
    batch = await post(server, "batch", keyed(BATCH, batch=[track] * 20))  # 600 KB
    assert batch.status_code == 400
    assert batch.json()["code"] == "batch_too_large"


async def test_the_same_batch_sent_five_times_at_once_is_applied_once(server: LiveServer) -> None:
    """Resends racing their original: all find no messageId marked yet; the seqs made from
    the messageIds let one store call apply each message."""
    await link(server, "019mr8mf4r", JAKE)
    song = BATCH["batch"][1]
    batch = keyed(BATCH, batch=[{**song, "messageId": f"race-{n}"} for n in range(10)])

    answers = await asyncio.gather(*(post(server, "batch", batch) for _ in range(5)))

    assert {a.status_code for a in answers} == {200}
    assert (await visitor_facts(server, JAKE))[fields.custom("Song Played")] == "10"


@pytest.mark.parametrize("backend_url", ["redis"])
async def test_a_sender_retrying_through_a_redis_crash_gets_each_message_applied_once(
    settings: Settings, own_redis: RedisServer, tmp_path: Path
) -> None:
    """A Segment library's contract: resend a batch until it is answered 2xx (and, here,
    once more after, as when the answer was lost to a timeout). Redis is killed mid-way and
    started again; every message is counted exactly once."""
    write(tmp_path / "rules" / "cart.yaml", textwrap.dedent(CART))
    configured = replace(settings, redis_url=own_redis.url, rules_dir=tmp_path / "rules")

    def sites(origin: str) -> Sites:
        return Sites({"test-site": Site(origins=[origin], write_key=WRITE_KEY)})

    song = BATCH["batch"][1]
    batches = [
        keyed(BATCH, batch=[{**song, "messageId": f"m-{b}-{n}"} for n in range(4)])
        for b in range(12)
    ]
    with LiveServer(configured, sites) as live:
        await link(live, "019mr8mf4r", JAKE)
        refused = 0

        async def deliver(batch: dict[str, Any]) -> None:
            nonlocal refused
            while True:
                try:
                    answer = await post(live, "batch", batch)
                except httpx.HTTPError:
                    answer = None
                if answer is not None and answer.status_code == 200:
                    return
                refused += 1
                await asyncio.sleep(0.05)

        for n, batch in enumerate(batches):
            if n == 4:
                await asyncio.to_thread(own_redis.kill)
                crash = asyncio.create_task(asyncio.to_thread(restart, own_redis))
            await deliver(batch)
            await deliver(batch)  # the answer "lost": sent again
        await crash

        assert refused > 0  # the crash was felt
        facts = await visitor_facts(live, JAKE)
        assert facts[fields.custom("Song Played")] == str(4 * len(batches))


def restart(redis_server: RedisServer) -> None:
    time.sleep(0.5)
    redis_server.start()


def test_a_write_key_names_one_site(tmp_path: Path) -> None:
    twice = textwrap.dedent(f"""\
        sites:
          a:
            origins: ["https://a.example"]
            write_key: {WRITE_KEY}
          b:
            origins: ["https://b.example"]
            write_key: {WRITE_KEY}
        """)
    path = write(tmp_path / "sites.yaml", twice)

    with pytest.raises(ConfigError, match="'a' and 'b' have the same write_key"):
        Sites.load(path)
    [problem] = sites_problems(path)
    assert problem.line == 7
    assert "the same write_key as site 'a'" in problem.message
    assert (
        Sites({"a": Site(origins=["https://a.example"], write_key=WRITE_KEY)}).by_write_key(
            WRITE_KEY
        )
        == "a"
    )


async def test_times_are_iso_8601_and_original_timestamps_are_corrected_by_sent_at(
    server: LiveServer,
) -> None:
    """``ts``: ``timestamp`` with its offset; else ``originalTimestamp`` moved by the sender's
    clock error (``sentAt`` against the time received), as Segment does."""
    song = BATCH["batch"][1]
    skewed = {k: v for k, v in song.items() if k != "timestamp"}
    messages = [
        {**song, "anonymousId": JAKE, "timestamp": "2012-12-02T02:30:12.984+02:00"},
        {**skewed, "anonymousId": JAKE, "originalTimestamp": "2030-01-01T00:00:00.000Z"},
    ]
    sent_at = "2030-01-01T00:00:10Z"  # the sender's clock: 10 s after the message

    before = server.services.clock.now_ms()
    response = await post(server, "batch", keyed(BATCH, batch=messages, sentAt=sent_at))
    after = server.services.clock.now_ms()

    assert response.json() == {"success": True}
    session = (await visitor_facts(server, JAKE))["session"]
    store = server.services.store
    newest, oldest = await server.call(store.recent_events("test-site", session, 2, JAKE))
    assert oldest["ts"] == 1354408212984  # 2012-12-02T00:30:12.984Z
    assert before - 10_000 <= newest["ts"] <= after - 10_000


async def test_malformed_messages_are_each_rejected_and_never_fail_the_request(
    server: LiveServer,
) -> None:
    await link(server, "019mr8mf4r", JAKE)
    song = BATCH["batch"][1]
    junk: list[Any] = [
        1,
        "track",
        None,
        [],
        {"type": 5},
        {"type": "click", "userId": "019mr8mf4r"},
        {**song, "anonymousId": "not a visitor id!"},
        {**song, "properties": "not an object"},
        {**song, "properties": {"k" * 200: 1}},
        {**song, "properties": DEEP},  # replaced by properties nested 500 deep
    ]

    response = await post_raw(server, "batch", keyed(BATCH, batch=[*junk, song]))

    assert response.status_code == 200
    rejected = response.json()["rejected"]
    assert [r["index"] for r in rejected] == list(range(len(junk)))
    assert {r["code"] for r in rejected} == {"invalid_event"}
    assert (await session_facts(server, JAKE))[fields.custom("Song Played")] == "1"

    # deeper than the JSON parser goes: the body cannot be read
    nested = await post_raw(server, "track", keyed(TRACK, properties=DEEP), depth=3000)
    assert (nested.status_code, nested.json()["code"]) == (400, "invalid_batch")
    for body in ("{", "[]", '{"batch": {}}'):
        answer = await post_raw(server, "batch", body)
        assert (answer.status_code, answer.json()["code"]) == (400, "invalid_batch")


DEEP = "deeply nested"


async def post_raw(server: LiveServer, call: str, body: Any, depth: int = 500) -> httpx.Response:
    """``body`` as JSON, each DEEP string replaced by an object nested ``depth`` deep (too
    deep for Python's own encoder), or a string as it is."""
    nested = '{"a":' * depth + "1" + "}" * depth
    content = body if isinstance(body, str) else json.dumps(body).replace(f'"{DEEP}"', nested)
    async with httpx.AsyncClient() as client:
        return await client.post(f"{server.url}/v1/{call}", content=content, auth=(WRITE_KEY, ""))
