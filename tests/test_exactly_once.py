"""Exactly once, across tabs and processes, and durable across a crash.

Two real `cuewire serve` processes share one real Redis; one visitor has three tabs open on
them. Each qualifying behaviour fires its rule once, and a pending deadline outlives a crash.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.paths import FIXTURES
from support.processes import ServerProcess, deadlines_settled_in, sites_file
from support.servers import free_port
from support.visitor import Visitor
from support.waiting import eventually

PRODUCT = "http://shop.test/product/boots"


@pytest.fixture
def two_servers(clean_redis: str, tmp_path: Path) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    ports = free_port(), free_port()
    sites = sites_file(tmp_path / "sites.yaml", *ports)
    servers = tuple(
        ServerProcess(clean_redis, FIXTURES / "rules", FIXTURES / "templates", sites, port)
        for port in ports
    )
    for server in servers:
        server.start()
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


async def test_a_pending_deadline_survives_a_crash_and_restart(
    clean_redis: str, tmp_path: Path
) -> None:
    port = free_port()
    sites = sites_file(tmp_path / "sites.yaml", port)
    rules = tmp_path / "rules"
    rules.mkdir()
    text = (FIXTURES / "rules" / "rules.yaml").read_text().replace("within: 1s", "within: 4s")
    (rules / "rules.yaml").write_text(text)
    server = ServerProcess(clean_redis, rules, FIXTURES / "templates", sites, port).start()
    v = await Visitor(server.url).connect()
    assert v.info
    await v.send(v.event("page_view", PRODUCT))
    server.kill()
    await v.sio.disconnect()
    restarted = ServerProcess(clean_redis, rules, FIXTURES / "templates", sites, port).start()
    try:
        back = await Visitor(restarted.url, session=v.info["session"]).connect()
        assert back.info and back.info["session"] == v.info["session"]
        await back.send(back.event("visibility", PRODUCT, state="visible", dwell_ms=500))
        prompt = await back.wait_prompt(timeout=6)
        assert prompt["rule"] == "hesitate-product"
        await back.sio.disconnect()
    finally:
        restarted.stop()
