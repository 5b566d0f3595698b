"""What one write to a loopback socket costs here, by who is at the other end.

The server's event loop pays for each write to Redis inside the write call itself (uvloop's
transport, on the loop's thread). This measures that call's wall time, the writes paced as a
served process makes them (one every ``--gap-us``), to four peers in turns:

- ``recv``: a process that only reads (blocked in ``recv``);
- ``epoll``: a process that only reads, waiting in ``epoll`` as an event loop does;
- ``answers``: a process that answers each write with Redis's PONG, read before the next;
- ``redis``: our own redis-server, which wakes in its event loop, answers a PING, and is
  waited for before the next write (a lone store call's shape).

Instrumenting the server's lane under the latency scenario (2026-12-04, docs/performance.md)
gave 71-81 us per write to Redis at 2,000 sessions; this gives the same call's cost on an
idle machine, without the product around it. On this gVisor VM a write that follows the
peer's answer (``answers``, ``redis``) costs several times one to a peer that only reads,
whatever the peer is: a request-reply exchange's cost, not Redis's. A process that sends
each batch's store call alone pays it once per batch; the echo server never does.

``python -m bench.write_cost [--writes 3000] [--gap-us 300] [--rounds 3]``
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import sys
import tempfile
import time
from asyncio.subprocess import Process
from collections.abc import Awaitable, Callable
from pathlib import Path

import uvloop

from .procs import Redis

PING = b"*1\r\n$4\r\nPING\r\n"
PONG = b"+PONG\r\n"
READER = """
import select, socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
if sys.argv[2] == "answers":  # answers each write, as Redis does a PING
    while s.recv(1 << 20):
        s.sendall(b"+PONG\\r\\n")
elif sys.argv[2] == "epoll":  # waits as an event loop (and Redis) does
    s.setblocking(False)
    poll = select.epoll()
    poll.register(s.fileno(), select.EPOLLIN)
    while poll.poll() and s.recv(1 << 20):
        pass
else:
    while s.recv(1 << 20):
        pass
"""

WAITS = ("recv", "epoll", "answers")  # the child peers, as _reader_peer makes them
Peer = tuple[asyncio.StreamWriter, Callable[[], Awaitable[object]]]


async def _reader_peer(waits: str) -> tuple[Peer, Process]:
    """A child process that reads what is written and never answers; it ``waits`` in
    ``recv`` or in ``epoll``."""
    listening = socket.create_server(("127.0.0.1", 0))
    listening.setblocking(False)
    port = listening.getsockname()[1]
    child = await asyncio.create_subprocess_exec(sys.executable, "-c", READER, str(port), waits)
    conn, _ = await asyncio.get_running_loop().sock_accept(listening)
    listening.close()
    reader, writer = await asyncio.open_connection(sock=conn)

    async def after() -> bytes:
        return await reader.readexactly(len(PONG)) if waits == "answers" else b""

    return (writer, after), child


async def _redis_peer(port: int) -> Peer:
    """A connection to redis-server: each write is a PING, answered before the next."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    async def answered() -> bytes:
        return await reader.readexactly(len(PONG))

    return writer, answered


async def _round(peer: Peer, writes: int, gap_s: float) -> list[float]:
    """The wall time of each write call, in seconds."""
    writer, after = peer
    took: list[float] = []
    for _ in range(writes):
        started = time.perf_counter()
        writer.write(PING)
        took.append(time.perf_counter() - started)
        await after()
        await asyncio.sleep(gap_s)
    return took


def _p99(xs: list[float]) -> float:
    return sorted(xs)[int(len(xs) * 0.99)]


async def measure(writes: int, gap_s: float, rounds: int) -> dict[str, list[list[float]]]:
    took: dict[str, list[list[float]]] = {name: [] for name in (*WAITS, "redis")}
    with tempfile.TemporaryDirectory(prefix="cw-write-") as folder:
        server = Redis(Path(folder))
        made = [await _reader_peer(waits) for waits in WAITS]
        try:
            peers = {waits: peer for waits, (peer, _) in zip(WAITS, made, strict=True)}
            peers["redis"] = await _redis_peer(server.port)
            for peer in peers.values():  # warm up
                await _round(peer, 200, gap_s)
            for _ in range(rounds):
                for name, p in peers.items():
                    took[name].append(await _round(p, writes, gap_s))
            for writer, _ in peers.values():
                writer.close()
        finally:
            for _, child in made:
                child.kill()
                await child.wait()
            server.proc.kill()
            server.proc.wait()
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--writes", type=int, default=3000)
    parser.add_argument("--gap-us", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    took = uvloop.run(measure(args.writes, args.gap_us / 1e6, args.rounds))
    print(f"{args.writes} writes a round, one every {args.gap_us} us, {args.rounds} rounds")
    print(f"{'peer':<8} {'mean us':>8} {'p99 us':>8}  (median over rounds)")
    means = {}
    for name, runs in took.items():
        means[name] = statistics.median(statistics.fmean(r) for r in runs) * 1e6
        p99 = statistics.median(_p99(r) for r in runs) * 1e6
        print(f"{name:<8} {means[name]:>8.1f} {p99:>8.1f}")
    ratio = means["redis"] / means["recv"]
    print(f"a write that wakes Redis / one that wakes a reader in recv: {ratio:.1f}x")


if __name__ == "__main__":
    main()
