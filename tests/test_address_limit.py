"""The per-address rate limit on a Redis Cluster, decided in each process and shared every
``address_sync_s`` (store/addresses.py): one process answers as one Redis does, several stay
within the documented bound (docs/deploy.md, "Redis Cluster"), memory stays bounded, and a
node that stops answering the syncs leaves the batches alone. Run on the test's own
3-primary cluster (conftest.py ``redis_cluster``)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
from redis.asyncio.cluster import RedisCluster

from cuewire.gate import browser_gate, sort_out
from cuewire.ratelimit import Rate
from cuewire.settings import Limits, Settings
from cuewire.store import RedisStore, open_store
from cuewire.store.addresses import SharedAddressLimit
from support.harness import FakeClock, Harness, VisitorSession
from support.servers import LiveServer, RedisClusterServer, site_for
from support.visitor import Visitor
from support.waiting import eventually
from test_cluster import delta, script_calls

BACKENDS = ("cluster",)
PAGE = "http://shop.test/about"
ADDRESS = "203.0.113.9"
SYNC_MS = 100


def narrow(settings: Settings, per_second: float, burst: int) -> Settings:
    """Only the address limit binds (the visitors' own is off), and no rules run."""
    limits = Limits(
        events_per_second=0, address_events_per_second=per_second, address_event_burst=burst
    )
    return replace(settings, limits=limits, rules_dir=Path("no-rules"), live_stream_max=0)


def shared(store: RedisStore) -> SharedAddressLimit:
    limit = store.address_limit
    assert limit is not None, "a store on a cluster decides the address limit itself"
    return limit


@asynccontextmanager
async def process(settings: Settings, clock: FakeClock) -> AsyncIterator[Harness]:
    """One more Cuewire process's store (its own client and address limit), on ``clock``."""
    async with open_store(settings) as store:
        yield Harness(store, settings, clock)


async def batch(h: Harness, visitor: str | VisitorSession, events: int) -> tuple[int, int]:
    """A batch of ``events`` page views from ADDRESS (a new session of ``visitor`` when it
    is a name): (accepted, retry_ms) as the ack says."""
    v = await h.visit(visitor) if isinstance(visitor, str) else visitor
    sent = []
    for _ in range(events):
        sent.append({"type": "page_view", "ts": h.clock.now, "seq": h.seq, "url": PAGE})
        h.seq += 1
    gate = browser_gate(h.settings.limits, ADDRESS)
    done = await h.pipeline.process(v.origin, sent, h.clock.now_ms(), gate)
    rejected: list[Any] = []
    kept, retry = sort_out(list(enumerate(sent)), rejected, done.admitted, gate)
    assert {r.code for r in rejected} <= {"rate_limited"}
    return len(kept), retry or 0


async def test_one_process_answers_as_one_redis_does(
    settings: Settings, clean_redis: str, clean_cluster: str
) -> None:
    """The same batches, at the same times, get the same answers (accepted, retry_ms) from a
    process on one Redis (ingest.lua decides) and from one on a cluster (decided here,
    synced every 100 ms)."""
    settings = narrow(settings, per_second=10, burst=20)
    plan = [(0, 8), (10, 8), (20, 8), (150, 3), (400, 5), (405, 1), (1600, 20), (1700, 2)]
    answers: dict[str, list[tuple[int, int]]] = {}
    for url in (clean_redis, clean_cluster):
        clock = FakeClock()
        async with process(replace(settings, redis_url=url), clock) as h:
            limit = h.store.address_limit
            if limit is not None:
                limit.start()
            got, start, synced = [], clock.now, clock.now
            for at_ms, events in plan:
                clock.now = start + at_ms
                if limit is not None and clock.now - synced >= SYNC_MS:
                    await limit.sync()
                    synced = clock.now
                got.append(await batch(h, f"v_one{at_ms:05d}", events))
            answers[url] = got
    assert answers[clean_cluster] == answers[clean_redis]
    assert [a for a, _ in answers[clean_redis]] == [8, 8, 4, 1, 3, 0, 12, 1]
    assert all(retry > 0 for accepted, retry in answers[clean_redis][2:] if accepted < 8)


async def test_two_processes_on_one_address_stay_within_the_documented_bound(
    settings: Settings,
) -> None:
    """Two processes, each sent 300 events/s from one address limited to 100/s (bursts of
    50), each syncing every 100 ms, for 3 s: together they admit at most
    rate * T + burst + processes * 300/s * (2 * 100 ms), the bound docs/deploy.md gives, and
    at least what one process alone may admit (rate * T)."""
    rate, burst, seconds, per_process = 100, 50, 3, 300
    settings = narrow(settings, per_second=rate, burst=burst)
    clock = FakeClock()
    admitted = [0, 0]
    async with process(settings, clock) as one, process(settings, clock) as two:
        processes = [one, two]
        for h in processes:
            shared(h.store).start()
        start = clock.now
        for step in range(seconds * 1000 // SYNC_MS):
            for offset in (0, 33, 66):  # each process: 10 events per 33 ms
                clock.now = start + step * SYNC_MS + offset
                for i, h in enumerate(processes):
                    accepted, _ = await batch(h, f"v_two{i}{step:03d}{offset:02d}", 10)
                    admitted[i] += accepted
            clock.now = start + (step + 1) * SYNC_MS
            for h in processes:
                await shared(h.store).sync()
    total = sum(admitted)
    lag_s = 2 * SYNC_MS / 1000
    bound = rate * seconds + burst + len(processes) * per_process * lag_s
    assert rate * seconds <= total <= bound, f"admitted {admitted}, bound {bound:g}"
    assert min(admitted) > 0, f"both processes admit some: {admitted}"


async def test_without_syncs_two_processes_would_each_admit_the_limit(
    settings: Settings,
) -> None:
    """What the syncs prevent: the same two processes, never syncing, admit the limit each
    (so the bound above is the syncs' doing)."""
    settings = narrow(settings, per_second=100, burst=50)
    clock = FakeClock()
    admitted = 0
    async with process(settings, clock) as one, process(settings, clock) as two:
        for h in (one, two):
            shared(h.store).start()
        start = clock.now
        for step in range(30):
            clock.now = start + step * SYNC_MS
            for i, h in enumerate((one, two)):
                admitted += (await batch(h, f"v_no{i}{step:03d}", 30))[0]
    assert admitted > 100 * 3 + 50 + 2 * 300 * 0.2


async def test_a_batch_takes_one_script_call_and_a_sync_one_per_address(
    store: RedisStore, settings: Settings, redis_cluster: RedisClusterServer
) -> None:
    """The batch's own script only (no call for the address); a sync then reads and charges
    every address the process holds with one call each, and forgets them once their counts
    are sent and their time has passed."""
    settings = narrow(settings, per_second=1, burst=10)
    h = Harness(store, settings)
    limit = shared(store)
    limit.start()
    v = await h.visit("v_calls01")
    await batch(h, v, 1)  # the session's first batch: the process learns its facts
    await store.deferred()
    before = script_calls(redis_cluster)
    await batch(h, v, 3)
    await store.deferred()
    # the batch's script, and after it the live stream's entry (live_add.lua, its own slot)
    assert sum(delta(before, script_calls(redis_cluster)).values()) == 2
    gate = browser_gate(settings.limits, "")
    for n in range(20):
        assert limit.take(f"198.51.100.{n}", gate.address_rate, 1, h.clock.now_ms()) == (1, 0)
    await limit.sync()  # (the first on a node also loads the script there)
    before = script_calls(redis_cluster)
    assert await limit.sync() == 21
    assert sum(delta(before, script_calls(redis_cluster)).values()) == 21
    h.clock.advance(20)
    assert await batch(h, v, 1) == (1, 0)  # the process's time moves on with its batches
    await limit.sync()  # sends the last count
    h.clock.advance(20)
    assert await batch(h, v, 1) == (1, 0)
    await limit.sync()
    assert len(limit) == 1, "only the address of the latest batch is left"


async def test_addresses_past_the_cap_are_asked_of_the_shared_key_and_memory_stays_bounded(
    store: RedisStore, settings: Settings, redis_cluster: RedisClusterServer
) -> None:
    """Thousands of made-up addresses (rotated by an attacker, or garbage): the process keeps
    at most ``max_addresses``; a batch from one more is decided by the shared key (one
    more call, exact) and counted in ``full``; syncs forget the old ones."""
    settings = narrow(settings, per_second=10, burst=20)
    limit = shared(store)
    limit.start()
    limit.max_addresses = 100
    rate = Rate(10, 20)
    clock = FakeClock()
    odd = ["", "::1", "x" * 5000, "é{}:ra", "\x00"]
    decided = [limit.take(f"{odd[n % 5]}{n}", rate, 1, clock.now_ms()) for n in range(5000)]
    assert len(limit) == 100 and limit.full == 4900
    assert decided.count((1, 0)) == 100 and decided.count(None) == 4900
    h = Harness(store, settings, clock)
    v = await h.visit("v_full01")
    await batch(h, v, 1)  # the session's first batch: the process learns its facts
    await store.deferred()
    before = script_calls(redis_cluster)
    assert await batch(h, v, 2) == (2, 0)  # from ADDRESS: not among the 100
    await store.deferred()
    # the address's key, the batch's script, and the live stream's entry after it
    assert sum(delta(before, script_calls(redis_cluster)).values()) == 3
    await limit.sync()  # the 100 addresses' counts sent
    clock.advance(1)
    assert await batch(h, v, 1) == (1, 0)  # (the process's time moves on with its batches)
    await limit.sync()
    assert len(limit) == 0, "counts sent, time passed: forgotten"
    assert limit.take("203.0.113.200", rate, 1, clock.now_ms()) == (1, 0), "room again"


async def test_while_redis_does_not_answer_the_limit_decides_here_and_the_syncs_recover(
    settings: Settings, clean_cluster: str, redis_cluster: RedisClusterServer
) -> None:
    """Every node freezes (a Redis that stops answering): the syncs fail and /healthz says
    so, the process still decides from its own counts; once Redis answers again the syncs
    work and what was admitted meanwhile is in the shared key."""
    interval_ms = 100_000  # 0.01 events/s: no token comes back while the test runs
    settings = narrow(settings, per_second=1000 / interval_ms, burst=6)
    settings = replace(
        settings, redis_url=f"{clean_cluster}?socket_timeout=0.5", address_sync_s=0.05
    )
    with LiveServer(settings, site_for) as live:
        store = live.services.store
        limit = shared(store)
        gate = browser_gate(settings.limits, "127.0.0.1")
        began = int(time.time() * 1000)
        async with Visitor(live.url, visitor="v_down01") as v:
            first = await v.send(*[v.event("page_view", PAGE) for _ in range(4)])
        assert first["accepted"] == 4
        await eventually(lambda: health(live), lambda h: h["syncs"] > 0, what="syncs run")

        async def take(events: int) -> tuple[int, int] | None:
            return limit.take("127.0.0.1", gate.address_rate, events, int(time.time() * 1000))

        pids = [node.proc.pid for node in redis_cluster.nodes if node.proc is not None]
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        try:
            down = await eventually(
                lambda: health(live), lambda h: h["failing"], timeout=20, what="syncs fail"
            )
            assert down["shared"] and down["failures"] >= 1
            body = await healthz(live)
            assert body["ok"] is False and body["tasks"]["address-limit"]["running"]
            decided = await live.call(take(4))
            assert decided is not None and decided[0] == 2 and decided[1] > 0
        finally:
            for pid in pids:
                os.kill(pid, signal.SIGCONT)
        up = await eventually(
            lambda: health(live), lambda h: not h["failing"], timeout=30, what="syncs again"
        )
        assert up["failures"] >= 1
        node = node_holding(store.client, store.keys.address_rate("127.0.0.1"), redis_cluster)

        def shared_time() -> float:
            held = node.client()
            try:
                return float(held.get(store.keys.address_rate("127.0.0.1")) or 0)
            finally:
                held.close()

        # the sync in flight when Redis came back may have left before the 2 were taken
        await eventually(
            shared_time,
            lambda tat: tat >= began + 6 * interval_ms,
            what="the 2 taken during the outage shared once Redis answers",
        )


async def healthz(live: LiveServer) -> dict[str, Any]:
    async with httpx.AsyncClient() as http:
        body: dict[str, Any] = (await http.get(live.url + "/healthz", timeout=10)).json()
    return body


async def health(live: LiveServer) -> dict[str, Any]:
    address_limit: dict[str, Any] = (await healthz(live))["address_limit"]
    return address_limit


def node_holding(client: Any, key: str, cluster: RedisClusterServer) -> Any:
    assert isinstance(client, RedisCluster)
    port = client.get_node_from_key(key).port
    return next(node for node in cluster.nodes if node.port == port)


async def test_with_no_sync_interval_every_batch_asks_the_shared_key(
    settings: Settings, clean_cluster: str
) -> None:
    """``CUEWIRE_ADDRESS_SYNC_S=0``: no task, nothing decided in the process; the limit still
    holds (asked of the shared key first, exact)."""
    settings = replace(narrow(settings, per_second=0.01, burst=6), address_sync_s=0)
    with LiveServer(replace(settings, redis_url=clean_cluster), site_for) as live:
        body = await healthz(live)
        assert "address-limit" not in body["tasks"]
        assert body["address_limit"]["shared"] is False
        async with Visitor(live.url, visitor="v_asked01") as v:
            first = await v.send(*[v.event("page_view", PAGE) for _ in range(4)])
            second = await v.send(*[v.event("page_view", PAGE) for _ in range(4)])
        assert (first["accepted"], second["accepted"]) == (4, 2)
        assert len(shared(live.services.store)) == 0
