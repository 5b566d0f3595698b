"""Redis goes away under load and comes back: nothing acked is lost, nothing counted twice.

A real `cuewire serve` process on a redis-server of the test's own (AOF on, so a restart on
the same port comes back with its data); hundreds of tabs keep sending batches and resend
what the server answers with ``store_unavailable``, as the snippet does.

The outage lasts ``CUEWIRE_FAULT_OUTAGE_S`` seconds (5 by default; the figure in
docs/reliability.md is for 30: ``CUEWIRE_FAULT_OUTAGE_S=30 pytest tests/test_faults_redis.py -s``).
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from support.faults import Tab, Tally, count, seen_seqs, server_keeping_every_batch, stored_seqs
from support.processes import ServerProcess
from support.servers import RedisServer
from support.waiting import eventually

OUTAGE_S = float(os.environ.get("CUEWIRE_FAULT_OUTAGE_S", "5"))
TABS = int(os.environ.get("CUEWIRE_FAULT_TABS", "200"))
SEND_EVERY_S = 1.0


@pytest.fixture
def server(
    own_redis: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ServerProcess]:
    with server_keeping_every_batch(own_redis.url, tmp_path, monkeypatch) as process:
        yield process


class Health:
    """Polls /healthz and keeps (monotonic time, status)."""

    def __init__(self, url: str) -> None:
        self.url = url + "/healthz"
        self.seen: list[tuple[float, int]] = []

    async def run(self) -> None:
        async with httpx.AsyncClient(timeout=3) as client:
            while True:
                try:
                    status = (await client.get(self.url)).status_code
                except httpx.HTTPError:
                    status = 0  # no answer: counted as a failure of the test below
                self.seen.append((time.monotonic(), status))
                await asyncio.sleep(0.1)

    def between(self, start: float, end: float) -> list[int]:
        return [status for at, status in self.seen if start <= at < end]

    def first_ok_after(self, start: float) -> float | None:
        return next((at for at, status in self.seen if at >= start and status == 200), None)


async def test_healthz_goes_503_while_the_store_is_unreachable_and_back_to_200(
    own_redis: RedisServer, server: ServerProcess
) -> None:
    async with httpx.AsyncClient(timeout=5) as client:
        assert (await client.get(server.url + "/healthz")).status_code == 200
        own_redis.kill()
        down = await client.get(server.url + "/healthz")
        assert down.status_code == 503
        assert down.json()["store"]["reachable"] is False
        own_redis.start()
        up = await eventually(
            lambda: client.get(server.url + "/healthz"),
            lambda answer: answer.status_code == 200,
            timeout=20,
            interval=0.1,
            what="/healthz back to 200",
        )
        assert up.json()["store"]["reachable"] is True
        assert all(task["running"] for task in up.json()["tasks"].values())


async def keep_sending(tab: Tab, until: asyncio.Event) -> None:
    await asyncio.sleep(random.uniform(0, SEND_EVERY_S))
    while not until.is_set():
        await tab.deliver(tab.next_batch())
        await asyncio.sleep(SEND_EVERY_S * random.uniform(0.8, 1.2))


@pytest.mark.timeout(180 + 3 * OUTAGE_S)
async def test_redis_outage_under_load_loses_nothing_acked_and_counts_nothing_twice(
    own_redis: RedisServer, server: ServerProcess
) -> None:
    tally = Tally()
    tabs = [Tab(server.url, f"v_outage{i:05d}", tally) for i in range(TABS)]
    gate = asyncio.Semaphore(50)

    async def connect(tab: Tab) -> None:
        async with gate:
            await tab.connect()

    await asyncio.gather(*(connect(tab) for tab in tabs))
    health = Health(server.url)
    probe = asyncio.create_task(health.run())
    stop = asyncio.Event()
    senders = [asyncio.create_task(keep_sending(tab, stop)) for tab in tabs]
    try:
        await asyncio.sleep(3)
        acked_before = sum(len(s) for s in tally.acked.values())
        down_at = time.monotonic()
        own_redis.kill()
        await asyncio.sleep(OUTAGE_S)
        up_at = time.monotonic()
        await asyncio.to_thread(own_redis.start)
        await asyncio.sleep(3)
        stop.set()
        await asyncio.wait_for(asyncio.gather(*senders), 60 + OUTAGE_S)
        drained_at = time.monotonic()
    finally:
        probe.cancel()
        for task in senders:
            task.cancel()
        await asyncio.gather(probe, *senders, return_exceptions=True)
        await asyncio.gather(*(tab.close() for tab in tabs), return_exceptions=True)

    assert server.proc is not None and server.proc.poll() is None, "the server process died"
    before = health.between(0, down_at)
    during = health.between(down_at + 0.5, up_at)
    assert before and set(before) == {200}
    assert during and 503 in during and 0 not in during, during
    ok_again = health.first_ok_after(up_at)
    assert ok_again is not None and health.seen[-1][1] == 200

    client = own_redis.client()
    stored = stored_seqs(client)
    result = count(tally, stored)
    assert result.lost == 0, f"{result.lost} acked events are not in the store"
    assert result.twice == 0, f"{result.twice} events were stored twice"
    for session in random.sample(sorted(tally.acked), 10):
        assert tally.acked[session] <= seen_seqs(client, session)
    client.close()

    print(
        f"\n[fault] redis outage {OUTAGE_S:g} s under {TABS} tabs (1 batch of 3 events / s each): "
        f"acked events {result.acked} ({acked_before} before the outage), lost {result.lost}, "
        f"stored twice {result.twice}; store_unavailable answers {tally.retry_answers}, "
        f"resends {tally.resends}, lost acks (timeouts) {tally.timeouts}, reconnects "
        f"{tally.reconnects}; /healthz 503 during the outage, 200 again "
        f"{ok_again - up_at:.2f} s after Redis restarted; every tab drained "
        f"{drained_at - up_at - 3:.2f} s after sending stopped; server process alive"
    )
