"""The CPU of one Socket.IO disconnect at N open connections: python-socketio's manager
against Cuewire's indexed one (server/cuewire/rooms.py).

Each manager is attached to a real ``AsyncServer``; N sockets connect (each enters its own
room, as every Socket.IO socket does), then ``--disconnects`` of them disconnect through the
manager's ``disconnect``. Both managers take turns ``--rounds`` times; the figure is the
median CPU time per disconnect and the ratio python-socketio / Cuewire.

``python -m bench.disconnect_call [--sizes 1000,3000,10000] [--disconnects 500] [--rounds 3]``
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import socketio

from cuewire.rooms import LocalManager


async def cpu_per_disconnect(manager: socketio.AsyncManager, open_: int, disconnects: int) -> float:
    socketio.AsyncServer(async_mode="asgi", client_manager=manager)
    sids = [await manager.pre_connect(f"e{i}", "/") for i in range(open_)]
    for sid in sids:
        await manager.connect(sid, "/")
    started = time.process_time()
    for sid in sids[:disconnects]:
        await manager.disconnect(sid, "/")
    return (time.process_time() - started) / disconnects


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,3000,10000")
    parser.add_argument("--disconnects", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"{'open connections':>16}  {'python-socketio':>15}  {'Cuewire':>8}  ratio")
    for size in (int(s) for s in args.sizes.split(",")):
        theirs, ours = [], []
        for _ in range(args.rounds):
            theirs.append(await cpu_per_disconnect(socketio.AsyncManager(), size, args.disconnects))
            ours.append(await cpu_per_disconnect(LocalManager(), size, args.disconnects))
        t, o = statistics.median(theirs) * 1e6, statistics.median(ours) * 1e6
        print(f"{size:>16,}  {t:>12.1f} us  {o:>5.1f} us  {t / o:.0f}x")


if __name__ == "__main__":
    asyncio.run(main())
