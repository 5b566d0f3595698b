"""Input limits before work, caps on growth, rate limits that survive reconnects, and the
codes of docs/protocol.md ("Codes", "Limits")."""

from __future__ import annotations

import asyncio
import base64
import logging
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx
import msgpack
import pytest

from cuewire.admission import Admission, Overloaded
from cuewire.errors import ConfigError
from cuewire.settings import Limits, Settings
from cuewire.sites import Site, Sites
from support.harness import FakeClock
from support.lightclient import LightTab, Refused
from support.servers import WITH_CLUSTER, LiveServer, site_for
from support.visitor import Visitor

BACKENDS = WITH_CLUSTER  # the store tests run on a Redis Cluster too

PAGE = "http://shop.test/product/boots"


def limited(settings: Settings, **limits: Any) -> Settings:
    return replace(settings, limits=replace(settings.limits, **limits), admin_password="s3cret")


@pytest.fixture
def server(settings: Settings) -> Iterator[LiveServer]:
    def sites(origin: str) -> Sites:
        return Sites({"test-site": Site(origins=[origin], api_key="backend-key")})

    with LiveServer(limited(settings), sites) as running:
        yield running


# --- limits before work -------------------------------------------------------------------


async def raw_http(server: LiveServer, head: str, body: bytes = b"") -> bytes:
    """Send a hand-written request; the response as soon as the server answers."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.settings.port)
    writer.write(head.replace("\n", "\r\n").encode() + body)
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(200), 5)
    finally:
        writer.close()


async def test_a_body_declared_too_large_is_refused_before_it_is_read(server: LiveServer) -> None:
    head = (
        "POST /v1/events HTTP/1.1\nHost: x\nContent-Type: application/json\n"
        "Content-Length: 1000000000\n\n"
    )
    answer = await raw_http(server, head)  # sends no body: answered without waiting for it
    assert answer.startswith(b"HTTP/1.1 413")


async def test_a_streamed_body_is_cut_off_at_the_limit(server: LiveServer) -> None:
    head = "POST /v1/events HTTP/1.1\nHost: x\nTransfer-Encoding: chunked\n\n"
    chunk = b"x" * 16384
    body = b"".join(b"%x\r\n%b\r\n" % (len(chunk), chunk) for _ in range(6))  # 96 KiB, no end
    answer = await raw_http(server, head, body)
    assert answer.startswith(b"HTTP/1.1 413")


async def test_a_batch_past_the_event_limit_gets_one_small_rejection(server: LiveServer) -> None:
    tab = await LightTab(
        server.url, {"site": "test-site", "visitor": "v_limits01"}, server.url
    ).open()
    try:
        ack = await tab.send([None] * 60_000)
    finally:
        await tab.close()
    assert ack["accepted"] == 0
    assert [(r["index"], r["code"]) for r in ack["rejected"]] == [(-1, "batch_too_large")]
    assert len(msgpack.packb(ack)) < 200


async def test_an_event_past_the_event_size_limit_is_rejected_and_the_rest_kept(
    server: LiveServer,
) -> None:
    async with Visitor(server.url) as v:
        big = v.event("custom", PAGE, name="notes", props={f"k{i}": "y" * 2000 for i in range(9)})
        ack = await v.send(v.event("page_view", PAGE), big)
    assert ack["accepted"] == 1
    [rejection] = ack["rejected"]
    assert rejection["index"] == 1
    assert rejection["code"] == "event_too_large"
    assert "at most 16384" in rejection["reason"]


async def test_a_websocket_frame_past_the_message_limit_is_refused_by_the_server(
    server: LiveServer,
) -> None:
    tab = await LightTab(
        server.url, {"site": "test-site", "visitor": "v_limits01"}, server.url
    ).open()
    await tab.send_raw(b"\x00" * (server.settings.limits.max_payload_bytes + 1))
    assert await tab.wait_closed() == 1009  # "message too big", before engine.io decodes it


@pytest.mark.parametrize("user", ["ädmin", "admin"])
def test_non_ascii_basic_credentials_get_401(server: LiveServer, user: str) -> None:
    token = base64.b64encode(f"{user}:pässwörd".encode()).decode()
    for header in (f"Basic {token}".encode(), "Basic ünïcode".encode()):
        answer = httpx.get(server.url + "/metrics", headers={"Authorization": header})
        assert answer.status_code == 401


def test_a_non_ascii_backend_key_gets_401(server: LiveServer) -> None:
    event = {"type": "custom", "name": "purchase", "ts": 1, "seq": 1, "url": "backend:"}
    body = {"site": "test-site", "visitor": "v_visitor01", "events": [event]}
    answer = httpx.post(
        server.url + "/v1/events",
        json=body,
        headers={"Authorization": "Bearer clé".encode()},
    )
    assert answer.status_code == 401


def test_limits_come_from_the_environment() -> None:
    env = {
        "CUEWIRE_LIMITS_MAX_PAYLOAD_BYTES": "131072",
        "CUEWIRE_LIMITS_EVENTS_PER_SECOND": "7.5",
        "CUEWIRE_LIMITS_MAX_TRAITS": "3",
    }
    limits = Settings.from_env(env=env).limits
    assert limits == replace(
        Limits(), max_payload_bytes=131072, events_per_second=7.5, max_traits=3
    )
    with pytest.raises(ConfigError, match="CUEWIRE_LIMITS_MAX_BATCH_EVENTS"):
        Settings.from_env(env={"CUEWIRE_LIMITS_MAX_BATCH_EVENTS": "many"})


# --- caps on growth -----------------------------------------------------------------------


async def test_distinct_custom_event_names_are_capped_and_known_ones_still_pass(
    settings: Settings,
) -> None:
    with LiveServer(limited(settings, max_event_names=3), site_for) as live:
        async with Visitor(live.url) as v:
            names = ["a", "b", "c", "d", "a"]
            ack = await v.send(*[v.event("custom", PAGE, name=n) for n in names])
            assert ack["accepted"] == 4
            [rejection] = ack["rejected"]
            assert (rejection["index"], rejection["code"]) == (3, "limit_exceeded")
            assert "at most 3 distinct event names" in rejection["reason"]
            assert v.info
            facts = await live.call(
                live.services.store.session_facts("test-site", v.info["session"])
            )
        assert "c:d" not in facts and facts["c:a"] == "2"
        # a new session of the same visitor: the visitor's own cap still holds
        async with Visitor(live.url) as again:
            ack = await again.send(again.event("custom", PAGE, name="e"))
            assert [r["code"] for r in ack["rejected"]] == ["limit_exceeded"]


async def test_distinct_traits_are_capped_per_visitor(settings: Settings) -> None:
    with LiveServer(limited(settings, max_traits=2), site_for) as live:
        async with Visitor(live.url) as v:
            first = v.event("identify", PAGE, user_id="u1", traits={"plan": "pro", "seats": 3})
            second = v.event("identify", PAGE, user_id="u1", traits={"plan": "team", "tz": "x"})
            third = v.event("identify", PAGE, user_id="u1", traits={"seats": 4})
            ack = await v.send(first, second, third)
        assert ack["accepted"] == 2
        assert [(r["index"], r["code"]) for r in ack["rejected"]] == [(1, "limit_exceeded")]
        visitor = await live.call(live.services.store.visitor_facts("test-site", "v_visitor01"))
        assert "trait:tz" not in visitor and visitor["trait:seats"] == "4"


async def test_the_backend_api_has_the_caps_and_no_rate_limit(settings: Settings) -> None:
    """Server-to-server batches (authenticated by the API key) are capped like a browser's,
    but not rate limited per visitor: an order import may send many events at once."""

    def sites(origin: str) -> Sites:
        return Sites({"test-site": Site(origins=[origin], api_key="backend-key")})

    tight = limited(settings, max_event_names=3, events_per_second=0.5, event_burst=2)
    with LiveServer(tight, sites) as live:
        names = ["a", "b", "a", "c", "a", "d", "b"]
        events = [
            {"type": "custom", "name": n, "ts": 1, "seq": i + 1, "url": "backend:"}
            for i, n in enumerate(names)
        ]
        body = {"site": "test-site", "visitor": "v_visitor01", "events": events}
        async with httpx.AsyncClient() as client:
            answer = await client.post(
                live.url + "/v1/events", json=body, headers={"Authorization": "Bearer backend-key"}
            )
        assert answer.status_code == 200
        reply = answer.json()
        assert reply["accepted"] == 6
        assert [(r["index"], r["code"]) for r in reply["rejected"]] == [(5, "limit_exceeded")]
        facts = await live.call(live.services.store.session_facts("test-site", reply["session"]))
        assert (facts["c:a"], facts["c:b"], facts["c:c"]) == ("3", "2", "1")
        assert "c:d" not in facts


# --- rate limits held in the store --------------------------------------------------------


async def test_a_reconnect_does_not_refill_the_visitor_rate_limit(settings: Settings) -> None:
    slow = limited(settings, events_per_second=0.5, event_burst=5)
    with LiveServer(slow, site_for) as live:
        async with Visitor(live.url) as v:
            ack = await v.send(*[v.event("click", PAGE, selector="a") for _ in range(8)])
            assert ack["accepted"] == 5
            assert {r["code"] for r in ack["rejected"]} == {"rate_limited"}
            assert 0 < ack["retry_ms"] <= 2000
        async with Visitor(live.url, tab="tab2") as again:
            ack = await again.send(again.event("click", PAGE, selector="a"))
            assert ack["accepted"] == 0
            assert [r["code"] for r in ack["rejected"]] == ["rate_limited"]


async def test_the_client_address_has_its_own_rate_limit(settings: Settings) -> None:
    narrow = limited(settings, address_events_per_second=0.5, address_event_burst=6)
    with LiveServer(narrow, site_for) as live:
        async with Visitor(live.url, visitor="v_first0001") as a:
            assert (await a.send(*[a.event("page_view", PAGE) for _ in range(4)]))["accepted"] == 4
        async with Visitor(live.url, visitor="v_second001") as b:
            ack = await b.send(*[b.event("page_view", PAGE) for _ in range(4)])
        assert ack["accepted"] == 2
        assert [r["index"] for r in ack["rejected"]] == [2, 3]


# --- connect refusals speak up ------------------------------------------------------------


async def test_a_refused_origin_is_logged_once_a_minute_and_counted(
    server: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="cuewire.gateway")
    for _ in range(3):
        tab = LightTab(
            server.url, {"site": "test-site", "visitor": "v_limits01"}, "http://evil.test"
        )
        with pytest.raises(Refused) as refused:
            await tab.open()
        assert refused.value.data == {
            "code": "origin_not_allowed",
            "reason": "origin not allowed for this site",
            "retry_ms": None,
        }
    lines = [r.getMessage() for r in caplog.records if "connect refused" in r.getMessage()]
    assert len(lines) == 1
    assert "origin_not_allowed" in lines[0] and "http://evil.test" in lines[0]
    async with httpx.AsyncClient() as client:
        metrics = (await client.get(server.url + "/metrics", auth=("admin", "s3cret"))).text
    assert 'cuewire_connects_refused_total{code="origin_not_allowed"} 3.0' in metrics


# --- a socket that closes while connect awaits the store ----------------------------------
# python-socketio calls no disconnect handler for a socket that closes while its connect
# handler runs (it is only "pre-connected"); the gateway must clean up after itself.


async def test_a_socket_closed_during_connect_leaves_nothing_behind(settings: Settings) -> None:
    with LiveServer(settings, site_for) as live:
        gateway = live.services.gateway
        store = live.services.store
        entered, finished = threading.Event(), threading.Event()
        gate = asyncio.Event()  # waited for on the server's loop

        async def slowed(*args: Any, **kwargs: Any) -> Any:  # the real store, made slow
            entered.set()
            await gate.wait()
            try:
                return await store.open_session(*args, **kwargs)
            finally:
                finished.set()

        gateway._store = _Slowed(store, slowed)  # type: ignore[assignment]
        tab = LightTab(live.url, {"site": "test-site", "visitor": "v_racer001"}, live.url)
        opening = asyncio.create_task(tab.open(timeout=5))
        assert await asyncio.to_thread(entered.wait, 5)
        # The socket closes while open_session waits. python-socketio reads a websocket's
        # next message only after `connect` returns, so the close comes from the server's
        # side, as on shutdown or an engine.io ping timeout (long-polling).
        await live.call(live.services.sio.eio.disconnect())
        # the tab waits for a CONNECT answer that never comes: it gives up now (and closes its
        # socket, as its timeout would 5 s later)
        opening.cancel()
        await asyncio.gather(opening, return_exceptions=True)
        await tab.close()
        assert live.loop is not None
        live.loop.call_soon_threadsafe(gate.set)
        assert await asyncio.to_thread(finished.wait, 5)

        async def sids() -> list[str]:
            r = store._r
            keys = await r.keys(f"{settings.key_prefix}:s:*")
            return [sid for key in keys if (sid := await r.hget(key, "sid"))]

        for _ in range(40):  # until the handler has cleaned up, or 2 s
            left = (gateway.connections, await live.call(sids()))
            if left == (0, []):
                break
            await asyncio.sleep(0.05)
        assert left == (0, [])
        assert await live.call(store._r.keys(f"{settings.key_prefix}:s:*"))  # it did open
        assert "cuewire_connections 0.0" in live.services.metrics.render().decode()


class _Slowed:
    """The real store whose ``open_session`` waits until the test releases it."""

    def __init__(self, store: Any, open_session: Any) -> None:
        self._store = store
        self.open_session = open_session

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


# --- admission of connects ----------------------------------------------------------------


async def test_refused_connects_are_given_return_slots_spread_at_the_serving_rate() -> None:
    clock = FakeClock(1_000_000)
    admission = Admission(concurrency=2, queue=4, retry_ms=100, clock=clock)
    for _ in range(500):  # one second in which 500 sessions opened: the rate is 500/s
        clock.advance(0.002)
        async with admission.slot():
            pass
    gate = asyncio.Event()

    async def hold() -> None:
        async with admission.slot():
            await gate.wait()

    holders = [asyncio.create_task(hold()) for _ in range(4)]
    await asyncio.sleep(0)
    assert admission.waiting == 4
    returns = []
    for _ in range(1200):
        with pytest.raises(Overloaded) as refused:
            async with admission.slot():
                pass
        returns.append(refused.value.retry_ms)
    gate.set()
    await asyncio.gather(*holders)
    # booked at 1.5 x 500/s: 1,200 tabs come back over 1.6 s, one slot after another
    first, last = min(returns), max(returns)
    assert 100 <= first <= 220
    assert 1500 <= last - first <= 1700
    per_half_second = Counter((r - first) // 500 for r in returns)
    assert sorted(per_half_second) == [0, 1, 2, 3] and max(per_half_second.values()) <= 420
