"""An HTTP proxy in front of a live server that refuses WebSocket upgrades, as some corporate
proxies and firewalls do, and passes every other request through.

Each request goes upstream on a connection of its own (``Connection: close``), so no request
can ride on a connection the proxy already let through: every one is looked at.
"""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType

REFUSAL = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class UpgradeBlockingProxy:
    """Listens from ``async with`` on (``url``); forwards to the server ``forward_to`` names."""

    def __init__(self) -> None:
        self._upstream = ("", 0)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.refused = 0  # upgrade requests answered 403
        self.passed = 0  # requests passed through
        self.url = ""

    async def __aenter__(self) -> UpgradeBlockingProxy:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    def forward_to(self, url: str) -> None:
        """Send what passes to the server at ``url`` (``http://host:port``)."""
        host, port = url.removeprefix("http://").rsplit(":", 1)
        self._upstream = (host, int(port))

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            headers = [line for line in lines[1:] if line]
            if any(line.lower().startswith(b"upgrade:") for line in headers):
                self.refused += 1
                writer.write(REFUSAL)
                await writer.drain()
                return
            self.passed += 1
            kept = [h for h in headers if not h.lower().startswith(b"connection:")]
            up_reader, up_writer = await asyncio.open_connection(*self._upstream)
            up_writer.write(b"\r\n".join([lines[0], *kept, b"Connection: close", b"", b""]))
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._tasks.discard(task)
            with contextlib.suppress(ConnectionError):
                writer.close()


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    try:
        while chunk := await source.read(65536):
            sink.write(chunk)
            await sink.drain()
    finally:
        with contextlib.suppress(ConnectionError, RuntimeError):
            sink.close()
