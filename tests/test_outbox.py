"""The durable outbox (outbox.py): a job put is done once, retried with backoff on Retry,
dead-lettered on Dead or after its attempts, revived from the dead letters, and taken over
from a consumer that died holding it, on a real Redis, the embedded store and a Redis Cluster.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest

from cuewire.metrics import Metrics
from cuewire.outbox import HANDLER_FAILED, Dead, Done, Job, Outbox, Retry, Verdict, backoff_s
from cuewire.settings import Settings
from cuewire.store import RedisStore, open_store
from support.servers import WITH_CLUSTER, RedisServer
from support.waiting import eventually

BACKENDS = WITH_CLUSTER


class Worker:
    """A handler that answers a script of verdicts in order (Done once they run out) and
    records every job it was given."""

    def __init__(self, *verdicts: Verdict) -> None:
        self.verdicts = list(verdicts)
        self.seen: list[Job] = []

    async def __call__(self, job: Job) -> Verdict:
        self.seen.append(job)
        verdict = self.verdicts.pop(0) if self.verdicts else Done()
        if isinstance(verdict, Exception):
            raise verdict
        return verdict


def outbox_of(
    store: RedisStore,
    consumer: str = "one",
    *,
    metrics: Metrics | None = None,
    lease_s: float = 30.0,
    max_attempts: int = 8,
    dead_max: int = 1000,
) -> Outbox:
    """The test channel's outbox, its pauses short (backoff 20 ms doubling, at most 100 ms)."""
    return Outbox(
        store.client,
        store.keys,
        "test",
        consumer=consumer,
        metrics=metrics,
        lease_s=lease_s,
        poll_s=0.02,
        base_s=0.02,
        max_s=0.1,
        max_attempts=max_attempts,
        dead_max=dead_max,
    )


@asynccontextmanager
async def running(
    outbox: Outbox, handler: Callable[[Job], Awaitable[Verdict]]
) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(outbox.run(handler))
    try:
        yield task
    finally:
        outbox.stop()
        await asyncio.wait_for(task, 5)


async def settled(outbox: Outbox, step: str, n: int = 1) -> None:
    async def counted() -> int:
        return (await outbox.depth()).counts.get(step, 0)

    await eventually(counted, lambda got: got >= n, what=f"{n} job(s) settled {step}")


async def test_a_job_put_is_done_once_and_leaves_nothing_behind(store: RedisStore) -> None:
    outbox = outbox_of(store)
    worker = Worker()
    job_id = await outbox.put({"to": "crm", "n": 1})
    async with running(outbox, worker):
        await settled(outbox, "done")
    [job] = worker.seen
    assert (job.id, job.data, job.attempts) == (job_id, {"to": "crm", "n": 1}, 0)
    depth = await outbox.depth()
    assert (depth.queued, depth.pending, depth.due, depth.dead) == (0, 0, 0, 0)
    assert depth.counts == {"done": 1}


async def test_a_retry_comes_back_with_the_same_id_and_one_more_attempt(
    store: RedisStore,
) -> None:
    outbox = outbox_of(store)
    worker = Worker(Retry("http_503"), Retry("http_429", after_s=0.05))
    job_id = await outbox.put({"n": 1}, job_id="msg_fixed")
    async with running(outbox, worker):
        await settled(outbox, "done")
    assert [(j.id, j.attempts) for j in worker.seen] == [(job_id, 0), (job_id, 1), (job_id, 2)]
    assert (await outbox.depth()).counts == {"retry": 2, "done": 1}


async def test_a_dead_verdict_is_dead_lettered_with_its_code_and_can_be_revived(
    store: RedisStore,
) -> None:
    outbox = outbox_of(store)
    worker = Worker(Dead("http_400"))
    job_id = await outbox.put({"n": 1})
    async with running(outbox, worker):
        await settled(outbox, "dead")
        [letter] = await outbox.dead_letters()
        assert (letter.id, letter.data, letter.code, letter.attempts) == (
            job_id,
            {"n": 1},
            "http_400",
            1,
        )
        assert await outbox.revive(job_id)
        assert not await outbox.revive(job_id)  # once
        await settled(outbox, "done")
    assert [(j.id, j.attempts) for j in worker.seen] == [(job_id, 0), (job_id, 0)]
    assert await outbox.dead_letters() == []


async def test_retries_stop_after_the_attempts_with_the_last_code(store: RedisStore) -> None:
    outbox = outbox_of(store, max_attempts=3)
    worker = Worker(*[Retry("timeout")] * 5)
    await outbox.put({"n": 1})
    async with running(outbox, worker):
        await settled(outbox, "dead")
    assert len(worker.seen) == 3
    [letter] = await outbox.dead_letters()
    assert (letter.code, letter.attempts) == ("timeout", 3)


async def test_a_handler_that_raises_is_retried(store: RedisStore) -> None:
    outbox = outbox_of(store, max_attempts=1)
    worker = Worker(RuntimeError("bug"))  # type: ignore[arg-type]
    await outbox.put({"n": 1})
    async with running(outbox, worker):
        await settled(outbox, "dead")
    [letter] = await outbox.dead_letters()
    assert letter.code == HANDLER_FAILED


async def test_the_dead_letters_are_capped_newest_first(store: RedisStore) -> None:
    outbox = outbox_of(store, dead_max=3)
    ids = [await outbox.put({"n": n}) for n in range(5)]
    async with running(outbox, Worker(*[Dead("refused")] * 5)):
        await settled(outbox, "dead", 5)
    kept = [letter.id for letter in await outbox.dead_letters()]
    assert len(kept) == 3
    assert set(kept) <= set(ids)


async def test_a_job_held_by_a_dead_consumer_is_taken_over_after_its_lease(
    store: RedisStore,
) -> None:
    """The consumer ``gone`` reads the job and dies before settling it (as a SIGKILL would
    leave it): the job stays pending; another consumer takes it over once the lease ran out,
    not before, and it is done exactly once."""
    metrics = Metrics()
    gone = outbox_of(store, "gone", lease_s=0.3)
    await gone.put({"n": 1})
    [held] = await gone.take()
    assert (await gone.depth()).pending == 1
    other = outbox_of(store, "other", metrics=metrics, lease_s=0.3)
    assert await other.take() == []  # within the lease: still the first consumer's
    worker = Worker()
    async with running(other, worker):
        await settled(other, "done")
    assert [(j.id, j.data) for j in worker.seen] == [(held.id, held.data)]
    depth = await other.depth()
    assert (depth.queued, depth.pending, depth.counts) == (0, 0, {"done": 1})
    assert metrics.outbox.labels("test", "reclaimed")._value.get() == 1
    await gone.settle(held, Done())  # the first consumer, back late, settles nothing
    assert (await other.depth()).counts == {"done": 1}


async def test_a_handler_slower_than_its_lease_keeps_its_job(store: RedisStore) -> None:
    """A live consumer renews the leases of the jobs in hand: a handler that takes two and a
    half leases is neither taken over by another consumer nor by its own next look for expired
    leases, and the job is done once (without the renewal both would do it again)."""
    metrics = Metrics()
    slow = outbox_of(store, "slow", metrics=metrics, lease_s=1.0)
    other = outbox_of(store, "other", metrics=metrics, lease_s=1.0)
    calls: list[str] = []

    async def slow_handler(job: Job) -> Verdict:
        calls.append("slow")
        await asyncio.sleep(2.5)
        return Done()

    worker = Worker()
    await slow.put({"n": 1})
    async with running(slow, slow_handler):
        await eventually(lambda: calls == ["slow"], what="the slow consumer at work")
        async with running(other, worker):
            await settled(slow, "done")
            await asyncio.sleep(0.4)  # a look for expired leases after the settle
    assert (calls, worker.seen) == (["slow"], [])
    assert (await slow.depth()).counts == {"done": 1}
    assert metrics.outbox.labels("test", "reclaimed")._value.get() == 0


async def test_jobs_a_caller_runs_through_do_all_keep_their_leases(store: RedisStore) -> None:
    """A caller with a loop of its own (the mailer) takes jobs and runs them with do_all:
    their leases are renewed while the handler is slow, so a consumer beside it takes
    none of them over."""
    metrics = Metrics()
    mine = outbox_of(store, "mailer", metrics=metrics, lease_s=1.0)
    other = outbox_of(store, "other", metrics=metrics, lease_s=1.0)
    for n in range(2):
        await mine.put({"n": n})
    jobs = await mine.take()
    sent: list[int] = []

    async def slow_smtp(job: Job) -> Verdict:
        await asyncio.sleep(2.5)
        sent.append(job.data["n"])
        return Done()

    worker = Worker()
    async with running(other, worker):
        assert await mine.do_all(jobs, slow_smtp) == [Done(), Done()]
        await asyncio.sleep(0.4)  # a look for expired leases after the settles
    assert (sorted(sent), worker.seen) == ([0, 1], [])
    assert (await mine.depth()).counts == {"done": 2}
    assert metrics.outbox.labels("test", "reclaimed")._value.get() == 0


@pytest.mark.parametrize("way", ["run", "do_all"])
async def test_a_redis_stall_while_a_job_is_in_hand_neither_stops_nor_doubles_it(
    own_redis: RedisServer, way: str
) -> None:
    """Redis stops answering (SIGSTOP) for longer than a quarter lease while a slow job is in
    hand: renewing its lease fails and is counted, the job goes on, and once Redis answers
    again it is settled, done once; the consumer beside takes nothing over (the stall is
    shorter than the lease). Both ways a job is run: the outbox's loop and do_all. The job
    ends only after the stall, however late the stall begins on a loaded machine."""
    url = f"{own_redis.url}?socket_timeout=0.5"
    async with open_store(Settings(redis_url=url)) as store:
        metrics = Metrics()
        mine = outbox_of(store, "mine", metrics=metrics, lease_s=4.0)
        other = outbox_of(store, "other", lease_s=4.0)
        await mine.put({"n": 1})
        started, thawed = asyncio.Event(), asyncio.Event()
        ran: list[int] = []

        async def slow(job: Job) -> Verdict:
            started.set()
            await thawed.wait()
            await asyncio.sleep(0.2)
            ran.append(job.data["n"])
            return Done()

        async def stall() -> None:
            with own_redis.frozen():
                await asyncio.sleep(1.8)  # a renewal is due every 1 s; each waits 0.5 s
            thawed.set()

        worker = Worker()
        if way == "run":
            async with running(mine, slow):
                await started.wait()  # the job is mine: now the other consumer starts
                async with running(other, worker):
                    await stall()
                    await settled(mine, "done")
        else:
            doing = asyncio.create_task(mine.do_all(await mine.take(), slow))
            await started.wait()
            async with running(other, worker):
                await stall()
                assert await doing == [Done()]
        assert (ran, worker.seen) == ([1], [])
        assert (await mine.depth()).counts == {"done": 1}
        assert metrics.outbox.labels("test", "store_error")._value.get() >= 1


async def test_a_consumer_back_after_its_lease_does_not_take_its_job_back(
    store: RedisStore,
) -> None:
    """Cut off for longer than the lease, a consumer's job was taken over; renewing its
    leases when it is back leaves the job with the consumer that took it."""
    away = outbox_of(store, "away", lease_s=0.3)
    await away.put({"n": 1})
    [held] = await away.take()
    await asyncio.sleep(0.35)
    [taken] = await outbox_of(store, "other", lease_s=0.3).take()
    assert taken.entry == held.entry
    assert await away.take(0, holding=[held.entry]) == []
    [pending] = await store.client.xpending_range(away.key("stream"), "workers", "-", "+", 10)
    assert pending["consumer"] == "other"


async def test_a_slow_job_does_not_hold_up_the_others(store: RedisStore) -> None:
    outbox = outbox_of(store)
    release = asyncio.Event()
    done: list[int] = []

    async def handler(job: Job) -> Verdict:
        if job.data["n"] == 0:
            await release.wait()  # a receiver that does not answer yet
        done.append(job.data["n"])
        return Done()

    await outbox.put({"n": 0})
    async with running(outbox, handler):
        await eventually(lambda: outbox.depth(), lambda d: d.pending == 1, what="n=0 in hand")
        for n in (1, 2, 3):
            await outbox.put({"n": n})
        await eventually(lambda: sorted(done) == [1, 2, 3], what="the others done meanwhile")
        release.set()
        await settled(outbox, "done", 4)
    assert done[-1] == 0


async def test_an_entry_that_is_not_a_job_is_dead_lettered_unhandled(store: RedisStore) -> None:
    outbox = outbox_of(store)
    await store.client.xadd(outbox.key("stream"), {"written": "by hand"})
    worker = Worker()
    async with running(outbox, worker):
        await settled(outbox, "dead")
    [letter] = await outbox.dead_letters()
    assert (letter.code, letter.data) == ("malformed", {"entry": {"written": "by hand"}})
    assert worker.seen == []


def test_the_backoff_is_exponential_with_full_jitter_and_capped() -> None:
    def top(attempts: int) -> float:
        return backoff_s(attempts, base_s=1.0, max_s=60.0, rand=lambda: 1.0)

    assert [top(n) for n in range(8)] == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]
    assert backoff_s(3, 1.0, 60.0, rand=lambda: 0.25) == 2.0
    assert backoff_s(3, 1.0, 60.0, rand=lambda: 0.0) == 0.0
