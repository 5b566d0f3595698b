"""A firing decided ahead, written in the store call of its batch: one round trip.

A batch decided before its store call (pipeline.py) asks governance in that call. Its
prompt is rendered before the call too, from the facts the process predicts after the batch
(prediction.py: the rule set's fields hold what templates read when it has shows,
rules/reads.py), and the writes of each outcome governance may give are made here, as
delivery makes them (firing_records.py): a grant's facts, record and webhook job; a
refusal's record (suppressed, or queued when the rule queues on a prompt in the way) with
the reason of each code. The store writes the outcome governance gives (store/fold.py,
fold.lua) and says so (``Resolved.written``); delivery then only pushes the prompt and
counts the metrics.

What is not made ahead goes the way of every other firing (delivery.deliver, one more round
trip after the call): a rule that is not live for the visitor, an email, the holdout arm, a
template that does not render, a grant that replaces a prompt on screen (its prompt says
which), and every firing on a Redis Cluster (the audit stream is in another slot). It is
all or none per batch: with one such firing, all of the batch's take that way, so its
records keep their order in the audit stream. On a cluster nothing is made ahead
(``Store.writes_firings_ahead``).

The cost, for every rule set with live shows: the fields what templates read of traits and
custom events' props (template_reads.py) are returned and kept per session, and a planned
show renders before governance answers, also when it then refuses it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from . import webhooks
from .codes import CONFLICTS, Hold, Outcome
from .experiments import HOLDOUT
from .firing_plan import Plan
from .firing_records import FiringRecords
from .hold_reasons import reason
from .origin import Origin
from .prompts import render_prompt
from .protocol import Prompt
from .render import Catalog
from .rules.engine import Engine
from .rules.model import Policy, Rule
from .store.base import Facts, Outcomes, Queued

# The codes governance answers a live request with (the others are written by delivery).
GOVERNED = tuple(
    code
    for code in Hold
    if code not in (Hold.RENDER_FAILED, Hold.HIGHER_PRIORITY, Hold.NOT_IN_ROLLOUT)
)


@dataclass(frozen=True)
class Ahead:
    """One firing request's writes made before the store call, and its prompt."""

    outcomes: Outcomes
    prompt: Prompt | None  # a show's, rendered for a grant that replaces nothing

    def outcome(self, code: str) -> Outcome:
        """The outcome of the record written for governance's ``code`` (before
        ``records.outcome_of``)."""
        if not code:
            return Outcome.FIRED
        return Outcome.QUEUED if code in self.outcomes.queues else Outcome.SUPPRESSED


class Fold:
    """Makes the writes of a batch's firings ahead, for the rule set ``engine`` serves."""

    def __init__(
        self, engine: Callable[[], Engine], catalog: Callable[[], Catalog], records: FiringRecords
    ) -> None:
        self._engine = engine
        self._catalog = catalog
        self._records = records
        self._reasons_of: dict[str, tuple[Rule, Policy, dict[str, str]]] = {}

    def _reasons(self, rule: Rule, policy: Policy) -> dict[str, str]:
        """The audit's words for each code governance may answer for ``rule`` (shared: they
        depend on the rule and the policy alone, so they are made once per rule set)."""
        got = self._reasons_of.get(rule.id)
        if got is None or got[0] is not rule or got[1] is not policy:
            words = {str(code): reason(code, rule, policy) for code in GOVERNED}
            got = self._reasons_of[rule.id] = (rule, policy, words)
        return got[2]

    def prepare(
        self, origin: Origin, plans: list[Plan], session: Facts, visitor: Facts
    ) -> list[Ahead | None]:
        """Per plan (highest priority first), its writes and prompt; all None when one of
        them cannot be made ahead (delivery then writes them all after the call, in order).
        ``session`` and ``visitor``: the facts predicted after the batch."""
        out: list[Ahead | None] = []
        shows: list[str] = []  # the live shows before: the rule a lower_priority is about
        for plan in plans:
            ahead = self._one(origin, plan, session, visitor, shows)
            if ahead is None:  # all or none: a batch's records keep their order
                return [None for _ in plans]
            out.append(ahead)
            if plan.request.mode == "live" and plan.cand.rule.show is not None:
                shows.append(plan.cand.rule.id)
        return out

    def _one(
        self, origin: Origin, plan: Plan, session: Facts, visitor: Facts, shows: list[str]
    ) -> Ahead | None:
        cand, rule = plan.cand, plan.cand.rule
        if plan.request.mode != "live" or rule.email is not None or plan.variant == HOLDOUT:
            return None
        prompt = None
        if rule.show is not None:
            engine = self._engine()
            view = engine.view(session, visitor, cand.view.now_ms, cand.view.event)
            view.url = cand.view.url
            ahead = replace(cand, view=view)
            prompt = render_prompt(self._catalog(), ahead, plan.prompt_id, plan.variant, None)
            if prompt is None:  # delivery audits the failure (render_failed)
                return None
        records = self._records
        policy = self._engine().rules.policy
        fired = records.record(origin, cand, Outcome.FIRED, "", prompt, plan.variant)
        job = records.webhook_job(origin, plan)
        reasons = self._reasons(rule, policy)
        if shows:
            reasons = dict(reasons)
            for other in shows:
                key = f"{Hold.LOWER_PRIORITY}|{other}"
                reasons[key] = reason(Hold.LOWER_PRIORITY, rule, policy, other)
        outcomes = Outcomes(
            granted=records.sets(origin, rule),
            fired=fired,
            job=Queued(webhooks.CHANNEL, job, 0) if job is not None else None,
            refused=records.record(origin, cand, Outcome.SUPPRESSED, ""),
            reasons=reasons,
        )
        if rule.on_conflict == "queue":
            outcomes = replace(
                outcomes,
                queued=records.record(origin, cand, Outcome.QUEUED, ""),
                queue=[records.queue_mark(origin, rule)],
                queues=frozenset(str(code) for code in CONFLICTS),
            )
        return Ahead(outcomes, prompt)
