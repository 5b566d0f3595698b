"""A scripted visitor: python-socketio's AsyncClient following docs/protocol.md."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import socketio

from .waiting import eventually


class Visitor:
    def __init__(
        self,
        url: str,
        *,
        site: str = "test-site",
        visitor: str = "v_visitor01",
        session: str | None = None,
        tab: str = "tab1",
        origin: str | None = None,
        headers: dict[str, str] | None = None,
        **auth: Any,
    ) -> None:
        self.url = url
        self.auth = {"site": site, "visitor": visitor, "session": session, "tab": tab, **auth}
        self.headers = {"Origin": origin or url, **(headers or {})}
        self.sio = socketio.AsyncClient(serializer="msgpack", reconnection=False)
        self.info: dict[str, Any] | None = None
        self.prompts: list[dict[str, Any]] = []
        self.seq = 0
        self._session_event = asyncio.Event()
        self.sio.on("session", self._on_session)
        self.sio.on("prompt", self._on_prompt)
        self.sio.on("connect_error", self._on_refused)
        self.refused: Any = None
        self.refused_data: Any = None

    async def _on_refused(self, data: Any) -> None:
        self.refused = data.get("message") if isinstance(data, dict) else data
        self.refused_data = data.get("data") if isinstance(data, dict) else None

    async def _on_session(self, data: dict[str, Any]) -> None:
        self.info = data
        self._session_event.set()

    async def _on_prompt(self, data: dict[str, Any]) -> None:
        self.prompts.append(data)

    async def connect(self) -> Visitor:
        await self.sio.connect(
            self.url,
            headers=self.headers,
            auth=self.auth,
            transports=["websocket"],
            socketio_path="/socket.io",
            wait_timeout=5,
        )
        await asyncio.wait_for(self._session_event.wait(), 5)
        return self

    async def __aenter__(self) -> Visitor:
        return await self.connect()

    async def __aexit__(self, *exc: object) -> None:
        await self.sio.disconnect()

    def event(self, type: str, url: str = "http://shop.test/", **fields: Any) -> dict[str, Any]:
        """A well-formed event with the next ``seq``."""
        ev = {"type": type, "ts": int(time.time() * 1000), "seq": self.seq, "url": url, **fields}
        self.seq += 1
        return ev

    async def send(self, *events: Any, timeout: float = 5) -> dict[str, Any]:
        ack: dict[str, Any] = await self.sio.call("events", list(events), timeout=timeout)
        return ack

    async def barrier(self) -> None:
        """Returns once everything the server pushed to this socket before now has arrived:
        an empty batch is acked on the same ordered connection, after those pushes."""
        ack = await self.send()
        if ack != {"accepted": 0, "rejected": []}:
            raise AssertionError(f"an empty batch got {ack!r}")

    async def wait_prompt(self, timeout: float = 5.0) -> dict[str, Any]:
        await eventually(lambda: self.prompts, timeout=timeout, what="a prompt arriving")
        return self.prompts[-1]


async def connected_once_store_is_back(make: Callable[[], Visitor], timeout: float = 15) -> Visitor:
    """A visitor from ``make`` connected as the snippet connects after a store outage: a
    refusal coded ``store_unavailable`` (the first call on a connection the outage broke may
    fail) is tried again with a new client after its ``retry_ms``."""
    deadline = time.monotonic() + timeout
    while True:
        visitor = make()
        try:
            return await visitor.connect()
        except socketio.exceptions.ConnectionError:
            refused = visitor.refused_data or {}
            if refused.get("code") != "store_unavailable" or time.monotonic() > deadline:
                raise
            await asyncio.sleep(min(refused.get("retry_ms") or 500, 1000) / 1000)
