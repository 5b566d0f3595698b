"""Waiting for an event with a bound, without losing a cancel.

``asyncio.wait_for`` of Python 3.11 returns the result when the awaited thing completes in
the same loop turn as a cancel of the waiting task, and the cancel is lost (CPython
gh-86296, fixed in 3.12 by building it on ``asyncio.timeout``). A supervised loop that
waits between rounds then never ends when its supervisor cancels it. ``asyncio.timeout``
tells its own expiry from a cancel from outside.
"""

from __future__ import annotations

import asyncio


async def wait_set(event: asyncio.Event, timeout_s: float) -> bool:
    """Whether ``event`` was set within ``timeout_s``; a cancel of the caller propagates."""
    try:
        async with asyncio.timeout(timeout_s):
            await event.wait()
    except TimeoutError:
        return False
    return True
