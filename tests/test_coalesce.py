"""Script calls of one event-loop turn go to Redis in one pipeline, each with its own answer
(store/coalesce.py), on both store backends."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.exceptions import RedisError, ResponseError

from cuewire.store import RedisStore
from cuewire.store.coalesce import Coalescer
from support.servers import WITH_CLUSTER, free_port

BACKENDS = WITH_CLUSTER  # the store tests run on a Redis Cluster too

ECHO = """
if ARGV[1] == 'bad' then return redis.error_reply('bad call') end
redis.call('INCR', KEYS[1])
return ARGV[1]
"""


class Counting:
    """A client whose pipelines are counted: on one Redis its ``pipeline()`` calls; on a
    cluster the connections its nodes lend (store/node_pipelines.py: one per pipeline)."""

    def __init__(
        self, client: aioredis.Redis | RedisCluster, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        self.pipelines = 0
        if isinstance(client, RedisCluster):  # ClusterNode has slots: its class is patched
            real = ClusterNode.acquire_connection
            monkeypatch.setattr(ClusterNode, "acquire_connection", self._counted(real))
        else:
            monkeypatch.setattr(client, "pipeline", self._counted(client.pipeline))

    def _counted(self, real: Callable[..., Any]) -> Callable[..., Any]:
        def counted(*args: Any, **kwargs: Any) -> Any:
            self.pipelines += 1
            return real(*args, **kwargs)

        return counted


async def test_calls_of_one_turn_share_one_pipeline_and_get_their_own_answers(
    store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    await store.client.script_load(ECHO)  # loaded: no call goes alone to load it
    counting = Counting(store.client, monkeypatch)
    script = store.client.register_script(ECHO)
    calls = Coalescer(store.client)
    answers = await asyncio.gather(*[calls.call(script, ["n"], [str(i)]) for i in range(20)])
    assert answers == [str(i) for i in range(20)]
    assert counting.pipelines == 1
    assert await store.client.get("n") == "20"  # each ran once


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


async def test_a_lone_call_goes_as_it_is(
    store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    counting = Counting(store.client, monkeypatch)
    script = store.client.register_script(ECHO)
    assert await Coalescer(store.client).call(script, ["n"], ["x"]) == "x"
    # on a cluster a lone call goes as a pipeline of one on its node: one connection lent
    assert counting.pipelines == (1 if isinstance(store.client, RedisCluster) else 0)


async def test_calls_survive_a_flushed_script_cache(store: RedisStore) -> None:
    """A restarted Redis has forgotten the scripts: each call loads its script again."""
    script = store.client.register_script(ECHO)
    calls = Coalescer(store.client)
    await asyncio.gather(*[calls.call(script, ["n"], ["warm"]) for _ in range(3)])
    await store.client.script_flush()
    answers = await asyncio.gather(*[calls.call(script, ["n"], [str(i)]) for i in range(5)])
    assert answers == [str(i) for i in range(5)]


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
