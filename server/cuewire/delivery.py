"""Resolve candidates under governance (a firing request), then show / call webhook / set facts;
audit all.

Highest priority first. Governance is atomic in the store (govern.lua), so a rule fires once per
eligibility even when several tabs and server processes see the same behaviour.

A rule that is not live for the visitor (``mode: shadow``, or outside its ``rollout``) goes
through the same path and is only audited (rollout.py). The firing requests are made in
firing_plan.py, a shown prompt in prompts.py, the audit's reasons in hold_reasons.py.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace

from . import webhooks
from .audit import AuditRecord
from .clock import Clock
from .codes import CONFLICTS, Drop, Hold, Outcome
from .experiments import HOLDOUT
from .firing_plan import Plan, plan_for
from .firing_records import FiringRecords, outcome_of
from .fold import Ahead, Fold
from .hold_reasons import REASONS, reason
from .mail.mailer import Mailer
from .metrics import Metrics
from .origin import Origin
from .prompts import render_prompt
from .protocol import Prompt
from .render import Catalog
from .rollout import mode_of, staged
from .rules.engine import Candidate, Engine
from .rules.model import Rule
from .store.base import Commit, Facts, Put, Queued, Resolved, Store, Timer, Verdict

# emit(address, prompt, confirm): push a prompt to the socket at a socket address (an
# Origin's ``sid``: ``<sid>@<process>``, sockets.py), on this process or through the holder's
# inbox (inbox.py); with confirm, wait for the tab's ack (at most PROMPT_ACK_TIMEOUT_S) and
# answer whether it came. False also when the holder is gone: the caller holds the prompt.
Emit = Callable[[str, Prompt, bool], Awaitable[bool]]
PROMPT_ACK_TIMEOUT_S = 3.0
UNACKED = object()  # what _act returns for a prompt the tab did not ack


@dataclass
class _Writes:
    """What one resolve writes after governance: facts, audit records and the outbox jobs
    of the records (webhooks), in one round trip."""

    puts: list[Put] = field(default_factory=list)
    records: list[dict[str, str]] = field(default_factory=list)
    jobs: list[Queued] = field(default_factory=list)


class Delivery:
    def __init__(
        self,
        store: Store,
        engine: Callable[[], Engine],
        catalog: Callable[[], Catalog],
        emit: Emit,
        clock: Clock,
        metrics: Metrics | None = None,
        mail: Mailer | None = None,
    ) -> None:
        self._store = store
        self._engine = engine
        self._catalog = catalog
        self._emit = emit
        self._clock = clock
        self._metrics = metrics or Metrics()
        self._mail = mail
        self._records = FiringRecords(engine, clock)
        self._fold = Fold(engine, catalog, self._records)

    def plan(self, origin: Origin, candidates: list[Candidate]) -> list[Plan]:
        """The firing requests for ``candidates``, highest priority first, one per rule."""
        policy = self._engine().rules.policy
        seen: set[str] = set()
        plans: list[Plan] = []
        for cand in sorted(candidates, key=lambda c: -c.rule.priority):
            if cand.rule.id not in seen:
                seen.add(cand.rule.id)
                plans.append(plan_for(origin, cand, policy, self._clock.now_ms()))
        return plans

    async def resolve(
        self,
        origin: Origin,
        candidates: list[Candidate],
        commit: Commit | None = None,
        into: list[Prompt] | None = None,
    ) -> Prompt | None:
        """Fire what governance allows, highest priority first, after applying ``commit`` (a
        batch's actions) in the same atomic store call; return the prompt shown, if any (on
        ``origin.sid``, or put ``into`` the batch's ack: :meth:`deliver`). None, with nothing
        done, when another process committed the batch."""
        plans = self.plan(origin, candidates)
        resolved = await self._store.resolve([plan.request for plan in plans], commit)
        if resolved is None:
            return None
        return await self.deliver(origin, plans, resolved, into=into)

    def prepare(
        self, origin: Origin, plans: list[Plan], session: Facts, visitor: Facts
    ) -> list[Ahead | None]:
        """The writes of ``plans``' outcomes and their prompts, made before the store call
        that asks governance about them, from the facts predicted after the batch (fold.py)."""
        return self._fold.prepare(origin, plans, session, visitor)

    async def deliver(
        self,
        origin: Origin,
        plans: list[Plan],
        resolved: Resolved,
        ahead: Sequence[Ahead | None] = (),
        into: list[Prompt] | None = None,
    ) -> Prompt | None:
        """Act on governance's verdicts on ``plans``: show, call webhooks, set facts, audit
        (the facts and the audit records in one round trip); the prompt shown, if any. The
        plans whose outcome the store wrote already (``ahead``, ``resolved.written``) are
        only shown and counted. With ``into`` (the batch's socket takes its prompts in the
        batch's ack: docs/protocol.md), the prompts go there instead of a push of their own."""
        out = _Writes()
        shown: Prompt | None = None
        first_show = ""  # the rule of the first granted show: the others are lower priority
        written = [w and a for w, a in zip(resolved.written, ahead, strict=False)]
        for i, (plan, verdict) in enumerate(zip(plans, resolved.verdicts, strict=True)):
            done = written[i] if i < len(written) else None
            if done:
                if verdict.granted and plan.cand.rule.show is not None:
                    first_show = first_show or plan.cand.rule.id
                shown = shown or await self._written(origin, plan, verdict, done, into)
                continue
            if plan.request.mode != "live":
                self._staged(origin, plan, verdict, out, first_show)
                continue
            if not verdict.granted:
                self._blocked(origin, plan.cand, Hold(verdict.code), out, first_show)
                continue
            if plan.cand.rule.show is not None:
                first_show = first_show or plan.cand.rule.id
            prompt = await self._act(origin, plan, verdict, resolved, out, into=into)
            self._queue_webhook(origin, plan, out)
            shown = shown or (prompt if isinstance(prompt, Prompt) else None)
        if out.puts or out.records:
            await self._write(origin.site, out)
        return shown

    async def _written(
        self, origin: Origin, plan: Plan, verdict: Verdict, ahead: Ahead, into: list[Prompt] | None
    ) -> Prompt | None:
        """A firing whose outcome the store wrote with governance's answer (fold.py): count
        it, and push its prompt when it was granted; the prompt, when it went out."""
        outcome = outcome_of(plan.cand, ahead.outcome(verdict.code))
        record = ahead.outcomes.fired if verdict.granted else ahead.outcomes.refused
        self._count(plan.cand, outcome, int(record["at"]))
        if not verdict.granted:
            return None
        if ahead.outcomes.job is not None:
            self._metrics.outbox.labels(webhooks.CHANNEL, "put").inc()
        if ahead.prompt is None:
            return None
        # A tab gone meanwhile (False) never gets the prompt. Governance's claim stands, as
        # on delivery's own path; but the record is written already: the audit says fired
        # (an exposure) for a prompt that was not pushed (docs/reliability.md).
        if not await self._show(origin, ahead.prompt, False, into):
            return None
        return ahead.prompt

    async def fire(self, origin: Origin, cand: Candidate) -> bool:
        """Fire one due deadline's candidate (``cand.firing`` set): as :meth:`resolve`, but a
        prompt is pushed with an ack. False when the tab did not ack it in time: nothing was
        audited and the rule's side effects were not applied; the claim stays granted to this
        firing, so the caller retries it with the same ``firing`` and it counts once."""
        plan = plan_for(origin, cand, self._engine().rules.policy, self._clock.now_ms())
        resolved = await self._store.resolve([plan.request])
        if resolved is None:  # only a commit can be refused, and there is none
            raise AssertionError("resolve() without a commit returned no verdict")
        [verdict] = resolved.verdicts
        out = _Writes()
        if plan.request.mode != "live":
            self._staged(origin, plan, verdict, out)
        elif not verdict.granted:
            self._blocked(origin, cand, Hold(verdict.code), out)
        elif await self._act(origin, plan, verdict, resolved, out, confirm=True) is UNACKED:
            return False
        else:
            self._queue_webhook(origin, plan, out)
        await self._write(origin.site, out)
        return True

    async def _write(self, site: str, out: _Writes) -> None:
        await self._store.record(site, out.puts, out.records, out.jobs)
        if out.jobs:
            self._metrics.outbox.labels(webhooks.CHANNEL, "put").inc(len(out.jobs))

    def shows(self, origin: Origin, rule: Rule) -> bool:
        """Whether a firing of ``rule`` for ``origin``'s visitor may put a prompt on a tab
        (a deadline's firing then waits for one): a live ``show`` for this visitor."""
        return rule.show is not None and mode_of(origin, rule) == "live"

    def _staged(
        self, origin: Origin, plan: Plan, verdict: Verdict, out: _Writes, other: str = ""
    ) -> None:
        """Audit a firing of a rule that is not live for this visitor, and do nothing else
        (rollout.staged)."""
        policy = self._engine().rules.policy
        outcome, why, code = staged(plan.cand, plan.request.mode, verdict, policy, other)
        variant = plan.variant if outcome is Outcome.SHADOW_FIRED else None
        self._record(origin, plan.cand, outcome, why, out, variant=variant, code=code)

    def _reason(self, code: Hold, rule: Rule, other: str = "") -> str:
        """The human text of ``code`` for the audit (hold_reasons.reason)."""
        return reason(code, rule, self._engine().rules.policy, other)

    def _blocked(
        self, origin: Origin, cand: Candidate, code: Hold, out: _Writes, other: str = ""
    ) -> None:
        """A candidate governance stopped: queue it when the rule says so, else drop it."""
        queue = cand.rule.on_conflict == "queue" and code in CONFLICTS
        if queue:
            out.puts.append(self._records.queue_mark(origin, cand.rule))
        outcome = Outcome.QUEUED if queue else Outcome.SUPPRESSED
        reason = self._reason(code, cand.rule, other)
        self._record(origin, cand, outcome, reason, out, code=code)

    def _queue_webhook(self, origin: Origin, plan: Plan, out: _Writes) -> None:
        """A granted firing's webhook job, written with its audit record (the last one
        :meth:`_act` put in ``out``): queued in the script that writes that record."""
        job = self._records.webhook_job(origin, plan)
        if job is None:
            return
        out.jobs.append(Queued(webhooks.CHANNEL, job, len(out.records) - 1))

    async def _show(
        self, origin: Origin, prompt: Prompt, confirm: bool, into: list[Prompt] | None
    ) -> bool:
        """Push ``prompt`` to ``origin.sid`` (with ``confirm``, waiting for the tab's ack), or
        put it ``into`` the batch's ack; False when the tab was not reached."""
        if into is not None and not confirm:
            into.append(prompt)
            return True
        return await self._emit(origin.sid, prompt, confirm)

    async def _act(
        self,
        origin: Origin,
        plan: Plan,
        verdict: Verdict,
        resolved: Resolved,
        out: _Writes,
        confirm: bool = False,
        into: list[Prompt] | None = None,
    ) -> Prompt | object | None:
        """Show, set facts; audit (into ``out``). A prompt pushed with ``confirm`` that the
        tab did not ack returns :data:`UNACKED` before any of it."""
        site, session, visitor = origin.site, origin.session, origin.visitor
        cand, variant = plan.cand, plan.variant
        rule = cand.rule
        prompt = None
        if plan.request.whole_facts:
            full = self._engine().view(
                resolved.session, resolved.visitor, cand.view.now_ms, cand.view.event
            )
            full.url = cand.view.url
            if variant != HOLDOUT:  # (the whole facts may be for the email alone)
                prompt = render_prompt(
                    self._catalog(),
                    replace(cand, view=full),
                    plan.prompt_id,
                    variant,
                    verdict.replaces or None,
                )
            if prompt is not None and not await self._show(origin, prompt, confirm, into):
                return UNACKED
            if rule.email is not None and self._mail is not None:
                policy = self._engine().rules.policy.email
                out.records += await self._mail.queue(
                    origin, rule, cand.cause, full, policy, cand.firing
                )
        out.puts += self._records.sets(origin, rule)
        if rule.show is None:
            self._record(origin, cand, Outcome.FIRED, "", out)
            return None
        if variant == HOLDOUT:
            out.puts += self._still_showing(site, session, visitor, verdict)
            reason = "would have shown"
            self._record(origin, cand, Outcome.HOLDOUT, reason, out, variant=variant)
            return None
        if prompt is None:
            out.puts += self._still_showing(site, session, visitor, verdict)
            code = Hold.RENDER_FAILED
            self._record(origin, cand, Outcome.SUPPRESSED, REASONS[code], out, code=code)
            return None
        if verdict.replaces:
            self._record_replaced(origin, cand, verdict, out)
        self._record(origin, cand, Outcome.FIRED, "", out, prompt, variant)
        return prompt

    def _still_showing(self, site: str, session: str, visitor: str, verdict: Verdict) -> list[Put]:
        """A granted show that shows nothing: what is on screen is what was there before."""
        if not verdict.replaces:
            return [Put(site, session, visitor, "showing", "")]
        old = self._engine().rules.rules.get(verdict.replaces_rule)
        return [
            Put(site, session, visitor, "showing", verdict.replaces),
            Put(site, session, visitor, "showing_rule", verdict.replaces_rule),
            Put(site, session, visitor, "showing_priority", str(old.priority if old else 0)),
        ]

    def _record_replaced(
        self, origin: Origin, by: Candidate, verdict: Verdict, out: _Writes
    ) -> None:
        """Audit the prompt a higher-priority one took the place of (the snippet closes it)."""
        self._metrics.firings.labels(verdict.replaces_rule, Outcome.REPLACED).inc()
        code = Hold.HIGHER_PRIORITY
        record = AuditRecord(
            Outcome.REPLACED,
            verdict.replaces_rule,
            origin.session,
            origin.visitor,
            by.cause,
            self._clock.now_ms(),
            code=code,
            reason=self._reason(code, by.rule, by.rule.id),
            prompt=verdict.replaces,
            url=by.view.url,
            model=by.view.models.version,
        )
        out.records.append(record.fields())

    def _record(
        self,
        origin: Origin,
        cand: Candidate,
        outcome: Outcome,
        reason: str,
        out: _Writes,
        prompt: Prompt | None = None,
        variant: str | None = None,
        code: Hold | None = None,
    ) -> None:
        record = self._records.record(origin, cand, outcome, reason, prompt, variant, code or "")
        self._count(cand, Outcome(record["outcome"]), int(record["at"]))
        out.records.append(record)

    def _count(self, cand: Candidate, outcome: Outcome, now_ms: int) -> None:
        """The metrics of a firing audited with ``outcome`` (records.outcome_of's)."""
        self._metrics.firings.labels(cand.rule.id, outcome).inc()
        if outcome is Outcome.FIRED:
            latency_s = (now_ms - cand.since_ms) / 1000
            self._metrics.trigger_latency.labels(cand.cause).observe(latency_s)

    async def record_drop(self, timer: Timer, code: Drop, reason: str, due_ms: int) -> None:
        """Audit a due deadline that did not fire (``outcome: dropped``) with its ``code``;
        once per firing (the timer's token)."""
        now = self._clock.now_ms()
        self._metrics.firings.labels(timer.rule, Outcome.DROPPED).inc()
        rules = self._engine().rules
        rule = rules.rules.get(timer.rule)
        record = AuditRecord(
            Outcome.DROPPED,
            timer.rule,
            timer.session,
            timer.visitor,
            "timer",
            now,
            code=str(code),
            reason=reason,
            latency_ms=now - due_ms,
            firing=timer.token,
            digest=rules.digest_of(rule) if rule else "",
            model=rules.models.version,
        )
        await self._store.audit(timer.site, record.fields())
