"""Script calls of one event-loop turn go to Redis together, each with its own answer
(store/coalesce.py), on every store backend: on one Redis in one write on the connection the
lane keeps (store/lane.py), on a cluster in one pipeline per node."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
import redis.exceptions
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError, ResponseError

from cuewire.settings import Settings
from cuewire.store import RedisStore, lane, open_store, wires
from cuewire.store.coalesce import Coalescer
from support.resp import ScriptedRedis
from support.servers import WITH_CLUSTER, RedisServer, free_port

BACKENDS = WITH_CLUSTER  # the store tests run on a Redis Cluster too

ECHO = """
if ARGV[1] == 'bad' then return redis.error_reply('bad call') end
redis.call('INCR', KEYS[1])
return ARGV[1]
"""


class Counting:
    """A client whose sending is counted. On one Redis (and the embedded store): the lane's
    writes and the connections it takes from the pool. On a cluster: the connections its
    nodes lend (store/node_pipelines.py: one per pipeline)."""

    def __init__(
        self, client: aioredis.Redis | RedisCluster, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        self.pipelines = self.writes = self.checkouts = 0
        if isinstance(client, RedisCluster):  # ClusterNode has slots: its class is patched
            real = ClusterNode.acquire_connection
            monkeypatch.setattr(ClusterNode, "acquire_connection", self._counted(real, "pipelines"))
        else:
            monkeypatch.setattr(wires, "write_now", self._counted(wires.write_now, "writes"))
            pool = client.connection_pool
            monkeypatch.setattr(
                pool, "get_connection", self._counted(pool.get_connection, "checkouts")
            )

    def _counted(self, real: Callable[..., Any], what: str) -> Callable[..., Any]:
        def counted(*args: Any, **kwargs: Any) -> Any:
            setattr(self, what, getattr(self, what) + 1)
            return real(*args, **kwargs)

        return counted


async def test_calls_of_one_turn_go_together_and_get_their_own_answers(
    store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    await store.client.script_load(ECHO)  # loaded: no call goes alone to load it
    counting = Counting(store.client, monkeypatch)
    script = store.client.register_script(ECHO)
    calls = Coalescer(store.client)
    answers = await asyncio.gather(*[calls.call(script, ["n"], [str(i)]) for i in range(20)])
    assert answers == [str(i) for i in range(20)]
    if isinstance(store.client, RedisCluster):
        assert counting.pipelines == 1
    else:
        assert (counting.writes, counting.checkouts) == (1, 1)
    assert await store.client.get("n") == "20"  # each ran once
    await calls.aclose()


async def test_a_failing_call_fails_alone(store: RedisStore) -> None:
    script = store.client.register_script(ECHO)
    calls = Coalescer(store.client)
    results = await asyncio.gather(
        calls.call(script, ["n"], ["a"]),
        calls.call(script, ["n"], ["bad"]),
        calls.call(script, ["n"], ["c"]),
        return_exceptions=True,
    )
    assert results[0] == "a" and results[2] == "c"
    assert isinstance(results[1], ResponseError)


async def test_a_lone_call_goes_at_once_and_the_lane_keeps_its_connection(
    store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    await store.client.script_load(ECHO)  # loaded: no call goes alone to load it
    counting = Counting(store.client, monkeypatch)
    script = store.client.register_script(ECHO)
    calls = Coalescer(store.client)
    for i in range(3):
        assert await calls.call(script, ["n"], [str(i)]) == str(i)
    if isinstance(store.client, RedisCluster):  # a pipeline of one on its node
        assert counting.pipelines == 3
    else:  # one write each, on the connection taken once
        assert (counting.writes, counting.checkouts) == (3, 1)
    await calls.aclose()


async def test_calls_survive_a_flushed_script_cache(store: RedisStore) -> None:
    """A restarted Redis has forgotten the scripts: each call loads its script again."""
    script = store.client.register_script(ECHO)
    calls = Coalescer(store.client)
    await asyncio.gather(*[calls.call(script, ["n"], ["warm"]) for _ in range(3)])
    await store.client.script_flush()
    # more calls than the pool has connections: those that met NOSCRIPT go again one by one
    answers = await asyncio.gather(*[calls.call(script, ["n"], [str(i)]) for i in range(300)])
    assert answers == [str(i) for i in range(300)]


async def test_a_dead_server_fails_every_call_of_the_turn() -> None:
    client = aioredis.Redis(port=free_port(), socket_connect_timeout=1, decode_responses=True)
    script = client.register_script(ECHO)
    calls = Coalescer(client)
    results = await asyncio.gather(
        *[calls.call(script, ["n"], [str(i)]) for i in range(4)], return_exceptions=True
    )
    assert all(isinstance(r, RedisError) for r in results)
    await client.aclose()


@pytest.mark.parametrize("cancelled", [0, 2])
async def test_a_cancelled_caller_does_not_stop_the_others(
    store: RedisStore, cancelled: int
) -> None:
    script = store.client.register_script(ECHO)
    calls = Coalescer(store.client)
    tasks = [asyncio.ensure_future(calls.call(script, ["n"], [str(i)])) for i in range(4)]
    await asyncio.sleep(0)
    for task in tasks[:cancelled]:
        task.cancel()
    done = await asyncio.gather(*tasks, return_exceptions=True)
    assert done[cancelled:] == [str(i) for i in range(cancelled, 4)]


# ------------------------------------------------------------ the lane, on one real Redis

ORDER = "redis.call('RPUSH', KEYS[1], ARGV[1]) return ARGV[1]"
SLOW = """
local t = redis.call('TIME')
local stop = t[1] * 1000000 + t[2] + tonumber(ARGV[2]) * 1000
repeat t = redis.call('TIME') until t[1] * 1000000 + t[2] >= stop
redis.call('RPUSH', KEYS[1], ARGV[1])
return ARGV[1]
"""


async def warm_lane(store: RedisStore) -> tuple[Coalescer, AsyncScript, AsyncScript]:
    """A coalescer whose lane has its connection open, and the SLOW and ORDER scripts,
    loaded (a first call of a script goes alone, to load it)."""
    slow = store.client.register_script(SLOW)
    quick = store.client.register_script(ORDER)
    calls = Coalescer(store.client)
    await asyncio.gather(calls.call(slow, ["warm"], ["x", 0]), calls.call(quick, ["warm"], ["x"]))
    return calls, slow, quick


@pytest.mark.parametrize("backend_url", ["redis"], indirect=True)
async def test_calls_written_while_others_are_in_flight_are_answered_in_order(
    store: RedisStore,
) -> None:
    calls, slow, quick = await warm_lane(store)
    first = calls.call(slow, ["order"], ["slow", 200])
    await asyncio.sleep(0.05)  # written; Redis runs it for 200 ms
    later = [calls.call(quick, ["order"], [str(i)]) for i in range(3)]
    assert await asyncio.gather(first, *later) == ["slow", "0", "1", "2"]
    assert await store.client.lrange("order", 0, -1) == ["slow", "0", "1", "2"]
    await calls.aclose()


@pytest.mark.parametrize("backend_url", ["redis"], indirect=True)
async def test_calls_of_several_turns_wait_for_the_answers_in_flight_and_go_in_one_write(
    store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Redis runs one connection's commands in order, so a call made while others are in
    flight waits for their answers and goes with the calls of the turns after it in one
    write (at most ``HOLD_S``: the next test)."""
    monkeypatch.setattr(lane, "HOLD_S", 30.0)  # only the answers release them here
    calls, slow, quick = await warm_lane(store)
    counting = Counting(store.client, monkeypatch)
    # Redis runs it for 2 s: the three turns below must come while it is in flight, and a
    # loaded CI machine stalled them past 200 ms once (the quick calls then went alone)
    first = calls.call(slow, ["order"], ["slow", 2000])
    await asyncio.sleep(0.05)  # written
    later = []
    for i in range(3):  # three loop turns
        later.append(calls.call(quick, ["order"], [str(i)]))
        await asyncio.sleep(0.01)
    assert counting.writes == 1  # the slow call's
    assert await asyncio.gather(first, *later) == ["slow", "0", "1", "2"]
    assert counting.writes == 2
    assert await store.client.lrange("order", 0, -1) == ["slow", "0", "1", "2"]
    await calls.aclose()


@pytest.mark.parametrize("backend_url", ["redis"], indirect=True)
async def test_a_call_waits_at_most_hold_s_for_the_answers_in_flight(
    store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A call behind a slow one is written after ``HOLD_S``, before that answer comes: so
    a Redis that stops reading still fills the socket's buffer up to the unsent limit (the
    last test) rather than the process's memory."""
    # margins of seconds, not milliseconds: a loaded machine stalls a loop turn for 100s of ms
    monkeypatch.setattr(lane, "HOLD_S", 0.5)
    calls, slow, quick = await warm_lane(store)
    counting = Counting(store.client, monkeypatch)
    first = calls.call(slow, ["order"], ["slow", 3000])
    await asyncio.sleep(0.02)
    second = calls.call(quick, ["order"], ["next"])
    await asyncio.sleep(0.01)
    assert counting.writes == 1
    await asyncio.sleep(1.0)
    assert (counting.writes, first.done(), second.done()) == (2, False, False)
    assert await asyncio.gather(first, second) == ["slow", "next"]
    await calls.aclose()


@pytest.mark.parametrize("backend_url", ["redis"], indirect=True)
async def test_a_connection_redis_closed_while_idle_loses_no_call(store: RedisStore) -> None:
    """A Redis restart closes the lane's connection while nothing is in flight on it: the
    next calls wait for a fresh connection instead of failing on the dead one."""
    script = store.client.register_script(ORDER)
    calls = Coalescer(store.client)
    assert await calls.call(script, ["n"], ["before"]) == "before"
    killed = await store.client.client_kill_filter(_type="normal", skipme=True)
    assert killed >= 1
    await asyncio.sleep(0.1)  # the lane's socket has seen Redis close it
    answers = await asyncio.gather(*[calls.call(script, ["n"], [str(i)]) for i in range(3)])
    assert answers == ["0", "1", "2"]
    await calls.aclose()


async def test_calls_in_flight_when_redis_stops_answering_fail_and_the_next_ones_go_through(
    own_redis: RedisServer,
) -> None:
    async with open_store(Settings(redis_url=f"{own_redis.url}?socket_timeout=0.3")) as store:
        script = store.client.register_script(ORDER)
        calls = Coalescer(store.client)
        assert await calls.call(script, ["n"], ["before"]) == "before"
        with own_redis.frozen():
            stuck = await asyncio.gather(
                *[calls.call(script, ["n"], [str(i)]) for i in range(3)], return_exceptions=True
            )
        assert all(isinstance(r, redis.exceptions.TimeoutError) for r in stuck), stuck
        assert await calls.call(script, ["n"], ["after"]) == "after"
        await calls.aclose()


async def test_calls_past_the_unsent_limit_fail_at_once_and_the_lane_recovers(
    own_redis: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While Redis does not read, what the lane writes piles up in the socket's buffer; past
    the limit new calls fail at once rather than wait, and once Redis answers again the
    lane works on a fresh connection."""
    monkeypatch.setattr(lane, "MAX_UNSENT_BYTES", 1_000_000)
    async with open_store(Settings(redis_url=f"{own_redis.url}?socket_timeout=1")) as store:
        script = store.client.register_script(ORDER)
        length = store.client.register_script("return #ARGV[1]")
        calls = Coalescer(store.client)
        assert await calls.call(script, ["n"], ["before"]) == "before"
        assert await calls.call(length, ["n"], ["abc"]) == 3
        big = "x" * 2_000_000
        sent: list[asyncio.Future[Any]] = []
        with own_redis.frozen():
            for _ in range(40):  # the kernel's socket buffers take tens of megabytes first
                sent.append(calls.call(length, ["n"], [big]))
                await asyncio.sleep(0.005)
            refused = [f for f in sent if f.done()]
            assert refused and all(
                isinstance(f.exception(), redis.exceptions.ConnectionError) for f in refused
            )
            results = await asyncio.gather(*sent, return_exceptions=True)
        assert all(isinstance(r, RedisError) for r in results)
        assert await calls.call(script, ["n"], ["after"]) == "after"
        await calls.aclose()


async def test_a_reply_that_is_not_resp_fails_the_calls_in_flight_and_the_lane_reconnects() -> None:
    """A server that sends bytes that are not Redis's protocol: the calls in flight fail
    with a Redis error (the batch is answered ``store_unavailable`` and sent again), nothing
    after the garbage is taken for an answer, and the next call goes on a new connection."""

    def answer(words: list[bytes]) -> bytes:
        return b"%%% not a reply\r\n" if words[-1] == b"garbage" else b"+OK\r\n"

    async with ScriptedRedis(answer) as server, open_store(Settings(redis_url=server.url)) as store:
        calls = Coalescer(store.client)
        assert await calls.command("SET", "k", "before") is True
        broken = await asyncio.gather(
            calls.command("SET", "k", "garbage"),
            calls.command("SET", "k", "behind it"),
            return_exceptions=True,
        )
        assert all(isinstance(r, RedisError) for r in broken), broken
        assert await calls.command("SET", "k", "after") is True
        assert sum(words[0] == b"SET" for words in server.commands) == 4
        await calls.aclose()


async def test_a_reply_no_call_asked_for_ends_the_connection_it_came_on() -> None:
    """A server that answers one command twice: the second answer is no call's (it would be
    taken for the next call's answer): the lane drops that connection, and the next call
    goes on a new one and gets its own answer."""

    def answer(words: list[bytes]) -> bytes:
        last = words[-1]
        return b"+OK\r\n+OK\r\n" if last == b"twice" else b"$%d\r\n%s\r\n" % (len(last), last)

    async with ScriptedRedis(answer) as server, open_store(Settings(redis_url=server.url)) as store:
        calls = Coalescer(store.client)
        assert await calls.command("GET", "once") == "once"
        assert await calls.command("GET", "twice") == "OK"
        await asyncio.sleep(0.05)  # the second answer arrives, with no call in flight
        assert await calls.command("GET", "next") == "next"
        await calls.aclose()


async def test_over_a_unix_socket_calls_are_answered_and_bounded_in_time() -> None:
    """``unix://``: the lane reads the socket's replies as it does over TCP, and a Redis that
    stops answering fails the calls in flight when their deadline passes."""
    with tempfile.TemporaryDirectory(prefix="cw-") as folder:  # (a socket path is short)
        path = Path(folder) / "redis.sock"
        options = ["--unixsocket", str(path), "--unixsocketperm", "700"]
        server = RedisServer(Path(folder), durable=False, options=options).start()
        try:
            url = f"unix://{path}?socket_timeout=0.3"
            async with open_store(Settings(redis_url=url)) as store:
                script = store.client.register_script(ORDER)
                calls = Coalescer(store.client)
                answers = await asyncio.gather(
                    *[calls.call(script, ["n"], [str(i)]) for i in range(3)]
                )
                assert answers == ["0", "1", "2"]
                with server.frozen():
                    stuck = await asyncio.gather(
                        calls.call(script, ["n"], ["x"]), return_exceptions=True
                    )
                assert isinstance(stuck[0], redis.exceptions.TimeoutError), stuck
                assert await calls.call(script, ["n"], ["after"]) == "after"
                await calls.aclose()
        finally:
            server.stop()
