"""KeyedLocks: one holder per key at a time, and no lock left behind once nobody holds or
awaits it (a session's batches run in turn; the map must not grow with every session seen)."""

from __future__ import annotations

import asyncio

from cuewire.locks import KeyedLocks


async def test_holders_of_one_key_take_turns_and_other_keys_do_not_wait() -> None:
    locks = KeyedLocks()
    trace: list[str] = []

    async def hold(key: str, name: str) -> None:
        async with locks.hold(key):
            trace.append(f"{name}+")
            await asyncio.sleep(0.01)
            trace.append(f"{name}-")

    await asyncio.gather(hold("s1", "a"), hold("s1", "b"), hold("s2", "c"))
    assert trace.index("a-") < trace.index("b+")  # a and b in turn
    assert trace.index("c+") < trace.index("a-")  # c did not wait for s1
    assert len(locks) == 0


async def test_a_waiter_cancelled_or_a_holder_failing_leaves_nothing_behind() -> None:
    locks = KeyedLocks()
    entered = asyncio.Event()
    release = asyncio.Event()

    async def holder() -> None:
        async with locks.hold("s"):
            entered.set()
            await release.wait()
            raise ValueError("the batch failed")

    async def waiter() -> None:
        async with locks.hold("s"):
            raise AssertionError("never gets the lock: cancelled while waiting")

    first = asyncio.create_task(holder())
    await entered.wait()
    second = asyncio.create_task(waiter())
    await asyncio.sleep(0)
    second.cancel()
    release.set()
    results = await asyncio.gather(first, second, return_exceptions=True)
    assert isinstance(results[0], ValueError)
    assert isinstance(results[1], asyncio.CancelledError)
    assert len(locks) == 0
    async with locks.hold("s"):  # and the key works again
        assert len(locks) == 1
