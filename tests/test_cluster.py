"""What is particular to a Redis Cluster (keys.py, store/redis.py): the slots the keys land in,
the sharded deadline set, and the calls a batch costs. Run on the test's own 3-primary
cluster (conftest.py ``redis_cluster``); the store tests run on it too (``WITH_CLUSTER``)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from dataclasses import replace
from typing import Any

import pytest
import redis.exceptions
from redis.asyncio.cluster import RedisCluster

from cuewire.clock import day_of
from cuewire.errors import StoreError
from cuewire.gate import browser_gate
from cuewire.inbox import InboxClient
from cuewire.keys import TIMER_SHARDS, ClusterKeys, Keys
from cuewire.origin import Origin
from cuewire.settings import Limits, Settings
from cuewire.store import RedisStore, open_store
from cuewire.store.connection import WatchedConnection
from cuewire.store.heatmaps import read_heatmap
from support.harness import Harness
from support.servers import RedisClusterServer

BACKENDS = ("cluster",)
PRODUCT = "http://shop.test/product/boots"
NEVER_S = 30  # far above the call bound: only a call that is not bounded runs into it


def cluster_of(store: RedisStore) -> RedisCluster:
    client = store.client
    assert isinstance(client, RedisCluster), "the store found the cluster behind its URL"
    return client


def node_of(store: RedisStore, key: str) -> str:
    return str(cluster_of(store).get_node_from_key(key).name)


def script_calls(cluster: RedisClusterServer, command: str = "evalsha") -> dict[int, int]:
    """Calls of ``command`` so far, per node port (a script's own commands are not among
    them)."""
    calls: dict[int, int] = {}
    for node in cluster.nodes:
        client = node.client()
        try:
            stats = client.info("commandstats").get(f"cmdstat_{command}", {})
        finally:
            client.close()
        calls[node.port] = int(stats.get("calls", 0)) if isinstance(stats, dict) else 0
    return calls


def delta(before: dict[int, int], after: dict[int, int]) -> dict[int, int]:
    return {port: n - before[port] for port, n in after.items() if n != before[port]}


def test_one_redis_keeps_its_key_names_and_a_cluster_needs_the_visitor() -> None:
    """A deployment on one Redis finds its sessions, visitors and deadlines after an upgrade."""
    k = Keys("cw")
    assert (k.session("s", "x"), k.visitor("s", "v"), k.seen("s", "x", "t")) == (
        "cw:s:{s:x}",
        "cw:v:s:v",
        "cw:q:{s:x}:t",
    )
    assert (k.timers(), k.leases(), k.claimed(), k.timer_shards) == (
        "cw:timers",
        "cw:timers:lease",
        "cw:timers:claimed",
        1,
    )
    assert (k.audit("s"), k.audited("f", "s"), k.live("s")) == (
        "cw:audit:s",
        "cw:fa:f",
        "cw:live:s",
    )
    with pytest.raises(ValueError):
        ClusterKeys("cw").session("s", "x")  # a key in the wrong slot is never made


async def test_a_session_and_its_visitor_share_a_slot_and_the_streams_have_their_own(
    store: RedisStore,
) -> None:
    k, client = store.keys, cluster_of(store)
    slot = client.keyslot(k.visitor("s", "v1"))
    session_keys = [
        k.session("s", "s1", "v1"),
        k.recent("s", "s1", "v1"),
        k.seen("s", "s1", "tab", "v1"),
        k.pending("s", "s1", "tab", "v1"),
        k.names("s", "s1", "v1"),
        k.visitor_names("s", "v1"),
        k.visitor_rate("s", "v1"),
    ]
    assert {client.keyslot(key) for key in session_keys} == {slot}
    assert client.keyslot(k.visitor("s", "v2")) != slot  # visitors spread over the slots
    assert client.keyslot(k.audited("token1", "s")) == client.keyslot(k.audit("s"))
    assert client.keyslot(k.live("s")) != client.keyslot(k.audit("s"))
    shard = k.timer_shard("s", "v1")
    triple = {client.keyslot(key) for key in (k.timers(shard), k.leases(shard), k.claimed(shard))}
    assert len(triple) == 1


async def test_deadlines_of_many_visitors_spread_over_every_shard_and_node_and_all_fire(
    store: RedisStore, settings: Settings
) -> None:
    h = Harness(store, settings)
    visitors = [f"v_many{i:03d}" for i in range(64)]
    for visitor in visitors:
        v = await h.visit(visitor)
        await v.send("page_view", PRODUCT)
    k, client = store.keys, cluster_of(store)
    sizes = {n: int(await client.zcard(k.timers(n))) for n in range(TIMER_SHARDS)}
    assert sum(sizes.values()) == len(visitors)
    assert max(sizes.values()) <= len(visitors) // 4, f"no hot shard: {sizes}"
    used = [n for n, size in sizes.items() if size]
    assert len(used) >= TIMER_SHARDS - 2, f"most shards take deadlines: {sizes}"
    assert len({node_of(store, k.timers(n)) for n in used}) == 3, "shards on every node"

    await h.pass_time(1)  # one tick claims from every shard
    assert sorted(sid for sid, _ in h.shown) == sorted(f"sid-{v}" for v in visitors)
    assert await store.next_due_ms() is None


async def test_without_its_sync_loop_a_batch_asks_the_address_limit_first(
    store: RedisStore, settings: Settings, redis_cluster: RedisClusterServer
) -> None:
    """One Redis: one script call per batch decided ahead (test_one_round_trip.py). A cluster
    store whose address limit is not shared by a sync loop (a store used outside ``cuewire
    serve``; with the loop it is one call: test_address_limit.py): the per-address limit
    first (its key has its own slot), then the batch's script in the visitor's slot; the
    new deadline's ZADD goes beside it, in the same loop turn, and the live stream's entry
    after it (one live_add.lua per site per loop turn, not waited for)."""
    h = Harness(store, settings)
    v = await h.visit()
    gate = browser_gate(settings.limits, "203.0.113.7")

    async def page_view(url: str) -> dict[int, int]:
        event = {"type": "page_view", "ts": h.clock.now, "seq": h.seq, "url": url}
        h.seq += 1
        before = script_calls(redis_cluster)
        await h.pipeline.process(v.origin, [event], h.clock.now_ms(), gate)
        await store.deferred()
        return delta(before, script_calls(redis_cluster))

    await page_view(PRODUCT)  # the first batch: the process learns the session's facts
    k = store.keys
    calls = await page_view("http://shop.test/product/hat")  # decided ahead
    address_node = node_of(store, k.address_rate("203.0.113.7"))
    visitor_node = node_of(store, k.visitor("test-site", v.origin.visitor))
    live_node = node_of(store, k.live("test-site"))
    expected: dict[str, int] = {address_node: 1}
    for node in (visitor_node, live_node):
        expected[node] = expected.get(node, 0) + 1
    ports = {node.port: f"127.0.0.1:{node.port}" for node in redis_cluster.nodes}
    assert {ports[port]: n for port, n in calls.items()} == expected
    assert (
        len(
            await store.client.zrange(k.timers(k.timer_shard("test-site", v.origin.visitor)), 0, -1)
        )
        == 1
    )


async def test_without_an_address_limit_a_batch_is_one_script_call(
    store: RedisStore, settings: Settings, redis_cluster: RedisClusterServer
) -> None:
    settings = replace(settings, limits=Limits(address_events_per_second=0))
    h = Harness(store, settings)
    v = await h.visit()
    gate = browser_gate(settings.limits, "203.0.113.8")
    for seq, url in enumerate([PRODUCT, "http://shop.test/product/hat"]):
        event = {"type": "page_view", "ts": h.clock.now, "seq": seq, "url": url}
        await store.deferred()
        before = script_calls(redis_cluster)
        await h.pipeline.process(v.origin, [event], h.clock.now_ms(), gate)
        await store.deferred()
    # the batch's script, and after it the live stream's entry (in its own slot)
    assert sum(delta(before, script_calls(redis_cluster)).values()) == 2


async def test_a_batchs_live_entry_carries_the_sessions_device_without_a_read_of_its_own(
    store: RedisStore, settings: Settings, redis_cluster: RedisClusterServer
) -> None:
    """The live stream is in another slot than the session: the entry's device class comes
    from the facts the process holds after the batch's script, decided ahead or not."""
    h = Harness(store, settings)
    opened = await store.open_session("s", "v_phone", None, h.clock.now_ms(), {"device": "mobile"})
    origin = Origin("s", "v_phone", opened.session, "tab1", "sid-phone")
    reads = script_calls(redis_cluster, "hget")
    for seq, url in enumerate([PRODUCT, "http://shop.test/product/hat", PRODUCT]):
        event = {"type": "page_view", "ts": h.clock.now, "seq": seq, "url": url}
        await h.pipeline.process(origin, [event], h.clock.now_ms())
    await store.deferred()
    live = await store.read_live("s", 10)
    assert [e["device"] for e in live] == ["mobile"] * 3
    assert [json.loads(e["events"])[0]["seq"] for e in live] == [0, 1, 2]  # in batch order
    assert delta(reads, script_calls(redis_cluster, "hget")) == {}


async def test_the_writes_after_many_batches_of_one_loop_turn_go_in_one_call_per_key(
    store: RedisStore, settings: Settings, redis_cluster: RedisClusterServer
) -> None:
    """The batches of many sessions of one site answered in one loop turn: their heatmap
    hits go in one heatmap.lua call and their live entries in one live_add.lua (the site's
    slots), the deadlines their page views cancelled in one ZREM per shard, not a call each;
    nothing is lost on the way."""
    settings = replace(settings, limits=Limits(address_events_per_second=0))
    h = Harness(store, settings)
    k = store.keys
    # visitors whose slot and deadline shard are on one node (so one pipeline answers all
    # their scripts in one turn), in three shards: several deadlines per shard
    node, shards, names = node_of(store, k.visitor("test-site", "v_gather000")), set(), []
    for name in (f"v_gather{i:03}" for i in range(1000)):
        shard = k.timer_shard("test-site", name)
        own = {node_of(store, k.visitor("test-site", name)), node_of(store, k.timers(shard))}
        if own == {node} and (shard in shards or len(shards) < 3):
            shards.add(shard)
            names.append(name)
        if len(names) == 12:
            break
    visitors = [await h.visit(name) for name in names]

    def batch(seq: int, url: str) -> list[dict[str, Any]]:
        page = {"type": "page_view", "ts": h.clock.now, "seq": seq, "url": url}
        click = {"type": "click", "ts": h.clock.now, "seq": seq + 1, "url": url}
        return [page, click | {"selector": "#buy", "x": 10, "y": 20, "w": 1280}]

    async def all_at_once(seq: int, url: str) -> tuple[int, int]:
        await store.deferred()
        calls, removals = script_calls(redis_cluster), script_calls(redis_cluster, "zrem")
        await asyncio.gather(
            *(h.pipeline.process(v.origin, batch(seq, url), h.clock.now_ms()) for v in visitors)
        )
        await store.deferred()
        return (
            sum(delta(calls, script_calls(redis_cluster)).values()),
            sum(delta(removals, script_calls(redis_cluster, "zrem")).values()),
        )

    await all_at_once(0, PRODUCT)  # the process learns the sessions' facts
    # each page view restarts its session's deadline: a script each (decided ahead), one
    # heatmap.lua and one live_add.lua for all, one ZREM per shard for the cancelled ones
    restarted = await all_at_once(2, "http://shop.test/product/hat")
    assert restarted == (len(visitors) + 2, len(shards))
    assert await all_at_once(4, "http://shop.test/product/scarf") == restarted
    for shard in shards:  # the deadlines of the last page views only
        mine = [v for v in visitors if k.timer_shard("test-site", v.origin.visitor) == shard]
        assert len(await store.client.zrange(k.timers(shard), 0, -1)) == len(mine)
    day = [day_of(h.clock.now_ms())]
    for path in ("/product/boots", "/product/hat", "/product/scarf"):
        counted = await read_heatmap(store.client, k, "test-site", path, day)
        assert counted.totals == {"click": len(visitors)}
    assert len(await store.read_live("test-site", 100)) == 3 * len(visitors)


async def test_the_inbox_client_on_a_cluster_keeps_its_read_bound(clean_cluster: str) -> None:
    """The inbox's reader blocks in XREAD for BLOCK_MS: a shorter ``socket_timeout`` in the
    cluster's URL (which bounds the store's calls) must not cut it on the cluster client."""
    inbox = InboxClient(f"{clean_cluster}?socket_timeout=0.5", lambda: True)
    try:
        client = (await inbox.get()).redis
        assert isinstance(client, RedisCluster)
        assert await client.xread({"inbox-test": "0-0"}, 1, 1000) in ([], {})  # no timeout
        await client.xadd("inbox-test", {"k": "v"})
        assert await client.xread({"inbox-test": "0-0"}, 1, 1000)
    finally:
        await inbox.aclose()


async def test_the_stores_cluster_calls_are_bounded_by_the_watch_and_recover(
    redis_cluster: RedisClusterServer, clean_cluster: str
) -> None:
    """The store's cluster client runs on the watched connections of store/connection.py
    (hiredis packing, one timer per connection): a node that stops answering (SIGSTOP) fails
    the calls for its slots with StoreError within ``socket_timeout``, and they work again
    once it answers."""
    settings = Settings(redis_url=f"{clean_cluster}?socket_timeout=0.5")
    async with open_store(settings) as store:
        visitor = "v_watched01"
        assert await store.visitor_facts("site", visitor) == {}
        key = ClusterKeys(settings.key_prefix).visitor("site", visitor)
        node = cluster_of(store).get_node_from_key(key)
        assert all(isinstance(c, WatchedConnection) for c in node._connections)
        [server] = [n for n in redis_cluster.nodes if n.port == node.port]
        assert server.proc is not None
        os.kill(server.proc.pid, signal.SIGSTOP)
        try:
            with pytest.raises(StoreError) as caught:
                await asyncio.wait_for(store.visitor_facts("site", visitor), NEVER_S)
        finally:
            os.kill(server.proc.pid, signal.SIGCONT)
        assert isinstance(caught.value.__cause__, redis.exceptions.TimeoutError)
        assert await asyncio.wait_for(store.visitor_facts("site", visitor), NEVER_S) == {}
