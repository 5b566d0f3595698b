"""A candidate's firing request, made before the store is asked: its prompt id, A/B variant,
mode for the visitor (rollout.py) and the rule's and site policy's limits; a candidate QA
forced (``FORCED``) goes past the limits."""

from __future__ import annotations

from dataclasses import dataclass, replace

from .experiments import HOLDOUT, variant_for
from .ids import new_id
from .origin import Origin
from .rollout import mode_of
from .rules.engine import Candidate
from .rules.model import Policy, Rule, duration_ms
from .store.base import FiringRequest, Mode

# The cause of a candidate QA forced (admin/qatools.py): past the rule's caps, cooldown,
# snooze, dismissal pause and the site's prompt cap, over the prompt on screen; never past an
# opt-out. Audited with the outcome ``forced``, which no report counts as an exposure.
FORCED = "forced"


@dataclass(frozen=True)
class Plan:
    """One candidate on its way through governance: its prompt id and A/B variant are
    chosen before the store is asked (``request``)."""

    cand: Candidate
    prompt_id: str
    variant: str | None
    request: FiringRequest


def plan_for(origin: Origin, cand: Candidate, policy: Policy, now_ms: int) -> Plan:
    """The plan of one candidate, asked at ``now_ms``."""
    rule = cand.rule
    prompt_id = f"p_{cand.firing}" if cand.firing else new_id("p_")
    variant = variant_for(origin.visitor, rule) if rule.show is not None else None
    if variant == HOLDOUT and cand.cause == FORCED:  # QA sees the prompt, not the holdout
        variant = rule.show.variants[0].id if rule.show and rule.show.variants else None
    # QA forcing a rule sees its prompt, whatever its mode or rollout
    mode: Mode = "live" if cand.cause == FORCED else mode_of(origin, rule)
    # templates see every trait and the props of every custom event, which a batch's
    # facts (RuleSet.fields: only what rules read) may not hold: governance returns the
    # whole hashes with a granted show that renders
    renders = mode == "live" and (
        (rule.show is not None and variant != HOLDOUT) or rule.email is not None
    )
    request = firing_request(
        origin.site,
        origin.session,
        origin.visitor,
        rule,
        policy,
        prompt_id,
        now_ms,
        firing=cand.firing,
        whole_facts=renders,
        mode=mode,
    )
    if cand.cause == FORCED:
        on_screen = cand.view.session.get("showing_priority") or "0"
        request = replace(
            request,
            per_session=0,
            per_day=0,
            per_week=0,
            cooldown_ms=0,
            max_prompts=0,
            snooze_ms=0,
            dismiss_count=0,
            priority=max(rule.priority, int(on_screen) + 1),  # over the prompt on screen
        )
    return Plan(cand, prompt_id, variant, request)


def firing_request(
    site: str,
    session: str,
    visitor: str,
    rule: Rule,
    policy: Policy,
    prompt_id: str,
    now_ms: int,
    *,
    firing: str = "",
    whole_facts: bool = False,
    mode: Mode = "live",
) -> FiringRequest:
    """What governance is asked for ``rule``: its limits and the site policy's."""
    limit = rule.limit
    dismiss = policy.dismissals
    return FiringRequest(
        site=site,
        session=session,
        visitor=visitor,
        rule=rule.id,
        now_ms=now_ms,
        shows=rule.show is not None,
        prompt_id=prompt_id,
        per_session=limit.per_session,
        per_day=limit.per_visitor_day,
        per_week=limit.per_visitor_week,
        cooldown_ms=duration_ms(limit.cooldown) if limit.cooldown else 0,
        max_prompts=policy.max_prompts_per_session,
        one_at_a_time=policy.one_prompt_at_a_time,
        snooze_ms=duration_ms(policy.snooze),
        dismiss_count=dismiss.count if dismiss else 0,
        dismiss_pause_ms=duration_ms(dismiss.pause) if dismiss else 0,
        priority=rule.priority,
        firing=firing,
        whole_facts=whole_facts,
        mode=mode,
    )
