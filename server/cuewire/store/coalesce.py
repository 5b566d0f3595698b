"""Script calls made in one turn of the event loop go to Redis together, in one pipeline.

Under load many sessions' batches call a script in the same loop iteration. Sent one by one,
each call pays redis-py's connection checkout, a socket write and its own wake-up for the
reply; sent together, the calls of one iteration share one connection, one write and one read
loop, and Redis answers them in order. Each call still gets its own answer or its own error:
one script that fails does not fail the others. A lone call goes as it is.

On a Redis Cluster the calls of one turn go in one pipeline per node, the nodes concurrently
(node_pipelines.py), a lone call too: each call is routed by its key (a script's first key, a
plain command's key), a node that fails fails only its own calls, and a call whose slot moved
follows it. Plain commands (:meth:`Coalescer.command`) go with the script calls.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

from .node_pipelines import NodePipelines


@dataclass(slots=True)
class _Call:
    script: AsyncScript | None  # None: a plain command, ``args``
    keys: Sequence[Any]
    args: Sequence[Any]
    answer: asyncio.Future[Any]

    @property
    def words(self) -> tuple[Any, ...]:
        """The command sent: EVALSHA itself (a Script on a pipeline would add SCRIPT EXISTS
        first), or the plain command."""
        if self.script is None:
            return tuple(self.args)
        return ("EVALSHA", self.script.sha, len(self.keys), *self.keys, *self.args)


class Coalescer:
    """Runs script calls, those of one loop iteration in one pipeline."""

    def __init__(self, client: aioredis.Redis | RedisCluster) -> None:
        self._client = client
        self._nodes = NodePipelines(client) if isinstance(client, RedisCluster) else None
        self._waiting: list[_Call] = []
        self._sending: set[asyncio.Task[None]] = set()

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
        self._waiting.append(_Call(script, keys, args, answer))
        return answer

    def _flush(self) -> None:
        calls, self._waiting = self._waiting, []
        calls = [c for c in calls if not c.answer.done()]  # a caller cancelled meanwhile
        if not calls:
            return
        task = asyncio.get_running_loop().create_task(self._send(calls))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, calls: list[_Call]) -> None:
        if len(calls) == 1 and self._nodes is None:
            [one] = calls
            await self._settle(one, self._alone(one))
            return
        try:
            if self._nodes is None:
                await self._answer(calls, await self._pipeline(calls))
            else:  # each node's calls answered as soon as it answers

                async def answered(at: list[int], results: list[Any]) -> None:
                    await self._answer([calls[i] for i in at], results)

                keys = [c.keys[0] for c in calls]
                await self._nodes.send(keys, [c.words for c in calls], answered)
        except asyncio.CancelledError:  # the server stops: so do the calls
            for c in calls:
                c.answer.cancel()
            raise
        except Exception as exc:  # the connection failed: every call of it not answered did
            for c in calls:
                _fail(c, exc)

    async def _pipeline(self, calls: list[_Call]) -> list[Any]:
        """Each call's answer or error, from one pipeline."""
        pipe = self._client.pipeline(transaction=False)
        for c in calls:
            pipe.execute_command(*c.words)
        results: list[Any] = await pipe.execute(raise_on_error=False)
        return results

    async def _answer(self, calls: list[_Call], results: list[Any]) -> None:
        for c, result in zip(calls, results, strict=True):
            if isinstance(result, NoScriptError):  # a restarted or flushed server
                await self._settle(c, self._alone(c))
            elif isinstance(result, Exception):
                _fail(c, result)
            elif not c.answer.done():
                c.answer.set_result(result)

    async def _alone(self, c: _Call) -> Any:
        if c.script is None:
            return await self._client.execute_command(*c.args)
        return await c.script(keys=c.keys, args=c.args)

    @staticmethod
    async def _settle(c: _Call, work: Any) -> None:
        try:
            result = await work
        except Exception as exc:
            _fail(c, exc)
            return
        if not c.answer.done():
            c.answer.set_result(result)


def _fail(c: _Call, exc: BaseException) -> None:
    if not c.answer.done():
        c.answer.set_exception(exc)
