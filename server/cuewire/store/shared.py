"""What the Redis store's parts (redis.py, sessions.py, firing_writes.py, deadlines.py,
streams.py) share: Redis failures turned into StoreError, hash replies as dicts, calls made
together."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Iterable
from contextlib import asynccontextmanager
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisClusterException, RedisError

from ..errors import StoreError
from .base import Facts

# What redis-py raises when the store fails; the cluster client's own errors (a slot no node
# covers during a failover) are not RedisErrors.
FAILURES = (RedisError, RedisClusterException)

Client = aioredis.Redis | RedisCluster


@asynccontextmanager
async def guard(what: str) -> AsyncIterator[None]:
    """Turn a Redis failure into StoreError: no RedisError leaves the store."""
    try:
        yield
    except FAILURES as exc:
        raise StoreError(f"cannot {what}: {exc}") from exc


def pairs_of(mapping: Any) -> Facts:
    """A hash reply (``HGETALL``, a stream entry's fields) as a dict of strings."""
    return {str(k): str(v) for k, v in (mapping or {}).items()}


def pairs(flat: list[Any]) -> Facts:
    """A flat ``[field, value, ...]`` reply (from a script) as a dict."""
    return {flat[i]: flat[i + 1] for i in range(0, len(flat), 2)}


async def together(calls: Iterable[Awaitable[Any]]) -> list[Any]:
    """The answers of ``calls``, made together (on a cluster: one pipeline per loop turn,
    grouped per node); the first failure is raised once every call is done."""
    answers = await asyncio.gather(*calls, return_exceptions=True)
    for answer in answers:
        if isinstance(answer, BaseException):
            raise answer
    return answers
