"""Real servers for tests: a redis-server of the test's own, the Cuewire app under uvicorn in
a thread (``LiveServer``), free ports and the wait for /healthz."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import traceback
from collections.abc import Callable, Coroutine, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import httpx
import redis
import uvicorn
from starlette.types import Receive, Scope, Send

from cuewire.app import create_app, services_of
from cuewire.settings import Settings
from cuewire.sites import Site, Sites

from .subprocesses import Stoppable
from .waiting import eventually, eventually_blocking

T = TypeVar("T")

BACKENDS = ("redis", "embedded")  # the store backends every store test runs on
WITH_CLUSTER = (*BACKENDS, "cluster")  # a module's BACKENDS to run on a Redis Cluster too
POSTGRES = "postgresql://postgres@127.0.0.1:5432"  # the tests' PostgreSQL (conftest: pg_dsn)


# Tests' servers listen on ports the kernel never picks by itself: each pytest-xdist worker
# takes its own slice of 10100-19999 (Linux's ephemeral ports are 32768-60999), in turn from
# a random start. A port the kernel picked (a bind to port 0) could be picked again, by
# another worker or as a client socket's local port, between its choice and the server's
# bind: a server that lost its port while another worker's server answered on it gave a test
# the other server's Redis (a tab resuming its session was handed a new one). A cluster
# node's bus port, P + 10000, falls in 20100-29999: in no slice either. Chromium refuses to
# open a few ports (net/base/port_util.cc's restricted ports); 10080 is the only one above
# 10000, so the slices start past it.
SERVER_PORTS = range(10100, 20000)  # from 10100: browsers refuse 10080 (ERR_UNSAFE_PORT)


@functools.cache
def _own_ports() -> Iterator[int]:
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw"))
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    size = len(SERVER_PORTS) // workers
    own = SERVER_PORTS[worker * size : (worker + 1) * size]
    start = random.randrange(len(own))
    return itertools.cycle([*own[start:], *own[:start]])


def free_port(also: Callable[[int], int | None] = lambda port: None) -> int:
    """The next port of this worker's slice that nothing listens on (and ``also(port)``
    neither, when it names another port the caller needs)."""
    for port in _own_ports():
        ports = [port, *([extra] if (extra := also(port)) is not None else [])]
        with contextlib.ExitStack() as held:
            try:
                for p in ports:
                    held.enter_context(socket.socket()).bind(("127.0.0.1", p))
            except OSError:
                continue
        return port
    raise AssertionError("unreachable: the cycle is endless")


def wait_healthy(url: str, seconds: float, alive: Callable[[], bool]) -> None:
    """Poll ``url``/healthz until it answers 200; fail early when ``alive()`` turns false."""

    def status() -> int:
        return httpx.get(url + "/healthz", timeout=1).status_code

    eventually_blocking(
        status,
        lambda code: code == 200,
        timeout=seconds,
        interval=0.05,
        what=f"the server at {url} answering /healthz",
        ignoring=(httpx.HTTPError,),
        give_up=lambda: not alive(),
    )


def free_cluster_port() -> int:
    """A free port P whose cluster bus port, P + 10000, is free too."""
    return free_port(also=lambda port: port + 10000)


class RedisServer(Stoppable):
    """A redis-server of the test's own on a free port, in ``workdir``.

    ``durable`` turns the append-only file on (``appendfsync always``: an acked write is on
    disk), so a stop and a start on the same port and folder come back with the data: that is
    how the fault tests make an outage. ``kill`` stops at once, as a crash would."""

    def __init__(
        self,
        workdir: Path,
        *,
        durable: bool = True,
        port: int | None = None,
        options: Sequence[str] = (),
    ) -> None:
        self.port = port or free_port()
        self.workdir = workdir
        self.durable = durable
        self.options = list(options)  # more redis-server arguments
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    @contextmanager
    def frozen(self) -> Iterator[None]:
        """The server stops answering (SIGSTOP) and answers again afterwards (SIGCONT): its
        sockets stay open, so calls wait for it (until their deadline) rather than fail."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.kill(self.proc.pid, signal.SIGCONT)

    def start(self, cluster: bool = False) -> RedisServer:
        """Start; with ``cluster``, as a cluster node (``nodes.conf`` in the folder)."""
        binary = shutil.which("redis-server") or "redis-server"
        args = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        if cluster:
            args += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
        if self.durable:
            args += ["--appendonly", "yes", "--appendfsync", "always"]
        else:
            args += ["--appendonly", "no"]
        args += ["--dir", str(self.workdir), *self.options]
        proc = self.proc = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        client = self.client()
        try:
            eventually_blocking(
                client.ping,
                timeout=15,
                what="redis-server answering PING",
                ignoring=(redis.exceptions.BusyLoadingError, redis.ConnectionError),
                give_up=lambda: proc.poll() is not None,
            )
        finally:
            client.close()
        return self

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, decode_responses=True)


class RedisClusterServer:
    """A Redis Cluster of the test's own: ``primaries`` redis-servers with
    ``--cluster-enabled yes`` on free ports, each in its own folder under ``workdir``, joined
    by ``redis-cli --cluster create`` (no replicas: :meth:`add_replica` adds one). ``url``
    names its first node. ``node_timeout_ms``: how long a node may stop answering before the
    others count it failed (and a replica takes its place); Redis's default is 15 s."""

    def __init__(
        self, workdir: Path, primaries: int = 3, node_timeout_ms: int | None = None
    ) -> None:
        self.workdir = workdir
        self.options = (
            [] if node_timeout_ms is None else ["--cluster-node-timeout", str(node_timeout_ms)]
        )
        self.nodes = [self._node(i) for i in range(primaries)]
        self.replicas: list[RedisServer] = []
        self.url = self.nodes[0].url

    def _node(self, i: int) -> RedisServer:
        folder = self.workdir / f"node{i}"
        return RedisServer(folder, durable=False, port=free_cluster_port(), options=self.options)

    def start(self) -> RedisClusterServer:
        for node in self.nodes:
            node.workdir.mkdir(parents=True, exist_ok=True)
            node.start(cluster=True)
        cli = shutil.which("redis-cli") or "redis-cli"
        addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
        subprocess.run(
            [cli, "--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes"],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=30,
        )
        for node in self.nodes:
            client = node.client()

            def state(client: redis.Redis = client) -> str:
                return str(client.cluster("info")["cluster_state"])

            try:
                eventually_blocking(
                    state,
                    lambda state: state == "ok",
                    timeout=15,
                    what=f"cluster_state:ok on node {node.port}",
                )
            finally:
                client.close()
        return self

    def add_replica(self, primary: RedisServer) -> RedisServer:
        """A new node that joins the cluster as a replica of ``primary``, in sync with it."""
        replica = self._node(len(self.nodes) + len(self.replicas))
        replica.workdir.mkdir(parents=True, exist_ok=True)
        self.replicas.append(replica)
        replica.start(cluster=True)
        client, of = replica.client(), primary.client()
        try:
            client.execute_command("CLUSTER MEET", "127.0.0.1", primary.port)
            primary_id = str(of.execute_command("CLUSTER MYID"))

            def known() -> bool:
                return primary_id in str(client.execute_command("CLUSTER NODES"))

            eventually_blocking(known, timeout=15, what="the new node knowing the primary")
            client.execute_command("CLUSTER REPLICATE", primary_id)

            def link() -> str:
                return str(client.info("replication").get("master_link_status"))

            eventually_blocking(link, lambda up: up == "up", timeout=15, what="replica in sync")
        finally:
            client.close()
            of.close()
        return replica

    def flush(self) -> None:
        """Empty every node of this cluster (and none other)."""
        for node in self.nodes:
            client = node.client()
            try:
                client.flushall()
            finally:
                client.close()

    def stop(self) -> None:
        for node in [*self.nodes, *self.replicas]:
            node.stop()


class LiveServer:
    """The real app under uvicorn in a thread, on a free port.

    ``sites`` gets the server's own origin and returns the site registry to serve.
    """

    def __init__(self, settings: Settings, sites: Callable[[str], Sites]) -> None:
        self.settings = replace(settings, port=free_port())
        self.origin = f"http://127.0.0.1:{self.settings.port}"
        self.url = self.origin
        self.app = create_app(self.settings, sites(self.origin))
        self.services = services_of(self.app)
        self.loop: asyncio.AbstractEventLoop | None = None
        config = uvicorn.Config(
            self._app,
            host="127.0.0.1",
            port=self.settings.port,
            log_level="warning",
            lifespan="on",
            ws="websockets-sansio",
            ws_max_size=self.settings.limits.max_payload_bytes,
            interface="asgi3",
            timeout_graceful_shutdown=2,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    async def _app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            self.loop = asyncio.get_running_loop()
        await self.app(scope, receive, send)

    async def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the server's own event loop (its store lives there)."""
        if self.loop is None:
            raise RuntimeError("the server is not running")
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    def __enter__(self) -> LiveServer:
        self.thread.start()
        wait_healthy(self.url, 60, self.thread.is_alive)  # only a wedged start waits that long
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(30)  # a clean stop takes well under a second; 30 s is a wedge
        if self.thread.is_alive():
            frame = sys._current_frames()[self.thread.ident]
            stack = "".join(traceback.format_stack(frame))
            if self.loop:
                for t in asyncio.all_tasks(self.loop):
                    stack += "\nTASK " + repr(t)
            raise RuntimeError("the server did not stop within 30 s\n" + stack)


async def deadlines_settled(server: LiveServer, timeout: float = 10.0) -> None:
    """Wait until no deadline is pending or claimed in the server's store: each one has fired
    or been dropped (and audited) or cancelled, and its claim is acked, so whatever a deadline
    was going to push has been pushed. The positive signal that replaces "sleep past the
    deadline, then assert nothing came"."""

    async def next_due() -> int | None:
        return await server.call(server.services.store.next_due_ms())

    await eventually(
        next_due, lambda due: due is None, timeout=timeout, what="every deadline settled"
    )


def site_for(origin: str, honor_dnt: bool = False) -> Sites:
    return Sites({"test-site": Site(origins=[origin], honor_dnt=honor_dnt)})
