"""Admission of connects to the store: a reconnect storm is served in turn, not all at once.

At most ``concurrency`` connects use the store at once and at most ``queue`` wait for that (and
no more than about 10 s of work at the measured rate).
Past the bound a connect is refused with a ``retry_ms`` that books the tab a return slot at
the rate the server has been opening sessions, so the refused tabs come back spread out over
the time it takes to serve them (a refused connect still costs a websocket handshake: tabs
that all returned after the same fixed delay would spend the server's CPU on refusals).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from .clock import Clock

MIN_RATE = 200.0  # connects/s assumed at least (one core opens ~500/s when nothing else runs)
# Return slots are booked this much faster than the measured rate: a storm's refused tabs
# limit the rate the server sees, so booking at exactly that rate could never find out that
# it can serve more. Overbooked tabs meet the queue bound again and get a later slot.
PROBE = 1.5
# The longest a connect may expect to wait. It must stay well under engine.io's ping timeout
# (25 + 20 s): python-socketio reads no pong while `connect` runs, so a longer wait closes the
# socket; and under socket.io-client's connect timeout (20 s by default).
MAX_WAIT_MS = 10_000
WINDOW_MS = 1000


class Overloaded(Exception):
    """The queue is full; come back after ``retry_ms``."""

    def __init__(self, retry_ms: int) -> None:
        super().__init__(f"overloaded: retry after {retry_ms} ms")
        self.retry_ms = retry_ms


class Admission:
    def __init__(self, concurrency: int, queue: int, retry_ms: int, clock: Clock) -> None:
        self._slots = asyncio.Semaphore(max(1, concurrency))
        self._queue = max(1, queue)
        self._base_ms = max(1, retry_ms)
        self._clock = clock
        self.waiting = 0  # connects in the store or waiting for it
        self._rate = MIN_RATE  # sessions opened per second, measured over the last window
        self._window_start = clock.now_ms()
        self._window_done = 0
        self._next_return_ms = 0.0  # the last return slot booked for a refused tab

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one of the store slots; raise :class:`Overloaded` when the queue is full."""
        if self.waiting >= self._queue or self.waiting * 1000 / self._rate > MAX_WAIT_MS:
            raise Overloaded(self._book_return())
        self.waiting += 1
        try:
            async with self._slots:
                yield
            self._done()
        finally:
            self.waiting -= 1

    def _done(self) -> None:
        now = self._clock.now_ms()
        self._window_done += 1
        elapsed = now - self._window_start
        if elapsed >= WINDOW_MS:
            self._rate = max(MIN_RATE, self._window_done * 1000 / elapsed)
            self._window_start, self._window_done = now, 0

    def _book_return(self) -> int:
        """The next free return slot: after the queue ahead drains, one per 1/rate s."""
        now = self._clock.now_ms()
        gap = 1000 / (self._rate * PROBE)
        drain = now + self._base_ms + self.waiting * gap
        self._next_return_ms = max(self._next_return_ms + gap, drain)
        return int(self._next_return_ms - now + random.uniform(0, self._base_ms))
