"""Targeted delivery across processes: a prompt goes to the one process holding the socket.

Three real `cuewire serve` processes share one real Redis. Only A runs its deadlines (B and C
poll for them once a minute, so they claim none in these tests): a tab on B gets A's prompt
through B's inbox, acks it, and A audits it once; C hears nothing of it. When B dies before
the prompt reaches the tab, the tab reconnects to C and gets it there, once.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from cuewire.delivery import PROMPT_ACK_TIMEOUT_S
from cuewire.inbox import TTL_S
from cuewire.keys import Keys
from cuewire.settings import Settings
from cuewire.sockets import parse_address, socket_address
from support.paths import FIXTURES
from support.processes import ServerProcess, deadlines_settled_in, sites_file, start_all
from support.servers import LiveServer, free_port, site_for
from support.visitor import Visitor
from support.waiting import eventually

PRODUCT = "http://shop.test/product/boots"
PASSWORD = "inbox-test"
RULE = "hesitate-product"  # a 1 s deadline after a product page_view (tests/fixtures/rules)
KEYS = Keys("cw")


class Proc(ServerProcess):
    """A server process, with its id and its metrics."""

    async def process_id(self) -> str:
        async with httpx.AsyncClient() as http:
            return str((await http.get(self.url + "/healthz")).json()["process"])

    async def counted(self, metric: str, kind: str = "") -> float:
        """The value of a counter of /metrics (0 when it was never counted)."""
        async with httpx.AsyncClient() as http:
            text = (await http.get(self.url + "/metrics", auth=("admin", PASSWORD))).text
        label = f'{{kind="{kind}"}}' if kind else ""
        found = re.search(rf"^{metric}{re.escape(label)} (\S+)$", text, re.MULTILINE)
        return float(found.group(1)) if found else 0.0


@pytest.fixture
def three(clean_redis: str, tmp_path: Path) -> Iterator[tuple[Proc, Proc, Proc]]:
    """A runs the deadlines; B and C look for due ones once a minute (at start, when there
    are none): every deadline is fired by A."""
    ports = free_port(), free_port(), free_port()
    sites = sites_file(tmp_path / "sites.yaml", *ports)
    polls = ["0.02", "60", "60"]
    procs = tuple(
        Proc(
            clean_redis,
            FIXTURES / "rules",
            FIXTURES / "templates",
            sites,
            port,
            env={"CUEWIRE_ADMIN_PASSWORD": PASSWORD, "CUEWIRE_TIMER_POLL_S": poll},
        )
        for port, poll in zip(ports, polls, strict=True)
    )
    start_all(*procs[1:])  # B and C tick once before A schedules anything
    procs[0].start()
    yield procs  # type: ignore[misc]
    for proc in procs:
        proc.stop()


async def tab_waiting_on(proc: Proc) -> tuple[Visitor, str, str]:
    """A tab on ``proc`` whose page_view armed the hesitation deadline: the tab, its session
    and ``proc``'s inbox."""
    tab = await Visitor(proc.url).connect()
    assert tab.info
    await tab.send(tab.event("page_view", PRODUCT))
    return tab, tab.info["session"], KEYS.inbox(await proc.process_id())


def audited(client: redis.Redis, rule: str) -> list[tuple[str, str]]:
    records = [f for _, f in client.xrange(KEYS.audit("test-site"))]
    return [(r["outcome"], r["prompt"]) for r in records if r["rule"] == rule]


async def test_a_deadline_fired_by_one_process_reaches_the_tab_on_another_once(
    three: tuple[Proc, Proc, Proc], clean_redis: str
) -> None:
    a, b, c = three
    client = redis.Redis.from_url(clean_redis, decode_responses=True)
    tab = await Visitor(b.url).connect()
    try:
        assert tab.info
        session = tab.info["session"]
        process, _ = parse_address(client.hget(KEYS.session("test-site", session), "sid") or "")
        assert process == await b.process_id(), "the socket record names the process holding it"
        await tab.send(tab.event("page_view", PRODUCT))
        prompt = await tab.wait_prompt(timeout=5)
        assert prompt["rule"] == RULE
        await deadlines_settled_in(clean_redis)  # acked: fired, not held for a retry
        await tab.barrier()
        assert [p["id"] for p in tab.prompts] == [prompt["id"]]
        assert audited(client, RULE) == [("fired", prompt["id"])]
        assert client.hget(KEYS.session("test-site", session), f"fired:{RULE}") == "1"
        # one message to the holder and one answer back; none for the process not involved
        sent, received = "cuewire_inbox_sent_total", "cuewire_inbox_received_total"
        assert (await a.counted(sent, "prompt"), await a.counted(received, "answer")) == (1, 1)
        assert (await b.counted(received, "prompt"), await b.counted(sent, "answer")) == (1, 1)
        assert [await c.counted(received, k) for k in ("prompt", "answer")] == [0, 0]
        assert [await c.counted(sent, k) for k in ("prompt", "answer")] == [0, 0]
        # the handled messages are trimmed once the inbox is idle; each inbox expires unless
        # its process lives on
        for proc in three:
            inbox = KEYS.inbox(await proc.process_id())
            await eventually(lambda i=inbox: client.xlen(i), lambda n: n <= 1, what="a trim")
            assert 0 < client.ttl(inbox) <= TTL_S
    finally:
        await tab.sio.disconnect()


async def test_a_prompt_for_a_killed_holder_reaches_the_tab_on_another_process_once(
    three: tuple[Proc, Proc, Proc], clean_redis: str
) -> None:
    """B is SIGKILLed after the page_view: A fires the deadline into B's inbox (it outlives B
    until its expiry), no answer comes, A holds the prompt and resends it under the same
    firing; the tab reconnects to C, which takes it from C's inbox. Counted and audited once."""
    a, b, c = three
    client = redis.Redis.from_url(clean_redis, decode_responses=True)
    tab, session, b_inbox = await tab_waiting_on(b)
    b.kill()
    await tab.sio.disconnect()
    # A sends the prompt to the dead process's inbox, where nobody reads it
    await eventually(lambda: a.counted("cuewire_inbox_sent_total", "prompt"), what="a send")
    assert client.xlen(b_inbox) >= 2  # B's START mark, then A's prompt
    back = await Visitor(c.url, session=session).connect()
    try:
        await back.send(back.event("visibility", PRODUCT, state="visible", dwell_ms=500))
        prompt = await back.wait_prompt(timeout=PROMPT_ACK_TIMEOUT_S + 5)
        assert prompt["rule"] == RULE
        await deadlines_settled_in(clean_redis)
        await back.barrier()
        assert [p["id"] for p in back.prompts] == [prompt["id"]]
        assert audited(client, RULE) == [("fired", prompt["id"])]
        assert client.hget(KEYS.session("test-site", session), f"fired:{RULE}") == "1"
        assert await c.counted("cuewire_inbox_received_total", "prompt") >= 1
    finally:
        await back.sio.disconnect()


async def test_a_backend_event_on_one_process_pushes_its_prompt_to_the_tab_on_another(
    three: tuple[Proc, Proc, Proc], clean_redis: str
) -> None:
    """A prompt without an ack: the site's backend posts exit_intent to A for the visitor
    whose tab is on B; the prompt goes to B's inbox only, and no answer comes back."""
    a, b, c = three
    tab = await Visitor(b.url).connect()
    try:
        await tab.send(tab.event("page_view", PRODUCT))
        async with httpx.AsyncClient(base_url=a.url) as http:
            posted = await http.post(
                "/v1/events",
                json={
                    "site": "test-site",
                    "visitor": "v_visitor01",
                    "events": [{"type": "exit_intent", "ts": 1, "seq": 0, "url": PRODUCT}],
                },
                headers={"Authorization": "Bearer k-test"},
            )
        assert posted.status_code == 200 and posted.json()["accepted"] == 1, posted.text
        prompt = await tab.wait_prompt(timeout=5)
        assert prompt["rule"] == "exit-product"
        assert await b.counted("cuewire_inbox_received_total", "prompt") >= 1
        assert await b.counted("cuewire_inbox_sent_total", "answer") == 0
        assert await c.counted("cuewire_inbox_received_total", "prompt") == 0
    finally:
        await tab.sio.disconnect()


async def test_a_process_that_stops_deletes_its_inbox_and_senders_learn_it_at_once(
    three: tuple[Proc, Proc, Proc], clean_redis: str
) -> None:
    """B stops gracefully with the tab's socket still named in the store: its inbox is gone,
    so A's send is refused at once (no wait for an ack) and the prompt is held for the tab."""
    a, b, c = three
    client = redis.Redis.from_url(clean_redis, decode_responses=True)
    _tab, session, b_inbox = await tab_waiting_on(b)
    stale = client.hget(KEYS.session("test-site", session), "sid")
    b.stop()
    assert not client.exists(b_inbox)
    # the socket record of a closed socket is released; put B's back as a crash leaves it
    client.hset(KEYS.session("test-site", session), "sid", stale or "")
    await eventually(
        lambda: a.counted("cuewire_inbox_unreachable_total"), what="a refused send", timeout=5
    )
    assert not client.exists(b_inbox), "a refused send leaves no stream behind"
    assert await a.counted("cuewire_inbox_sent_total", "prompt") == 0
    back = await Visitor(c.url, session=session).connect()
    try:
        await back.send(back.event("visibility", PRODUCT, state="visible", dwell_ms=500))
        prompt = await back.wait_prompt(timeout=5)
        await deadlines_settled_in(clean_redis)
        assert audited(client, RULE) == [("fired", prompt["id"])]
    finally:
        await back.sio.disconnect()


async def test_the_inbox_reader_is_supervised_reported_and_its_inbox_deleted_on_close(
    clean_redis: str,
) -> None:
    """In one process: /healthz shows the reader among the background tasks, and the
    process's id; the inbox exists and expires while the app runs, and is deleted when the app
    closes."""
    settings = Settings(
        redis_url=clean_redis,
        rules_dir=FIXTURES / "rules",
        templates_dir=FIXTURES / "templates",
        timer_poll_s=0.02,
    )
    client = redis.Redis.from_url(clean_redis, decode_responses=True)
    with LiveServer(settings, site_for) as server:
        inbox = KEYS.inbox(server.services.sockets.process)
        async with httpx.AsyncClient() as http:
            health = (await http.get(server.url + "/healthz")).json()
        assert health["process"] == server.services.sockets.process
        assert health["tasks"]["inbox"]["running"] is True
        await eventually(lambda: client.exists(inbox), what="the inbox")
        assert 0 < client.ttl(inbox) <= TTL_S
    assert not client.exists(inbox)


def test_a_socket_address_names_its_process_and_an_old_bare_sid_names_none() -> None:
    assert parse_address(socket_address("w1", "Ab-c_9")) == ("w1", "Ab-c_9")
    assert parse_address("Ab-c_9") == ("", "Ab-c_9")  # recorded by a version without inboxes


async def test_on_a_redis_cluster_a_prompt_reaches_the_tab_on_another_process(
    clean_cluster: str, tmp_path: Path
) -> None:
    """The inboxes on a Redis Cluster: each inbox is one key of its own slot, on whichever
    node holds it; the reader and the senders find it through the cluster client."""
    ports = free_port(), free_port()
    sites = sites_file(tmp_path / "sites.yaml", *ports)
    a, b = (
        Proc(
            clean_cluster,
            FIXTURES / "rules",
            FIXTURES / "templates",
            sites,
            port,
            env={"CUEWIRE_ADMIN_PASSWORD": PASSWORD, "CUEWIRE_TIMER_POLL_S": poll},
        )
        for port, poll in zip(ports, ("0.02", "60"), strict=True)
    )
    b.start()  # B ticks once before A schedules anything: every deadline is fired by A
    a.start()
    tab = await Visitor(b.url).connect()
    try:
        await tab.send(tab.event("page_view", PRODUCT))
        prompt = await tab.wait_prompt(timeout=5)
        assert prompt["rule"] == RULE
        await deadlines_settled_in(clean_cluster)  # acked: fired, not held for a retry
        sent, received = "cuewire_inbox_sent_total", "cuewire_inbox_received_total"
        assert (await a.counted(sent, "prompt"), await a.counted(received, "answer")) == (1, 1)
        assert (await b.counted(received, "prompt"), await b.counted(sent, "answer")) == (1, 1)
    finally:
        await tab.sio.disconnect()
        a.stop()
        b.stop()
