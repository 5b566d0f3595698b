"""On a Redis Cluster the calls of one loop turn go in one plain pipeline per node
(store/node_pipelines.py, through store/coalesce.py): a node that stops answering fails only
its own calls, and a call for a slot that moved follows it. Run on the tests' own 3-primary
cluster (conftest.py ``redis_cluster``), each test leaving it as it found it (every node
answering, every slot on its first owner); the failover test on a cluster of its own, with a
replica."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.exceptions
from redis.asyncio.cluster import RedisCluster

from cuewire.store.cluster import cluster_client
from cuewire.store.coalesce import Coalescer
from support.servers import RedisClusterServer, RedisServer
from support.waiting import eventually

COUNT = "return redis.call('INCR', KEYS[1])"  # each run of a call shows in its key's count
BOUND_S = 2.0  # the calls' socket_timeout: far above a healthy node's answer
NEVER_S = 30  # far above the bound: only a call that is not bounded runs into it


def keys_by_node(client: RedisCluster, per_node: int = 2) -> dict[str, list[str]]:
    """``per_node`` keys in the slots of each primary, by node name."""
    found: dict[str, list[str]] = {node.name: [] for node in client.get_primaries()}
    for i in itertools.count():
        key = f"calls:{{{i}}}"
        held = found[client.get_node_from_key(key).name]
        if len(held) < per_node:
            held.append(key)
        if all(len(keys) == per_node for keys in found.values()):
            return found
    raise AssertionError("unreachable")


def server_of(cluster: RedisClusterServer, name: str) -> RedisServer:
    [server] = [node for node in cluster.nodes if f"127.0.0.1:{node.port}" == name]
    return server


async def opened(url: str, timeout_s: float | None = None) -> RedisCluster:
    client = cluster_client(url if timeout_s is None else f"{url}?socket_timeout={timeout_s}")
    await client.initialize()
    await client.script_load(COUNT)  # on every primary: no NoScriptError in the turns below
    return client


def one_turn(calls: Coalescer, client: RedisCluster, keys: list[str]) -> list[asyncio.Future[Any]]:
    """A script call and a plain command per key, all queued in this loop turn."""
    script = client.register_script(COUNT)
    made: list[asyncio.Future[Any]] = []
    for key in keys:
        made.append(asyncio.ensure_future(calls.call(script, [key], [])))
        made.append(asyncio.ensure_future(calls.command("HINCRBY", f"{key}:h", "n", 1)))
    return made


async def counts(client: RedisCluster, keys: list[str]) -> dict[str, tuple[int, int]]:
    """How many times each key's script call and plain command ran."""
    found = {}
    for key in keys:
        found[key] = (int(await client.get(key) or 0), int(await client.hget(f"{key}:h", "n") or 0))
    return found


async def test_a_frozen_node_fails_only_its_own_calls_and_the_others_do_not_wait_for_it(
    redis_cluster: RedisClusterServer, clean_cluster: str
) -> None:
    """Calls for the keys of all three primaries made in one loop turn while one primary is
    frozen, twice (its connection open, then one to open): the two healthy nodes' calls are
    answered without waiting for it, the frozen node's calls fail with a timeout (the store's
    StoreError: the browser resends), and once it answers again the same client's calls all
    work: no restart. The healthy nodes' calls ran exactly once each; a failed call ran at
    most once (the frozen node may still read what was written to it before the timeout)."""
    client = await opened(clean_cluster, BOUND_S)
    try:
        calls = Coalescer(client)
        by_node = keys_by_node(client)
        stopped = sorted(by_node)[1]
        keys = [key for keys in by_node.values() for key in keys]
        healthy = [key for key in keys if key not in by_node[stopped]]
        with server_of(redis_cluster, stopped).frozen():
            for _ in range(2):
                made = one_turn(calls, client, keys)
                answered = [f for i, f in enumerate(made) if keys[i // 2] in healthy]
                waiting = [f for i, f in enumerate(made) if keys[i // 2] not in healthy]
                await asyncio.wait_for(asyncio.wait(answered), NEVER_S)
                assert not any(f.done() for f in waiting), "the healthy nodes' calls waited"
                assert all(not f.exception() for f in answered)
                failed = await asyncio.wait_for(
                    asyncio.gather(*waiting, return_exceptions=True), NEVER_S
                )
                assert all(isinstance(e, redis.exceptions.TimeoutError) for e in failed), failed

        again = await asyncio.wait_for(asyncio.gather(*one_turn(calls, client, keys)), NEVER_S)
        assert len(again) == 2 * len(keys)
        ran = await counts(client, keys)
        assert {key: ran[key] for key in healthy} == {key: (3, 3) for key in healthy}
        for key in by_node[stopped]:
            assert all(1 <= n <= 3 for n in ran[key]), ran
    finally:
        await client.aclose()


def node_id(server: RedisServer) -> str:
    client = server.client()
    try:
        return str(client.execute_command("CLUSTER MYID"))
    finally:
        client.close()


def begin_move(cluster: RedisClusterServer, slot: int, source: str, target: str) -> None:
    """Start moving ``slot`` from node ``source`` to node ``target`` and move its keys: the
    source now answers ASK for them, and every node still names the source as the owner."""
    src, dst = server_of(cluster, source), server_of(cluster, target)
    to, fro = src.client(), dst.client()
    try:
        fro.execute_command("CLUSTER SETSLOT", slot, "IMPORTING", node_id(src))
        to.execute_command("CLUSTER SETSLOT", slot, "MIGRATING", node_id(dst))
        keys = to.execute_command("CLUSTER GETKEYSINSLOT", slot, 1000)
        if keys:
            to.execute_command("MIGRATE", "127.0.0.1", dst.port, "", 0, 5000, "KEYS", *keys)
    finally:
        to.close()
        fro.close()


def end_move(cluster: RedisClusterServer, slot: int, source: str, target: str) -> None:
    """Give ``slot`` to ``target`` on every node (the target first, then the source): the
    source now answers MOVED."""
    owner = node_id(server_of(cluster, target))
    others = [n for n in cluster.nodes if f"127.0.0.1:{n.port}" not in (source, target)]
    for server in [server_of(cluster, target), server_of(cluster, source), *others]:
        client = server.client()
        try:
            client.execute_command("CLUSTER SETSLOT", slot, "NODE", owner)
        finally:
            client.close()


@contextmanager
def moved(cluster: RedisClusterServer, slot: int, source: str, target: str) -> Iterator[None]:
    """``slot`` and its keys on ``target`` while the block runs, back on ``source`` after."""
    begin_move(cluster, slot, source, target)
    end_move(cluster, slot, source, target)
    try:
        yield
    finally:
        begin_move(cluster, slot, target, source)
        end_move(cluster, slot, target, source)


async def one_key_per_node(client: RedisCluster) -> tuple[Coalescer, list[str], str, str, str]:
    """A coalescer, one key in the slots of each primary, each counted once (the client has
    learnt the map), and one of those keys with its node and another node to move it to."""
    calls = Coalescer(client)
    by_node = keys_by_node(client, per_node=1)
    keys = [key for keys in by_node.values() for key in keys]
    await asyncio.wait_for(asyncio.gather(*one_turn(calls, client, keys)), NEVER_S)
    source, target = sorted(by_node)[:2]
    [key] = by_node[source]
    return calls, keys, key, source, target


async def test_a_call_for_a_slot_that_moved_follows_it_to_its_new_owner(
    redis_cluster: RedisClusterServer, clean_cluster: str
) -> None:
    """A slot moved to another node (as a resharding or a failover does) after the client
    learnt the map: its calls of a turn get MOVED from the old owner, the client's map is
    patched and they run on the new owner, once; the caller sees only their answers."""
    client = await opened(clean_cluster)
    try:
        calls, keys, key, source, target = await one_key_per_node(client)
        with moved(redis_cluster, client.keyslot(key), source, target):
            assert client.get_node_from_key(key).name == source, "the client's map is stale"
            answers = await asyncio.wait_for(
                asyncio.gather(*one_turn(calls, client, keys)), NEVER_S
            )
            assert answers == [2] * len(answers)
            assert client.get_node_from_key(key).name == target, "the client's map is patched"
            assert await counts(client, keys) == {key: (2, 2) for key in keys}
    finally:
        await client.aclose()


async def test_a_call_for_a_key_of_a_migrating_slot_is_asked_of_the_node_it_went_to(
    redis_cluster: RedisClusterServer, clean_cluster: str
) -> None:
    """A slot in the middle of a migration, its keys already moved: the old owner answers ASK,
    the call runs on the node named (after ASKING), once, and the map still names the old
    owner (the slot is not moved yet)."""
    client = await opened(clean_cluster)
    try:
        calls, keys, key, source, target = await one_key_per_node(client)
        slot = client.keyslot(key)
        begin_move(redis_cluster, slot, source, target)
        try:
            answers = await asyncio.wait_for(
                asyncio.gather(*one_turn(calls, client, keys)), NEVER_S
            )
            assert answers == [2] * len(answers)
            assert client.get_node_from_key(key).name == source
            on_target = server_of(redis_cluster, target).client()
            try:
                assert on_target.execute_command("CLUSTER COUNTKEYSINSLOT", slot) == 2
            finally:
                on_target.close()
        finally:
            end_move(redis_cluster, slot, source, target)
            begin_move(redis_cluster, slot, target, source)
            end_move(redis_cluster, slot, target, source)
        assert await counts(client, keys) == {key: (2, 2) for key in keys}
    finally:
        await client.aclose()


@pytest.fixture
def failover_cluster(tmp_path: Path) -> Iterator[RedisClusterServer]:
    """A cluster of the test's own whose nodes count a node failed after 1 s (not 15), so a
    replica takes over a frozen primary within the test."""
    cluster = RedisClusterServer(tmp_path, node_timeout_ms=1000)
    try:
        yield cluster.start()
    finally:
        cluster.stop()


async def test_a_replica_that_took_over_a_frozen_primary_gets_its_calls_without_a_restart(
    failover_cluster: RedisClusterServer,
) -> None:
    """A primary with a replica is frozen: its calls fail (timeouts) until the replica takes
    over; the failures make the client ask the other nodes for the slot map again, which
    names the replica (the frozen primary answers no MOVED), and the calls then run there,
    once each. Nothing the caller was told failed ran; nothing ran twice."""
    cluster = failover_cluster
    client = await opened(cluster.url, 0.5)
    try:
        calls = Coalescer(client)
        by_node = keys_by_node(client)
        stopped = sorted(by_node)[1]
        replica = cluster.add_replica(server_of(cluster, stopped))
        keys = by_node[stopped]
        answered = 0

        async def one_turn_answered() -> bool:
            nonlocal answered
            results = await asyncio.gather(*one_turn(calls, client, keys), return_exceptions=True)
            if all(not isinstance(r, BaseException) for r in results):
                answered += 1
                return True
            assert all(isinstance(r, redis.exceptions.RedisError) for r in results), results
            return False

        with server_of(cluster, stopped).frozen():
            await eventually(one_turn_answered, timeout=NEVER_S, what="the replica answering")
            assert client.get_node_from_key(keys[0]).name == f"127.0.0.1:{replica.port}"
        assert answered == 1
        assert await asyncio.wait_for(one_turn_answered(), NEVER_S)
        assert await counts(client, keys) == {key: (2, 2) for key in keys}
    finally:
        await client.aclose()


async def test_a_node_restarted_while_its_connections_sat_idle_answers_its_next_calls(
    tmp_path: Path,
) -> None:
    """A primary restarts (its slots kept in nodes.conf) while the client's connection to it
    sits idle: the next turn's calls for its keys are answered, not failed on the connection
    Redis closed."""
    cluster = RedisClusterServer(tmp_path).start()
    try:
        client = await opened(cluster.url, BOUND_S)
        calls = Coalescer(client)
        name, keys = next(iter(keys_by_node(client).items()))
        assert await asyncio.gather(*one_turn(calls, client, keys)) == [1, 1, 1, 1]
        node = server_of(cluster, name)
        node.kill()
        node.start(cluster=True)
        probe = node.client()
        await eventually(
            lambda: "cluster_state:ok" in probe.execute_command("CLUSTER", "INFO"),
            timeout=NEVER_S,
            what="the restarted node's cluster state ok",
        )
        probe.close()
        # (plain commands: a restarted node has no scripts, and loading one would go first)
        again = [calls.command("HINCRBY", f"{key}:h", "n", 1) for key in keys]
        assert await asyncio.gather(*again) == [1, 1]  # (its data went with it)
        await calls.aclose()
        await client.aclose()
    finally:
        cluster.stop()
