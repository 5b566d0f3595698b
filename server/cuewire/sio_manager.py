"""The Socket.IO client manager on Redis, with a lifecycle of its own.

python-socketio 5.x starts the Redis manager's pub/sub listener lazily (``initialize``, on the
first connection) as a background task, and neither ``AsyncServer.shutdown`` (it stops only
engine.io's tasks) nor the manager offer a way to stop it or to close its Redis connections.
This subclass owns both: ``aclose`` ends the listener and closes the clients it opened.

It also listens from the start (``async with``), not from the first connection: a process that
holds no socket yet (a worker just started, or the replacement of a killed one) still pushes
prompts to sockets of other processes, and the tab's ack comes back on this channel; unheard,
each push would be taken for lost and sent again.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, Self

import socketio

from .lifecycle import Closing


class RedisManager(socketio.AsyncRedisManager, Closing):  # type: ignore[misc]
    """``AsyncRedisManager`` whose listener and connections end with ``aclose``."""

    def __init__(self, url: str, channel: str) -> None:
        super().__init__(url, channel=channel)
        self._listener: asyncio.Future[Any] | None = None

    async def __aenter__(self) -> Self:
        self.initialize()
        return self

    def initialize(self) -> None:
        if self._listener is not None:
            return  # listening since __aenter__; the server calls this on its first connect
        super().initialize()
        # The base class keeps the task it started (its only handle on the listener).
        started = getattr(self, "thread", None)
        if isinstance(started, asyncio.Future):
            self._listener = started

    async def aclose(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None and not listener.done():
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await listener
        for opened in (getattr(self, "pubsub", None), getattr(self, "redis", None)):
            if opened is not None:
                with contextlib.suppress(Exception):  # closing a dead connection may raise
                    await opened.aclose()
