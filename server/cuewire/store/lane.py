"""One Redis connection that carries the store's calls, pipelined, with no task per call.

The coalescer (coalesce.py) hands each loop turn's calls to the lane at once: their commands
are packed and written to the lane's connection right there, and the answers are parsed as
they arrive, in the socket transport's own callback, which settles each call's future (no
reader task to wake; the embedded store's connections, which have no socket, keep one).
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
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.connection import AbstractConnection
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import InvalidResponse, NoScriptError, ResponseError

from .connection import NOT_ENOUGH_DATA, UnreadBacklog, Watched, is_open, write_now

MAX_UNSENT_BYTES = 16 * 1024 * 1024
# Calls are held (below) behind at most this many answers in flight, for at most HOLD_S.
# Behind more, Redis has work queued and a turn's write is worth its cost: holding those
# calls would leave Redis idle between writes (a saturated process: 1.13x the CPU per
# batch in the ingest scenario when every call was held).
HOLD_BEHIND = 8
HOLD_S = 0.001


@dataclass(slots=True)
class Call:
    """One script call or plain command, and the future its caller awaits."""

    script: AsyncScript | None  # None: a plain command, ``args``
    keys: Sequence[Any]
    args: Sequence[Any]
    answer: asyncio.Future[Any]

    @property
    def words(self) -> tuple[Any, ...]:
        """The command sent: EVALSHA itself (a Script on a pipeline would add SCRIPT EXISTS
        first), or the plain command."""
        if self.script is None:
            return tuple(self.args)
        return ("EVALSHA", self.script.sha, len(self.keys), *self.keys, *self.args)


def fail(calls: Iterable[Call], exc: BaseException) -> None:
    """``exc`` is the answer of each of ``calls`` not answered yet."""
    for call in calls:
        if not call.answer.done():
            call.answer.set_exception(exc)


class _Wire:
    """One connection of the lane: the calls written on it, in order, each answered as its
    reply comes. Its ``reader`` task ends when the wire does (retired with every call
    answered, or failed) and gives the connection back (``Lane.retired``)."""

    def __init__(self, lane: Lane, conn: AbstractConnection) -> None:
        self.lane = lane
        self.conn = conn
        self.written: deque[Call] = deque()  # not yet answered, in the order written
        self.active = True  # False: retired, no more calls are written on it
        self._callbacks = lane.client.response_callbacks
        self.reader = asyncio.get_running_loop().create_task(self._run())

    def write(self, calls: list[Call]) -> None:
        """Write ``calls`` now; redis' ``ConnectionError`` when the connection cannot take
        them (nothing of them was written then)."""
        packed = self.conn.pack_commands([c.words for c in calls])
        write_now(self.conn, packed, MAX_UNSENT_BYTES)
        idle = not self.written
        self.written.extend(calls)
        self._wrote(idle)

    def retire(self, exc: Exception) -> None:
        """No more calls go on this wire; it ends once those written are answered (now,
        with ``exc``, when none is)."""
        self.active = False
        if not self.written:
            self._stop(exc)

    def is_open(self) -> bool:
        """Connected, and Redis has not closed it (as far as its socket has said)."""
        return is_open(self.conn)

    def _answer(self, reply: Any) -> None:
        """``reply`` is the answer of the first call in flight."""
        call = self.written.popleft()
        self._replied()
        if not self.written:
            self.lane.in_flight_answered(self)
        if isinstance(reply, NoScriptError):
            self.lane.on_noscript(call)
        elif isinstance(reply, Exception):
            fail([call], reply)
        elif not call.answer.done():
            parse = self._callbacks.get(call.words[0]) if call.script is None else None
            try:
                call.answer.set_result(parse(reply) if parse else reply)
            except Exception as exc:  # a reply redis-py's callback cannot read
                call.answer.set_exception(exc)

    def _cancelled(self) -> None:
        """The lane closes: the calls in flight are cancelled."""
        while self.written:
            self.written.popleft().answer.cancel()

    async def _run(self) -> None:
        raise NotImplementedError

    def _wrote(self, idle: bool) -> None:
        """Calls were written (``idle``: none was in flight)."""

    def _replied(self) -> None:
        """The first call in flight has its reply (taken off ``written``)."""

    def _stop(self, exc: Exception) -> None:
        """End the wire, nothing in flight."""
        raise NotImplementedError


class _TaskWire(_Wire):
    """A wire whose reader task reads each reply through redis-py's ``read_response``: the
    embedded store's connections (fakeredis), which have no socket."""

    def __init__(self, lane: Lane, conn: AbstractConnection) -> None:
        self._wake: asyncio.Future[None] | None = None  # while the reader has nothing to read
        super().__init__(lane, conn)

    def _wrote(self, idle: bool) -> None:
        self._stir()

    def _stop(self, exc: Exception) -> None:
        self._stir(exc)

    def _stir(self, exc: Exception | None = None) -> None:
        """Wake the reader if it waits: to read, or with ``exc`` to stop."""
        wake = self._wake
        if wake is not None and not wake.done():
            if exc is None:
                wake.set_result(None)
            else:
                wake.set_exception(exc)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        written = self.written
        try:
            while written or self.active:
                if not written:
                    self._wake = loop.create_future()
                    await self._wake
                    self._wake = None
                    continue
                try:
                    reply = await self.conn.read_response()
                except ResponseError as exc:  # an error reply: the call's own
                    reply = exc
                self._answer(reply)
        except Exception as exc:  # the connection failed, or was retired: so did its calls
            fail(written, exc)
            written.clear()
        except asyncio.CancelledError:  # the lane closes
            self._cancelled()
            await self.lane.retired(self)
            raise
        await self.lane.retired(self)  # retired and every call answered, or failed


class _SocketWire(_Wire, asyncio.Protocol):
    """A wire on a socket (a watched connection, connection.py): the lane takes over its
    transport, whose callback parses each chunk of replies as it arrives and answers their
    calls right there. redis-py's way went through its stream reader, a wakeup of the reader
    task and four coroutine layers per reply, one loop turn before the caller's task could
    run (this way: 0.78x the client CPU of a lone call, bench/README.md). Its watch bounds each
    reply as redis-py's read does: a reply overdue cuts the socket and the calls in flight
    fail with redis' ``TimeoutError``."""

    def __init__(self, lane: Lane, conn: AbstractConnection) -> None:
        writer = conn._writer
        if not isinstance(conn, Watched) or writer is None:
            raise TypeError("a socket wire reads the replies of a watched connection, connected")
        self._watch = conn
        self._parser = conn.reply_parser()
        self._open = True  # until the transport says it closed (connection_lost, EOF)
        self._ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._transport = writer.transport
        self._transport.set_protocol(self)
        super().__init__(lane, conn)

    def is_open(self) -> bool:
        return self._open and not self._transport.is_closing()

    def write(self, calls: list[Call]) -> None:
        if self._ended.done():  # (its reader has not given it back yet)
            raise RedisConnectionError("the connection to Redis is closed")
        super().write(calls)

    def _wrote(self, idle: bool) -> None:
        if idle:
            self._watch.awaiting()

    def _replied(self) -> None:
        self._watch.answered(bool(self.written))
        if not self.written and not self.active:
            self._end()  # retired, and its last call answered

    def _stop(self, exc: Exception) -> None:
        self._end()

    def _cancelled(self) -> None:
        if self.written:
            self._watch.answered(False)  # nothing is waited for any more
        super()._cancelled()

    def _end(self, exc: Exception | None = None) -> None:
        """The wire is done: the calls still in flight fail with ``exc``."""
        if self._ended.done():
            return
        fail(self.written, exc or RedisConnectionError("the lane's connection ended"))
        self.written.clear()
        self._ended.set_result(None)

    async def _run(self) -> None:
        try:
            await self._ended
        except asyncio.CancelledError:  # the lane closes
            self._cancelled()
            await self.lane.retired(self)
            raise
        await self.lane.retired(self)

    # ---------------------------------------------------------------- asyncio.Protocol

    def data_received(self, data: bytes) -> None:
        parser = self._parser
        parser.feed(data)
        while not self._ended.done():
            try:
                reply = parser.gets()
            except InvalidResponse as exc:  # not RESP: no reply after it can be trusted
                self._broken(exc)
                return
            if reply is NOT_ENOUGH_DATA:
                return
            if not self.written:  # a reply no call asked for: as little to be trusted
                self._broken(InvalidResponse("Redis sent a reply no call was waiting for"))
                return
            self._answer(reply)

    def eof_received(self) -> bool:
        self._open = False
        return False  # the transport closes, and says so in connection_lost

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost(exc)

    def _broken(self, exc: Exception) -> None:
        self._transport.abort()
        self._lost(exc)

    def _lost(self, exc: Exception | None) -> None:
        self._open = False
        if not self._ended.done():
            self._end(self._watch.lost(exc, bool(self.written)))


class Lane:
    """The pipelined connection described above, taken from ``client``'s pool when first
    needed and again after a failure."""

    def __init__(self, client: aioredis.Redis, on_noscript: Callable[[Call], None]) -> None:
        self.client = client
        self.on_noscript = on_noscript
        self._wire: _Wire | None = None
        self._queued: list[Call] = []  # waiting for a connection
        self._held: list[Call] = []  # waiting for the answers in flight (send)
        self._release: asyncio.TimerHandle | None = None  # writes them after HOLD_S
        self._connecting: asyncio.Task[None] | None = None
        self._wires: set[_Wire] = set()  # the current one and those still reading
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

    def in_flight_answered(self, wire: _Wire) -> None:
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
                wire.write(calls)
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

    def _retire(self, wire: _Wire, exc: Exception) -> None:
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
        kind = _SocketWire if isinstance(conn, Watched) else _TaskWire
        self._wire = wire = kind(self, conn)
        self._wires.add(wire)
        calls, self._queued = self._queued, []
        calls = [c for c in calls if not c.answer.done()]
        if calls:
            self.send(calls)

    async def retired(self, wire: _Wire) -> None:
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
