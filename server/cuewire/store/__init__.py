"""Pick the store backend by URL: ``redis://`` / ``rediss://`` / ``unix://`` (one Redis, or a
Redis Cluster through any of its nodes), ``redis+sentinel://`` (the primary that Sentinels
name, sentinel.py) or ``memory://``."""

from __future__ import annotations

from urllib.parse import urlsplit

import redis.asyncio as aioredis

from ..errors import ConfigError
from ..settings import Settings
from .base import Store
from .connection import watched_pool
from .redis import RedisStore
from .sentinel import SCHEME as SENTINEL_SCHEME
from .sentinel import watched_sentinel_pool

MEMORY_URL = "memory://"
POOL_SIZE = 64
POOL_WAIT_S = 5.0


def open_store(settings: Settings) -> RedisStore:
    """The store for ``settings.redis_url``; without one, the embedded in-process server."""
    url = settings.redis_url or MEMORY_URL
    scheme = urlsplit(url).scheme
    if scheme == "memory":
        from .embedded import embedded_client  # fakeredis: same Lua scripts, no process

        client: aioredis.Redis = embedded_client()
    elif scheme in {"redis", "rediss", "unix"}:
        # Wait for a free connection instead of failing when many batches are in flight;
        # calls bounded by socket_timeout without a timer per call (connection.py).
        pool = watched_pool(
            url, decode_responses=True, max_connections=POOL_SIZE, timeout=POOL_WAIT_S
        )
        client = aioredis.Redis(connection_pool=pool)
        return RedisStore(client, settings, url)  # a cluster node: found when it opens
    elif scheme == SENTINEL_SCHEME:
        # the same pool on whichever node the Sentinels name primary (never a cluster);
        # closed with the client
        sentinel_pool = watched_sentinel_pool(
            url, decode_responses=True, max_connections=POOL_SIZE, timeout=POOL_WAIT_S
        )
        client = aioredis.Redis.from_pool(sentinel_pool)
    else:
        raise ConfigError(
            f"unsupported store URL {url!r}: use redis://HOST:PORT/DB, rediss://, unix://, "
            "redis+sentinel://HOST:PORT[,HOST:PORT...]/SERVICE[/DB] or memory:// "
            "(the embedded store)"
        )
    return RedisStore(client, settings)


__all__ = ["MEMORY_URL", "RedisStore", "Store", "open_store"]
