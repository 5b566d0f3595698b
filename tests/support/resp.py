"""A scripted stand-in for Redis that speaks just enough of its protocol (RESP) to be
connected to, and answers each command as the test says: a lying or broken server, which a
real Redis cannot be made into."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import TracebackType

# the command's words -> the bytes sent back for it
Answer = Callable[[list[bytes]], bytes]


def ok(words: list[bytes]) -> bytes:
    return b"+OK\r\n"


class ScriptedRedis:
    """Listens from ``async with`` on (``url``); ``answer`` says what each command gets."""

    def __init__(self, answer: Answer = ok) -> None:
        self.answer = answer
        self.url = ""
        self.commands: list[list[bytes]] = []
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.StreamWriter] = set()

    async def __aenter__(self) -> ScriptedRedis:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"redis://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._clients):
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._clients.add(writer)
        try:
            while True:
                words = await _command(reader)
                self.commands.append(words)
                writer.write(self.answer(words))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._clients.discard(writer)
            writer.close()


async def _command(reader: asyncio.StreamReader) -> list[bytes]:
    """One command: an array of bulk strings, as redis-py sends them."""
    head = await reader.readuntil(b"\r\n")
    if not head.startswith(b"*"):
        raise ConnectionError(f"not a command: {head!r}")
    words = []
    for _ in range(int(head[1:])):
        size = await reader.readuntil(b"\r\n")
        words.append((await reader.readexactly(int(size[1:]) + 2))[:-2])
    return words
