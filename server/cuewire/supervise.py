"""Supervised background work: named async tasks, restarted with capped exponential backoff.

One job: run the server's long-lived loops (timers, reload watcher, QA feeds) and its one-shot
jobs (webhook deliveries) so that an unexpected exception is logged with its traceback,
counted, kept as the task's last error for ``/healthz``, and - for a loop - followed by a
restart after a backoff (``base_s * 2**(n-1)``, capped at ``max_s``; ``n`` counts the crashes
in a row and starts again once a run lasted ``stable_s``).

    async with Supervisor() as supervisor:
        async with supervisor.running("timers", timers.run, stop=timers.stop):
            ...                                 # on exit: stop(), wait ``grace_s``, then cancel
        handle = supervisor.spawn(f"qa-feed:{sid}", lambda: feed_loop(sid))
        await handle.cancel()                   # a task with its own end (a closed socket)
        supervisor.run_once("webhooks", deliver(...))   # one-shot: failures counted, no restart

A task that returns normally is finished (not restarted): loops return only when asked to stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from .lifecycle import Closing

log = logging.getLogger(__name__)

Factory = Callable[[], Awaitable[None]]


class Fault(StrEnum):
    """Why a supervised task last failed (the ``code`` of its last error)."""

    CRASHED = "crashed"  # a loop raised an unexpected exception; it is restarted after a backoff
    FAILED = "failed"  # a one-shot job raised an unexpected exception; it is not retried


@dataclass(frozen=True)
class LastError:
    code: Fault
    type: str  # the exception's class, e.g. "ReaderError"
    text: str  # the exception's message, for people
    at_ms: int  # wall-clock time of the failure, epoch ms

    def as_json(self) -> dict[str, Any]:
        return {"code": str(self.code), "type": self.type, "text": self.text, "at_ms": self.at_ms}


@dataclass
class TaskState:
    """What ``/healthz`` reports for one task (or one group of one-shot jobs)."""

    name: str
    running: bool = False
    restarts: int = 0
    failures: int = 0
    in_flight: int = 0  # one-shot groups: jobs running now
    last_error: LastError | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "running": self.running,
            "restarts": self.restarts,
            "failures": self.failures,
            "in_flight": self.in_flight,
            "last_error": self.last_error.as_json() if self.last_error else None,
        }

    def failed(self, code: Fault, exc: BaseException) -> None:
        self.failures += 1
        self.last_error = LastError(code, type(exc).__name__, str(exc), int(time.time() * 1000))


@dataclass
class Supervised:
    """The handle of one supervised loop."""

    state: TaskState
    factory: Factory
    stop: Callable[[], None] | None
    task: asyncio.Task[None] | None = None
    stopping: bool = field(default=False)
    _owner: Supervisor | None = None

    async def cancel(self, grace_s: float = 0.0) -> None:
        """End the task: call its ``stop`` and wait up to ``grace_s`` while it is running (so
        work in flight finishes), then cancel it. The task leaves the supervisor's report."""
        self.stopping = True
        task = self.task
        if task is not None and not task.done():
            if self.stop is not None and self.state.running and grace_s > 0:
                self.stop()
                await asyncio.wait([task], timeout=grace_s)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._owner is not None:
            self._owner._forget(self)


class Supervisor(Closing):
    """Runs named tasks; see the module docstring. Use it with ``async with``."""

    def __init__(
        self,
        *,
        base_s: float = 0.5,
        max_s: float = 30.0,
        stable_s: float = 60.0,
        grace_s: float = 5.0,
    ) -> None:
        self.base_s = base_s
        self.max_s = max_s
        self.stable_s = stable_s
        self.grace_s = grace_s
        self._loops: dict[str, Supervised] = {}
        self._groups: dict[str, TaskState] = {}
        self._jobs: set[asyncio.Task[None]] = set()
        self._closed = False

    def states(self) -> list[TaskState]:
        """Every supervised loop and one-shot group, by name."""
        found = [s.state for s in self._loops.values()] + list(self._groups.values())
        return sorted(found, key=lambda s: s.name)

    def backoff_s(self, crashes_in_a_row: int) -> float:
        return float(min(self.max_s, self.base_s * 2 ** max(0, crashes_in_a_row - 1)))

    def spawn(
        self, name: str, factory: Factory, stop: Callable[[], None] | None = None
    ) -> Supervised:
        """Run ``factory()`` as the task ``name``, restarting it whenever it raises.

        ``factory`` must make a fresh coroutine each call. ``stop``, when given, asks the
        running coroutine to return (used with a grace period on shutdown)."""
        if self._closed:
            raise RuntimeError("the supervisor is closed; spawn tasks while the app is running")
        if name in self._loops:
            raise ValueError(f"a supervised task named {name!r} is already running")
        handle = Supervised(TaskState(name), factory, stop, _owner=self)
        handle.task = asyncio.create_task(self._keep(handle), name=f"cuewire-{name}")
        self._loops[name] = handle
        return handle

    @contextlib.asynccontextmanager
    async def running(
        self,
        name: str,
        factory: Factory,
        stop: Callable[[], None] | None = None,
        grace_s: float | None = None,
    ) -> AsyncIterator[Supervised]:
        """:meth:`spawn` for the length of a ``with`` block (for an ``AsyncExitStack``)."""
        handle = self.spawn(name, factory, stop)
        try:
            yield handle
        finally:
            await handle.cancel(self.grace_s if grace_s is None else grace_s)

    def run_once(self, group: str, job: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run a one-shot ``job``; an unexpected exception is logged and counted in ``group``."""
        state = self._groups.setdefault(group, TaskState(group, running=True))
        state.in_flight += 1

        async def guarded() -> None:
            try:
                await job
            except Exception as exc:
                state.failed(Fault.FAILED, exc)
                log.exception("background job of %s failed", group)
            finally:
                state.in_flight -= 1

        task = asyncio.create_task(guarded(), name=f"cuewire-{group}")
        self._jobs.add(task)
        task.add_done_callback(self._jobs.discard)
        return task

    async def aclose(self) -> None:
        """Stop every loop (newest first, each with ``grace_s`` if it has a ``stop``), then
        cancel the one-shot jobs still running."""
        self._closed = True
        for handle in reversed(list(self._loops.values())):
            await handle.cancel(self.grace_s)
        for task in list(self._jobs):
            task.cancel()
        await asyncio.gather(*self._jobs, return_exceptions=True)
        for state in self._groups.values():
            state.running = False

    def _forget(self, handle: Supervised) -> None:
        if self._loops.get(handle.state.name) is handle:
            del self._loops[handle.state.name]

    async def _keep(self, handle: Supervised) -> None:
        state = handle.state
        loop = asyncio.get_running_loop()
        in_a_row = 0
        while not handle.stopping:
            began = loop.time()
            state.running = True
            try:
                await handle.factory()
                log.info("background task %s finished", state.name)
                return
            except Exception as exc:
                state.running = False
                in_a_row = 1 if loop.time() - began >= self.stable_s else in_a_row + 1
                delay = self.backoff_s(in_a_row)
                state.failed(Fault.CRASHED, exc)
                log.exception(
                    "background task %s crashed; restart %d in %.1f s",
                    state.name,
                    state.restarts + 1,
                    delay,
                )
                await asyncio.sleep(delay)
                state.restarts += 1
            finally:
                state.running = False
