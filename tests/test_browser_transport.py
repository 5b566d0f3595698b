"""The snippet's transport in real Chromium: what a page can make it send, what it does with the
server's refusals, the calls made before it loads, and exactly-once delivery when sockets drop
in mid-batch (docs/protocol.md; client-js/README.md, "Delivery").

Pages are written per test into a temporary folder served next to /cw.js. The unit tests of
the pure parts (queue, batch cutting, ack codes, backoff) are in client-js/test/.
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

import httpx
import msgpack
import redis
from playwright.async_api import ConsoleMessage, Page, WebSocket, WebSocketRoute, expect

from cuewire.keys import Keys
from cuewire.sites import Site, Sites
from support.browser import (
    BROWSER_TEST,
    PAGES,
    Serve,
    count,
    facts,
    facts_when,
    prompt_host,
    recent_events,
    session_id,
)
from support.paths import FIXTURES
from support.processes import ServerProcess, sites_file
from support.proxy import UpgradeBlockingProxy
from support.servers import site_for
from support.waiting import eventually

pytest_plugins = ["support.browser"]
pytestmark = BROWSER_TEST

ROOT = Path(__file__).resolve().parent.parent
MESSAGE_LIMIT = 64 * 1024  # the server's default max_payload_bytes
CONNECT, EVENT, ACK, CONNECT_ERROR = 0, 2, 3, 4  # Socket.IO packet types


def readme_stub() -> str:
    """The queue stub exactly as README.md tells site owners to paste it."""
    text = (ROOT / "README.md").read_text()
    match = re.search(r"^<script>window\.cuewire=.*</script>$", text, re.M)
    assert match, "README.md has no queue stub in front of the script tag"
    return match.group(0)


def write_page(folder: Path, name: str, head: str = "", site: str = "test-site") -> str:
    """A page carrying the snippet tag (after ``head``); returns its path."""
    (folder / name).write_text(
        "<!doctype html><html><head><meta charset='utf-8'><title>t</title>"
        f"{head}<script src='/cw.js' data-site='{site}' async></script></head>"
        "<body><h1>transport</h1></body></html>"
    )
    return "/" + name


def record_frames(page: Page) -> tuple[list[WebSocket], list[int]]:
    """Every websocket the page opens, and the size of every binary message it sends."""
    sockets: list[WebSocket] = []
    sizes: list[int] = []

    def opened(ws: WebSocket) -> None:
        sockets.append(ws)
        ws.on(
            "framesent",
            lambda frame: sizes.append(len(frame)) if isinstance(frame, bytes) else None,
        )

    page.on("websocket", opened)
    return sockets, sizes


async def stats(page: Page) -> dict[str, Any]:
    value: dict[str, Any] = await page.evaluate("window.cuewire.stats()")
    return value


async def loaded(page: Page) -> None:
    await page.wait_for_function("window.cuewire && typeof window.cuewire.version === 'string'")


async def test_huge_props_are_dropped_in_the_browser_never_sent_again_and_again(
    page: Page, serve: Serve, tmp_path: Path
) -> None:
    server = serve(pages=tmp_path)
    sockets, sizes = record_frames(page)
    await page.goto(server.url + write_page(tmp_path, "huge.html"))
    await loaded(page)
    session = await session_id(page)
    # The largest props `track` keeps (50 keys of 2,048 characters, 3 UTF-8 bytes each): far
    # over the server's message limit. Before the fix the batch closed the socket, and the
    # snippet reconnected and sent it again, forever.
    await page.evaluate(
        """() => {
            const props = {};
            for (let k = 0; k < 50; k++) props["key" + k] = "€".repeat(2048);
            for (let i = 0; i < 5; i++) cuewire.track("huge", props);
            cuewire.track("small", {n: 1});
        }"""
    )
    stored = await facts_when(server, session, lambda f: count(f, "c:small") == 1)
    assert count(stored, "c:huge") == 0
    figures = await stats(page)
    assert figures["dropped"]["too_large"] == 5
    assert figures["reconnects"] == 0
    assert len(sockets) == 1 and not sockets[0].is_closed()
    assert sizes and max(sizes) < MESSAGE_LIMIT


async def test_a_burst_of_large_events_is_cut_under_the_message_limit(
    page: Page, serve: Serve, tmp_path: Path
) -> None:
    server = serve(pages=tmp_path)
    sockets, sizes = record_frames(page)
    await page.goto(server.url + write_page(tmp_path, "burst.html"))
    await loaded(page)
    session = await session_id(page)
    # 150 events of ~6 KB each, in one burst: ~900 KB, one batch per dozen or so events.
    await page.evaluate(
        """() => {
            const props = {};
            for (let k = 0; k < 3; k++) props["key" + k] = "x".repeat(2000);
            for (let i = 0; i < 150; i++) cuewire.track("burst", props);
        }"""
    )
    stored = await facts_when(server, session, lambda f: count(f, "c:burst") >= 150)
    assert count(stored, "c:burst") == 150
    figures = await stats(page)
    assert figures["dropped"] == {
        "too_large": 0,
        "queue_full": 0,
        "too_many_tries": 0,
        "refused": 0,
    }
    assert figures["reconnects"] == 0 and len(sockets) == 1
    assert figures["batches"] >= 150 * 6000 // MESSAGE_LIMIT
    assert max(sizes) < MESSAGE_LIMIT


async def test_thousands_of_calls_in_a_burst_end_without_a_resend_loop(
    page: Page, serve: Serve, tmp_path: Path
) -> None:
    server = serve(pages=tmp_path)
    sockets, sizes = record_frames(page)
    await page.goto(server.url + write_page(tmp_path, "thousands.html"))
    await loaded(page)
    session = await session_id(page)
    calls = 3000
    await page.evaluate("(n) => { for (let i = 0; i < n; i++) cuewire.track('many', {i}); }", calls)
    # The queue keeps the newest 500; past the server's rate limit (bursts of 200, then
    # 50/s) the rest comes back `rate_limited` and is resent until accepted.
    figures = await eventually(lambda: stats(page), lambda s: s["unacked"] == 0, timeout=40)
    stored = await facts(server, session)
    assert count(stored, "c:many") + figures["dropped"]["queue_full"] == calls
    assert count(stored, "c:many") > 0
    assert figures["dropped"]["refused"] == 0
    assert figures["reconnects"] == 0 and len(sockets) == 1
    assert max(sizes) < MESSAGE_LIMIT


async def test_a_lone_surrogate_does_not_spoil_the_message(
    page: Page, serve: Serve, tmp_path: Path
) -> None:
    server = serve(pages=tmp_path)
    sockets, _ = record_frames(page)
    await page.goto(server.url + write_page(tmp_path, "surrogate.html"))
    await loaded(page)
    session = await session_id(page)
    await page.evaluate(
        """() => {
            cuewire.track("odd", {text: "a\\ud800b", cut: "😀".repeat(1500)});
            cuewire.track("after");
        }"""
    )
    await facts_when(server, session, lambda f: count(f, "c:after") == 1)
    events = await recent_events(server, session)
    odd = next(e for e in events if e.get("name") == "odd")
    assert odd["props"]["text"] == "a\ufffdb"
    assert (await stats(page))["reconnects"] == 0 and len(sockets) == 1


async def console_lines(page: Page) -> list[str]:
    lines: list[str] = []

    def seen(message: ConsoleMessage) -> None:
        lines.append(message.text)

    page.on("console", seen)
    return lines


async def test_a_forbidden_origin_says_so_in_one_console_line(
    page: Page, serve: Serve, tmp_path: Path
) -> None:
    server = serve(
        pages=tmp_path,
        sites=lambda origin: Sites({"test-site": Site(origins=["https://shop.example"])}),
    )
    lines = await console_lines(page)
    sockets, _ = record_frames(page)
    await page.goto(server.url + write_page(tmp_path, "origin.html"))
    await loaded(page)
    await eventually(lambda: stats(page), lambda s: s["refused"] == "origin_not_allowed")
    expected = (
        f'[cuewire] site key "test-site" refused: origin {server.origin} is not allowed '
        "(check the sites file: scheme, www, port)"
    )
    await eventually(lambda: asyncio.sleep(0, lines), lambda ls: expected in ls)
    # Stopped for good: a positive signal that nothing more comes is the page's own stats.
    await page.evaluate("cuewire.track('after_refusal')")
    assert [line for line in lines if line.startswith("[cuewire]")] == [expected]
    assert (await stats(page))["batches"] == 0
    assert len(sockets) == 1


async def test_an_unknown_site_key_says_so_in_one_console_line(
    page: Page, serve: Serve, tmp_path: Path
) -> None:
    server = serve(pages=tmp_path)
    lines = await console_lines(page)
    await page.goto(server.url + write_page(tmp_path, "typo.html", site="test-stie"))
    await loaded(page)
    await eventually(lambda: stats(page), lambda s: s["refused"] == "unknown_site")
    cuewire_lines = [line for line in lines if line.startswith("[cuewire]")]
    assert cuewire_lines == [
        '[cuewire] site key "test-stie" refused: the server has no such site '
        "(check data-site on the script tag and the sites file)"
    ]


async def test_calls_before_the_snippet_loads_arrive_in_order(
    page: Page, serve: Serve, tmp_path: Path
) -> None:
    server = serve(pages=tmp_path)
    stub = readme_stub()
    for html in sorted((ROOT / "demo-site").rglob("*.html")):
        text = html.read_text()
        assert stub + '\n<script src="/cw.js"' in text, f"{html} lacks the README's stub"
    early = """<script>
        cuewire.on("prompt:show", function () {});
        cuewire.track("first", {n: 1});
        cuewire.identify("user-7");
        cuewire.track("second", {n: 2});
        window.earlyCallsDone = true;
    </script>"""
    path = write_page(tmp_path, "early.html", head=stub + early)
    # cw.js is held back until the inline calls have run, as a slow network would.
    release = asyncio.Event()

    async def hold(route: Any) -> None:
        await release.wait()
        await route.continue_()

    await page.route("**/cw.js", hold)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(server.url + path, wait_until="domcontentloaded")
    assert await page.evaluate("window.earlyCallsDone === true && cuewire.length === 4")
    release.set()
    await loaded(page)
    session = await session_id(page)
    await facts_when(server, session, lambda f: count(f, "c:second") == 1)
    events = [e for e in await recent_events(server, session) if e["type"] != "page_view"]
    kinds = [(e["type"], e.get("name") or e.get("user_id")) for e in events[:3]]
    assert kinds == [("custom", "first"), ("identify", "user-7"), ("custom", "second")]
    seqs = [e["seq"] for e in events[:3]]
    assert seqs == sorted(seqs)
    assert errors == []
    # The stub, shims included, is replaced by the real API.
    assert await page.evaluate("!Array.isArray(window.cuewire) && !('length' in window.cuewire)")


async def test_every_event_arrives_once_when_sockets_drop_in_mid_batch(
    page: Page, serve: Serve, tmp_path: Path
) -> None:
    server = serve(pages=tmp_path)
    target = 3  # drops of each kind
    lost_acks = 0  # the server stored the batch, the page never heard of it
    lost_batches = 0  # the batch never reached the server
    closing: set[asyncio.Future[None]] = set()

    async def drop_some(ws: WebSocketRoute) -> None:
        upstream = ws.connect_to_server()
        acks = batches = 0

        def cut() -> None:
            closing.add(asyncio.ensure_future(upstream.close()))
            closing.add(asyncio.ensure_future(ws.close()))

        def from_page(message: str | bytes) -> None:
            nonlocal batches, lost_batches
            if isinstance(message, bytes) and msgpack.unpackb(message).get("type") == EVENT:
                batches += 1
                if batches % 3 == 0 and lost_batches < target:
                    lost_batches += 1
                    cut()
                    return
            upstream.send(message)

        def from_server(message: str | bytes) -> None:
            nonlocal acks, lost_acks
            if isinstance(message, bytes) and msgpack.unpackb(message).get("type") == ACK:
                acks += 1
                if acks % 2 == 0 and lost_acks < target:
                    lost_acks += 1
                    cut()
                    return
            ws.send(message)

        ws.on_message(from_page)
        upstream.on_message(from_server)

    await page.route_web_socket(re.compile(r".*/socket\.io/.*"), drop_some)
    await page.goto(server.url + write_page(tmp_path, "drops.html"))
    await loaded(page)
    session = await session_id(page)
    sent = 0
    # Events keep coming (about 30/s, under the rate limit) until the sockets have been cut
    # `target` times each way, and for a while after.
    while sent < 60 or ((lost_acks < target or lost_batches < target) and sent < 900):
        await page.evaluate("(i) => cuewire.track('tick', {i})", sent)
        sent += 1
        await asyncio.sleep(0.03)
    # Every event acknowledged in the page: nothing is still on its way to be counted twice.
    await eventually(lambda: stats(page), lambda s: s["unacked"] == 0, timeout=40)
    stored = await facts_when(server, session, lambda f: count(f, "c:tick") >= sent)
    assert (lost_acks, lost_batches) == (target, target)
    assert count(stored, "c:tick") == sent, "each event counted exactly once"
    figures = await stats(page)
    assert figures["reconnects"] >= target
    assert figures["dropped"]["too_many_tries"] == 0


async def test_a_permanent_rejection_is_never_resent_a_retryable_one_is(
    page: Page, serve: Serve, tmp_path: Path
) -> None:
    server = serve(pages=tmp_path)
    sent: list[str] = []  # the custom event names in every batch the page sent
    batches: dict[int, list[dict[str, Any]]] = {}
    rewritten: list[str] = []

    def rewrite(ack: dict[str, Any], batch: list[dict[str, Any]]) -> dict[str, Any]:
        """The server's ack, with codes put in for two events, once each."""
        for index, event in enumerate(batch):
            name = event.get("name")
            if name == "poison" and "poison" not in rewritten:
                rewritten.append("poison")
                reject = {"index": index, "code": "invalid_event", "reason": "test"}
                return {"accepted": ack["accepted"] - 1, "rejected": [reject]}
            if name == "later" and "later" not in rewritten:
                rewritten.append("later")
                reject = {"index": -1, "code": "store_unavailable", "reason": "test"}
                return {"accepted": 0, "rejected": [reject], "retry_ms": 200}
        return ack

    async def inject(ws: WebSocketRoute) -> None:
        upstream = ws.connect_to_server()

        def from_page(message: str | bytes) -> None:
            if isinstance(message, bytes):
                packet = msgpack.unpackb(message)
                if packet.get("type") == EVENT and packet["data"][0] == "events":
                    batch = packet["data"][1]
                    batches[packet["id"]] = batch
                    sent.extend(e["name"] for e in batch if e.get("type") == "custom")
            upstream.send(message)

        def from_server(message: str | bytes) -> None:
            if isinstance(message, bytes):
                packet = msgpack.unpackb(message)
                if packet.get("type") == ACK and packet.get("id") in batches:
                    packet["data"] = [rewrite(packet["data"][0], batches.pop(packet["id"]))]
                    message = msgpack.packb(packet)
            ws.send(message)

        ws.on_message(from_page)
        upstream.on_message(from_server)

    await page.route_web_socket(re.compile(r".*/socket\.io/.*"), inject)
    await page.goto(server.url + write_page(tmp_path, "codes.html"))
    await loaded(page)
    for name in ("poison", "later", "last"):  # one batch each
        await page.evaluate("(name) => cuewire.track(name)", name)
        figures = await eventually(
            lambda: stats(page),
            lambda s: s["unacked"] == 0 and name in sent,  # noqa: B023
        )
    assert rewritten == ["poison", "later"]
    assert sent.count("poison") == 1, "a permanent rejection is final"
    assert sent.count("later") == 2, "store_unavailable: the batch is sent again"
    assert figures["dropped"]["refused"] == 1
    assert figures["reconnects"] == 0


async def test_an_overloaded_refusal_is_retried_after_its_retry_ms(
    page: Page, serve: Serve, tmp_path: Path
) -> None:
    server = serve(pages=tmp_path)
    retry_ms = 1500
    opened: list[float] = []  # when each websocket was opened

    async def refuse_the_first(ws: WebSocketRoute) -> None:
        opened.append(time.monotonic())
        upstream = ws.connect_to_server()
        first = len(opened) == 1

        def from_server(message: str | bytes) -> None:
            if first and isinstance(message, bytes):
                packet = msgpack.unpackb(message)
                if packet.get("type") == CONNECT:
                    data = {"code": "overloaded", "reason": "overloaded", "retry_ms": retry_ms}
                    refusal = {
                        "type": CONNECT_ERROR,
                        "nsp": "/",
                        "data": {"message": "overloaded", "data": data},
                    }
                    message = msgpack.packb(refusal)
            ws.send(message)

        upstream.on_message(from_server)

    await page.route_web_socket(re.compile(r".*/socket\.io/.*"), refuse_the_first)
    await page.goto(server.url + write_page(tmp_path, "busy.html"))
    await loaded(page)
    session = await session_id(page)  # handed over by the second connection
    await page.evaluate("cuewire.track('after_busy')")
    await facts_when(server, session, lambda f: count(f, "c:after_busy") == 1)
    figures = await stats(page)
    assert figures["refused"] == "overloaded"
    assert len(opened) == 2, "one refusal, one retry"
    assert opened[1] - opened[0] >= retry_ms / 1000, "not before the server's retry_ms"


async def test_where_a_proxy_blocks_websockets_the_snippet_falls_back_to_long_polling(
    page: Page, serve: Serve
) -> None:
    async with UpgradeBlockingProxy() as proxy:
        # The pages come through the proxy, so the site allows the proxy's origin; they are
        # the server's own, so the polling handshake (a same-origin GET) carries no Origin.
        # The fixture shop's product page arms the 1 s hesitation rule.
        server = serve(sites=lambda _own_origin: site_for(proxy.url))
        proxy.forward_to(server.url)
        polls: list[str] = []
        page.on("request", lambda r: polls.append(r.url) if "transport=polling" in r.url else None)
        await page.goto(proxy.url + "/product/boots.html")
        session = await session_id(page)
        # A prompt the server pushes (the timer-fired hesitation prompt, acked by the tab).
        await expect(prompt_host(page, kind="modal")).to_have_count(1)
        await page.evaluate("cuewire.track('over_polling', {n: 1})")
        await facts_when(server, session, lambda f: count(f, "c:over_polling") == 1)
        assert proxy.refused >= 1, "the snippet never tried a websocket"
        assert polls, "no long-polling request went out"


async def test_long_polling_works_across_the_workers_of_one_port(
    page: Page, backend_url: str | None, tmp_path: Path
) -> None:
    """`cuewire serve --workers 2` behind a proxy that blocks WebSocket and opens a connection
    per request, so the kernel hands the polling requests of one session to either worker:
    each one that reaches the other worker is passed on to the one holding the session."""
    assert backend_url is not None  # a real Redis: several workers share it
    clean_redis = backend_url
    async with UpgradeBlockingProxy() as proxy:
        port = int(proxy.url.rsplit(":", 1)[1])
        server = ServerProcess(
            clean_redis,
            FIXTURES / "rules",
            FIXTURES / "templates",
            sites_file(tmp_path / "sites.yaml", port),
            env={"CUEWIRE_DEMO_SITE_DIR": str(PAGES), "CUEWIRE_ADMIN_PASSWORD": "pw"},
            workers=2,
        ).start()
        try:
            proxy.forward_to(server.url)
            await page.goto(proxy.url + "/product/boots.html")
            await loaded(page)
            for i in range(20):
                await page.evaluate("(i) => cuewire.track('across', {i})", i)
                await asyncio.sleep(0.05)
            # the timer-fired hesitation prompt, pushed over polling and acked
            await expect(prompt_host(page, kind="modal")).to_have_count(1)
            await eventually(lambda: stats(page), lambda s: s["unacked"] == 0, timeout=20)
            client = redis.Redis.from_url(clean_redis, decode_responses=True)
            session = await session_id(page)
            stored = client.hgetall(Keys("cw").session("test-site", session))
            assert count(stored, "c:across") == 20
            assert await forwarded(server.url) > 0, "no request ever reached the other worker"
            assert await page.evaluate("window.cuewire.stats().reconnects") == 0
        finally:
            server.stop()


async def forwarded(url: str) -> float:
    """Polling requests passed on between workers, summed over both (each /metrics answer is
    one worker's: ask until both have answered)."""
    seen: dict[int, float] = {}
    for _ in range(40):
        async with httpx.AsyncClient() as http:  # one connection: one worker answers both
            health = (await http.get(url + "/healthz")).json()
            assert health["tasks"]["peer-socket"]["running"], "each worker's socket is supervised"
            pid = health["worker"]["pid"]
            text = (await http.get(url + "/metrics", auth=("admin", "pw"))).text
        found = re.search(r"^cuewire_polling_forwarded_total (\S+)$", text, re.M)
        seen[pid] = float(found.group(1)) if found else 0.0
    return sum(seen.values())
