"""Redis Cluster: whether a server is a cluster node, and the client for a cluster.

The store is pointed at a cluster with the same ``redis://`` URL as at one Redis (any node of
the cluster); it asks the node (``INFO cluster``) when it opens (store/redis.py).
"""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import Connection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from .connection import DEFAULT_CALL_TIMEOUT_S, WATCHED

CLUSTER_POOL_SIZE = 64  # connections per node
RETRIES = 1  # sends again of a call made alone, after a connection error or a timeout


async def is_cluster(client: aioredis.Redis) -> bool:
    """Whether the server behind ``client`` runs with ``cluster-enabled yes``."""
    info = await client.info("cluster")
    return int(info.get("cluster_enabled", 0)) == 1


def cluster_client(url: str) -> RedisCluster:
    """A cluster client that finds the cluster from the node at ``url``, on the watched
    connections of connection.py: calls bounded by ``socket_timeout`` without a timer per
    call, commands packed by hiredis. redis-py's cluster client builds each node's
    connections from one class it picks itself; without the watched class a call through
    it cost 2.7x the client CPU of a call to one Redis (``python -m bench.redis_call
    --cluster``). None of the store's calls blocks on the server (no XREAD BLOCK: the
    inbox has its own client), so the one bound serves them all.

    A call made alone (not coalesced: node_pipelines.py) that fails for a connection error
    or a timeout is sent once more after the slot map is asked again (:data:`RETRIES`): once
    is enough to reach a replica that took over, and a frozen node then costs such a call two
    ``socket_timeout`` instead of the eleven of redis-py's default retries (55 s at 5 s)."""
    client = RedisCluster.from_url(
        url,
        decode_responses=True,
        max_connections=CLUSTER_POOL_SIZE,
        socket_timeout=DEFAULT_CALL_TIMEOUT_S,
        retry=Retry(NoBackoff(), RETRIES),
    )
    manager = client.nodes_manager
    plain = manager.connection_kwargs.get("connection_class")
    watched = WATCHED.get(plain) if isinstance(plain, type) else None
    # the class of the nodes the cluster is found from, and of those it finds
    if watched is not None and issubclass(watched, Connection):
        manager.connection_kwargs["connection_class"] = watched
        for node in manager.startup_nodes.values():
            node.connection_class = watched
    return client
