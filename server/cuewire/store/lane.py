"""One Redis connection that carries the store's calls, pipelined, with no task per call.

The coalescer (coalesce.py) hands each loop turn's calls to the lane at once: their commands
are packed and written to the lane's connection right there, and the answers are parsed as
they arrive, in the socket transport's own callback, which settles each call's future (no
reader task to wake; the embedded store's connections, which have no socket, keep one:
wires.py).
Redis answers one connection's commands in the order they came, and runs one command at a
time whatever the number of connections, so one connection loses nothing; what goes is
redis-py's work around each call: a task per turn, a pool checkout and release, a Pipeline
object or ``execute_command`` with its retry wrapper, and a read coroutine per call. Under
the latency scenario's load (one event a second per session: most turns carry one call) that
work was a quarter of the server's CPU (py-spy on the server under that load, 1,000
sessions); the lane's writes and reader take half of it (``python -m bench.redis_call
--coalesced``: 0.58x the client CPU of a lone call).

While a few answers are in flight, the next calls are held and written together when the
last of those answers comes (or after ``HOLD_S``, 1 ms): Redis would run them after the calls
in flight anyway, and the turns of a busy second share one write and one read.

What fails, and how much:

- An error reply (a script's error, ``NOSCRIPT``) fails its own call only; ``NOSCRIPT`` goes
  to ``on_noscript`` (the coalescer sends that call again through the script, which loads it).
- A connection that fails (Redis gone, or a reply overdue: the watched connection of
  connection.py cuts its socket after the call timeout, and the calls fail with redis'
  ``TimeoutError``) fails every call written on it and not yet answered. So do bytes that
  are not Redis's protocol, and a reply that arrives when no call is in flight: nothing read
  on that connection afterwards could be trusted to be whose answer it says. The lane gives
  the connection back to the pool and the next call takes one again, connecting anew.
- A connection Redis closed while nothing was in flight on it (a restart) is given back
  before a call is written on it: the calls wait for a fresh one instead of failing.
- Calls held for the answers in flight were never written: when the connection fails they
  go on the next one.
- The lane never resends a call: the caller sees a ``RedisError`` (the store answers
  ``store_unavailable`` and the client resends the batch, docs/protocol.md).
- While Redis does not read, the commands written wait in the socket's buffer; past
  ``MAX_UNSENT_BYTES`` new calls fail at once instead of growing it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import redis.asyncio as aioredis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError

from .connection import UnreadBacklog, Watched
from .wires import Call, SocketWire, TaskWire, Wire, fail

MAX_UNSENT_BYTES = 16 * 1024 * 1024
# Calls are held (below) behind at most this many answers in flight, for at most HOLD_S.
# Behind more, Redis has work queued and a turn's write is worth its cost: holding those
# calls would leave Redis idle between writes (a saturated process: 1.13x the CPU per
# batch in the ingest scenario when every call was held).
HOLD_BEHIND = 8
HOLD_S = 0.001


class Lane:
    """The pipelined connection described above, taken from ``client``'s pool when first
    needed and again after a failure."""

    def __init__(self, client: aioredis.Redis, on_noscript: Callable[[Call], None]) -> None:
        self.client = client
        self.on_noscript = on_noscript
        self._wire: Wire | None = None
        self._queued: list[Call] = []  # waiting for a connection
        self._held: list[Call] = []  # waiting for the answers in flight (send)
        self._release: asyncio.TimerHandle | None = None  # writes them after HOLD_S
        self._connecting: asyncio.Task[None] | None = None
        self._wires: set[Wire] = set()  # the current one and those still reading
        self._closed = False

    def send(self, calls: list[Call]) -> None:
        """Write ``calls`` now or, while a few answers are in flight (``HOLD_BEHIND``), with
        the next write: when the last of those answers comes, or after ``HOLD_S``. Redis
        runs one connection's commands in order, so a call written behind others would not
        run before them anyway; held, the calls of several loop turns go in one write and
        come back in one read (at 1,000 events/s most turns carry one call, and a write to
        Redis was 14% of the server's CPU)."""
        wire = self._wire
        behind = wire is not None and 0 < len(wire.written) <= HOLD_BEHIND
        if (behind or self._held) and not self._closed:  # (after the held ones, in order)
            if not self._held:
                loop = asyncio.get_running_loop()
                self._release = loop.call_later(HOLD_S, self._write_held)
            self._held += calls
            return
        self._send_now(calls)

    def in_flight_answered(self, wire: Wire) -> None:
        """``wire``'s reader took the last answer in flight: the held calls go now."""
        if wire is self._wire and self._held:
            self._write_held()

    def _write_held(self) -> None:
        if self._release is not None:
            self._release.cancel()
            self._release = None
        calls, self._held = self._held, []
        calls = [c for c in calls if not c.answer.done()]  # a caller cancelled meanwhile
        if calls:
            self._send_now(calls)

    def _send_now(self, calls: list[Call]) -> None:
        """Write ``calls`` now, or as soon as the lane has a connection."""
        if self._closed:
            fail(calls, RedisConnectionError("the store is closed"))
            return
        wire = self._wire
        if wire is not None and not wire.written and not wire.is_open():
            # Redis closed it while the lane had nothing in flight (a restart): not a call
            # is lost to it, they wait for the next connection
            self._retire(wire, RedisConnectionError("Redis closed the connection"))
            wire = None
        if wire is not None:
            try:
                wire.write(calls, MAX_UNSENT_BYTES)
                return
            except UnreadBacklog as exc:  # Redis does not read: they fail now, not later
                fail(calls, exc)
                return
            except RedisConnectionError as exc:  # none of them was written: they wait
                self._retire(wire, exc)
            except Exception as exc:  # an argument redis-py cannot send
                fail(calls, exc)
                return
        self._queued.extend(calls)
        if self._connecting is None:
            self._connecting = asyncio.get_running_loop().create_task(self._connect())

    def _retire(self, wire: Wire, exc: Exception) -> None:
        """No more calls on ``wire``; its reader answers those written and gives it back."""
        if self._wire is wire:
            self._wire = None
        wire.retire(exc)

    async def _connect(self) -> None:
        try:
            pool = self.client.connection_pool
            conn: AbstractConnection = await pool.get_connection()  # type: ignore[no-untyped-call]
        except Exception as exc:
            calls, self._queued = self._queued, []
            fail(calls, exc)
            return
        finally:
            self._connecting = None
        if self._closed:
            await self.client.connection_pool.release(conn)
            return
        kind = SocketWire if isinstance(conn, Watched) else TaskWire
        self._wire = wire = kind(self, conn)
        self._wires.add(wire)
        calls, self._queued = self._queued, []
        calls = [c for c in calls if not c.answer.done()]
        if calls:
            self.send(calls)

    async def retired(self, wire: Wire) -> None:
        """``wire``'s reader ended: its connection goes back to the pool."""
        self._wires.discard(wire)
        if self._wire is wire:  # it failed: the next call connects again
            self._wire = None
            if self._held:  # never written: they go on the next connection
                self._write_held()
        await wire.conn.disconnect(nowait=True)
        await self.client.connection_pool.release(wire.conn)

    async def aclose(self) -> None:
        """Stop: the calls not answered are cancelled, the connection goes back to the pool."""
        self._closed = True
        if self._connecting is not None:
            self._connecting.cancel()
        if self._release is not None:
            self._release.cancel()
        for call in [*self._queued, *self._held]:
            call.answer.cancel()
        self._queued.clear()
        self._held.clear()
        readers = [w.reader for w in self._wires]
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
