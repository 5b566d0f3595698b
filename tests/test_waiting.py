"""Bounded waits in the server's loops never lose a cancel (waiting.py)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable

import pytest

from cuewire.waiting import wait_set


async def cancelled_as_the_event_is_set(wait: Callable[[asyncio.Event], Awaitable[object]]) -> bool:
    """A loop that waits on an event between rounds, cancelled in the very turn the event
    is set (a supervisor stopping a feed as a page wakes it): whether the cancel ended it."""
    event = asyncio.Event()
    rounds = 0

    async def loop() -> None:
        nonlocal rounds
        while rounds < 3:
            await wait(event)
            event.clear()
            rounds += 1

    task = asyncio.create_task(loop())
    await asyncio.sleep(0.01)  # waiting
    event.set()
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=1)
    if not done:  # it went on waiting: the cancel was lost
        task.cancel()
        return False
    return task.cancelled()


async def test_a_cancel_in_the_turn_the_event_is_set_ends_the_loop() -> None:
    assert await cancelled_as_the_event_is_set(lambda e: wait_set(e, 10))


async def test_python_3_11_wait_for_loses_that_cancel() -> None:
    """The reason for wait_set: asyncio.wait_for returns the event's result instead
    (CPython gh-86296, fixed in 3.12)."""
    if sys.version_info >= (3, 12):
        pytest.skip("wait_for keeps the cancel from Python 3.12 on")
    assert not await cancelled_as_the_event_is_set(lambda e: asyncio.wait_for(e.wait(), 10))


async def test_wait_set_says_whether_the_event_came_in_time() -> None:
    event = asyncio.Event()
    assert not await wait_set(event, 0.01)
    asyncio.get_running_loop().call_later(0.01, event.set)
    assert await wait_set(event, 5)
