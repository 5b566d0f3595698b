"""A minimal Socket.IO v5 client over one engine.io v4 websocket, msgpack parser.

python-socketio's AsyncClient is too heavy to run thousands of tabs in one process; this one
speaks only what a tab needs (docs/protocol.md): CONNECT with ``auth``, the refusal's data,
``session``, ``events`` with an ack, ``prompt``, and engine.io's ping/pong.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import msgpack
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

CONNECT, DISCONNECT, EVENT, ACK, CONNECT_ERROR = 0, 1, 2, 3, 4


class Refused(Exception):
    """The server refused the connect: ``message`` and ``data`` ({code, reason, retry_ms})."""

    def __init__(self, message: str, data: dict[str, Any] | None) -> None:
        super().__init__(message)
        self.message = message
        self.data = data or {}

    @property
    def code(self) -> str | None:
        code = self.data.get("code")
        return str(code) if code is not None else None

    @property
    def retry_ms(self) -> int | None:
        retry = self.data.get("retry_ms")
        return int(retry) if retry is not None else None


@dataclass
class LightTab:
    url: str  # http://host:port
    auth: dict[str, Any]
    origin: str
    session: dict[str, Any] | None = None
    prompts: list[dict[str, Any]] = field(default_factory=list)
    _ws: ClientConnection | None = None
    _reader: asyncio.Task[None] | None = None
    _acks: dict[int, asyncio.Future[Any]] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=itertools.count)
    _connected: asyncio.Future[dict[str, Any]] | None = None
    _session_seen: asyncio.Event = field(default_factory=asyncio.Event)

    async def open(self, timeout: float = 20) -> LightTab:
        """Open the websocket and send CONNECT; raise :class:`Refused` when refused.

        Resolves when the server has sent both CONNECT and ``session`` (in either order).
        """
        ws_url = self.url.replace("http", "ws", 1) + "/socket.io/?EIO=4&transport=websocket"
        self._ws = await connect(
            ws_url,
            origin=self.origin,  # type: ignore[arg-type]
            open_timeout=timeout,
            compression=None,
            max_size=None,
            ping_interval=None,
            close_timeout=2,
            proxy=None,
        )
        hello = await asyncio.wait_for(self._ws.recv(), timeout)
        if not isinstance(hello, str) or not hello.startswith("0"):
            raise ConnectionError(f"not an engine.io open packet: {hello!r}")
        json.loads(hello[1:])
        self._connected = asyncio.get_running_loop().create_future()
        self._reader = asyncio.create_task(self._read())
        await self._ws.send(msgpack.packb({"type": CONNECT, "nsp": "/", "data": self.auth}))
        try:
            await asyncio.wait_for(self._connected, timeout)
            await asyncio.wait_for(self._session_seen.wait(), timeout)
        except BaseException:
            await self.close()
            raise
        return self

    async def _read(self) -> None:
        assert self._ws is not None and self._connected is not None
        try:
            async for message in self._ws:
                if isinstance(message, str):
                    if message == "2":  # engine.io ping
                        await self._ws.send("3")
                    continue
                packet = msgpack.unpackb(message)
                kind, data = packet.get("type"), packet.get("data")
                if kind == CONNECT and not self._connected.done():
                    self._connected.set_result(data or {})
                elif kind == CONNECT_ERROR and not self._connected.done():
                    data = data if isinstance(data, dict) else {"message": str(data)}
                    self._connected.set_exception(
                        Refused(data.get("message", ""), data.get("data"))
                    )
                elif kind == EVENT and isinstance(data, list) and data:
                    if data[0] == "session":
                        self.session = data[1]
                        self._session_seen.set()
                    elif data[0] == "prompt":
                        self.prompts.append(data[1])
                elif kind == ACK:
                    waiter = self._acks.pop(packet.get("id", -1), None)
                    if waiter and not waiter.done():
                        waiter.set_result(data[0] if data else None)
                elif kind == DISCONNECT:
                    break
        except ConnectionClosed:
            pass
        finally:
            closed = ConnectionError("the connection closed")
            if not self._connected.done():
                self._connected.set_exception(closed)
                self._connected.exception()  # retrieved here: open() may have given up
            for waiter in self._acks.values():
                if not waiter.done():
                    waiter.set_exception(closed)

    async def send(self, events: Any, timeout: float = 10) -> Any:
        """Emit ``events`` and wait for the ack."""
        assert self._ws is not None
        ident = next(self._ids)
        waiter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._acks[ident] = waiter
        packet = {"type": EVENT, "nsp": "/", "data": ["events", events], "id": ident}
        await self._ws.send(msgpack.packb(packet))
        return await asyncio.wait_for(waiter, timeout)

    async def send_raw(self, payload: bytes) -> None:
        assert self._ws is not None
        await self._ws.send(payload)

    async def wait_closed(self, timeout: float = 5) -> int | None:
        """Wait until the server closes the socket; its close code."""
        assert self._ws is not None
        await asyncio.wait_for(self._ws.wait_closed(), timeout)
        return self._ws.close_code

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)


@dataclass
class StormResult:
    """What became of every tab of a reconnect storm."""

    tabs: int
    connected: int = 0  # got their session
    retried: int = 0  # tabs refused with retry_ms at least once, that then came back
    retries: int = 0  # retry-later answers honoured, in all
    refused_for_good: int = 0  # refused with a permanent code
    errors: int = 0  # transport failures (timeouts, resets) retried with backoff
    lost: int = 0  # neither a session nor a refusal by the deadline
    events_acked: int = 0  # tabs whose one event was acknowledged as accepted
    seconds: float = 0.0  # until the last tab got its session
    finished_s: float = 0.0  # until every tab was done (session and acked event, or gave up)
    codes: Counter[str] = field(default_factory=Counter)
    sessions: dict[str, str] = field(default_factory=dict)  # visitor -> session


def page_view(seq: int, url: str) -> dict[str, Any]:
    return {"type": "page_view", "ts": int(time.time() * 1000), "seq": seq, "url": url}


async def storm(
    url: str, origin: str, site: str, tabs: int, *, deadline_s: float = 90, hold: bool = True
) -> StormResult:
    """``tabs`` tabs connect at once; each honours ``retry_ms`` on a retry-later refusal,
    retries transport errors with jittered backoff, then sends one acked event. With
    ``hold`` every tab stays connected until all are done (a deploy restart's shape)."""
    result = StormResult(tabs)
    all_done = asyncio.Event()
    pending = tabs
    start = time.monotonic()
    deadline = start + deadline_s
    opened: list[LightTab] = []

    async def one(i: int) -> None:
        nonlocal pending
        visitor = f"v_storm{i:07d}"
        auth = {"site": site, "visitor": visitor, "session": None, "tab": f"t{i}"}
        tab: LightTab | None = None
        was_refused = False
        backoff = 0.5
        try:
            while time.monotonic() < deadline:
                candidate = LightTab(url, auth, origin)
                try:
                    tab = await candidate.open(timeout=max(1.0, deadline - time.monotonic()))
                    break
                except Refused as refused:
                    result.codes[refused.code or "?"] += 1
                    if refused.retry_ms is None:
                        result.refused_for_good += 1
                        return
                    was_refused = True
                    result.retries += 1
                    await asyncio.sleep(refused.retry_ms / 1000)
                except Exception as exc:  # transport failures: timeouts, resets
                    result.errors += 1
                    result.codes[f"error: {type(exc).__name__}: {str(exc)[:60]}"] += 1
                    await asyncio.sleep(backoff * (1 + random.random()))
                    backoff = min(backoff * 2, 5)
            if tab is None or tab.session is None:
                result.lost += 1
                return
            opened.append(tab)
            result.connected += 1
            result.seconds = max(result.seconds, time.monotonic() - start)
            result.retried += was_refused
            result.sessions[visitor] = tab.session["session"]
            event = page_view(0, f"{url}/storm/{i}")
            while time.monotonic() < deadline:
                ack = await tab.send([event], timeout=max(1.0, deadline - time.monotonic()))
                if ack.get("accepted") == 1:
                    result.events_acked += 1
                    break
                await asyncio.sleep((ack.get("retry_ms") or 500) / 1000)
        finally:
            pending -= 1
            if pending == 0:
                result.finished_s = time.monotonic() - start
                all_done.set()
            if hold:
                await all_done.wait()

    await asyncio.gather(*(one(i) for i in range(tabs)), return_exceptions=True)
    await asyncio.gather(*(t.close() for t in opened), return_exceptions=True)
    return result
