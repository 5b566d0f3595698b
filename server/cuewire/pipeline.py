"""The path of one batch: store it, let the engine decide, apply timers, deliver prompts.

Transport-free, so the gateway, the backend-events endpoint and tests share it.

One store round trip for most batches: when the process still knows a session's facts from
its last batch (prediction.py), the engine decides the batch from them before the store call,
and the store applies the batch with the decision's actions and answers its firing requests,
after checking that those facts are what it holds. Otherwise (a first batch, a resend, another
tab, process or deadline changed a fact) the store returns the facts after the batch and the
engine decides from them: a second round trip applies the actions, with governance's grants
when the batch fires. A firing batch decided ahead also writes what governance's answer
leaves (facts, audit record, counts, webhook job) in that one call, its prompt rendered
before it (fold.py); other firings write it after the prompt went out (one more round trip,
off the prompt's path: delivery.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from .counters import SegmentAssigned
from .delivery import Delivery
from .facts import FactChanges, changes_for, new_names
from .firing_plan import Plan
from .fold import Ahead
from .identity import is_verified
from .learn.assigned import Assigned
from .measures import measures_of
from .origin import Origin
from .prediction import Known, KnownFacts, Reads, after_actions, after_batch
from .protocol import Prompt
from .rules.engine import Decision, Engine
from .store.base import Admitted, Commit, Decided, Facts, Gate, Ingested, Store


class Processed(msgspec.Struct, frozen=True):
    admitted: Admitted  # which events the gate let in (the others were not stored)
    prompt: Prompt | None  # the prompt the batch showed on its own tab, if any
    ahead: bool = False  # decided before the store call: one round trip


class _Ahead(msgspec.Struct, frozen=True):
    """A batch decided before the store call, and the facts after it if the store agrees."""

    decided: Decided
    after: Known
    plans: list[Plan]  # the firings it asks governance for
    writes: list[Ahead | None]  # per plan: what its outcomes write, made ahead (fold.py)
    segment: str  # the learned segment it assigned the visitor ("": none)


class Pipeline:
    def __init__(
        self,
        store: Store,
        engine: Callable[[], Engine],
        delivery: Delivery,
        known: KnownFacts | None = None,
    ) -> None:
        self._store = store
        self._engine = engine
        self._delivery = delivery
        self._known = known if known is not None else KnownFacts()
        self._reads: Reads | None = None
        self._assigned = Assigned(store)

    def fields(self) -> str:
        """What the live rules read, as the store asks (``RuleSet.fields_json``)."""
        return self._engine().rules.fields_json

    def learn(self, site: str, session: str, facts: tuple[Facts, Facts]) -> None:
        """Know a session's facts as the store returned them for :meth:`fields` (a connect),
        so its first batch can be decided ahead too."""
        reads = self._reads_of(self._engine())
        self._known.put(site, session, Known(reads, *facts))

    def forget(self, site: str, session: str) -> None:
        """Drop what the process knows of a session's facts (its socket closed)."""
        self._known.forget(site, session)

    def _reads_of(self, engine: Engine) -> Reads:
        """The fields the live rules read (a new rule set: new fields, nothing known)."""
        wanted = engine.rules.fields
        if self._reads is None or self._reads.wanted is not wanted:
            self._reads = Reads(wanted)
        return self._reads

    async def process(
        self,
        origin: Origin,
        events: list[dict[str, Any]],
        now_ms: int,
        gate: Gate | None = None,
        into: list[Prompt] | None = None,
    ) -> Processed:
        """Apply one batch of valid events, those ``gate`` admits (all without one); return
        what it admitted and the prompt the batch caused, if any. ``into``: the batch's
        socket takes its prompts in its ack (``Delivery.deliver``); they are put there."""
        engine = self._engine()
        reads = self._reads_of(engine)
        events = [_unsigned(e) for e in events]
        rules = engine.rules
        changes = [changes_for(e, now_ms, rules.distinct, rules.clicks) for e in events]
        names = [new_names(e, rules.distinct) for e in events] if gate else None
        ahead = self._ahead(origin, events, changes, engine, reads, now_ms)
        marks = measures_of(rules).marks(events)
        assigned = self._assigned_ahead(origin, engine, ahead, now_ms)
        if assigned is not None:
            marks.append(assigned)  # counted in the store call, when the decision stands
        # before the facts: whoever sees the identify's traits finds the user linked too
        await self._link_users(origin, events)
        ingested = await self._store.ingest(
            origin,
            events,
            changes,
            now_ms,
            rules.fields_json,
            gate,
            names,
            ahead.decided if ahead else None,
            marks,
        )
        if ahead is not None and ingested.applied:
            if assigned is not None:
                self._assigned.remember(
                    origin.site, origin.visitor, assigned.model, assigned.segment, now_ms
                )
            if not ahead.plans:
                self._known.put(origin.site, origin.session, ahead.after)
                return Processed(ingested.admitted, None, ahead=True)
            # governance wrote facts the process does not see: learn them on the next batch
            self._known.forget(origin.site, origin.session)
            if ingested.resolved is None:
                raise RuntimeError("the store applied a batch without answering its requests")
            resolved = ingested.resolved
            prompt = await self._delivery.deliver(origin, ahead.plans, resolved, ahead.writes, into)
            return Processed(ingested.admitted, prompt, ahead=True)
        prompt = await self._decide(origin, events, ingested, engine, reads, now_ms, into)
        return Processed(ingested.admitted, prompt)

    def _ahead(
        self,
        origin: Origin,
        events: list[dict[str, Any]],
        changes: list[FactChanges],
        engine: Engine,
        reads: Reads,
        now_ms: int,
    ) -> _Ahead | None:
        """The batch decided from the facts the process knows, if it knows them; its firings
        are asked of governance in the same store call."""
        known = self._known.get(origin.site, origin.session, reads)
        if known is None or not events:
            return None
        try:
            session, visitor = after_batch(
                known.session, known.visitor, reads, changes, now_ms, origin.sid, origin.visitor
            )
        except ValueError:  # a counter that is not a number: let the store say
            return None
        decision = self._on_events(origin, events, session, visitor, engine, now_ms)
        plans = self._delivery.plan(origin, decision.candidates) if decision.candidates else []
        after = after_actions(session, visitor, reads, decision.actions)
        # the writes of its firings, made ahead where the store writes them in its call
        folds = plans and self._store.writes_firings_ahead
        writes = self._delivery.prepare(origin, plans, *after) if folds else []
        seqs = [int(e["seq"]) for e in events]
        requests = [plan.request for plan in plans]
        outcomes = [w.outcomes if w else None for w in writes]
        decided = Decided(known.session, known.visitor, seqs, decision.actions, requests, outcomes)
        return _Ahead(decided, Known(reads, *after), plans, writes, decision.segment)

    def _assigned_ahead(
        self, origin: Origin, engine: Engine, ahead: _Ahead | None, now_ms: int
    ) -> SegmentAssigned | None:
        """The learned segment a batch decided ahead assigned the visitor, unless this process
        knows it counted already (learn/assigned.py)."""
        model = engine.rules.models.segments
        if ahead is None or not ahead.segment or model is None:
            return None
        if self._assigned.known(origin.site, origin.visitor, model.id, ahead.segment, now_ms):
            return None
        return SegmentAssigned(model.id, ahead.segment)

    async def _count_segment(
        self, origin: Origin, engine: Engine, segment: str, now_ms: int
    ) -> None:
        """Count the visitor in the learned segment a batch decided after its store call
        assigned them, in a call of its own (learn/assigned.py)."""
        model = engine.rules.models.segments
        if segment and model is not None:
            await self._assigned.note(origin.site, origin.visitor, model.id, segment, now_ms)

    async def _decide(
        self,
        origin: Origin,
        events: list[dict[str, Any]],
        ingested: Ingested,
        engine: Engine,
        reads: Reads,
        now_ms: int,
        into: list[Prompt] | None,
    ) -> Prompt | None:
        """Decide the batch from the facts the store returned, and apply the decision."""
        site, session = origin.site, origin.session
        # new events, and resends of events whose actions were never applied (a failed commit)
        fresh = [e for e, todo in zip(events, ingested.todo, strict=True) if todo]
        known = Known(reads, ingested.session, ingested.visitor)
        self._known.forget(site, session)  # known again once this batch is applied
        if not fresh:
            self._known.put(site, session, known)
            return None
        decision = self._on_events(
            origin, fresh, ingested.session, ingested.visitor, engine, now_ms
        )
        await self._count_segment(origin, engine, decision.segment, now_ms)
        if not decision.actions and not decision.candidates:
            self._known.put(site, session, known)
            return None  # nothing to apply; a resend is decided again, to the same effect
        # The actions, with the seqs marked done, in one atomic step (with governance's
        # grants when the batch fires): if it fails the client resends and the batch is
        # decided again; if another process did it first, stop here.
        seqs = [int(e["seq"]) for e in fresh]
        if decision.candidates:  # governance changes facts the process does not see
            commit = Commit(origin, seqs, decision.actions)
            return await self._delivery.resolve(origin, decision.candidates, commit, into)
        if await self._store.commit(origin, seqs, decision.actions):
            after = after_actions(ingested.session, ingested.visitor, reads, decision.actions)
            self._known.put(site, session, Known(reads, *after))
        return None

    @staticmethod
    def _on_events(
        origin: Origin,
        events: list[dict[str, Any]],
        session: Facts,
        visitor: Facts,
        engine: Engine,
        now_ms: int,
    ) -> Decision:
        return engine.on_events(
            origin.site, origin.session, origin.visitor, events, session, visitor, now_ms
        )

    async def _link_users(self, origin: Origin, events: list[dict[str, Any]]) -> None:
        for event in events:
            if event["type"] == "identify" and is_verified(event):
                # only a verified identify links (identity.py): backend events by user_id
                # then reach this visitor; an unverified one never replaces that link
                await self._store.link_user(origin.site, event["user_id"], origin.visitor)


def _unsigned(event: dict[str, Any]) -> dict[str, Any]:
    """The event without an identify signature: a credential, never stored (identity.py)."""
    if "signature" not in event:
        return event
    return {k: v for k, v in event.items() if k != "signature"}
