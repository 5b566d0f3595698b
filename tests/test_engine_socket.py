"""engine.io's websocket path in Cuewire's servers (engine_socket.py): the same protocol as
python-engineio's, without a task or a timer per packet.

Each test runs a bare ``SocketServer`` (no store, no rules) under uvicorn, on a loop of its
own in a thread, and talks to it as a client would: over a raw websocket, or with
python-socketio's client.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from typing import Any

import msgpack
import pytest
import socketio
import uvicorn
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from cuewire.engine_socket import EngineSocket, SocketServer, _Silence
from cuewire.transport import socketio_options, uvicorn_options
from support.servers import free_port

PING_INTERVAL_S = 0.3  # pings come often, so the heartbeat tests are short
PING_TIMEOUT_S = 3.0  # and a pong that a loaded machine delays still counts


class Echo:
    """A SocketServer that answers ``echo`` with its data and, on ``burst``, emits
    ``count`` numbered ``n`` events then disconnects the client. Counts the tasks its loop
    creates."""

    def __init__(self, ping_timeout_s: float = PING_TIMEOUT_S) -> None:
        self.sio = SocketServer(
            async_mode="asgi",
            serializer="msgpack",
            ping_interval=PING_INTERVAL_S,
            ping_timeout=ping_timeout_s,
            transports=["websocket", "polling"],
            **socketio_options(),
        )
        self.tasks = 0
        self.started: Counter[str] = Counter()  # tasks started, by their coroutine's name
        self.disconnected: list[str] = []
        self.sockets: list[type] = []
        self.readers: list[asyncio.Task[Any]] = []  # the task that reads each socket
        self.sio.on("connect", self._connect)
        self.sio.on("echo", self._echo)
        self.sio.on("burst", self._burst)
        self.sio.on("boom", self._boom)
        self.sio.on("disconnect", self._disconnect)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server = uvicorn.Server(
            uvicorn.Config(
                socketio.ASGIApp(self.sio),
                port=self.port,
                log_level="warning",
                lifespan="off",
                **uvicorn_options(64 * 1024),
            )
        )
        self._loop = asyncio.new_event_loop()
        self._loop.set_task_factory(self._count)

    def _count(self, loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any]) -> Any:
        self.tasks += 1
        self.started[getattr(coro, "__qualname__", "?")] += 1
        return asyncio.Task(coro, loop=loop)

    async def _connect(self, sid: str, environ: dict[str, Any]) -> None:
        eio_sid = self.sio.manager.eio_sid_from_sid(sid, "/")
        self.sockets.append(type(self.sio.eio.sockets[eio_sid]))
        task = asyncio.current_task()
        assert task is not None
        self.readers.append(task)

    def cancel_reader(self, n: int) -> None:
        self._loop.call_soon_threadsafe(self.readers[n].cancel)

    async def _echo(self, sid: str, data: Any) -> Any:
        return data

    async def _burst(self, sid: str, count: int) -> None:
        for n in range(count):
            await self.sio.emit("n", n, to=sid)
        await self.sio.disconnect(sid)

    async def _boom(self, sid: str, data: Any) -> None:
        raise RuntimeError("a handler's own bug")

    async def _disconnect(self, sid: str, reason: str) -> None:
        self.disconnected.append(reason)

    @contextmanager
    def running(self) -> Iterator[Echo]:
        thread = threading.Thread(target=self._loop.run_until_complete, args=(self._serve(),))
        thread.start()
        try:
            deadline = time.monotonic() + 10
            while not self._server.started:
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.01)
            yield self
        finally:
            self._server.should_exit = True
            thread.join(10)
            self._loop.close()

    async def _serve(self) -> None:
        await self._server.serve()

    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/socket.io/?EIO=4&transport=websocket"


@pytest.fixture
def echo() -> Iterator[Echo]:
    with Echo().running() as server:
        yield server


@pytest.fixture
def impatient_echo() -> Iterator[Echo]:
    """One that gives up on a silent client within 0.6 s."""
    with Echo(ping_timeout_s=0.3).running() as server:
        yield server


async def _join(ws: Any) -> None:
    """engine.io's OPEN, then Socket.IO's CONNECT to the main namespace and its answer."""
    assert str(await ws.recv()).startswith("0")
    await ws.send(msgpack.packb({"type": 0, "nsp": "/"}))
    assert (await _packet(ws))["type"] == 0


async def _packet(ws: Any) -> Any:
    """The next Socket.IO packet (a binary frame), answering the heartbeat's pings on the
    way: they come every PING_INTERVAL_S, between any two packets on a slow machine."""
    while isinstance(frame := await ws.recv(), str):
        assert frame == "2", frame  # engine.io PING: the only text the server sends here
        await ws.send("3")
    return msgpack.unpackb(frame)


def _event(name: str, data: Any, ack: int) -> bytes:
    """A Socket.IO EVENT with an ack id, msgpack-encoded (docs/protocol.md)."""
    return msgpack.packb({"type": 2, "nsp": "/", "data": [name, data], "id": ack})


async def _closed_by_server(ws: Any, within_s: float = 3, *, pong: bool = True) -> bool:
    """Read until the server closes the connection, answering its pings (so that the
    heartbeat closes nothing) unless ``pong`` is False: False when it is still open after
    ``within_s``."""
    deadline = time.monotonic() + within_s
    try:
        while (left := deadline - time.monotonic()) > 0:
            if await asyncio.wait_for(ws.recv(), left) == "2" and pong:
                await ws.send("3")
    except ConnectionClosed:
        return True
    except TimeoutError:
        return False
    return False


async def test_a_websocket_connection_takes_the_lean_path(echo: Echo) -> None:
    client = socketio.AsyncClient(serializer="msgpack")
    await client.connect(echo.url, transports=["websocket"])
    try:
        assert await client.call("echo", {"a": 1}, timeout=5) == {"a": 1}
    finally:
        await client.disconnect()
    assert echo.sockets == [EngineSocket]


async def test_a_hundred_round_trips_start_no_task_each(echo: Echo) -> None:
    """python-engineio's own handler starts two tasks per event and its ack (the read under
    ``wait_for`` and the writer's wait under another): 200 here."""
    async with connect(echo.ws_url()) as ws:
        await _join(ws)
        before = echo.tasks
        for n in range(100):
            await ws.send(_event("echo", n, n))
            answer = await _packet(ws)
            assert (answer["type"], answer["id"], answer["data"]) == (3, n, [n])
        assert echo.tasks - before < 5


async def test_packets_queued_before_a_disconnect_all_arrive_in_order(echo: Echo) -> None:
    client = socketio.AsyncClient(serializer="msgpack")
    got: list[int] = []
    gone = asyncio.Event()
    client.on("n", got.append)
    client.on("disconnect", lambda *reason: gone.set())
    await client.connect(echo.url, transports=["websocket"])
    await client.emit("burst", 500)
    await asyncio.wait_for(gone.wait(), 10)
    assert got == list(range(500))


async def test_a_client_that_falls_silent_is_closed(impatient_echo: Echo) -> None:
    """A tab that stops answering (a laptop shut mid-session) is dropped once it has been
    silent for pingInterval + pingTimeout: engine.io closes the session on the missed pong,
    and the websocket itself closes then, not at the next write or never."""
    async with connect(impatient_echo.ws_url()) as ws:
        await _join(ws)
        assert await _closed_by_server(ws, within_s=5, pong=False)
    assert len(impatient_echo.disconnected) == 1  # the missed pong or the silence, whichever first


async def test_a_client_that_answers_pings_stays_connected(echo: Echo) -> None:
    async with connect(echo.ws_url()) as ws:
        await _join(ws)
        pings = 0
        deadline = time.monotonic() + 10 * PING_INTERVAL_S
        while time.monotonic() < deadline:
            frame = await asyncio.wait_for(ws.recv(), 5)
            if frame == "2":
                pings += 1
                await ws.send("3")
        assert pings >= 3
        # the heartbeat waits on a timer: the library's sleeps in a task of its own each time
        assert not [name for name in echo.started if "ping" in name.lower()], echo.started
        await ws.send(_event("echo", "still here", 1))
        while (answer := await ws.recv()) == "2":
            await ws.send("3")
        assert msgpack.unpackb(answer)["data"] == ["still here"]
        assert echo.disconnected == []


async def test_a_reader_cancelled_by_a_forced_shutdown_still_runs_the_disconnect_handler(
    echo: Echo,
) -> None:
    """The disconnect handler is where Cuewire releases a session's socket in the store."""
    async with connect(echo.ws_url()) as ws:
        await _join(ws)
        echo.cancel_reader(0)
        assert await _closed_by_server(ws)
    for _ in range(100):
        if echo.disconnected:
            break
        await asyncio.sleep(0.02)
    assert echo.disconnected == ["transport close"]


GARBAGE = (
    b"\xc1",  # no msgpack
    msgpack.packb([1, 2]),  # msgpack, no Socket.IO packet
    msgpack.packb({}),
    msgpack.packb({"type": 2, "nsp": "/", "data": None}),  # an event without a name
    "",  # no engine.io packet
    "9hello",  # an engine.io packet type no client sends
    "4",  # a text message to a msgpack server
)


@pytest.mark.parametrize("frame", GARBAGE, ids=repr)
async def test_a_frame_that_is_no_packet_closes_the_connection_without_a_traceback(
    echo: Echo, frame: bytes | str, caplog: pytest.LogCaptureFixture
) -> None:
    """An attacker's garbage costs them the connection and the server one log line, not a
    traceback per frame (python-engineio logged one for each and kept reading)."""
    async with connect(echo.ws_url()) as ws:
        await _join(ws)
        await ws.send(frame)
        assert await _closed_by_server(ws)
    assert not [r for r in caplog.records if r.exc_info]
    async with connect(echo.ws_url()) as ws:  # the server serves the next one
        await _join(ws)
        await ws.send(_event("echo", "next", 1))
        assert (await _packet(ws))["data"] == ["next"]


async def test_a_handlers_own_error_is_logged_whole_and_the_connection_stays(
    echo: Echo, caplog: pytest.LogCaptureFixture
) -> None:
    async with connect(echo.ws_url()) as ws:
        await _join(ws)
        await ws.send(_event("boom", 1, 1))
        await ws.send(_event("echo", "after", 2))
        assert (await _packet(ws))["data"] == ["after"]
    errors = [r for r in caplog.records if r.exc_info]
    assert len(errors) == 1 and isinstance(errors[0].exc_info[1], RuntimeError)


async def test_a_connection_that_starts_on_polling_upgrades_through_the_library(
    echo: Echo,
) -> None:
    client = socketio.AsyncClient(serializer="msgpack")
    await client.connect(echo.url, transports=["polling", "websocket"])
    try:
        for _ in range(100):
            if client.transport() == "websocket":
                break
            await asyncio.sleep(0.05)
        assert client.transport() == "websocket"
        assert await client.call("echo", "upgraded", timeout=5) == "upgraded"
    finally:
        await client.disconnect()


class _Wait:
    """A websocket stand-in whose ``wait`` returns when told to."""

    def __init__(self) -> None:
        self.frames: asyncio.Queue[str] = asyncio.Queue()

    async def wait(self) -> str:
        return await self.frames.get()


async def test_the_silence_timer_counts_only_waiting_for_a_frame() -> None:
    """A handler busy longer than the limit is not cut off: the silence starts again when
    the socket waits for its next frame."""
    ws = _Wait()
    with _Silence(0.1) as silence:
        ws.frames.put_nowait("a")
        assert await silence.wait(ws) == "a"
        await asyncio.sleep(0.3)  # busy with the frame, three limits long
        ws.frames.put_nowait("b")
        assert await silence.wait(ws) == "b"
        with pytest.raises(asyncio.CancelledError):
            await silence.wait(ws)  # nothing comes: cancelled after the limit
        assert silence.expired()


async def test_a_cancel_from_elsewhere_is_not_taken_for_silence() -> None:
    ws = _Wait()

    async def read() -> None:
        with _Silence(5) as silence:
            try:
                await silence.wait(ws)
            except asyncio.CancelledError:
                assert not silence.expired()
                raise

    task = asyncio.ensure_future(read())
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
