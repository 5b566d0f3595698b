"""Shadow mode and staged rollout: how a rule runs for a visitor (live, ``shadow``, or outside
its ``rollout``: "out"), and what a firing that is not live leaves: an audit record only, as
governance would have decided (docs/rules.md, "Shadow mode and rollout")."""

from __future__ import annotations

from .codes import Hold, Outcome
from .experiments import in_rollout
from .hold_reasons import reason
from .origin import Origin
from .rules.engine import Candidate
from .rules.model import Policy, Rule
from .store.base import Mode, Verdict


def mode_of(origin: Origin, rule: Rule) -> Mode:
    """How ``rule`` runs for this visitor: outside its rollout ("out"), else its mode."""
    return rule.mode if in_rollout(origin.site, rule, origin.visitor) else "out"


def staged(
    cand: Candidate, mode: Mode, verdict: Verdict, policy: Policy, other: str = ""
) -> tuple[Outcome, str, Hold | None]:
    """The audit of a firing of a rule that is not live for this visitor (it does nothing
    else: no prompt, webhook, `set` or queue): outside the rule's rollout (``excluded``), or
    in shadow mode, as governance would have decided (``shadow_fired`` or
    ``shadow_suppressed`` with its code): its outcome, reason and code."""
    if mode == "out":
        return (
            Outcome.EXCLUDED,
            f"not in the rule's {cand.rule.rollout} rollout",
            Hold.NOT_IN_ROLLOUT,
        )
    if verdict.granted:
        return Outcome.SHADOW_FIRED, "would have fired", None
    code = Hold(verdict.code)
    return (
        Outcome.SHADOW_SUPPRESSED,
        reason(code, cand.rule, policy, other or "a shadow rule"),
        code,
    )
