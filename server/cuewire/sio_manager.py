"""The Socket.IO client manager on Redis, with a lifecycle of its own.

python-socketio 5.x starts the Redis manager's pub/sub listener lazily (``initialize``, on the
first connection) as a background task, and neither ``AsyncServer.shutdown`` (it stops only
engine.io's tasks) nor the manager offer a way to stop it or to close its Redis connections.
This subclass owns both: ``aclose`` ends the listener and closes the clients it opened.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import socketio

from .lifecycle import Closing
from .rooms import IndexedRooms


class RedisManager(IndexedRooms, socketio.AsyncRedisManager, Closing):  # type: ignore[misc]
    """``AsyncRedisManager`` whose listener and connections end with ``aclose``, with the
    reverse room index of rooms.py."""

    def __init__(self, url: str, channel: str) -> None:
        super().__init__(url, channel=channel)
        self._listener: asyncio.Future[Any] | None = None

    def initialize(self) -> None:
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
