"""The live QA view (cuewire.admin.qa): the admin-only pages and exports, and the Socket.IO
namespace /admin that pushes a site's sessions, events, firings and one session's state.
A visitor cannot join it; the admin can, with a token from the page and from the server's own
origin only.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import shutil
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import socketio

from cuewire.admin.qa_tokens import admin_subject, issue_token, token_key, token_ok
from cuewire.cli import main
from cuewire.errors import ConfigError
from cuewire.settings import Settings
from cuewire.store import RedisStore
from support.harness import Harness, VisitorSession
from support.paths import FIXTURES, ROOT
from support.servers import WITH_CLUSTER, LiveServer, RedisServer, site_for
from support.visitor import Visitor, connected_once_store_is_back
from support.waiting import eventually

BACKENDS = WITH_CLUSTER  # the store tests run on a Redis Cluster too

PASSWORD = "qa-secret-1"
BASIC = "Basic " + base64.b64encode(f"admin:{PASSWORD}".encode()).decode()
PRODUCT = "http://shop.test/product/boots"


@pytest.fixture
def qa(settings: Settings) -> Iterator[LiveServer]:
    """A live server with the fixture rules (hesitate-product: 1 s) and an admin password."""
    with LiveServer(replace(settings, admin_password=PASSWORD), site_for) as server:
        yield server


class Admin:
    """An admin client of the /admin namespace that keeps what it is pushed."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.sio = socketio.AsyncClient(serializer="msgpack", reconnection=False)
        self.got: dict[str, list[Any]] = {"hello": [], "batches": [], "audit": [], "snapshot": []}
        self.refused: Any = None
        for name in self.got:
            self.sio.on(name, self._keeper(name), namespace="/admin")
        self.sio.on("connect_error", self._on_refused, namespace="/admin")

    def _keeper(self, name: str) -> Any:
        async def keep(data: Any) -> None:
            self.got[name].append(data)

        return keep

    async def _on_refused(self, data: Any) -> None:
        self.refused = data.get("message") if isinstance(data, dict) else data

    async def connect(
        self,
        auth: Any = None,
        headers: dict[str, str] | None = None,
        hello: dict[str, Any] | None = None,
    ) -> Admin:
        """Connect (from the server's own origin unless ``headers`` say otherwise), then say
        hello as the QA page does once connected."""
        await self.sio.connect(
            self.url,
            namespaces=["/admin"],
            auth=auth,
            headers={"Origin": self.url, **(headers or {})},
            transports=["websocket"],
            wait_timeout=5,
        )
        await self.sio.emit("hello", hello or {}, namespace="/admin")
        return self

    async def until(self, name: str, check: Any = bool, timeout: float = 5.0) -> Any:
        pushed = await eventually(
            lambda: list(self.got[name]),
            lambda items: any(check(item) for item in items),
            timeout=timeout,
            what=f"a matching {name!r} push",
        )
        return next(item for item in reversed(pushed) if check(item))


def now_ms() -> int:
    return int(time.time() * 1000)


def token(server: LiveServer) -> str:
    reply = httpx.get(server.url + "/qa/api/token", headers={"Authorization": BASIC})
    assert reply.status_code == 200
    return str(reply.json()["token"])


# ---------------------------------------------------------------- HTTP


def test_every_qa_route_wants_the_admin(qa: LiveServer) -> None:
    for path in (
        "/qa",
        "/qa/metrics",
        "/qa/metrics.json",
        "/qa/metrics.csv",
        "/qa/api/token",
        "/qa/static/qa.js",
    ):
        anonymous = httpx.get(qa.url + path)
        assert anonymous.status_code == 401, path
        assert anonymous.headers["www-authenticate"].startswith("Basic ")
        wrong = httpx.get(
            qa.url + path,
            headers={"Authorization": "Basic " + base64.b64encode(b"admin:nope").decode()},
        )
        assert wrong.status_code == 401, path
        assert httpx.get(qa.url + path, headers={"Authorization": BASIC}).status_code == 200, path
    page = httpx.get(qa.url + "/qa", headers={"Authorization": BASIC}).text
    assert '<script type="module" src="/qa/static/qa.js">' in page


def test_without_a_password_the_qa_view_is_off(settings: Settings) -> None:
    with LiveServer(settings, site_for) as server:
        reply = httpx.get(server.url + "/qa")
        assert reply.status_code == 503 and "CUEWIRE_ADMIN_PASSWORD" in reply.text


def test_tokens_expire_and_are_bound_to_the_server_secret_not_the_password() -> None:
    now = 1_764_000_000_000
    key = token_key("a-server-secret-of-some-length")
    admin = admin_subject("admin", "pw")
    t = issue_token(key, admin, now, ttl_ms=1000)
    assert token_ok(t, key, admin, now + 999)
    assert token_ok(t, token_key("a-server-secret-of-some-length"), admin, now)  # any process
    assert not token_ok(t, key, admin, now + 1001)
    assert not token_ok(t, token_key("another-server-secret-000"), admin, now)
    assert not token_ok(t, key, admin_subject("root", "pw"), now)
    assert not token_ok(t, key, admin_subject("admin", "new password"), now)  # revoked
    assert not token_ok(t.replace(".", ".0"), key, admin, now)
    assert not token_ok(None, key, admin, now)
    assert "pw" not in t and hashlib.sha256(b"pw").hexdigest() not in t
    # without a secret each process draws its own key: its tokens are good nowhere else
    assert token_key(None) != token_key(None)
    with pytest.raises(ConfigError, match="CUEWIRE_SECRET is too short"):
        token_key("short")


# ---------------------------------------------------------------- the /admin namespace


async def test_a_visitor_cannot_join_the_admin_namespace(qa: LiveServer) -> None:
    visitor_auth = {"site": "test-site", "visitor": "v_sneaky0001", "session": None}
    for auth, headers in [
        (None, None),
        (visitor_auth, {"Origin": qa.origin}),
        ({"token": "1.abc"}, None),
        (
            {"token": issue_token(token_key(None), admin_subject("admin", PASSWORD), now_ms())},
            None,
        ),
        (None, {"Authorization": "Basic " + base64.b64encode(b"admin:guess").decode()}),
        (None, {"Authorization": BASIC}),  # even the right credentials: tokens only
    ]:
        admin = Admin(qa.url)
        with pytest.raises(socketio.exceptions.ConnectionError):
            await admin.connect(auth, headers)
        assert admin.refused == "admin login required"
        assert admin.got["hello"] == []


async def test_the_admin_namespace_is_refused_when_no_password_is_set(settings: Settings) -> None:
    with LiveServer(settings, site_for) as server:
        admin = Admin(server.url)
        with pytest.raises(socketio.exceptions.ConnectionError):
            await admin.connect(None, {"Authorization": BASIC})
        assert "CUEWIRE_ADMIN_PASSWORD" in str(admin.refused)


async def test_admin_sees_events_timers_firings_and_explain_of_a_session_live(
    qa: LiveServer,
) -> None:
    admin = await Admin(qa.url).connect({"token": token(qa)}, hello={"site": "test-site"})
    hello = await admin.until("hello")
    assert hello["sites"] == ["test-site"] and hello["site"] == "test-site"

    async with Visitor(qa.url, visitor="v_watched001") as v:
        assert v.info is not None
        session = v.info["session"]
        await v.send(v.event("page_view", PRODUCT))
        batch = await admin.until(
            "batches", lambda b: any(x["session"] == session for x in b["batches"])
        )
        [mine] = [x for x in batch["batches"] if x["session"] == session]
        assert [e["type"] for e in mine["events"]] == ["page_view"] and mine[
            "visitor"
        ] == "v_watched001"

        await admin.sio.emit("watch", {"session": session}, namespace="/admin")
        snap = await admin.until("snapshot", lambda s: s["session"] == session)
        assert snap["facts"]["path"] == "/product/boots"
        [timer] = snap["timers"]
        assert timer["rule"] == "hesitate-product" and 0 < timer["due_ms"] - snap["now"] <= 1000
        states = {r["rule"]: r["state"] for r in snap["rules"]}
        assert states["hesitate-product"] == "pending"
        assert states["exit-product"] == "waiting"
        assert snap["events"][0]["type"] == "page_view"

        await v.wait_prompt(3)  # the 1 s hesitation deadline falls due
        record = await admin.until(
            "audit", lambda a: any(r["session"] == session for r in a["records"])
        )
        [fired] = [r for r in record["records"] if r["session"] == session]
        assert (fired["rule"], fired["outcome"]) == ("hesitate-product", "fired")
        # The firing is recorded first and its deadline released after (so a crash between
        # the two fires it again, found already recorded): a snapshot may fall in between
        # and still show the deadline. The view settles on the next one.
        after = await admin.until(
            "snapshot",
            lambda s: (
                s["session"] == session
                and {r["rule"]: r["state"] for r in s["rules"]}["hesitate-product"] != "pending"
            ),
            timeout=10,
        )
        assert {r["rule"]: r["state"] for r in after["rules"]}["hesitate-product"] == "fired"
        assert any(r["outcome"] == "fired" for r in after["audit"])
        assert after["timers"] == []
        assert v.prompts and "batches" not in json.dumps(v.prompts)  # visitors get prompts only
    await admin.sio.disconnect()


async def test_the_admin_namespace_refuses_pages_of_other_origins(qa: LiveServer) -> None:
    """A page of another site, even in the admin's browser with a valid token, is refused."""
    good = token(qa)
    port = qa.url.rsplit(":", 1)[1]
    for origin in (
        "https://evil.example",
        f"http://127.0.0.1.evil.example:{port}",
        f"http://127.0.0.1:{int(port) + 1}",
        "null",
    ):
        admin = Admin(qa.url)
        with pytest.raises(socketio.exceptions.ConnectionError):
            await admin.connect({"token": good}, {"Origin": origin})
        assert "Origin must match Host" in str(admin.refused), origin
        assert admin.got["hello"] == []
    admin = await Admin(qa.url).connect({"token": good}, {"Origin": f"http://127.0.0.1:{port}/"})
    await admin.until("hello")
    await admin.sio.disconnect()


async def test_nothing_is_pushed_before_the_client_says_hello(qa: LiveServer) -> None:
    """The server emits nothing while the connect may be unacknowledged: the feed (and its
    hello) start only when the connected client asks, with the session it follows."""
    async with Visitor(qa.url, visitor="v_followed01") as v:
        assert v.info is not None
        session = v.info["session"]
        await v.send(v.event("page_view", PRODUCT))
        admin = Admin(qa.url)
        await admin.sio.connect(
            qa.url,
            namespaces=["/admin"],
            auth={"token": token(qa)},
            headers={"Origin": qa.url},
            transports=["websocket"],
            wait_timeout=5,
        )
        await asyncio.sleep(0.6)  # more than two feed polls
        assert all(not pushed for pushed in admin.got.values())
        await admin.sio.emit("hello", {"session": session}, namespace="/admin")
        await admin.until("hello")
        snap = await admin.until("snapshot", lambda s: s["session"] == session)
        assert snap["facts"]["visitor"] == "v_followed01"
        namespace = qa.services.sio.namespace_handlers["/admin"]
        [feed] = namespace.feeds.values()
        assert feed.handle is not None and feed.handle.task is not None
        await admin.sio.disconnect()
        await eventually(  # the feed task ends with its socket
            lambda: not namespace.feeds and feed.handle.task.done(),
            timeout=5,
            what="the feed ending with its socket",
        )


def feed_tasks(server: LiveServer) -> dict[str, Any]:
    tasks = httpx.get(server.url + "/healthz").json()["tasks"]
    return {name: t for name, t in tasks.items() if name.startswith("qa-feed:")}


async def test_a_crashing_feed_is_restarted_shown_in_healthz_and_ends_with_its_socket(
    qa: LiveServer,
) -> None:
    """A feed is a supervised task: an unexpected error (here a live-stream entry that is not
    JSON) is logged, counted in /healthz and the feed starts again (a new hello, the backlog
    again) instead of dying silently; a store outage is not such an error. When its socket
    closes the feed ends and leaves /healthz."""
    store = qa.services.store
    live = store.keys.live("test-site")
    bad = await qa.call(store.client.xadd(live, {"session": "s_bad", "events": "{not json"}))
    admin = await Admin(qa.url).connect({"token": token(qa)}, hello={"site": "test-site"})
    await admin.until("hello")

    deadline = time.monotonic() + 10
    while not any(t["restarts"] for t in feed_tasks(qa).values()):
        assert time.monotonic() < deadline, f"the feed did not restart: {feed_tasks(qa)}"
        await asyncio.sleep(0.05)
    [(name, task)] = feed_tasks(qa).items()
    [sid] = qa.services.sio.namespace_handlers["/admin"].feeds
    assert name == f"qa-feed:{sid}"
    assert task["last_error"]["code"] == "crashed"
    assert task["last_error"]["type"] == "JSONDecodeError"

    await qa.call(store.client.xdel(live, bad))  # the fault goes: the next restart serves
    async with Visitor(qa.url, visitor="v_aftercrash") as v:
        assert v.info is not None
        await v.send(v.event("page_view", PRODUCT))
        await admin.until(
            "batches",
            lambda b: any(x["session"] == v.info["session"] for x in b["batches"]),
            timeout=15,
        )
    assert len(admin.got["hello"]) >= 2  # each start of the feed greets the page again
    assert feed_tasks(qa)[name]["running"]

    await admin.sio.disconnect()
    deadline = time.monotonic() + 5
    while feed_tasks(qa):
        assert time.monotonic() < deadline, "the feed outlived its socket"
        await asyncio.sleep(0.05)


async def test_a_store_outage_does_not_crash_the_feed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Redis goes away under a connected QA page: the feed logs the outage and keeps polling
    (no crash, no restart, no second hello), and pushes new batches once Redis is back."""
    caplog.set_level(logging.ERROR, logger="cuewire.admin.qa_feed")
    redis_server = RedisServer(tmp_path).start()
    settings = Settings(
        redis_url=redis_server.url,
        rules_dir=FIXTURES / "rules",
        templates_dir=FIXTURES / "templates",
        key_prefix="cwqaoutage",
        admin_password=PASSWORD,
    )
    try:
        with LiveServer(settings, site_for) as server:
            admin = await Admin(server.url).connect(
                {"token": token(server)}, hello={"site": "test-site"}
            )
            await admin.until("batches")  # the feed has read the streams once
            redis_server.kill()
            deadline = time.monotonic() + 10
            while not any(r.name == "cuewire.admin.qa_feed" for r in caplog.records):
                assert time.monotonic() < deadline, "the feed did not notice the outage"
                await asyncio.sleep(0.05)
            redis_server.start()
            async with httpx.AsyncClient(timeout=5) as client:  # a tab connects once it can
                await eventually(
                    lambda: client.get(server.url + "/healthz"),
                    lambda answer: answer.status_code == 200,
                    timeout=20,
                    what="the store reachable again",
                )

            v = await connected_once_store_is_back(
                lambda: Visitor(server.url, visitor="v_afteroutage")
            )
            try:
                assert v.info is not None
                session = v.info["session"]
                # a pooled connection opened before the outage may fail this batch once: the
                # server answers store_unavailable and the batch is resent, as the snippet does
                view = v.event("page_view", PRODUCT)
                await eventually(
                    lambda: v.send(view),
                    lambda ack: ack["accepted"] == 1,
                    timeout=15,
                    interval=0.3,
                    what="the page view stored",
                )
                await admin.until(
                    "batches",
                    lambda b: any(x["session"] == session for x in b["batches"]),
                    timeout=15,
                )
            finally:
                await v.sio.disconnect()
            [task] = feed_tasks(server).values()
            assert (task["restarts"], task["failures"], task["running"]) == (0, 0, True)
            assert len(admin.got["hello"]) == 1
            await admin.sio.disconnect()
    finally:
        redis_server.stop()


def test_polling_grants_no_credentialed_cors_to_other_origins(qa: LiveServer) -> None:
    reply = httpx.get(
        qa.url + "/socket.io/",
        params={"EIO": "4", "transport": "polling"},
        headers={"Origin": "https://evil.example"},
    )
    assert reply.status_code == 200
    assert reply.headers.get("access-control-allow-credentials") is None


async def test_session_api_and_metrics_exports(qa: LiveServer) -> None:
    async with Visitor(qa.url, visitor="v_buyer00001") as v:
        assert v.info is not None
        session = v.info["session"]
        await v.send(v.event("page_view", PRODUCT))
        await v.send(v.event("exit_intent", PRODUCT))
        prompt = await v.wait_prompt()
        fields = {"prompt": prompt["id"], "rule": prompt["rule"]}
        await v.send(
            v.event("prompt_shown", PRODUCT, **fields), v.event("prompt_click", PRODUCT, **fields)
        )
        await v.send(
            v.event("custom", "http://shop.test/thanks", name="purchase", props={"total": 42})
        )
    auth = {"Authorization": BASIC}
    async with httpx.AsyncClient(base_url=qa.url, headers=auth) as http:
        snap = (
            await http.get("/qa/api/session", params={"session": session, "site": "test-site"})
        ).json()
        assert snap["exists"] and [r["rule"] for r in snap["audit"]] == ["exit-product"]
        assert (await http.get("/qa/api/session", params={"session": "s_nope"})).status_code == 404
        report = (await http.get("/qa/metrics.json")).json()
        [rule] = [r for r in report["rules"] if r["rule"] == "exit-product"]
        [row] = rule["variants"]
        assert {
            k: row[k] for k in ("eligible", "fired", "shown", "clicked", "dismissed", "converted")
        } == {
            "eligible": 1,
            "fired": 1,
            "shown": 1,
            "clicked": 1,
            "dismissed": 0,
            "converted": 1,
        }
        assert report["goals_file"].endswith("measure.toml")
        today = report["window"]["to"]
        yesterday = (date.fromisoformat(today) - timedelta(days=1)).isoformat()
        before = (await http.get("/qa/metrics.json", params={"to": yesterday})).json()
        assert not [r for r in before["rules"] if r["rule"] == "exit-product"]
        bad = await http.get("/qa/metrics.json", params={"from": "2026-13-01"})
        assert bad.status_code == 400
        csv = await http.get("/qa/metrics.csv")
        assert csv.headers["content-type"].startswith("text/csv")
        header, *rows = csv.text.splitlines()
        assert header.startswith("rule,variant,goal,")
        assert any(
            r.startswith("exit-product,,custom purchase,1800,1,0,1,0,1,1,1,0,1,1.000000,")
            for r in rows
        )


@pytest.mark.parametrize("backend_url", ["redis"], indirect=True)
async def test_cli_audit_and_explain_read_the_same_store(
    qa: LiveServer,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with Visitor(qa.url, visitor="v_cliuser001") as v:
        assert v.info is not None
        session = v.info["session"]
        await v.send(v.event("page_view", PRODUCT))
        await v.wait_prompt(3)
    monkeypatch.setenv("CUEWIRE_KEY_PREFIX", settings.key_prefix)
    common = ["--redis-url", str(settings.redis_url), "--site", "test-site"]
    assert await asyncio.to_thread(main, ["audit", *common, "--session", session]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["at", "(UTC)", "outcome"]
    assert "hesitate-product" in lines[1] and " fired " in lines[1]
    assert (
        await asyncio.to_thread(main, ["audit", *common, "--outcome", "suppressed", "--json"]) == 0
    )
    assert capsys.readouterr().out == ""
    rules = ["--rules", str(settings.rules_dir), "--templates", str(settings.templates_dir)]
    assert await asyncio.to_thread(main, ["explain", session, *common, *rules]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"session {session} of visitor v_cliuser001")
    assert any(line.split()[:2] == ["hesitate-product", "fired"] for line in out.splitlines())
    assert await asyncio.to_thread(main, ["explain", "s_gone", *common, *rules]) == 1


# ---------------------------------------------------------------- the demo timings


SHOP = "http://127.0.0.1:8377"


@pytest.fixture
def demo(store: RedisStore, settings: Settings, tmp_path: Path) -> Harness:
    """The demo rule set on a fake clock, with the shipped templates it shows and sends."""
    templates = tmp_path / "templates"
    templates.mkdir()
    for name in ("toast", "chat_help", "exit_offer"):
        shutil.copy(ROOT / "templates" / f"{name}.html", templates)
    shutil.copytree(ROOT / "templates" / "email", templates / "email")  # email.yaml's
    return Harness(
        store, replace(settings, rules_dir=ROOT / "rules" / "demo", templates_dir=templates)
    )


async def returning(h: Harness, visitor: str) -> VisitorSession:
    """A visitor's second session (the first one saw the home page a minute ago)."""
    first = await h.visit(visitor, site="demo")
    await first.send("page_view", f"{SHOP}/")
    await h.pass_time(1)
    return await h.visit(visitor, site="demo")


async def on_product(v: VisitorSession, slug: str, category: str) -> None:
    url = f"{SHOP}/product/{slug}.html"
    await v.send("page_view", url)
    await v.send(
        "custom", url, name="product_view", props={"product_id": slug, "category": category}
    )


async def fired(h: Harness, v: VisitorSession) -> list[str]:
    """The prompts shown in ``v``'s session, by rule, in order (other sessions aside)."""
    audit = await h.audit("demo")
    return [r["rule"] for r in audit if r["session"] == v.origin.session and r["prompt"]]


async def dismiss_last(h: Harness, v: VisitorSession) -> None:
    prompt = h.shown[-1][1]
    await v.send("prompt_dismiss", f"{SHOP}/", prompt=prompt.id, rule=prompt.rule)


async def test_demo_new_visitor_pausing_10_s_is_welcomed(demo: Harness) -> None:
    v = await demo.visit("v_demo_new01", site="demo")
    await v.send("page_view", f"{SHOP}/")
    await demo.pass_time(9.5)
    assert await fired(demo, v) == []
    await demo.pass_time(1)
    assert await fired(demo, v) == ["first-visit-welcome"]


async def test_demo_product_page_chat_at_8_s_then_size_help_at_15_s(demo: Harness) -> None:
    v = await returning(demo, "v_demo_prod01")
    await on_product(v, "ridge-hiker", "shoes")
    await demo.pass_time(8.2)
    assert await fired(demo, v) == ["hesitation-product"]
    await dismiss_last(demo, v)
    await demo.pass_time(7)
    assert await fired(demo, v) == ["hesitation-product", "size-help"]


async def test_demo_exit_intent_and_category_offer(demo: Harness) -> None:
    v = await returning(demo, "v_demo_exit01")
    await on_product(v, "trail-runner", "shoes")
    await v.send("exit_intent", f"{SHOP}/product/trail-runner.html")
    assert await fired(demo, v) == ["exit-intent-product"]
    await dismiss_last(demo, v)
    await demo.pass_time(5)
    await on_product(v, "ridge-hiker", "shoes")
    await demo.pass_time(5)
    await on_product(v, "summit-boot", "shoes")
    assert await fired(demo, v) == ["exit-intent-product", "category-fan"]


async def test_demo_three_products_then_20_s_on_the_third_is_comparing(demo: Harness) -> None:
    v = await returning(demo, "v_demo_comp01")
    for slug, category in (("trail-runner", "shoes"), ("storm-shell", "jackets")):
        await on_product(v, slug, category)
        await demo.pass_time(3)
    await on_product(v, "summit-45", "packs")
    await v.attend(f"{SHOP}/product/summit-45.html", 19.5)  # reading it: attentive time
    assert await fired(demo, v) == []  # hesitation and size help give way after 3 products
    await demo.pass_time(1)
    assert await fired(demo, v) == ["comparing-gear"]


async def test_demo_cart_still_15_s_gets_5_percent_off_browsing_45_s_a_reminder(
    demo: Harness,
) -> None:
    still = await returning(demo, "v_demo_cart01")
    await on_product(still, "daypack-22", "packs")
    await still.send("custom", f"{SHOP}/product/daypack-22.html", name="add_to_cart")
    await demo.pass_time(15.5)
    assert await fired(demo, still) == ["cart-idle-offer"]

    browsing = await returning(demo, "v_demo_cart02")
    await browsing.send("page_view", f"{SHOP}/category/packs.html")
    await browsing.send("custom", f"{SHOP}/category/packs.html", name="add_to_cart")
    for _ in range(9):
        await demo.pass_time(5)
        await browsing.send("click", f"{SHOP}/category/packs.html", selector="h1")
    await demo.pass_time(1)
    assert await fired(demo, browsing) == ["cart-left"]


async def test_demo_article_still_there_and_returning_visitors(demo: Harness) -> None:
    reader = await returning(demo, "v_demo_read01")
    for depth in (25, 50, 75, 90):
        await reader.send("scroll", f"{SHOP}/blog/choosing-trail-shoes.html", depth=depth)
    assert await fired(demo, reader) == ["article-reader"]

    idle = await returning(demo, "v_demo_idle01")
    await idle.send("page_view", f"{SHOP}/")
    await demo.pass_time(41)
    assert await fired(demo, idle) == ["still-there"]

    cart = await demo.visit("v_demo_back01", site="demo")
    await cart.send("page_view", f"{SHOP}/category/packs.html")
    await cart.send("custom", f"{SHOP}/category/packs.html", name="add_to_cart")
    again = await demo.visit("v_demo_back01", site="demo")  # "New session" at once
    await again.send("page_view", f"{SHOP}/")
    assert await fired(demo, again) == ["returning-cart"]

    away = await demo.visit("v_demo_away01", site="demo")
    await away.send("page_view", f"{SHOP}/")
    await demo.pass_time(12)  # no input: the welcome shows; then "New session"
    later = await demo.visit("v_demo_away01", site="demo")
    await later.send("page_view", f"{SHOP}/")
    assert (await fired(demo, away), await fired(demo, later)) == (
        ["first-visit-welcome"],
        ["back-again"],
    )


async def test_demo_journal_read_closely_for_15_s_brings_a_specialist_left_open_nothing(
    demo: Harness,
) -> None:
    """docs/qa.md's row the browser test (test_browser_demo.py) walks with the window
    shortened: `article-attentive` as shipped asks for 15 s of attentive reading."""
    article = f"{SHOP}/blog/choosing-trail-shoes.html"
    reader = await returning(demo, "v_demo_close01")
    await reader.send("page_view", article)
    await reader.attend(article, 10)  # two beats: 10 s attentive
    await demo.pass_time(4.5)  # 14.5 s: the last beat counts on for up to 10 s
    assert "article-attentive" not in await fired(demo, reader)
    await demo.pass_time(1)
    assert await fired(demo, reader) == ["article-attentive"]

    idle = await returning(demo, "v_demo_open01")
    await idle.send("page_view", article)
    await demo.pass_time(60)  # visible a minute, but nobody there: no beat
    assert "article-attentive" not in await fired(demo, idle)


async def test_demo_policy_3_prompts_per_session_and_a_pause_after_3_dismissals(
    demo: Harness,
) -> None:
    v = await returning(demo, "v_demo_pol01")
    await on_product(v, "storm-shell", "jackets")
    await v.send("exit_intent", f"{SHOP}/product/storm-shell.html")
    await dismiss_last(demo, v)
    await demo.pass_time(8.5)  # hesitation
    await dismiss_last(demo, v)
    for depth in (25, 50, 75):
        await v.send("scroll", f"{SHOP}/blog/choosing-trail-shoes.html", depth=depth)
    assert await fired(demo, v) == ["exit-intent-product", "hesitation-product", "article-reader"]
    await dismiss_last(demo, v)
    await on_product(v, "ridge-hiker", "shoes")
    await v.send("exit_intent", f"{SHOP}/product/ridge-hiker.html")  # within 10 s of the 3rd
    await demo.pass_time(45)
    audit = [r for r in await demo.audit("demo") if r["session"] == v.origin.session]
    held = {r["rule"]: r for r in audit if r["outcome"] == "suppressed"}
    assert held["exit-intent-product"]["code"] == "dismiss_pause"
    assert held["exit-intent-product"]["reason"] == "paused after 3 dismissals"
    assert held["still-there"]["code"] == "cap_site"
    assert held["still-there"]["reason"] == "capped: 3 prompts per session (site policy)"
    assert len(await fired(demo, v)) == 3


async def test_a_token_of_one_process_admits_on_another_with_the_same_secret(
    settings: Settings,
) -> None:
    shared = replace(settings, admin_password=PASSWORD, secret="shared-secret-of-the-cluster")
    with LiveServer(shared, site_for) as one:
        minted = token(one)  # that process is gone: a restart, or a sibling behind a balancer
    with (
        LiveServer(shared, site_for) as other,
        LiveServer(replace(shared, secret=None), site_for) as lone,
        LiveServer(replace(shared, admin_password="a-new-password"), site_for) as changed,
    ):
        admin = await Admin(other.url).connect({"token": minted})
        await admin.until("hello")
        await admin.sio.disconnect()
        for stranger in (Admin(lone.url), Admin(changed.url)):  # no secret; a new password
            with pytest.raises(socketio.exceptions.ConnectionError):
                await stranger.connect({"token": minted})
            assert stranger.refused == "admin login required"
