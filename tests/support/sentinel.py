"""A Redis Sentinel deployment of the test's own: a primary, a replica (``--replicaof``) and three
Sentinels (``redis-server --sentinel`` with a config file each), all on free ports in one folder.

The Sentinels declare the primary down after ``down_after_ms`` without an answer and may start
the next failover of it ``failover_timeout_ms`` later: small figures, so a killed primary is
replaced within seconds. ``url`` is the ``redis+sentinel://`` URL the server takes.

With ``replica_lag_ms`` the replica replicates through a :class:`DelayLink`: what the primary
sends reaches the replica that much later, as over a slow link or to a busy replica, and what
the link holds when the primary dies is lost with it."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import threading
import time
from pathlib import Path

import redis

from .servers import free_port
from .subprocesses import Stoppable
from .waiting import eventually_blocking

SERVICE = "cw"


def free_ports(n: int) -> list[int]:
    """``n`` distinct free ports."""
    return [free_port() for _ in range(n)]


class Node(Stoppable):
    """One redis-server process (a data node or a Sentinel) on ``port``."""

    def __init__(self, workdir: Path, name: str, args: list[str], port: int) -> None:
        self.port = port
        self.workdir = workdir / name
        self.args = args
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Node:
        self.workdir.mkdir(parents=True, exist_ok=True)
        binary = shutil.which("redis-server") or "redis-server"
        proc = self.proc = subprocess.Popen(
            [binary, *self.args, "--port", str(self.port), "--bind", "127.0.0.1"],
            cwd=self.workdir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = self.client()
        try:  # this process answering, not another one that had the port
            eventually_blocking(
                lambda: int(client.info("server")["process_id"]),
                lambda pid: pid == proc.pid,
                timeout=15,
                what=f"redis-server {self.args[0]} answering on {self.port}",
                ignoring=(redis.exceptions.BusyLoadingError, redis.ConnectionError),
                give_up=lambda: proc.poll() is not None,
            )
        finally:
            client.close()
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, decode_responses=True, socket_timeout=5)


class DelayLink:
    """A TCP relay on a free port to ``upstream_port``, in a thread of its own: bytes from the
    upstream reach the client ``delay_s`` later, bytes the other way pass at once. When the
    upstream closes, the bytes still held are dropped (they were in the dead host's buffers)."""

    def __init__(self, upstream_port: int, delay_s: float) -> None:
        self.upstream_port = upstream_port
        self.delay_s = delay_s
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self.dropped = 0  # bytes held when the upstream closed

    def start(self) -> DelayLink:
        self._thread.start()
        serving = asyncio.start_server(self._relay, "127.0.0.1", self.port)
        self._server = asyncio.run_coroutine_threadsafe(serving, self._loop).result(10)
        return self

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.close()
            return
        held: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        in_hand: list[bytes] = []  # the chunk downward() waits to pass on: held too

        async def upward() -> None:
            try:
                while chunk := await reader.read(65536):
                    up_writer.write(chunk)
                    await up_writer.drain()
            finally:  # the client left: so does the upstream, which ends hold() below
                up_writer.close()

        async def downward() -> None:
            while True:
                due, chunk = await held.get()
                in_hand.append(chunk)
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                writer.write(chunk)
                in_hand.clear()
                await writer.drain()

        others = [asyncio.create_task(upward()), asyncio.create_task(downward())]
        try:
            while chunk := await up_reader.read(65536):
                held.put_nowait((time.monotonic() + self.delay_s, chunk))
        except (ConnectionError, OSError):
            pass
        finally:  # the upstream is gone: what it sent and the client has not got is lost
            for task in others:
                task.cancel()
            await asyncio.gather(*others, return_exceptions=True)
            self.dropped += sum(len(chunk) for chunk in in_hand)
            while not held.empty():
                self.dropped += len(held.get_nowait()[1])
            for end in (writer, up_writer):
                with contextlib.suppress(ConnectionError, RuntimeError):
                    end.close()


def _data_args(*extra: str) -> list[str]:
    # in memory only; a full sync streams at once (no 5 s wait for more replicas to join)
    return ["--save", "", "--appendonly", "no", "--repl-diskless-sync-delay", "0", *extra]


class SentinelDeployment:
    """The primary, the replica and three Sentinels monitoring ``SERVICE`` with quorum 2."""

    def __init__(
        self,
        workdir: Path,
        down_after_ms: int = 500,
        failover_timeout_ms: int = 3000,
        replica_lag_ms: int = 0,
    ) -> None:
        self.workdir = workdir
        ports = free_ports(5)
        self.primary = Node(workdir, "primary", _data_args(), ports[0])
        self.link: DelayLink | None = None
        upstream = self.primary.port
        if replica_lag_ms:
            self.link = DelayLink(self.primary.port, replica_lag_ms / 1000)
            upstream = self.link.port
        replica_args = _data_args("--replicaof", "127.0.0.1", str(upstream))
        self.replica = Node(workdir, "replica", replica_args, ports[1])
        self.sentinels: list[Node] = []
        for i in range(3):
            config = workdir / f"sentinel{i}" / "sentinel.conf"  # Sentinel rewrites it
            sentinel = Node(workdir, f"sentinel{i}", [str(config), "--sentinel"], ports[2 + i])
            config.parent.mkdir(parents=True, exist_ok=True)
            config.write_text(
                f"sentinel monitor {SERVICE} 127.0.0.1 {self.primary.port} 2\n"
                f"sentinel down-after-milliseconds {SERVICE} {down_after_ms}\n"
                f"sentinel failover-timeout {SERVICE} {failover_timeout_ms}\n"
                f"sentinel parallel-syncs {SERVICE} 1\n"
            )
            self.sentinels.append(sentinel)
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        self.url = f"redis+sentinel://{hosts}/{SERVICE}/0"

    @property
    def nodes(self) -> list[Node]:
        return [self.primary, self.replica, *self.sentinels]

    def start(self) -> SentinelDeployment:
        """Start every process; return once the replica is in sync and every Sentinel sees
        the replica and the two other Sentinels (a failover needs a majority of them)."""
        self.primary.start()
        if self.link is not None:
            self.link.start()
        self.replica.start()
        client = self.replica.client()
        try:
            eventually_blocking(
                lambda: client.info("replication").get("master_link_status"),
                lambda status: status == "up",
                timeout=15,
                what="the replica in sync with the primary",
            )
        finally:
            client.close()
        for sentinel in self.sentinels:
            sentinel.start()
        for sentinel in self.sentinels:
            client = sentinel.client()
            try:
                eventually_blocking(
                    lambda client=client: client.sentinel_master(SERVICE),  # type: ignore[misc]
                    lambda state: state["num-slaves"] == 1 and state["num-other-sentinels"] == 2,
                    timeout=20,
                    interval=0.1,
                    what=f"sentinel on {sentinel.port} seeing the replica and 2 sentinels",
                )
            finally:
                client.close()
        return self

    def primary_port(self, sentinel: int = 0) -> int:
        """The primary's port as Sentinel ``sentinel`` names it now."""
        client = self.sentinels[sentinel].client()
        try:
            _, port = client.sentinel_get_master_addr_by_name(SERVICE)
            return int(port)
        finally:
            client.close()

    def stop(self) -> None:
        for node in reversed(self.nodes):
            node.stop()
        if self.link is not None:
            self.link.stop()
