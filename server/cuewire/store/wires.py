"""One connection of the lane (lane.py): the calls written on it, in order, and how their
replies are read. A wire on a socket (:class:`SocketWire`) takes over the connection's
transport and answers each call in the transport's own callback, as its reply arrives; the
embedded store's connections have no socket, and a reader task reads theirs through
redis-py (:class:`TaskWire`). Either way the lane is told when the last answer in flight
came (it writes the calls it held then), when a call met ``NOSCRIPT``, and when the wire has
ended (it gives the connection back).
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import redis.asyncio as aioredis
from redis.asyncio.connection import AbstractConnection
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import InvalidResponse, NoScriptError, ResponseError

from .connection import NOT_ENOUGH_DATA, Watched, is_open, write_now


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


class Owner(Protocol):
    """What a wire tells: the lane (lane.py)."""

    client: aioredis.Redis

    def in_flight_answered(self, wire: Wire) -> None: ...

    def on_noscript(self, call: Call) -> None: ...

    async def retired(self, wire: Wire) -> None: ...


class Wire(ABC):
    """One connection of the lane: the calls written on it, in order, each answered as its
    reply comes. Its ``reader`` task ends when the wire does (retired with every call
    answered, or failed) and gives the connection back (``Owner.retired``)."""

    def __init__(self, lane: Owner, conn: AbstractConnection) -> None:
        self.lane = lane
        self.conn = conn
        self.written: deque[Call] = deque()  # not yet answered, in the order written
        self.active = True  # False: retired, no more calls are written on it
        self._callbacks = lane.client.response_callbacks
        self.reader = asyncio.get_running_loop().create_task(self._run())

    def write(self, calls: list[Call], unsent_limit: int) -> None:
        """Write ``calls`` now; redis' ``ConnectionError`` when the connection cannot take
        them (nothing of them was written then), ``UnreadBacklog`` past ``unsent_limit``
        bytes written and not yet sent (connection.write_now)."""
        packed = self.conn.pack_commands([c.words for c in calls])
        write_now(self.conn, packed, unsent_limit)
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
        try:
            await self._serve()
        except asyncio.CancelledError:  # the lane closes
            self._cancelled()
            await self.lane.retired(self)
            raise
        await self.lane.retired(self)  # retired and every call answered, or failed

    @abstractmethod
    async def _serve(self) -> None:
        """Answer the calls written until the wire ends."""

    @abstractmethod
    def _wrote(self, idle: bool) -> None:
        """Calls were written (``idle``: none was in flight)."""

    @abstractmethod
    def _replied(self) -> None:
        """The first call in flight has its reply (taken off ``written``)."""

    @abstractmethod
    def _stop(self, exc: Exception) -> None:
        """End the wire, nothing in flight."""


class TaskWire(Wire):
    """A wire whose reader task reads each reply through redis-py's ``read_response``: the
    embedded store's connections (fakeredis), which have no socket."""

    def __init__(self, lane: Owner, conn: AbstractConnection) -> None:
        self._wake: asyncio.Future[None] | None = None  # while the reader has nothing to read
        super().__init__(lane, conn)

    def _wrote(self, idle: bool) -> None:
        self._stir()

    def _replied(self) -> None:
        pass  # its reads are watched in redis-py's read_response (connection.py)

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

    async def _serve(self) -> None:
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


class SocketWire(Wire, asyncio.Protocol):
    """A wire on a socket (a watched connection, connection.py): the lane takes over its
    transport, whose callback parses each chunk of replies as it arrives and answers their
    calls right there. redis-py's way went through its stream reader, a wakeup of the reader
    task and four coroutine layers per reply, one loop turn before the caller's task could
    run (this way: 0.78x the client CPU of a lone call, bench/README.md). Its watch bounds each
    reply as redis-py's read does: a reply overdue cuts the socket and the calls in flight
    fail with redis' ``TimeoutError``."""

    def __init__(self, lane: Owner, conn: AbstractConnection) -> None:
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

    def write(self, calls: list[Call], unsent_limit: int) -> None:
        if self._ended.done():  # (its reader has not given it back yet)
            raise RedisConnectionError("the connection to Redis is closed")
        super().write(calls, unsent_limit)

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

    def _end(self, failed: Exception | None = None) -> None:
        """The wire is done; when its connection ``failed``, so did the calls in flight."""
        if self._ended.done():
            return
        if failed is not None:
            fail(self.written, failed)
            self.written.clear()
        self._ended.set_result(None)

    async def _serve(self) -> None:
        await self._ended

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
