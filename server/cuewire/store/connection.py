"""Redis connections whose calls are bounded in time without a timer per call.

redis-py bounds a call with its ``socket_timeout`` by wrapping every write in
``asyncio.wait_for`` (a task per call on Python 3.11) and every read in ``asyncio.timeout``
(a timer scheduled and cancelled per call); with the blocking pool's own ``asyncio.timeout``
and condition, a call took 1.2-1.6x the client CPU of a call with no wrapper at all
(bench/redis_call.py; the rest is redis-py's packing and parsing, and the socket).

Here redis-py runs without a socket timeout and each connection watches its own calls
instead: a call in flight sets the connection's deadline (an attribute write), and one timer
per connection, re-armed at most once per timeout period while the connection is busy, aborts
the socket of a call that outlived its deadline. The call then fails with redis'
``TimeoutError``, as it does under redis-py's own timeout, and the store turns that into
``StoreError``. The pool (:class:`QuickPool`) waits for a free connection only when none is.

The bound is the same as redis-py's: ``socket_timeout`` seconds (5 by default, or
``?socket_timeout=`` in the URL) for each write and each read. A caller that passes its own
read ``timeout`` (pub/sub) gets redis-py's handling unchanged. Connecting keeps redis-py's
``socket_connect_timeout``.

The connections also pack commands with hiredis' C packer (``hiredis.pack_command``), the
same bytes as redis-py's pure-Python ``pack_command``, which re-joins its growing buffer for
every argument: an ingest call has some thirty arguments, and packing them was 7% of the
server's CPU under the ingest load (``python -m bench --only profile``; the client CPU of such
a call: ``python -m bench.redis_call --args 30``). Whatever hiredis refuses
(a ``bool``, ``None``, a ``bytearray``...) goes through redis-py's own, which raises its own
error for it or packs it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import hiredis
import redis.asyncio as aioredis
from redis._parsers.encoders import Encoder
from redis.asyncio.connection import AbstractConnection, SSLConnection, UnixDomainSocketConnection
from redis.asyncio.sentinel import SentinelManagedConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import InvalidResponse, MaxConnectionsError
from redis.exceptions import TimeoutError as RedisTimeoutError

DEFAULT_CALL_TIMEOUT_S = 5.0  # redis-py's own socket_timeout default
# A timer may fire this early (uvloop's timers have millisecond resolution).
EARLY_S = 0.002
# What a hiredis reader made by reply_parser gives while a reply is incomplete.
NOT_ENOUGH_DATA = object()


class Watched:
    """Mixin for a redis.asyncio connection class: the deadline watch described above."""

    _call_timeout: float | None
    _deadline: float
    _busy: int
    _watch: asyncio.TimerHandle | None
    _expired: bool
    _plain: bool

    def __init__(
        self, *args: Any, socket_timeout: float | None = DEFAULT_CALL_TIMEOUT_S, **kwargs: Any
    ) -> None:
        self._call_timeout = socket_timeout or None
        self._deadline = 0.0
        self._busy = 0
        self._watch = None
        self._expired = False
        super().__init__(*args, socket_timeout=None, **kwargs)  # type: ignore[call-arg]
        encoder = self.encoder  # type: ignore[attr-defined]
        # hiredis encodes text as UTF-8, strictly: only then are its bytes redis-py's
        self._plain = type(encoder) is Encoder and (
            (encoder.encoding, encoder.encoding_errors) == ("utf-8", "strict")
        )

    # ---------------------------------------------------------------- the watch

    def _arm(self) -> None:
        timeout = self._call_timeout
        if timeout is None:
            return
        loop = asyncio.get_running_loop()
        self._deadline = loop.time() + timeout
        if not self._busy:
            self._expired = False  # a cut that came after its call had its answer
        self._busy += 1
        if self._watch is None:
            self._watch = loop.call_at(self._deadline, self._check, loop)

    def _disarm(self) -> None:
        if self._call_timeout is not None:
            self._busy -= 1

    def _check(self, loop: asyncio.AbstractEventLoop) -> None:
        self._watch = None
        if not self._busy:
            return  # idle: nothing to watch until the next call
        if loop.time() < self._deadline - EARLY_S:
            self._watch = loop.call_at(self._deadline, self._check, loop)
            return
        # The call in flight is overdue: cut the socket, so its read or write fails now.
        self._expired = True
        writer = getattr(self, "_writer", None)
        if writer is not None:
            writer.transport.abort()

    def _timed_out(self, what: str) -> RedisTimeoutError:
        self._expired = False
        host = self._host_error()  # type: ignore[attr-defined]
        return RedisTimeoutError(f"Timeout {what} {host}")

    # ------------------------------------------- replies read in the transport's callback

    def awaiting(self) -> None:
        """A call went out whose reply is read outside redis-py's ``read_response`` (the
        lane's, lane.py), and none was in flight: it is watched from now."""
        self._arm()

    def answered(self, more: bool) -> None:
        """The reply in flight came; with ``more`` in flight, the next one is watched from
        now (as a read that starts now is)."""
        self._disarm()
        if more:
            self._arm()

    def lost(self, exc: Exception | None, in_flight: bool) -> Exception:
        """What the calls in flight fail with when the socket closed under them (``exc``:
        the transport's reason): redis' ``TimeoutError`` when the watch cut it."""
        if in_flight:
            self._disarm()
        if self._expired:
            return self._timed_out("reading from")
        reason = f": {exc}" if exc else ""
        host = self._host_error()  # type: ignore[attr-defined]
        return RedisConnectionError(f"Connection to {host} lost{reason}")

    def reply_parser(self) -> hiredis.Reader:
        """A hiredis reader of this connection's replies, as redis-py's parser makes it:
        an error reply is an exception (``NoScriptError``...), not raised."""
        parser = self._parser  # type: ignore[attr-defined]
        options: dict[str, Any] = {
            "protocolError": InvalidResponse,
            "replyError": parser.parse_error,
            "notEnoughData": NOT_ENOUGH_DATA,
        }
        encoder = self.encoder  # type: ignore[attr-defined]
        if encoder.decode_responses:
            options["encoding"] = encoder.encoding
            options["errors"] = encoder.encoding_errors
        return hiredis.Reader(**options)

    # ---------------------------------------------------------------- redis-py's I/O

    def pack_command(self, *args: Any) -> list[bytes]:
        head = args[0]
        # redis-py splits a command name with a space ("CONFIG GET") into its words
        if self._plain and type(head) is str and " " not in head:
            try:
                return [hiredis.pack_command(args)]
            except TypeError:
                pass  # a type hiredis does not pack: redis-py packs it or says why not
        packed: list[bytes] = super().pack_command(*args)  # type: ignore[misc]
        return packed

    @contextmanager
    def _watched(self, what: str) -> Iterator[None]:
        """One call under the watch: an error after the watch cut the socket is a timeout."""
        self._arm()
        try:
            yield
        except Exception as exc:
            if self._expired:
                raise self._timed_out(what) from exc
            raise
        finally:
            self._disarm()

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        with self._watched("writing to"):
            await super().send_packed_command(command, check_health)  # type: ignore[misc]

    async def read_response(
        self,
        disable_decoding: bool = False,
        timeout: float | None = None,  # noqa: ASYNC109 (redis-py's signature)
        *,
        disconnect_on_error: bool = True,
        push_request: bool | None = False,
    ) -> Any:
        if timeout is not None:  # the caller's own bound: redis-py keeps it
            return await super().read_response(  # type: ignore[misc]
                disable_decoding,
                timeout,
                disconnect_on_error=disconnect_on_error,
                push_request=push_request,
            )
        with self._watched("reading from"):
            return await super().read_response(  # type: ignore[misc]
                disable_decoding,
                None,
                disconnect_on_error=disconnect_on_error,
                push_request=push_request,
            )

    async def disconnect(self, *args: Any, **kwargs: Any) -> None:
        if self._watch is not None and not self._busy:
            self._watch.cancel()
            self._watch = None
        await super().disconnect(*args, **kwargs)  # type: ignore[misc]


class WatchedConnection(Watched, aioredis.Connection):
    """A TCP connection (``redis://``) with the deadline watch."""


class WatchedSSLConnection(Watched, SSLConnection):
    """A TLS connection (``rediss://``) with the deadline watch."""


class WatchedUnixConnection(Watched, UnixDomainSocketConnection):
    """A unix socket connection (``unix://``) with the deadline watch."""


# ignore: redis-py annotates SentinelManagedConnection.read_response's disconnect_on_error
# as a float, the other connections' as a bool
class WatchedSentinelConnection(Watched, SentinelManagedConnection):  # type: ignore[misc]
    """A connection to the primary that Sentinels name (``redis+sentinel://``, sentinel.py),
    with the deadline watch."""


WATCHED: dict[type[AbstractConnection], type[AbstractConnection]] = {
    aioredis.Connection: WatchedConnection,
    SSLConnection: WatchedSSLConnection,
    UnixDomainSocketConnection: WatchedUnixConnection,
}


class QuickPool(aioredis.BlockingConnectionPool):
    """A BlockingConnectionPool that waits only when it must.

    BlockingConnectionPool takes its condition and starts an ``asyncio.timeout`` on every
    get, and takes the condition again on every release (~16 us a get and release, against
    ~7 us for the plain pool). Here a get takes a free connection as the plain pool does while
    no task waits for one, and a release notifies only when one does; a get that finds none
    free waits as BlockingConnectionPool does, up to its ``timeout``.

    A connection that Redis closed while it sat in the pool (a restart), or that holds a
    reply nobody read, is connected again before it is lent (``ensure_connection``):
    redis-py 8 makes that look but ignores it while its maintenance notifications are on,
    which they are by default ("auto"). It lent such a connection: the first call after a
    restart failed with "Connection closed by server", and on the lane (which reads its
    socket itself, and a socket past its end is no longer read) waited for the call timeout.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._waiting = 0  # tasks in BlockingConnectionPool's get, waiting or about to

    async def ensure_connection(self, connection: AbstractConnection) -> None:
        """Connected, and not stale (:func:`stale`), before it is lent: redis-py's own look,
        whatever its maintenance notifications say (both ways of getting a connection make
        it; one that fails here is given back)."""
        await connection.connect()  # type: ignore[no-untyped-call]
        if await stale(connection):
            await connection.disconnect(nowait=True)
            await connection.connect()  # type: ignore[no-untyped-call]

    async def get_connection(self, *args: Any, **kwargs: Any) -> AbstractConnection:
        if not self._waiting and self.can_get_connection():
            try:
                free: AbstractConnection = await aioredis.ConnectionPool.get_connection(
                    self, *args, **kwargs
                )  # type: ignore[no-untyped-call]
                return free
            except MaxConnectionsError:
                pass  # the last one was taken meanwhile: wait for one
        self._waiting += 1
        try:
            waited = super().get_connection(*args, **kwargs)  # type: ignore[no-untyped-call]
            connection: AbstractConnection = await waited
            return connection
        finally:
            self._waiting -= 1

    async def release(self, connection: AbstractConnection) -> None:
        await aioredis.ConnectionPool.release(self, connection)
        if self._waiting:
            async with self._condition:
                self._condition.notify()


class UnreadBacklog(RedisConnectionError):
    """Redis has not read what was written to it: more is not written (the lane, lane.py)."""


async def stale(conn: AbstractConnection) -> bool:
    """``conn`` is connected, and Redis closed it while it sat idle (a restart) or it holds a
    reply nobody read: it must be connected anew before a call goes on it. redis-py 8's pools
    make this look and ignore it while their maintenance notifications are on, the default
    ("auto"), and a cluster node lends its connections without it: :class:`QuickPool` and
    node_pipelines.py make it themselves."""
    if not conn.is_connected:
        return False
    try:
        return await conn.can_read()
    except RedisConnectionError:  # its parser was told the connection ended
        return True


def is_open(conn: AbstractConnection) -> bool:
    """``conn`` is connected and Redis has not closed it (as far as its socket has said)."""
    reader: asyncio.StreamReader | None = getattr(conn, "_reader", None)
    writer: asyncio.StreamWriter | None = getattr(conn, "_writer", None)
    if reader is None or writer is None:
        return False
    return not (reader.at_eof() or writer.transport.is_closing())


def write_now(conn: AbstractConnection, packed: list[bytes], limit: int) -> None:
    """Write ``packed`` on ``conn``'s socket without waiting for it to drain (the lane,
    lane.py): redis' ``ConnectionError`` when the connection is closed, ``UnreadBacklog``
    when more than ``limit`` bytes written earlier are still unsent (Redis does not read)."""
    writer: asyncio.StreamWriter | None = getattr(conn, "_writer", None)
    if writer is None or writer.transport.is_closing():
        raise RedisConnectionError("the connection to Redis is closed")
    unsent = getattr(writer.transport, "get_write_buffer_size", None)  # (not fakeredis')
    if unsent is not None and unsent() > limit:
        raise UnreadBacklog(f"Redis has not read the last {limit} bytes written to it")
    writer.writelines(packed)


def watched_pool(url: str, **kwargs: Any) -> QuickPool:
    """A blocking pool for ``url`` (``redis://``, ``rediss://`` or ``unix://``) whose
    connections bound their calls with the deadline watch."""
    pool = QuickPool.from_url(url, **kwargs)
    pool.connection_class = WATCHED[pool.connection_class]
    return pool
