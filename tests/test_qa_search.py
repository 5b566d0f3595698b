"""The QA search beyond the streams (admin/qasearch.py, docs/qa.md "Find sessions"): a visitor
whose entries a busy site pushed out of the live stream is still found by visitor id, user id
and session id (the store's index of a visitor's sessions, the verified user link, the
session's hash); with the export configured, URL and rule searches reach sessions the streams
no longer hold (PostgreSQL); every answer says what it covered.

The streams are made short with a small ``live_stream_max`` and a busy visitor's batches (the
audit stream, capped at 100,000 records, is trimmed by hand in the export test). On a real
Redis, the embedded store and a Redis Cluster; the export on the PostgreSQL server at
127.0.0.1:5432, in a database of the test's own.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import asyncpg
import httpx
import pytest

from cuewire.identity import sign
from cuewire.settings import Settings
from cuewire.sites import Site, Sites
from cuewire.store import RedisStore
from support.harness import Harness, VisitorSession
from support.servers import WITH_CLUSTER, LiveServer
from support.visitor import Visitor
from support.waiting import eventually

BACKENDS = WITH_CLUSTER

PASSWORD = "qa-secret-1"
BASIC = {"Authorization": "Basic " + base64.b64encode(f"admin:{PASSWORD}".encode()).decode()}
SITE = "test-site"
SHOP = "http://shop.test"
IDENTITY = "identity-secret-of-the-search-test"
USER = "u-old-customer"
POSTGRES = "postgresql://postgres@127.0.0.1:5432"


def sites(origin: str) -> Sites:
    return Sites({SITE: Site(origins=[origin], identity_secret=IDENTITY)})


@pytest.fixture
def short(settings: Settings) -> Settings:
    """Settings whose live stream keeps about ten batches (trimmed approximately: Redis
    drops whole nodes of ~100 entries)."""
    return replace(settings, admin_password=PASSWORD, live_stream_max=10)


@pytest.fixture
def qa(short: Settings) -> Iterator[LiveServer]:
    with LiveServer(short, sites) as server:
        yield server


async def find(server: LiveServer, by: str, q: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=server.url, headers=BASIC, timeout=20) as http:
        reply = await http.get("/qa/api/search", params={"site": SITE, "by": by, "q": q})
    assert reply.status_code == 200, reply.text
    answer: dict[str, Any] = reply.json()
    return answer


def sessions(answer: dict[str, Any]) -> list[str]:
    return [s["session"] for s in answer["sessions"]]


def source(answer: dict[str, Any], name: str) -> dict[str, Any]:
    [found] = [s for s in answer["covered"]["sources"] if s["source"] == name]
    return found


async def old_visit(server: LiveServer, visitor: str, *paths: str) -> str:
    """A visit of ``visitor`` (a signed identify as USER, then a scroll on each of ``paths``);
    its session id."""
    async with Visitor(server.url, visitor=visitor) as v:
        signed = v.event(
            "identify", f"{SHOP}/old-page", user_id=USER, signature=sign(IDENTITY, USER)
        )
        ack = await v.send(signed, *(v.event("scroll", f"{SHOP}{p}", depth=20) for p in paths))
        assert ack["accepted"] == 1 + len(paths), ack
        assert v.info is not None
        return str(v.info["session"])


async def push_out(server: LiveServer, visitor: str) -> None:
    """A busy visitor's batches, until the live stream holds no entry of ``visitor``."""
    store = server.services.store

    async def still_there() -> bool:
        await store.deferred()  # on a cluster the live stream is written after the batch
        return any(e.get("visitor") == visitor for e in await store.read_live(SITE, 100_000))

    async with Visitor(server.url, visitor="v_busy00001", tab="busy") as busy:
        for _ in range(40):
            for _ in range(20):
                await busy.send(busy.event("scroll", f"{SHOP}/busy", depth=10))
            if not await server.call(still_there()):
                return
    raise AssertionError(f"{visitor} is still in the live stream after 800 batches")


# ---------------------------------------------------------------- the store's index


async def test_a_visitor_pushed_out_of_the_streams_is_found_by_visitor_user_and_session(
    qa: LiveServer,
) -> None:
    session = await old_visit(qa, "v_old000001", "/old-page")
    store = qa.services.store
    linked = await qa.call(store.visitor_of_user(SITE, USER))
    assert linked == "v_old000001"  # the signed identify made the verified link
    await push_out(qa, "v_old000001")
    audit = await qa.call(store.read_audit(SITE, 100_000))
    assert not [r for r in audit if r.get("visitor") == "v_old000001"]  # nothing fired

    for by, q in (("visitor", "v_old000001"), ("user", USER), ("session", session)):
        answer = await find(qa, by, q)
        assert sessions(answer) == [session], (by, answer)
        [hit] = answer["sessions"]
        assert hit["visitor"] == "v_old000001" and hit["live"] is True
        assert f"{SHOP}/old-page" in hit["urls"]
        covered = answer["covered"]
        assert covered["source"] == "index"
        streams = source(answer, "streams")
        # the streams begin after the visit: only the index reached it
        assert streams["since_ms"] > hit["last_at"]
        assert covered["since_ms"] == source(answer, "index")["since_ms"] < hit["first_at"]
        assert covered["entries"] == streams["entries"] > 0

    # what only the streams could find is gone from them: a URL search says how far it looked
    by_url = await find(qa, "url", "/old-page")
    assert sessions(by_url) == []
    assert by_url["covered"]["source"] == "streams"
    assert [s["source"] for s in by_url["covered"]["sources"]] == ["streams"]
    assert by_url["covered"]["since_ms"] == source(by_url, "streams")["since_ms"]


async def test_the_index_keeps_each_session_as_long_as_its_keys_and_reset_forgets_it(
    qa: LiveServer,
) -> None:
    first = await old_visit(qa, "v_twice0001")
    async with Visitor(qa.url, visitor="v_twice0001", session=first) as again:
        assert again.info is not None and again.info["session"] == first  # resumed: one session
    store = qa.services.store
    k = store.keys
    index = k.visitor_sessions(SITE, "v_twice0001")
    ttl = await qa.call(store.client.ttl(index))
    session_ttl = await qa.call(store.client.ttl(k.session(SITE, first, "v_twice0001")))
    assert abs(ttl - session_ttl) <= 2
    now = qa.services.clock.now_ms()
    held = await qa.call(store.visitor_sessions(SITE, "v_twice0001", now))
    assert list(held) == [first]
    # past the session's keys' lifetime, the index no longer answers for it
    later = now + (qa.services.settings.session_ttl_s + 360) * 1000 + 1000
    assert await qa.call(store.visitor_sessions(SITE, "v_twice0001", later)) == {}

    async with httpx.AsyncClient(base_url=qa.url, headers=BASIC) as http:
        token = (await http.get("/qa/api/token")).json()["token"]
        reply = await http.post(
            "/qa/api/reset",
            json={"site": SITE, "visitor": "v_twice0001"},
            headers={"X-Cuewire-Token": token},
        )
    assert reply.status_code == 200 and reply.json()["sessions"] == [first]
    assert await qa.call(store.client.exists(index)) == 0


async def test_each_batch_keeps_its_session_in_the_index_as_long_as_its_keys(
    store: RedisStore, settings: Settings
) -> None:
    """ingest.lua refreshes the index with the session's keys' time to live (once a minute
    at most, and at once for a key the batch makes, such as a new tab's seen set): a session
    with batches stays found while its keys live, then drops out with them."""
    h = Harness(store, settings)
    v = await h.visit(visitor="v_batches01")
    session = v.origin.session
    lifetime_ms = (settings.session_ttl_s + 360) * 1000  # open_session.lua: + GRACE + REFRESH
    opened = h.clock.now_ms()
    for tab in ("tab2", "tab3", "tab4"):  # past the first lifetime, a batch every 20 minutes
        h.clock.advance(20 * 60)
        await VisitorSession(h, replace(v.origin, tab=tab)).send("scroll", depth=30)
    last = h.clock.now_ms()
    held = await store.visitor_sessions(SITE, "v_batches01", opened + lifetime_ms + 1)
    assert held == {session: last}
    assert await store.visitor_sessions(SITE, "v_batches01", last + lifetime_ms) == held
    assert await store.visitor_sessions(SITE, "v_batches01", last + lifetime_ms + 1) == {}
    # a second session joins the first; both are the visitor's
    h.clock.advance(1)
    w = await h.visit(visitor="v_batches01")
    await w.send("scroll", depth=40)
    both = await store.visitor_sessions(SITE, "v_batches01", h.clock.now_ms())
    assert list(both) == [w.origin.session, session]  # newest first
    ttl = await store.client.ttl(store.keys.visitor_sessions(SITE, "v_batches01"))
    assert lifetime_ms // 1000 - 2 <= ttl <= lifetime_ms // 1000


# ---------------------------------------------------------------- the export


@pytest.mark.parametrize("backend_url", ["redis", "embedded"], indirect=True)
async def test_url_and_rule_search_reach_old_sessions_through_the_export(
    short: Settings, pg_dsn: str
) -> None:
    with LiveServer(replace(short, export_dsn=pg_dsn), sites) as server:
        async with Visitor(server.url, visitor="v_boots0001") as v:
            await v.send(v.event("page_view", f"{SHOP}/product/old-boots"))
            await v.wait_prompt(4)  # hesitate-product fires after 1 s on a product page
            old = str(v.info["session"])  # type: ignore[index]

        async def exported() -> int:
            conn = await asyncpg.connect(pg_dsn)
            try:
                return int(
                    await conn.fetchval(
                        "SELECT count(*) FROM cuewire_decisions WHERE session = $1", old
                    )
                )
            finally:
                await conn.close()

        # the export task makes its tables when it starts: not there yet is "not yet"
        await eventually(
            exported, ignoring=(asyncpg.UndefinedTableError,), what="the firing exported"
        )
        await push_out(server, "v_boots0001")
        store = server.services.store
        # the audit stream keeps 100,000 records: trimmed here as a busy site would
        await server.call(store.client.xtrim(store.keys.audit(SITE), maxlen=0))

        for by, q in (("url", "/product/old-boots"), ("rule", "hesitate-product")):
            answer = await find(server, by, q)
            assert sessions(answer) == [old], (by, answer)
            [hit] = answer["sessions"]
            assert hit["visitor"] == "v_boots0001"
            assert f"{SHOP}/product/old-boots" in hit["urls"]
            assert "hesitate-product" in hit["rules"]
            covered = answer["covered"]
            assert covered["source"] == "export"
            export = source(answer, "export")
            assert "code" not in export
            assert covered["since_ms"] == export["since_ms"] <= hit["last_at"]
            assert source(answer, "streams")["since_ms"] > hit["last_at"]
        by_visitor = await find(server, "visitor", "v_boots0001")
        assert sessions(by_visitor) == [old]
        assert by_visitor["covered"]["source"] == "export"
        assert {s["source"] for s in by_visitor["covered"]["sources"]} == {
            "export",
            "index",
            "streams",
        }


@pytest.mark.parametrize("backend_url", ["redis"], indirect=True)
async def test_an_unreachable_export_is_reported_and_the_other_sources_answer(
    short: Settings,
) -> None:
    broken = replace(short, export_dsn=f"{POSTGRES}/cw_no_such_database_{uuid.uuid4().hex[:8]}")
    with LiveServer(broken, sites) as server:
        session = await old_visit(server, "v_nopg00001")
        answer = await find(server, "visitor", "v_nopg00001")
        assert sessions(answer) == [session]
        assert source(answer, "export") == {
            "source": "export",
            "since_ms": None,
            "code": "export_unavailable",
        }
        assert answer["covered"]["source"] == "index"
