"""A TCP proxy that can stop passing a client's bytes on: a network partition between a
process and its Redis, to stop a process between two calls. Bytes held while paused are
dropped when the connections close (as a crash drops what a process had not sent)."""

from __future__ import annotations

import asyncio
import contextlib


class PausableProxy:
    """Listens on ``url`` (``redis://127.0.0.1:PORT``) and passes each connection to
    ``upstream``; :meth:`pause` stops passing what clients send."""

    def __init__(self, upstream_port: int) -> None:
        self._upstream = upstream_port
        self._open = asyncio.Event()
        self._open.set()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.url = ""

    async def __aenter__(self) -> PausableProxy:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.url = f"redis://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def pause(self) -> None:
        self._open.clear()

    def cut(self) -> None:
        """Close every connection (what was held is lost) and pass again."""
        for writer in list(self._writers):
            writer.close()
        self._writers.clear()
        self._open.set()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._upstream)
        self._writers |= {writer, up_writer}
        await asyncio.gather(
            self._pipe(reader, up_writer, paused=True), self._pipe(up_reader, writer)
        )

    async def _pipe(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, paused: bool = False
    ) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await source.read(65536):
                if paused:
                    await self._open.wait()
                if sink.is_closing():
                    break
                sink.write(data)
                await sink.drain()
        sink.close()
