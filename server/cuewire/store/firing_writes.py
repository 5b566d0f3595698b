"""What the Redis store writes outside a batch's script: a firing's record after governance
(record.lua: the facts its rules set, its audit records, what they count and their outbox
jobs; each record encoded by :func:`record_entry`, as a batch's script gets the records of
its firings decided ahead, store/fold.py) and actions applied alone (commit.lua without
seqs: a deadline's outcome, a reset's cancels). On a cluster, the parts whose keys are in
other slots go apart, in the same loop turn: the facts per visitor slot, exposures in the
visitor's slot (mark.lua), outbox jobs first."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

from ..clock import day_of
from ..keys import Keys
from . import tally
from .base import Action, Cancel, Put, Queued, Schedule, Timer
from .beside import Beside
from .coalesce import Coalescer
from .scripts import TimerOp, lua, ops_arg, ops_of, record_script, slot_in, to_json
from .shared import Client, guard, together

AUDIT_MAXLEN = 100_000
AUDITED_TTL_S = 24 * 3600  # how long a firing is remembered as audited (record.lua)


def record_entry(
    k: Keys, site: str, record: Mapping[str, str], slot: Callable[[str], int]
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """write_record.lua's ``r`` for ``record`` (the keys it touches added through ``slot``)
    and, on a cluster, mark.lua's entry for what it leaves in the visitor's slot."""
    entry: dict[str, Any] = {
        "m": slot(k.audited(record["firing"], site)) if record.get("firing") else 0,
        "f": [item for pair in record.items() for item in pair],
    }
    counts, apart = tally.record_arg(k, site, record, slot)
    if counts is not None:
        entry["t"] = counts
    return entry, apart


class FiringWrites:
    """Firing records and actions applied alone on ``client``, through ``calls`` (the
    store's coalescer) and ``beside`` (its deadline-shard writes on a cluster)."""

    def __init__(self, client: Client, keys: Keys, calls: Coalescer, beside: Beside) -> None:
        self._r = client
        self._k = keys
        self._calls = calls
        self._beside = beside
        self._commit = client.register_script(lua("ops.lua") + lua("commit.lua"))
        self._record = client.register_script(record_script())
        self._mark = client.register_script(lua("counters.lua") + lua("mark.lua"))

    async def record(
        self,
        site: str,
        puts: list[Put],
        records: list[dict[str, str]],
        jobs: Sequence[Queued] = (),
    ) -> None:
        if not puts and not records:
            return
        k = self._k
        keys = [k.audit(site)]
        ops = [] if k.cluster else ops_of(k, list(puts), keys)  # a cluster applies them apart
        slot = slot_in(keys)
        entries: list[dict[str, Any]] = []
        marks: list[dict[str, Any]] = []  # on a cluster: what goes to the visitors' slots
        for r in records:
            entry, apart = record_entry(k, site, r, slot)
            if apart is not None:
                marks.append(apart)
            entries.append(entry)
        if not k.cluster:  # each job in the script that writes its record (record.lua)
            for q in jobs:
                entries[q.record]["o"] = {"k": slot(k.outbox(q.channel, "stream")), "j": q.job}
        arg = to_json({"ops": ops, "records": entries})
        async with guard("record a firing"):
            if jobs and k.cluster:  # the outbox's slot is not the audit's: queued first
                await self._queue_apart(jobs)
            if not k.cluster:
                await self._calls.call(self._record, keys, [arg, AUDIT_MAXLEN, AUDITED_TTL_S])
                return
            work: list[Awaitable[Any]] = [self._apply_apart(list(puts))]
            if records:
                work.append(
                    self._calls.call(self._record, keys, [arg, AUDIT_MAXLEN, AUDITED_TTL_S])
                )
            work += [self._mark_apart(site, m) for m in marks]
            await together(work)

    async def _mark_apart(self, site: str, marks: dict[str, Any]) -> None:
        """On a cluster: what an exposure leaves in the visitor's slot (mark.lua); a new
        exposed visitor is counted in the site's counters after it."""
        fields = await self._calls.call(self._mark, marks["keys"], [to_json([marks["m"]])])
        await tally.count_beside(self._calls, self._k, site, day_of(int(marks["at"])), fields)

    async def _queue_apart(self, jobs: Sequence[Queued]) -> None:
        """On a cluster, outbox jobs go before their audit records: a crash in between
        leaves a job without its record (sent, with its id: at least once), never a record
        without its job."""
        k = self._k
        await together(
            self._r.xadd(k.outbox(q.channel, "stream"), {"j": q.job, "a": 0}) for q in jobs
        )

    async def apply(self, actions: list[Action]) -> None:
        if not actions:
            return
        if self._k.cluster:
            async with guard("apply rule actions"):
                await self._apply_apart(actions)
            return
        keys = [self._k.timers()]  # commit.lua's pending-seq key: unused without seqs
        arg = ops_arg(self._k, [], actions, keys)
        async with guard("apply rule actions"):
            await self._calls.call(self._commit, keys, [arg])

    async def _apply_apart(self, actions: Iterable[Action]) -> None:
        """On a cluster: ``actions`` as one commit.lua call per visitor slot, together."""
        by_slot: dict[tuple[str, str], list[Action]] = {}
        for action in actions:
            owner = action.timer if isinstance(action, Schedule | Cancel) else action
            if not isinstance(owner, Timer | Put):
                raise TypeError("a commit applies no FiringRequest: resolve() asks governance")
            by_slot.setdefault((owner.site, owner.visitor), []).append(action)
        calls = []
        for (site, visitor), group in by_slot.items():
            keys = [self._k.visitor(site, visitor)]  # the pending-seq key: unused without seqs
            timer_ops: list[TimerOp] = []
            arg = ops_arg(self._k, [], group, keys, timer_ops)
            calls.append(self._beside.call(self._commit, keys, [arg], timer_ops, bool))
        await together(calls)
