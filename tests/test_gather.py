"""The writes a cluster makes after the batches, gathered per key (store/gather.py): one call
per key in flight, what comes meanwhile in the next call and in order, a bounded wait while a
node does not answer, and a failed call that does not stop the next."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import pytest

from cuewire.store.gather import Gathered


class Writes:
    """A write per key that waits until the test lets it answer (or fail)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[int]]] = []
        self.answers: dict[str, asyncio.Future[None]] = {}
        self.background: set[asyncio.Task[Any]] = set()
        self.failures: list[BaseException] = []

    async def write(self, key: str, items: list[int]) -> None:
        self.calls.append((key, items))
        answer = self.answers[key] = asyncio.get_running_loop().create_future()
        await answer

    def later(self, work: Awaitable[Any]) -> None:
        async def run() -> None:
            try:
                await work
            except RuntimeError as exc:
                self.failures.append(exc)

        task = asyncio.get_running_loop().create_task(run())
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    def answer(self, key: str, error: BaseException | None = None) -> None:
        if error is None:
            self.answers.pop(key).set_result(None)
        else:
            self.answers.pop(key).set_exception(error)


async def turn() -> None:
    """Let the loop run what is ready, and what that makes ready."""
    for _ in range(5):
        await asyncio.sleep(0)


@pytest.fixture
async def writes() -> AsyncIterator[Writes]:
    w = Writes()
    yield w
    for task in w.background:  # the calls a test left unanswered
        task.cancel()
    await asyncio.gather(*w.background, return_exceptions=True)


async def test_what_a_loop_turn_adds_for_a_key_goes_in_one_call_per_key(writes: Writes) -> None:
    gathered: Gathered[str, int] = Gathered(writes.write, writes.later)
    gathered.add("site-a", [1, 2])
    gathered.add("site-b", [10])
    gathered.add("site-a", [3])
    assert writes.calls == []  # at the end of the turn
    await turn()
    assert sorted(writes.calls) == [("site-a", [1, 2, 3]), ("site-b", [10])]


async def test_one_call_per_key_is_in_flight_and_the_next_takes_what_came_meanwhile_in_order(
    writes: Writes,
) -> None:
    gathered: Gathered[str, int] = Gathered(writes.write, writes.later)
    gathered.add("site", [1])
    await turn()
    for n in (2, 3, 4):
        gathered.add("site", [n])
        await turn()
    assert writes.calls == [("site", [1])]  # not answered yet: nothing else goes
    writes.answer("site")
    await turn()
    assert writes.calls == [("site", [1]), ("site", [2, 3, 4])]
    writes.answer("site")
    await turn()
    assert not writes.background and "site" not in writes.answers


async def test_while_a_call_does_not_answer_at_most_cap_items_wait_the_newest_kept(
    writes: Writes,
) -> None:
    gathered: Gathered[str, int] = Gathered(writes.write, writes.later, cap=3)
    gathered.add("site", [0])
    await turn()
    gathered.add("site", [1, 2, 3, 4])
    gathered.add("site", [5])
    writes.answer("site")
    await turn()
    assert writes.calls[-1] == ("site", [3, 4, 5])


async def test_a_failed_call_is_reported_and_the_next_one_still_goes(writes: Writes) -> None:
    gathered: Gathered[str, int] = Gathered(writes.write, writes.later)
    gathered.add("site", [1])
    await turn()
    gathered.add("site", [2])
    writes.answer("site", RuntimeError("node down"))
    await turn()
    assert [str(e) for e in writes.failures] == ["node down"]
    assert writes.calls == [("site", [1]), ("site", [2])]


async def test_flush_sends_now_what_waits_for_keys_with_no_call_in_flight(writes: Writes) -> None:
    gathered: Gathered[str, int] = Gathered(writes.write, writes.later)
    gathered.add("busy", [1])
    await turn()
    gathered.add("busy", [2])
    gathered.add("idle", [7])
    gathered.flush()
    await asyncio.sleep(0)
    assert sorted(writes.calls) == [("busy", [1]), ("idle", [7])]
