"""The one way tests wait for something: poll a probe until its result satisfies a
predicate, or fail after ``timeout`` with the last result seen.

``eventually`` is for async tests (the probe may be sync or async); ``eventually_blocking``
is the same loop for sync code (fixtures that start processes, sync tests). Timeouts are
generous: they only matter when something is wrong, and a busy CI machine is slow.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar, cast

T = TypeVar("T")

WAIT_S = 10.0
INTERVAL_S = 0.02


async def eventually(
    probe: Callable[[], Awaitable[T] | T],
    until: Callable[[T], object] = bool,
    *,
    timeout: float = WAIT_S,
    interval: float = INTERVAL_S,
    what: str = "the condition",
    ignoring: tuple[type[BaseException], ...] = (),
) -> T:
    """Polls ``probe`` until ``until(result)`` holds and returns that result. A probe that
    raises one of ``ignoring`` counts as "not yet"."""
    deadline = time.monotonic() + timeout
    last: object = "no answer"
    while True:
        try:
            result = probe()
            if inspect.isawaitable(result):
                result = await result
            if until(cast(T, result)):
                return cast(T, result)
            last = result
        except ignoring as exc:
            last = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not hold within {timeout:g} s; last: {last!r}")
        await asyncio.sleep(interval)


def eventually_blocking(
    probe: Callable[[], T],
    until: Callable[[T], object] = bool,
    *,
    timeout: float = WAIT_S,
    interval: float = INTERVAL_S,
    what: str = "the condition",
    ignoring: tuple[type[BaseException], ...] = (),
    give_up: Callable[[], object] = lambda: False,
) -> T:
    """``eventually`` for sync code; ``give_up()`` turning true fails at once (a process
    that died while we waited for it)."""
    deadline = time.monotonic() + timeout
    last: object = "no answer"
    while True:
        try:
            result = probe()
            if until(result):
                return result
            last = result
        except ignoring as exc:
            last = exc
        if give_up():
            raise AssertionError(f"{what}: gave up early; last: {last!r}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not hold within {timeout:g} s; last: {last!r}")
        time.sleep(interval)
