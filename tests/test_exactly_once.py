"""Exactly once, across tabs and processes, and durable across a crash.

Two real `cuewire serve` processes share one real Redis, or a real Redis Cluster; one visitor
has three tabs open on them. Each qualifying behaviour fires its rule once, and a pending
deadline outlives a crash.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cuewire.delivery import PROMPT_ACK_TIMEOUT_S
from cuewire.settings import Settings
from cuewire.store import open_store
from support.paths import FIXTURES
from support.processes import ServerProcess, deadlines_settled_in, sites_file, start_all
from support.servers import free_port
from support.visitor import Visitor
from support.waiting import eventually

PRODUCT = "http://shop.test/product/boots"


@pytest.fixture(params=["redis", "cluster"])
def shared_url(request: pytest.FixtureRequest) -> str:
    """The store the processes share: one Redis, or a Redis Cluster (through its first node)."""
    return str(
        request.getfixturevalue("clean_redis" if request.param == "redis" else "clean_cluster")
    )


@pytest.fixture
def two_servers(shared_url: str, tmp_path: Path) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    ports = free_port(), free_port()
    sites = sites_file(tmp_path / "sites.yaml", *ports)
    servers = tuple(
        ServerProcess(shared_url, FIXTURES / "rules", FIXTURES / "templates", sites, port)
        for port in ports
    )
    start_all(*servers)
    yield servers  # type: ignore[misc]
    for server in servers:
        server.stop()


async def three_tabs(servers: tuple[ServerProcess, ServerProcess]) -> list[Visitor]:
    first = await Visitor(servers[0].url, tab="tab-a").connect()
    assert first.info
    session = first.info["session"]
    tabs = [first]
    for i, server in enumerate([servers[1], servers[0]]):
        tabs.append(await Visitor(server.url, tab=f"tab-{'bc'[i]}", session=session).connect())
    assert {t.info["session"] for t in tabs if t.info} == {session}
    return tabs


async def test_an_event_rule_fires_once_for_three_tabs_on_two_processes(two_servers) -> None:  # type: ignore[no-untyped-def]
    tabs = await three_tabs(two_servers)
    try:
        await asyncio.gather(*(t.send(t.event("page_view", PRODUCT)) for t in tabs))
        acks = await asyncio.gather(*(t.send(t.event("exit_intent", PRODUCT)) for t in tabs))
        # each ack comes after its batch's rules ran; the barrier lets pushes sent before land
        assert [ack["accepted"] for ack in acks] == [1, 1, 1]
        await asyncio.gather(*(t.barrier() for t in tabs))
        shown = [p["rule"] for t in tabs for p in t.prompts if p["rule"] == "exit-product"]
        assert shown == ["exit-product"]
    finally:
        await asyncio.gather(*(t.sio.disconnect() for t in tabs))


async def test_a_deadline_fires_once_for_three_tabs_on_two_processes(two_servers) -> None:  # type: ignore[no-untyped-def]
    tabs = await three_tabs(two_servers)
    try:
        await asyncio.gather(*(t.send(t.event("page_view", PRODUCT)) for t in tabs))
        # the 1 s hesitation deadline, claimed by either process: it comes to one of the tabs,
        # then nothing is pending or claimed any more and every push has landed
        await eventually(lambda: [p for t in tabs for p in t.prompts], what="the prompt")
        await deadlines_settled_in(two_servers[0].redis_url)
        await asyncio.gather(*(t.barrier() for t in tabs))
        shown = [p["rule"] for t in tabs for p in t.prompts]
        assert shown == ["hesitate-product"]
    finally:
        await asyncio.gather(*(t.sio.disconnect() for t in tabs))


def rules_due_in(tmp_path: Path, within: str) -> Path:
    rules = tmp_path / "rules"
    rules.mkdir()
    text = (
        (FIXTURES / "rules" / "rules.yaml").read_text().replace("within: 1s", f"within: {within}")
    )
    (rules / "rules.yaml").write_text(text)
    return rules


# the longest a prompt pushed to a dead socket takes to reach the tab that came back: the ack
# timeout, a retry or two of the hold, and room for a loaded machine
REDELIVERY_S = PROMPT_ACK_TIMEOUT_S + 6


@pytest.mark.parametrize("restart", ["before the deadline", "after the deadline"])
async def test_a_pending_deadline_survives_a_crash_and_restart(
    shared_url: str, tmp_path: Path, restart: str
) -> None:
    """Whether the restarted process comes back before the deadline or only after it (then
    it pushes the prompt to the dead socket first), the prompt reaches the tab that came back."""
    port = free_port()
    sites = sites_file(tmp_path / "sites.yaml", port)
    rules = rules_due_in(tmp_path, "4s")
    server = ServerProcess(shared_url, rules, FIXTURES / "templates", sites, port).start()
    v = await Visitor(server.url).connect()
    assert v.info
    await v.send(v.event("page_view", PRODUCT))
    sent = time.monotonic()
    server.kill()
    await v.sio.disconnect()
    restarted = ServerProcess(shared_url, rules, FIXTURES / "templates", sites, port).start()
    try:
        if restart == "after the deadline":  # it fires to the killed process's socket first
            await asyncio.sleep(max(0.0, sent + 4.5 - time.monotonic()))
        back = await Visitor(restarted.url, session=v.info["session"]).connect()
        assert back.info and back.info["session"] == v.info["session"]
        await back.send(back.event("visibility", PRODUCT, state="visible", dwell_ms=500))
        prompt = await back.wait_prompt(timeout=4 + REDELIVERY_S)
        assert prompt["rule"] == "hesitate-product"
        await back.sio.disconnect()
    finally:
        restarted.stop()


async def test_a_prompt_pushed_to_a_killed_process_reaches_the_tab_that_reconnects(
    shared_url: str, tmp_path: Path
) -> None:
    """The tab's socket is on process A; A is SIGKILLed before the deadline, so the session
    still names A's socket. Process B fires the deadline to that dead socket, gets no ack,
    holds the prompt and retries; the tab reconnects to B and gets it, counted and audited
    once."""
    ports = free_port(), free_port()
    sites = sites_file(tmp_path / "sites.yaml", *ports)
    rules = rules_due_in(tmp_path, "2s")
    a, b = start_all(
        *(ServerProcess(shared_url, rules, FIXTURES / "templates", sites, port) for port in ports)
    )
    store = await open_store(Settings(redis_url=shared_url)).__aenter__()  # what they share
    try:
        v = await Visitor(a.url).connect()
        assert v.info
        session = v.info["session"]
        await v.send(v.event("page_view", PRODUCT))
        a.kill()
        await v.sio.disconnect()
        # B fires the deadline to A's dead socket and waits for an ack that never comes
        await asyncio.sleep(2 + PROMPT_ACK_TIMEOUT_S / 2)
        assert (await store.session_facts("test-site", session)).get("sid"), "A's socket is named"
        back = await Visitor(b.url, session=session).connect()
        await back.send(back.event("visibility", PRODUCT, state="visible", dwell_ms=500))
        prompt = await back.wait_prompt(timeout=REDELIVERY_S)
        assert prompt["rule"] == "hesitate-product"
        await asyncio.sleep(0.5)  # the ack and the audit record land
        assert [p["id"] for p in back.prompts] == [prompt["id"]]
        facts = await store.session_facts("test-site", session)
        assert facts.get("fired:hesitate-product") == "1"
        records = await store.read_audit("test-site", 100)
        mine = [r for r in records if r["rule"] == "hesitate-product"]
        assert [(r["outcome"], r["prompt"]) for r in mine] == [("fired", prompt["id"])]
        await back.sio.disconnect()
    finally:
        await store.aclose()
        a.stop()
        b.stop()
