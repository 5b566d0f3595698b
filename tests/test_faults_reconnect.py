"""Tabs whose socket drops in the middle of a batch (sent, ack not yet back) reconnect and
resend the batch with the same seqs: every event is stored once, counted by seq.

``CUEWIRE_FAULT_RECONNECTS`` (default 1,000) sets how many forced reconnects the test makes.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis

from cuewire.keys import Keys
from support.faults import Tab, Tally, count, seen_seqs, server_keeping_every_batch, stored_seqs
from support.processes import ServerProcess

RECONNECTS = int(os.environ.get("CUEWIRE_FAULT_RECONNECTS", "1000"))
TABS = 50


@pytest.fixture
def server(
    clean_redis: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ServerProcess]:
    with server_keeping_every_batch(clean_redis, tmp_path, monkeypatch) as process:
        yield process


@pytest.mark.timeout(120)
async def test_sockets_dropped_mid_batch_lose_nothing_and_store_nothing_twice(
    server: ServerProcess, clean_redis: str
) -> None:
    tally = Tally()
    beaten = 0  # drops where the ack still arrived first: not mid-batch, counted apart
    stored_first = 0  # first sends the server had stored: the resend must be de-duplicated
    peek = aioredis.Redis.from_url(clean_redis, decode_responses=True)

    async def tab_life(tab: Tab, cycles: int) -> None:
        nonlocal beaten, stored_first
        await tab.connect()
        for _ in range(cycles):
            batch = tab.next_batch()
            acked: list[Any] = []
            assert tab.sio is not None
            await tab.sio.emit("events", batch, callback=acked.append)
            await asyncio.sleep(random.choice([0, 0, 0.001, 0.003]))
            await tab.sio.eio.disconnect(abort=True)  # the socket goes, the ack may not come
            tab.sio = None
            beaten += bool(acked)
            await tab.connect()  # same session, same tab
            tally.reconnects += 1
            assert tab.session is not None
            seen = await peek.zscore(Keys().seen("test-site", tab.session, "tab1"), batch[0]["seq"])
            stored_first += seen is not None
            await tab.deliver(batch)  # the resend, same seqs
        await tab.close()

    per_tab = RECONNECTS // TABS
    tabs = [Tab(server.url, f"v_recon{i:05d}", tally) for i in range(TABS)]
    try:
        await asyncio.gather(*(tab_life(tab, per_tab) for tab in tabs))
    finally:
        await peek.aclose()

    assert server.proc is not None and server.proc.poll() is None
    client = redis.Redis.from_url(clean_redis, decode_responses=True)
    stored = stored_seqs(client)
    result = count(tally, stored)
    assert tally.reconnects == per_tab * TABS
    assert result.acked == per_tab * TABS * 3
    assert result.lost == 0, f"{result.lost} acked events are not in the store"
    assert result.twice == 0, f"{result.twice} events were stored twice"
    for session in tally.acked:
        assert tally.acked[session] == seen_seqs(client, session)
    client.close()
    print(
        f"\n[fault] {tally.reconnects} forced reconnects mid-batch ({TABS} tabs, batches of 3): "
        f"acked events {result.acked}, lost {result.lost}, stored twice {result.twice}; "
        f"the first send was already stored (resend de-duplicated) {stored_first} times, "
        f"the ack beat the drop {beaten} times; connects refused {tally.refused}, "
        f"lost acks (timeouts) {tally.timeouts}; server process alive"
    )
