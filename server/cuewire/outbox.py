"""A durable outbox: jobs for one channel (``webhooks``, ``email``, ...) on a Redis stream read
by a consumer group, retried with backoff, dead-lettered when they cannot be done.

    outbox = Outbox(store.client, store.keys, "webhooks", consumer=process_id, metrics=m)
    job_id = await outbox.put({"url": ..., "body": ...})          # durable once it returns
    async with supervisor.running("outbox:webhooks", lambda: outbox.run(handler),
                                  stop=outbox.stop): ...

``handler(job: Job)`` (async) does the work and answers what became of it:

- :class:`Done`: the job is acknowledged and deleted.
- :class:`Retry` ``(code, after_s=None)``: tried again after ``after_s`` (a receiver's
  Retry-After) or, without it, after an exponential backoff with full jitter (a random pause
  between 0 and ``min(max_s, base_s * 2**attempts)``); after ``max_attempts`` attempts it is
  dead-lettered with ``code`` instead.
- :class:`Dead` ``(code)``: dead-lettered at once.

An exception from the handler counts as ``Retry(HANDLER_FAILED)`` (logged with its traceback).
``Job.id`` is the same on every attempt (``put`` draws it, or takes the caller's): a receiver
de-duplicates on it. ``Job.attempts`` counts the attempts before this one.

Durability: ``put`` returns once Redis has the entry (as durable as the server's persistence).
An entry stays in the group's pending list until its handler's verdict is settled (one script:
acknowledge, delete, then schedule the retry or dead-letter it), so a consumer killed mid-job
(SIGKILL) loses nothing: once the entry has gone ``lease_s`` without its consumer renewing its
lease (every quarter lease while the job is in hand: a slow handler keeps its job), any
consumer takes it over (``XAUTOCLAIM``) and does it again. Delivery is at least once: a job
whose handler finished but whose settle did not (the process died between the two, or could
not reach the store for longer than the lease) is done twice, with the same ``Job.id``.

Keys (keys.py ``Keys.outbox``): ``stream`` (to do), ``due`` (a sorted set of retries by due
time, ms, moved back onto the stream when due), ``dead`` (a list, newest first, capped at
``dead_max``: each entry JSON ``{"id", "j" (the job's JSON), "code", "detail", "attempts",
"at"}``) and
``counts`` (a hash: done, retry, dead). On a Redis Cluster every key of one channel shares its
hash tag, so each script touches one slot. Works the same on the embedded store.

A script of the store may put a job in the same call as its own writes: it adds the entry
``{"j": <job JSON from job_json()>, "a": 0}`` to ``keys.outbox(channel, "stream")``
(store/lua/record.lua does, for webhooks).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from redis.exceptions import ResponseError

from .codes import Undelivered
from .errors import StoreError
from .ids import new_id
from .keys import Keys
from .metrics import Metrics
from .store.scripts import lua
from .store.shared import Client, guard

log = logging.getLogger(__name__)

GROUP = "workers"
HANDLER_FAILED = Undelivered.HANDLER_FAILED  # the handler raised: retried with this code
PARTS = ("stream", "due", "dead", "counts")
OUTAGE_PAUSE_S = 2.0  # the longest wait between reads while the store is unreachable


@dataclass(frozen=True)
class Job:
    id: str  # the same on every attempt
    data: dict[str, Any]
    attempts: int  # attempts made before this one
    entry: str = ""  # the stream entry this attempt was read from
    malformed: bool = False  # its entry could not be read: dead-lettered unhandled


@dataclass(frozen=True)
class Done:
    pass


@dataclass(frozen=True)
class Retry:
    code: str
    after_s: float | None = None  # None: the outbox's backoff
    detail: str = ""  # for people (e.g. "HTTP 503"): kept with the dead letter if it dies


@dataclass(frozen=True)
class Dead:
    code: str
    detail: str = ""


Verdict = Done | Retry | Dead
Handler = Callable[[Job], Awaitable[Verdict]]


@dataclass(frozen=True)
class DeadLetter:
    id: str
    data: dict[str, Any]
    code: str
    attempts: int
    at_ms: int
    detail: str = ""

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Depth:
    """How many jobs wait where (for /qa and tests)."""

    queued: int  # on the stream: new, due again, or being done
    pending: int  # read by a consumer and not settled yet
    due: int  # waiting for their retry
    dead: int
    counts: dict[str, int]  # settled so far: done, retry, dead

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def job_json(job_id: str, data: dict[str, Any]) -> str:
    """A job as it is kept (the stream entry's ``j``)."""
    return json.dumps({"id": job_id, "data": data}, separators=(",", ":"))


def backoff_s(attempts: int, base_s: float, max_s: float, rand: Callable[[], float]) -> float:
    """Full jitter: a random pause in [0, min(max_s, base_s * 2**attempts))."""
    return rand() * min(max_s, base_s * 2.0**attempts)


class Outbox:
    """One channel's outbox; see the module docstring."""

    def __init__(
        self,
        client: Client,
        keys: Keys,
        channel: str,
        *,
        consumer: str | None = None,
        metrics: Metrics | None = None,
        lease_s: float = 30.0,
        poll_s: float = 0.2,
        batch: int = 16,
        max_attempts: int = 8,
        base_s: float = 1.0,
        max_s: float = 600.0,
        dead_max: int = 1000,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.channel = channel
        self.consumer = consumer or new_id("c_")
        self._r = client
        self._k = {part: keys.outbox(channel, part) for part in PARTS}
        self._metrics = metrics or Metrics()
        self.lease_s = lease_s
        self.poll_s = poll_s
        self.batch = batch
        self.max_attempts = max_attempts
        self.base_s = base_s
        self.max_s = max_s
        self.dead_max = dead_max
        self._rand = rand
        self._settle = client.register_script(lua("outbox_settle.lua"))
        self._due = client.register_script(lua("outbox_due.lua"))
        self._revive = client.register_script(lua("outbox_revive.lua"))
        self._renew = client.register_script(lua("outbox_renew.lua"))
        self._stopping = asyncio.Event()
        self._group_ready = False
        self._next_claim = 0.0  # time.monotonic() of the next look for expired leases

    def key(self, part: str) -> str:
        """The key of ``part`` (one of PARTS)."""
        return self._k[part]

    def _count(self, step: str, n: int = 1) -> None:
        if n:
            self._metrics.outbox.labels(self.channel, step).inc(n)

    async def put(self, data: dict[str, Any], job_id: str | None = None) -> str:
        """Queue a job durably; its id (``job_id`` when given: a caller's idempotency key)."""
        job_id = job_id or new_id("j_")
        async with guard(f"queue a {self.channel} job"):
            await self._r.xadd(self._k["stream"], {"j": job_json(job_id, data), "a": 0})
        self._count("put")
        return job_id

    def stop(self) -> None:
        """Ask :meth:`run` to return after the jobs in hand (the supervisor's ``stop``)."""
        self._stopping.set()

    async def run(self, handler: Handler) -> None:
        """Do the channel's jobs until :meth:`stop`: move due retries back, take over jobs
        whose lease ran out, read new ones and run ``handler`` on up to ``batch`` of them at
        a time, each settled as it ends (a slow receiver holds up only its own slot). The
        leases of the jobs in hand are renewed every quarter lease, so a handler slower than
        the lease is not taken over while this consumer lives. A store outage does not end
        the loop: it waits (up to ``OUTAGE_PAUSE_S`` between tries) and goes on; a job whose
        settle failed stays pending and is taken over after its lease. After :meth:`stop`,
        the jobs in hand finish (their leases still renewed)."""
        self._stopping.clear()
        working: dict[asyncio.Task[Verdict], Job] = {}
        stopping = asyncio.create_task(self._stopping.wait())
        wait_s = self.poll_s
        try:
            while not stopping.done() or working:
                room = 0 if stopping.done() else self.batch - len(working)
                holding = [job.entry for job in working.values()]
                try:
                    jobs = await self.take(room, holding)
                    wait_s = self.poll_s
                except StoreError as exc:
                    self._count("store_error")
                    log.warning("the %s outbox cannot read the store: %s", self.channel, exc)
                    jobs, wait_s = [], min(OUTAGE_PAUSE_S, wait_s * 2)
                for job in jobs:
                    working[asyncio.create_task(self.do(job, handler))] = job
                waits = {*working} if stopping.done() else {*working, stopping}
                if not waits:  # stopped while reading, nothing in hand
                    break
                done, _ = await asyncio.wait(
                    waits, timeout=wait_s, return_when=asyncio.FIRST_COMPLETED
                )
                for task in [task for task in working if task in done]:
                    del working[task]
                    if isinstance(task.exception(), StoreError):  # settle failed: lease runs out
                        self._count("store_error")
                        log.warning(
                            "the %s outbox cannot settle a job: %s", self.channel, task.exception()
                        )
                    else:
                        task.result()
        finally:
            stopping.cancel()
            for task in working:
                task.cancel()

    async def take(self, count: int | None = None, holding: Sequence[str] = ()) -> list[Job]:
        """Up to ``count`` (``batch``) jobs: due retries moved back, expired leases taken
        over, then new entries. Every quarter lease it first renews the leases of
        ``holding`` (the entries of the jobs this consumer has in hand), so that it never
        takes over its own jobs, nor another consumer does while this one lives."""
        count = self.batch if count is None else count
        await self._ensure_group()
        stream = self._k["stream"]
        entries: list[Any] = []
        claiming = time.monotonic() >= self._next_claim  # leases run out slowly: 4x a lease
        if claiming:
            self._next_claim = time.monotonic() + self.lease_s / 4
            await self.renew(holding)
        async with guard(f"read the {self.channel} outbox"):
            if count > 0:
                now_ms = int(time.time() * 1000)
                moved = await self._due([stream, self._k["due"]], [now_ms, count])
                if moved:
                    log.debug("%d %s retries due", moved, self.channel)
            if claiming and count > 0:
                lease_ms = int(self.lease_s * 1000)
                claimed = await self._r.xautoclaim(
                    stream, GROUP, self.consumer, lease_ms, "0-0", count=count
                )
                entries = list(claimed[1])
                self._count("reclaimed", len(entries))
            if len(entries) < count:
                read: Any = await self._r.xreadgroup(
                    GROUP, self.consumer, {stream: ">"}, count=count - len(entries)
                )
                for _name, got in read or []:
                    entries += got
        jobs = [self._job(*entry) for entry in entries]
        return [job for job in jobs if job is not None]

    async def renew(self, entries: Sequence[str]) -> int:
        """Renew the leases of ``entries`` (read by this consumer, not settled yet): those
        another consumer took over meanwhile stay its own. How many were renewed."""
        if not entries:
            return 0
        async with guard(f"renew the {self.channel} outbox's leases"):
            args = [GROUP, self.consumer, *entries]
            return int(await self._renew([self._k["stream"]], args))

    async def do_all(self, jobs: Sequence[Job], handler: Handler) -> list[Verdict]:
        """Run ``handler`` on ``jobs`` at once and settle each (:meth:`do`), renewing the
        leases of those not done every quarter lease (for a caller with a loop of its own,
        as the mailer; :meth:`run` renews its own)."""
        tasks = {asyncio.create_task(self.do(job, handler)): job for job in jobs}
        try:
            while pending := [task for task in tasks if not task.done()]:
                await asyncio.wait(pending, timeout=self.lease_s / 4)
                try:
                    await self.renew([tasks[task].entry for task in pending if not task.done()])
                except StoreError as exc:  # the jobs go on; a lease that runs out is taken over
                    self._count("store_error")
                    log.warning("the %s outbox cannot renew its leases: %s", self.channel, exc)
            return [task.result() for task in tasks]
        finally:
            for task in tasks:  # cancelled from outside (a shutdown): the jobs with it
                task.cancel()

    def _job(self, entry: str, fields: dict[str, str] | None) -> Job | None:
        """The job of a stream entry; None for one deleted while pending (nothing to do)."""
        if not fields:
            return None
        try:
            kept = json.loads(fields["j"])
            return Job(str(kept["id"]), dict(kept["data"]), int(fields.get("a", 0)), str(entry))
        except (KeyError, TypeError, ValueError):  # not written by put(): it is never doable
            log.error("malformed %s outbox entry %s: dead-lettered", self.channel, entry)
            return Job(str(entry), {"entry": dict(fields)}, 0, str(entry), malformed=True)

    async def do(self, job: Job, handler: Handler) -> Verdict:
        """Run ``handler`` on one job and settle its verdict."""
        try:
            verdict = Dead(Undelivered.MALFORMED) if job.malformed else await handler(job)
        except Exception:
            log.exception("the %s handler failed on job %s", self.channel, job.id)
            verdict = Retry(HANDLER_FAILED)
        await self.settle(job, verdict)
        return verdict

    async def settle(self, job: Job, verdict: Verdict) -> None:
        attempts = job.attempts + 1
        now_ms = int(time.time() * 1000)
        kept = job_json(job.id, job.data)
        if isinstance(verdict, Retry) and attempts >= self.max_attempts:
            verdict = Dead(verdict.code, verdict.detail)
        if isinstance(verdict, Done):
            args: list[Any] = ["done", 0, ""]
        elif isinstance(verdict, Retry):
            pause = verdict.after_s
            if pause is None:
                pause = backoff_s(job.attempts, self.base_s, self.max_s, self._rand)
            due_ms = now_ms + int(min(pause, self.max_s) * 1000)
            args = ["retry", due_ms, json.dumps({"j": kept, "a": attempts})]
        else:
            dead = {"id": job.id, "j": kept, "code": verdict.code, "attempts": attempts}
            dead["detail"] = verdict.detail
            args = ["dead", self.dead_max, json.dumps({**dead, "at": now_ms})]
        keys = [self._k[part] for part in PARTS]
        async with guard(f"settle a {self.channel} job"):
            settled = await self._settle(keys, [GROUP, job.entry, *args])
        if settled:
            self._count(str(args[0]))
        else:
            log.info("%s job %s was settled by another consumer", self.channel, job.id)

    async def dead_letters(self, count: int = 100) -> list[DeadLetter]:
        """The newest ``count`` dead letters, newest first."""
        async with guard(f"read the {self.channel} dead letters"):
            raw = await self._r.lrange(self._k["dead"], 0, count - 1)
        out = []
        for item in raw:
            dead = json.loads(item)
            job = json.loads(dead["j"])
            out.append(
                DeadLetter(
                    dead["id"],
                    job["data"],
                    dead["code"],
                    dead["attempts"],
                    dead["at"],
                    dead.get("detail", ""),
                )
            )
        return out

    async def revive(self, job_id: str) -> bool:
        """Queue a dead letter again with its attempts reset; False when there is none with
        ``job_id``."""
        async with guard(f"retry a {self.channel} dead letter"):
            keys = [self._k["stream"], self._k["dead"]]
            found = await self._revive(keys, [job_id, self.dead_max])
        if found:
            self._count("revived")
        return bool(found)

    async def depth(self) -> Depth:
        await self._ensure_group()
        async with guard(f"measure the {self.channel} outbox"):
            queued = await self._r.xlen(self._k["stream"])
            pending = await self._r.xpending(self._k["stream"], GROUP)
            due = await self._r.zcard(self._k["due"])
            dead = await self._r.llen(self._k["dead"])
            counts = await self._r.hgetall(self._k["counts"])
        return Depth(
            int(queued),
            int(pending["pending"]),
            int(due),
            int(dead),
            {str(k): int(v) for k, v in counts.items()},
        )

    async def _ensure_group(self) -> None:
        if self._group_ready:
            return
        async with guard(f"open the {self.channel} outbox"):
            try:
                await self._r.xgroup_create(self._k["stream"], GROUP, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
        self._group_ready = True
