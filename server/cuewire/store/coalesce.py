"""Script calls made in one turn of the event loop go to Redis together.

Under load many sessions' batches call a script in the same loop iteration. On one Redis the
calls go to the lane (lane.py): one connection on which each turn's calls are written at
once, pipelined behind those still in flight, and answered in order by one reader, with no
task, pool checkout or redis-py pipeline per turn. Each call still gets its own answer or its
own error: one script that fails does not fail the others.

On a Redis Cluster the calls of one turn go in one pipeline per node, the nodes concurrently
(node_pipelines.py), a lone call too: each call is routed by its key (a script's first key, a
plain command's key), a node that fails fails only its own calls, and a call whose slot moved
follows it. Plain commands (:meth:`Coalescer.command`) go with the script calls.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

from .lane import Lane
from .node_pipelines import NodePipelines
from .wires import Call, fail


class Coalescer:
    """Runs script calls and plain commands, those of one loop iteration together."""

    def __init__(self, client: aioredis.Redis | RedisCluster) -> None:
        self._client = client
        self._nodes: NodePipelines | None = None
        self._lane: Lane | None = None
        if isinstance(client, RedisCluster):
            self._nodes = NodePipelines(client)
        else:
            self._lane = Lane(client, self._again)
        self._waiting: list[Call] = []
        self._sending: set[asyncio.Task[None]] = set()
        self._reloading = asyncio.Lock()

    def call(
        self, script: AsyncScript, keys: Sequence[Any], args: Sequence[Any]
    ) -> asyncio.Future[Any]:
        """The script's answer, to await; its error (a RedisError) raised there. On a cluster
        its first key routes it (the store's scripts touch the keys of one slot). Queued now:
        a future, not a coroutine (no frame per call, and ``gather`` makes no task of it)."""
        return self._queue(script, keys, args)

    def command(self, name: str, key: str, *args: Any) -> asyncio.Future[Any]:
        """The answer of the plain command ``name`` on ``key`` (its one key, named first, as
        in ``HGET key field``: on a cluster, the key routes it), to await; its error raised
        there."""
        return self._queue(None, (key,), (name, key, *args))

    def _queue(
        self, script: AsyncScript | None, keys: Sequence[Any], args: Sequence[Any]
    ) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        if not self._waiting:
            loop.call_soon(self._flush)
        answer: asyncio.Future[Any] = loop.create_future()
        self._waiting.append(Call(script, keys, args, answer))
        return answer

    async def aclose(self) -> None:
        """Stop: the calls not answered are cancelled, the lane's connection given back."""
        if self._lane is not None:
            await self._lane.aclose()

    def _flush(self) -> None:
        calls, self._waiting = self._waiting, []
        calls = [c for c in calls if not c.answer.done()]  # a caller cancelled meanwhile
        if not calls:
            return
        if self._lane is not None:
            self._lane.send(calls)
            return
        self._spawn(self._send(calls))

    def _spawn(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    def _again(self, c: Call) -> None:
        """``c`` met NOSCRIPT (a restarted or flushed server): through the script, which
        loads it; one such call at a time (a turn's calls that all met it take one
        connection, not one each, and the first loads the script for the others)."""

        async def again() -> None:
            async with self._reloading:
                await self._settle(c, self._alone(c))

        self._spawn(again())

    async def _send(self, calls: list[Call]) -> None:
        """A cluster's calls: each node's answered as soon as it answers."""
        assert self._nodes is not None

        async def answered(at: list[int], results: list[Any]) -> None:
            await self._answer([calls[i] for i in at], results)

        try:
            keys = [c.keys[0] for c in calls]
            await self._nodes.send(keys, [c.words for c in calls], answered)
        except asyncio.CancelledError:  # the server stops: so do the calls
            for c in calls:
                c.answer.cancel()
            raise
        except Exception as exc:  # the connection failed: every call of it not answered did
            fail(calls, exc)

    async def _answer(self, calls: list[Call], results: list[Any]) -> None:
        for c, result in zip(calls, results, strict=True):
            if isinstance(result, NoScriptError):  # a restarted or flushed server
                await self._settle(c, self._alone(c))
            elif isinstance(result, Exception):
                fail([c], result)
            elif not c.answer.done():
                c.answer.set_result(result)

    async def _alone(self, c: Call) -> Any:
        if c.script is None:
            return await self._client.execute_command(*c.args)
        return await c.script(keys=c.keys, args=c.args)

    @staticmethod
    async def _settle(c: Call, work: Any) -> None:
        try:
            result = await work
        except Exception as exc:
            fail([c], exc)
            return
        if not c.answer.done():
            c.answer.set_result(result)
