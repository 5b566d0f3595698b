"""The client-side cost of one Redis call: EVALSHA of a trivial script, as Cuewire makes it.

Each configuration of the redis.asyncio client makes ``--calls`` EVALSHA calls of one small
script against our own redis-server, from ``--concurrency`` tasks at once (a server has many
batches in flight). The configurations take turns, ``--rounds`` times, in one process, so a
busy machine slows them alike; the figure is this process's CPU time per call (the client's
work: pool, timeouts, packing, parsing; Redis runs in its own process), median over rounds,
and its ratio to ``bare``.

- ``open_store``: the client ``cuewire.store.open_store`` builds, as ``cuewire serve`` runs it.
- ``stock``: redis-py's defaults with a blocking pool, as open_store did before issue #10:
  BlockingConnectionPool(max_connections=64, timeout=5), socket_timeout 5 s.
- ``bare``: a plain ConnectionPool with no socket timeout: no timeout wrapper at all, and so
  no bound on a call to a Redis that stopped answering. The floor of the timeouts, not a
  configuration to run (it packs commands with redis-py's Python packer, as ``stock`` does).

``--args N``: each call carries N arguments (default 2); ``--args 30`` is an ingest call's
shape (its keys, settings, JSON arguments and events), where packing the command weighs most.

``--cluster`` adds a 3-node Redis Cluster (our own redis-servers) and two clients of it:

- ``cluster``: the client ``cuewire.store.cluster.cluster_client`` builds, on the watched
  connections of store/connection.py.
- ``cluster_stock``: redis-py's RedisCluster with its own connections, as cluster_client
  built it before (socket_timeout 5 s, 64 connections per node).

``--coalesced``: the calls go through the store's Coalescer (store/coalesce.py), as the store
makes them: those of one loop turn in one pipeline (on a cluster, one per node).

``python -m bench.redis_call [--calls 20000] [--concurrency 1,32] [--rounds 5] [--args 2]
[--cluster] [--coalesced]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import redis.asyncio as aioredis

from cuewire.settings import Settings
from cuewire.store import open_store
from cuewire.store.cluster import CLUSTER_POOL_SIZE, cluster_client
from cuewire.store.coalesce import Coalescer

from .procs import Redis, RedisCluster

SCRIPT = "return {KEYS[1], ARGV[1], #ARGV}"
# one event as the ingest script gets it: what the arguments past the first two carry
FILLER = '{"type":"click","selector":"#size-m","text":"M","ts":1764680000000,"seq":12}'

Client = aioredis.Redis | aioredis.RedisCluster
Config = Callable[[str], Client]


def _open_store(url: str) -> aioredis.Redis:
    return open_store(Settings(redis_url=url)).client


def _stock(url: str) -> aioredis.Redis:
    pool = aioredis.BlockingConnectionPool.from_url(
        url, decode_responses=True, max_connections=64, timeout=5.0, socket_timeout=5.0
    )
    return aioredis.Redis(connection_pool=pool)


def _bare(url: str) -> aioredis.Redis:
    pool = aioredis.ConnectionPool.from_url(url, decode_responses=True, socket_timeout=None)
    return aioredis.Redis(connection_pool=pool)


def _cluster_stock(url: str) -> aioredis.RedisCluster:
    return aioredis.RedisCluster.from_url(
        url, decode_responses=True, max_connections=CLUSTER_POOL_SIZE, socket_timeout=5.0
    )


CONFIGS: dict[str, Config] = {"open_store": _open_store, "stock": _stock, "bare": _bare}
CLUSTER_CONFIGS: dict[str, Config] = {"cluster": cluster_client, "cluster_stock": _cluster_stock}


async def _calls(
    client: Client, calls: int, concurrency: int, width: int, coalesced: bool = False
) -> float:
    """CPU seconds of this process per call, ``calls`` calls of ``width`` arguments from
    ``concurrency`` tasks; with ``coalesced``, through the store's Coalescer (the calls of
    one loop turn in one pipeline, as the store makes them)."""
    script = client.register_script(SCRIPT)
    await script(keys=["k"], args=["warm"])  # loads the script, opens a connection
    extra = [FILLER] * max(0, width - 2)
    calls_of = Coalescer(client)

    async def worker(task: int, n: int) -> None:
        for i in range(n):
            keys = [f"k{{{task}:{i % 64}}}"]  # sessions' keys, over every node of a cluster
            if coalesced:
                await calls_of.call(script, keys, [i, "x", *extra])
            else:
                await script(keys=keys, args=[i, "x", *extra])

    share = calls // concurrency
    started = time.process_time()
    try:
        await asyncio.gather(*(worker(task, share) for task in range(concurrency)))
        return (time.process_time() - started) / (share * concurrency)
    finally:
        await calls_of.aclose()  # its lane's reader, with the loop that runs it


async def measure(
    urls: dict[str, str],
    calls: int,
    concurrency: int,
    rounds: int,
    width: int = 2,
    coalesced: bool = False,
) -> dict[str, list[float]]:
    """CPU seconds per call of each configuration, a figure per round; ``urls``: the one
    Redis's (``single``) and, when measured, the cluster's (``cluster``)."""
    clients = {name: make(urls["single"]) for name, make in CONFIGS.items()}
    if "cluster" in urls:
        clients |= {name: make(urls["cluster"]) for name, make in CLUSTER_CONFIGS.items()}
    seconds: dict[str, list[float]] = {name: [] for name in clients}
    try:
        for client in clients.values():  # warm up every pool to its width
            await _calls(client, concurrency * 20, concurrency, width, coalesced)
        for _ in range(rounds):
            for name, client in clients.items():
                seconds[name].append(await _calls(client, calls, concurrency, width, coalesced))
    finally:
        for client in clients.values():
            await client.aclose()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--concurrency", default="1,32", help="comma-separated task counts")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--args", type=int, default=2, help="arguments per call")
    parser.add_argument("--cluster", action="store_true", help="add a 3-node Redis Cluster")
    parser.add_argument(
        "--coalesced", action="store_true", help="through the store's Coalescer (store/coalesce.py)"
    )
    args = parser.parse_args()
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    runner = asyncio.Runner(loop_factory=_uvloop() if loop == "uvloop" else None)
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        server = Redis(Path(tmp))
        stack.callback(server.stop)
        urls = {"single": server.url}
        if args.cluster:
            cluster = RedisCluster(Path(tmp))
            stack.callback(cluster.stop)
            urls["cluster"] = cluster.url
        stack.enter_context(runner)
        print(
            f"redis-server {server.version()}, {loop}, {args.calls} EVALSHA calls a round,"
            f" {args.args} arguments each"
        )
        print(
            f"{'config':<14}{'tasks':>6}{'us CPU/call':>14}{'x bare':>9}{'x stock':>9}"
            f"{'x open_store':>14}"
        )
        for concurrency in (int(c) for c in args.concurrency.split(",")):
            work = measure(urls, args.calls, concurrency, args.rounds, args.args, args.coalesced)
            seconds = runner.run(work)
            median = {name: statistics.median(s) for name, s in seconds.items()}
            for name, s in median.items():
                print(
                    f"{name:<14}{concurrency:>6}{s * 1e6:>14.1f}"
                    f"{s / median['bare']:>9.2f}{s / median['stock']:>9.2f}"
                    f"{s / median['open_store']:>14.2f}"
                )


def _uvloop() -> Callable[[], asyncio.AbstractEventLoop]:
    import uvloop

    return uvloop.new_event_loop


if __name__ == "__main__":
    main()
