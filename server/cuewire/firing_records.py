"""What a firing leaves in the store, built the same way whenever it is written: its audit
record (audit.py), the facts its rule sets, the queue mark of a queued show and the webhook's
outbox job.

Delivery writes them after governance answered (delivery.py); a firing decided ahead has
them made before the store call, for the call to write the outcome governance gives (fold.py).
Both build them here, so the two paths leave the same records."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from . import fields, webhooks
from .audit import AuditRecord
from .clock import Clock
from .codes import Outcome
from .experiments import variant_for
from .firing_plan import FORCED, Plan
from .measures import measures_of
from .origin import Origin
from .outbox import job_json
from .protocol import Prompt
from .rules.engine import Candidate, Engine
from .rules.model import Rule
from .store.base import Put
from .store.scripts import to_json


def outcome_of(cand: Candidate, outcome: Outcome) -> Outcome:
    """The outcome a record says: a firing QA forced is ``forced``, not ``fired``."""
    if outcome is Outcome.FIRED and cand.cause == FORCED:
        return Outcome.FORCED
    return outcome


class FiringRecords:
    """Builds a firing's writes for the rule set ``engine`` serves, timed by ``clock``."""

    def __init__(self, engine: Callable[[], Engine], clock: Clock) -> None:
        self._engine = engine
        self._clock = clock

    def record(
        self,
        origin: Origin,
        cand: Candidate,
        outcome: Outcome,
        reason: str,
        prompt: Prompt | None = None,
        variant: str | None = None,
        code: str = "",
    ) -> dict[str, str]:
        """The audit record of ``cand``'s firing with ``outcome`` (the stream entry's fields)."""
        now = self._clock.now_ms()
        outcome = outcome_of(cand, outcome)
        rules = self._engine().rules
        window_ms = 0
        if outcome in (Outcome.FIRED, Outcome.HOLDOUT):
            window_ms = measures_of(rules).window_ms(cand.rule.id)
        elif outcome is Outcome.SUPPRESSED and cand.rule.show is not None:
            variant = variant_for(origin.visitor, cand.rule)  # the arm it is counted in
        record = AuditRecord(
            outcome,
            cand.rule.id,
            origin.session,
            origin.visitor,
            cand.cause,
            now,
            code=code,
            reason=reason,
            prompt=prompt.id if prompt else "",
            template=prompt.template if prompt else "",
            variant=variant or "",
            url=cand.view.url,
            latency_ms=now - cand.since_ms,
            event=to_json(cand.view.event or {}),
            firing=cand.firing,
            window_ms=window_ms,
            digest=rules.digest_of(cand.rule),
            model=cand.view.models.version,
        )
        return record.fields()

    @staticmethod
    def sets(origin: Origin, rule: Rule) -> list[Put]:
        """The facts a granted firing of ``rule`` sets (its ``set`` action)."""
        site, session, visitor = origin.site, origin.session, origin.visitor
        return [
            Put(
                site,
                session,
                visitor,
                fields.fact(f.name),
                json.dumps(f.value),
                f.scope == "visitor",
            )
            for f in rule.set
        ]

    def queue_mark(self, origin: Origin, rule: Rule) -> Put:
        """What a show held by a prompt in the way leaves when its rule queues
        (``on_conflict: queue``): shown when that prompt closes."""
        now = str(self._clock.now_ms())
        return Put(origin.site, origin.session, origin.visitor, fields.queued(rule.id), now)

    def webhook_job(self, origin: Origin, plan: Plan) -> str | None:
        """The outbox job (JSON) of a granted firing's webhook, if its rule has one."""
        hook = plan.cand.rule.webhook
        if hook is None:
            return None
        payload = self.payload(origin, plan.cand)
        data = webhooks.job(hook.url, hook.headers, origin.site, payload)
        return job_json(webhooks.job_id(plan.prompt_id), data)

    def payload(self, origin: Origin, cand: Candidate) -> dict[str, Any]:
        return {
            "site": origin.site,
            "session": origin.session,
            "visitor": origin.visitor,
            "rule": cand.rule.id,
            "cause": cand.cause,
            "at": self._clock.now_ms(),
            "url": cand.view.url,
            "event": cand.view.event,
        }
