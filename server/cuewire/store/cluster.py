"""Redis Cluster: whether a server is a cluster node, and the client for a cluster.

The store is pointed at a cluster with the same ``redis://`` URL as at one Redis (any node of
the cluster); it asks the node (``INFO cluster``) when it opens (store/redis.py).
"""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from .connection import DEFAULT_CALL_TIMEOUT_S

CLUSTER_POOL_SIZE = 64  # connections per node


async def is_cluster(client: aioredis.Redis) -> bool:
    """Whether the server behind ``client`` runs with ``cluster-enabled yes``."""
    info = await client.info("cluster")
    return int(info.get("cluster_enabled", 0)) == 1


def cluster_client(url: str) -> RedisCluster:
    """A cluster client that finds the cluster from the node at ``url``. redis-py bounds its
    calls with ``socket_timeout`` (the watched connections of connection.py are for one
    Redis: redis-py's cluster nodes make their own connections)."""
    return RedisCluster.from_url(
        url,
        decode_responses=True,
        max_connections=CLUSTER_POOL_SIZE,
        socket_timeout=DEFAULT_CALL_TIMEOUT_S,
    )
