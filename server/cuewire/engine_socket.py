"""engine.io's socket with a websocket path that takes no task and no timer per packet.

python-engineio reads a websocket by starting a task for every frame and waiting for it
under ``asyncio.wait_for`` (a timer each), and its writer waits for every outgoing packet
under another ``wait_for`` (a task and a timer each): two tasks and two timers for a batch
and its ack, about a third of a bare echo server's CPU per batch (bench/README.md,
"transport"). Here a websocket connection reads its frames in one task and writes from one
queue with plain awaits; one timer per socket, rearmed only when it fires, closes a socket
that has sent nothing for ``pingInterval + pingTimeout``, the bound the library's per-frame
timeout kept. The heartbeat's next ping waits on a timer, not in a task of its own. A frame
that is no packet closes its connection with one log line (the library logged a traceback
for each and read on). The protocol on the wire is unchanged (docs/protocol.md).

Only connections that open on the websocket take the websocket path; a polling connection
that upgrades keeps the library's own handler (the snippet connects on the websocket
first). The heartbeat's timer serves both.
``SocketServer`` is python-socketio's server with its websocket sockets made this way; both
``cuewire serve`` and the bench's echo server use it, so the echo stays the floor.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import socketio
from engineio import packet
from engineio.async_socket import AsyncSocket
from engineio.exceptions import SocketIsClosedError
from socketio import packet as sio_packet

log = logging.getLogger(__name__)

# what a client may send over the websocket (engine.io v4): anything else closes it
FROM_CLIENTS = frozenset((packet.PONG, packet.MESSAGE, packet.UPGRADE, packet.CLOSE))


class EngineSocket(AsyncSocket):  # type: ignore[misc]
    """One engine.io connection; see the module docstring."""

    connected: bool  # (the library's attributes this class reads)
    upgraded: bool
    closing: bool
    closed: bool
    last_ping: float | None
    packet_class: type  # the Socket.IO server's, given at connect (SocketServer)

    async def _websocket_handler(self, ws: Any) -> None:
        if self.connected:  # an upgrade from polling: the library's probe handshake
            await super()._websocket_handler(ws)
            return
        self.connected = True
        self.upgraded = True
        writer = asyncio.ensure_future(self._write(ws))
        try:
            await self._read(ws)
        finally:  # cancelled too (a forced shutdown): the disconnect handler still runs
            self.queue.put_nowait(None)  # the writer sends what is queued, then stops
            await writer
            await self.close(wait=False, abort=True, reason=self.server.reason.TRANSPORT_CLOSE)

    def schedule_ping(self) -> None:
        """The next heartbeat ``pingInterval`` after the last pong: a timer, where the
        library starts a task that sleeps (one pending task per idle connection, replaced at
        every heartbeat)."""
        if self.last_ping:
            self.last_ping = None
            asyncio.get_running_loop().call_later(self.server.ping_interval, self._ping)

    def _ping(self) -> None:
        if not self.closing and not self.closed:
            self.last_ping = time.time()  # the pong is due pingTimeout after this
            self.queue.put_nowait(packet.Packet(packet.PING))

    async def _read(self, ws: Any) -> None:
        """Receive frames until the client goes, sends too much or falls silent."""
        server = self.server
        limit = server.max_http_buffer_size
        on_message = None if server.async_handlers else server.handlers.get("message")
        with _Silence(server.ping_interval + server.ping_timeout) as silence:
            while True:
                try:
                    frame = await silence.wait(ws)
                except asyncio.CancelledError:
                    if silence.expired():
                        return
                    raise
                except Exception:  # the connection closed (the driver raises OSError)
                    return
                if frame is None or len(frame) > limit:
                    return
                if isinstance(frame, bytes):  # a binary frame is a message
                    data: Any = frame
                else:
                    try:
                        pkt = packet.Packet(encoded_packet=frame)
                    except Exception:
                        pkt = None
                    if pkt is None or pkt.packet_type not in FROM_CLIENTS:
                        log.info("%s: closed: a frame that is no engine.io packet", self.sid)
                        return
                    if pkt.packet_type != packet.MESSAGE or on_message is None:
                        if not await self._receive(pkt):  # a pong, an upgrade's noop, a close
                            return
                        continue
                    data = pkt.data
                if on_message is None:  # async handlers: the library's way, a task each
                    if not await self._receive(packet.Packet(packet.MESSAGE, data=data)):
                        return
                    continue
                try:  # as receive() would, without its task or log line
                    await on_message(self.sid, data)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    if self._malformed(data):
                        log.info("%s: closed: a frame that is no Socket.IO packet", self.sid)
                        return
                    log.exception("message handler error")

    async def _receive(self, pkt: Any) -> bool:
        """The library's handling of ``pkt``; False when the socket has closed."""
        try:
            await self.receive(pkt)
        except asyncio.CancelledError:
            raise
        except SocketIsClosedError:
            return False
        except Exception:
            log.exception("engine.io packet error")
        return True

    def _malformed(self, frame: Any) -> bool:
        """Whether ``frame`` is no Socket.IO packet a handler could take: garbage closes the
        connection (one line in the log, not a traceback a flood could repeat), where a
        handler's own error is logged whole. Asked only after the handler failed, so a frame
        is decoded once on the way in."""
        try:
            pkt = self.packet_class(encoded_packet=frame)
        except Exception:
            return True
        if pkt.packet_type in (sio_packet.EVENT, sio_packet.BINARY_EVENT):
            data = pkt.data
            return not (isinstance(data, list) and data and isinstance(data[0], str))
        return False

    async def _write(self, ws: Any) -> None:
        """Send the queued packets in order until ``None`` or a failed send; then close."""
        queue = self.queue
        sending = True
        while sending:
            packets = [await queue.get()]
            while not queue.empty():
                packets.append(queue.get_nowait())
            for _ in packets:
                queue.task_done()
            for pkt in packets:
                if pkt is None:
                    sending = False
                    break
                try:
                    await ws.send(pkt.encode())
                except Exception:
                    sending = False
                    break
        await ws.close()


class _Silence:
    """Cancels the reading task once one wait for a frame has lasted ``limit_s``; one timer
    per socket, rearmed when it fires, not one per frame."""

    def __init__(self, limit_s: float) -> None:
        self._limit = limit_s
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        self._since = self._loop.time()  # when the wait in progress (or the last one) began
        self._waiting = False
        self._expired = False
        self._timer: asyncio.TimerHandle | None = None

    def __enter__(self) -> _Silence:
        self._timer = self._loop.call_at(self._since + self._limit, self._check)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._timer is not None:
            self._timer.cancel()

    async def wait(self, ws: Any) -> Any:
        self._since = self._loop.time()
        self._waiting = True
        try:
            return await ws.wait()
        finally:
            self._waiting = False

    def expired(self) -> bool:
        """Whether this timer cancelled the task (and no one else did too)."""
        return self._expired and self._task is not None and self._task.uncancel() == 0

    def _check(self) -> None:
        now = self._loop.time()
        if not self._waiting:  # handling a frame: the silence counts from the next wait
            self._timer = self._loop.call_at(now + self._limit, self._check)
        elif now < self._since + self._limit:  # a frame came since: a full limit after it
            self._timer = self._loop.call_at(self._since + self._limit, self._check)
        elif self._task is not None:
            self._expired = True
            self._timer = None
            self._task.cancel()


class SocketServer(socketio.AsyncServer):  # type: ignore[misc]
    """python-socketio's server whose websocket connections are EngineSockets."""

    async def _handle_eio_connect(self, eio_sid: str, environ: dict[str, Any]) -> Any:
        socket = self.eio.sockets.get(eio_sid)
        if type(socket) is AsyncSocket:
            socket.__class__ = EngineSocket  # the same state; only the websocket path differs
            socket.packet_class = self.packet_class
        return await super()._handle_eio_connect(eio_sid, environ)
