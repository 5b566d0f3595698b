"""Redis calls bounded in time without a timer per call (store/connection.py).

A Redis that stops answering (here: a real redis-server stopped with SIGSTOP, as a hung host
or a lost network looks to a client) fails the store's calls with ``StoreError`` once
``socket_timeout`` has passed, whether the connection was open already or is opened to the
frozen server; the store works again as soon as Redis answers. Calls that are answered, and
connections that sit idle past the timeout, are left alone.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis.asyncio
import redis.exceptions

from cuewire.errors import StoreError
from cuewire.settings import Settings
from cuewire.store import RedisStore, open_store
from cuewire.store.connection import WatchedConnection, watched_pool
from support.servers import RedisServer

CALL_TIMEOUT_S = 0.5
# Far above CALL_TIMEOUT_S: only a call that is not bounded at all runs into it.
NEVER_S = 30


def store_on(url: str) -> RedisStore:
    return open_store(Settings(redis_url=f"{url}?socket_timeout={CALL_TIMEOUT_S}"))


async def fails_with_a_timeout(store: RedisStore) -> None:
    with pytest.raises(StoreError) as caught:
        await asyncio.wait_for(store.visitor_facts("site", "v_visitor01"), NEVER_S)
    assert isinstance(caught.value.__cause__, redis.exceptions.TimeoutError)


async def test_a_call_to_a_redis_that_stops_answering_fails_with_store_error(
    own_redis: RedisServer,
) -> None:
    async with store_on(own_redis.url) as store:
        assert await store.visitor_facts("site", "v_visitor01") == {}
        with own_redis.frozen():
            await fails_with_a_timeout(store)
            await fails_with_a_timeout(store)  # and the next call too
        assert await store.visitor_facts("site", "v_visitor01") == {}


async def test_connecting_to_a_redis_that_does_not_answer_fails_with_store_error(
    own_redis: RedisServer,
) -> None:
    async with store_on(own_redis.url) as store:
        with own_redis.frozen():
            await fails_with_a_timeout(store)  # the first call opens the connection
        assert await store.visitor_facts("site", "v_visitor01") == {}


async def test_concurrent_calls_all_fail_and_all_recover(own_redis: RedisServer) -> None:
    async with store_on(own_redis.url) as store:
        await asyncio.gather(*(store.visitor_facts("site", f"v_{i:08d}") for i in range(8)))
        with own_redis.frozen():
            results = await asyncio.wait_for(
                asyncio.gather(
                    *(store.visitor_facts("site", f"v_{i:08d}") for i in range(8)),
                    return_exceptions=True,
                ),
                NEVER_S,
            )
        assert all(isinstance(r, StoreError) for r in results)
        assert (
            await asyncio.gather(*(store.visitor_facts("site", f"v_{i:08d}") for i in range(8)))
            == [{}] * 8
        )


async def test_an_idle_connection_outlives_the_call_timeout(clean_redis: str) -> None:
    async with store_on(clean_redis) as store:
        first = await store.client.client_id()
        await asyncio.sleep(3 * CALL_TIMEOUT_S)
        assert await store.client.client_id() == first  # the same connection, not cut


async def test_a_busy_connection_keeps_answering_past_the_call_timeout(clean_redis: str) -> None:
    async with store_on(clean_redis) as store:
        first = await store.client.client_id()
        loop = asyncio.get_running_loop()
        until = loop.time() + 3 * CALL_TIMEOUT_S
        calls = 0
        while loop.time() < until:
            await store.client.incr("calls")
            calls += 1
        assert int(await store.client.get("calls") or 0) == calls
        assert await store.client.client_id() == first


# ---------------------------------------------------------------- the pool


async def test_more_calls_than_connections_wait_their_turn(clean_redis: str) -> None:
    client = redis.asyncio.Redis(
        connection_pool=watched_pool(clean_redis, max_connections=2, timeout=NEVER_S)
    )
    async with client:

        async def call() -> int:
            await client.incr("calls")
            return int(await client.client_id())

        # a waiter left without a notify would wait NEVER_S: the outer bound catches it
        seen = await asyncio.wait_for(asyncio.gather(*(call() for _ in range(40))), NEVER_S / 2)
        assert int(await client.get("calls") or 0) == 40
        assert len(set(seen)) == 2  # every call on one of the pool's two connections


async def test_a_call_waits_for_a_connection_no_longer_than_the_pool_timeout(
    clean_redis: str,
) -> None:
    pool = watched_pool(clean_redis, max_connections=2, timeout=CALL_TIMEOUT_S)
    client = redis.asyncio.Redis(connection_pool=pool)
    async with client:
        held = [await pool.get_connection(), await pool.get_connection()]
        with pytest.raises(redis.exceptions.ConnectionError):
            await asyncio.wait_for(client.ping(), NEVER_S)
        await pool.release(held.pop())
        assert await client.ping()
        await pool.release(held.pop())


async def test_a_connection_redis_closed_while_it_sat_in_the_pool_is_not_lent_again(
    own_redis: RedisServer,
) -> None:
    """A Redis restart closes the pool's idle connections. redis-py 8 lends a connection
    without looking whether Redis closed it when its maintenance notifications are on (they
    are, "auto", by default): the pool connects such a connection again before lending it,
    so the first call after the restart is answered instead of failing."""
    client = redis.asyncio.Redis(connection_pool=watched_pool(own_redis.url, timeout=NEVER_S))
    async with client:
        assert await client.set("k", "before")
        lent = await client.connection_pool.get_connection()
        await client.connection_pool.release(lent)
        own_redis.kill()
        own_redis.start()
        await asyncio.sleep(0.2)  # the idle connection's socket has seen Redis close it
        assert await client.get("k") == b"before"
        again = await client.connection_pool.get_connection()
        assert again is lent  # the same connection, connected anew
        await client.connection_pool.release(again)


async def test_a_connection_holding_a_reply_nobody_read_is_not_lent_again(
    clean_redis: str,
) -> None:
    """A connection given back with a reply still unread (a caller that sent and left) is
    connected anew before it is lent: the next call reads its own answer, not that one."""
    pool = watched_pool(clean_redis, max_connections=1, timeout=NEVER_S)
    client = redis.asyncio.Redis(connection_pool=pool)
    async with client:
        left = await pool.get_connection()
        await left.send_command("SET", "k", "stale")  # its "+OK" stays in the socket
        await pool.release(left)
        await asyncio.sleep(0.1)  # the reply has arrived
        assert await client.get("k") == b"stale"


# ---------------------------------------------------------------- packing commands

# what the store sends: ints, text (non-ASCII, a lone surrogate's neighbours), bytes, JSON
# arguments of every size around redis-py's buffer cutoff, floats as repr spells them
PACKED_ALIKE: list[tuple[Any, ...]] = [
    ("PING",),
    ("EVALSHA", "a" * 40, 2, "cw:{s}:k1", "cw:{s}:k2", 1764680000000, -3, 2**70, "", "é€😀"),
    ("SET", "k", b"\x00\xff raw", 0.1, 1e20, float("nan"), -0.0),
    ("SET", "k", memoryview(b"view")),
    ("EVALSHA", "b" * 40, 0, *("x" * n for n in (5999, 6000, 6001, 70_000))),
    ("CONFIG GET", "maxmemory"),  # a name redis-py splits into its words
    ("HSET", "k", bytearray(b"ba"), "v"),  # a type hiredis does not pack: redis-py does
]


@pytest.mark.parametrize("command", PACKED_ALIKE, ids=lambda c: str(c[0]))
def test_a_command_is_packed_to_the_very_bytes_redis_py_packs(command: tuple[Any, ...]) -> None:
    watched, stock = WatchedConnection(), redis.asyncio.Connection()
    assert b"".join(watched.pack_command(*command)) == b"".join(stock.pack_command(*command))
    pipelined = [command, ("PING",), command]
    assert b"".join(watched.pack_commands(pipelined)) == b"".join(stock.pack_commands(pipelined))


@pytest.mark.parametrize("value", [True, None, object()], ids=["bool", "None", "object"])
def test_a_value_redis_cannot_take_raises_redis_pys_data_error(value: Any) -> None:
    with pytest.raises(redis.exceptions.DataError):
        WatchedConnection().pack_command("SET", "k", value)


async def test_packed_values_reach_redis_unchanged(clean_redis: str) -> None:
    values: list[Any] = ["é€😀", "x" * 70_000, "", b"\x00\xff", 2**70, -3, 0.1]
    client = redis.asyncio.Redis(connection_pool=watched_pool(clean_redis))
    async with client:
        await client.rpush("values", *values)
        stored = await client.lrange("values", 0, -1)
    assert stored == [v if isinstance(v, bytes) else str(v).encode() for v in values]
