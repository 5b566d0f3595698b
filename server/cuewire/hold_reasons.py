"""The human text of a governance code (``codes.Hold``) for the audit record's ``reason``;
code never reads it (it branches on the code)."""

from __future__ import annotations

from .codes import Hold
from .rules.model import Policy, Rule

# The fixed texts of codes (the others are made with numbers in reason()).
REASONS: dict[Hold, str] = {
    Hold.OPTED_OUT: "opted out",
    Hold.SNOOZED: "snoozed",
    Hold.COOLDOWN: "cooldown",
    Hold.SHOWING: "another prompt is showing",
    Hold.RENDER_FAILED: "render failed",
}


def reason(code: Hold, rule: Rule, policy: Policy, other: str = "") -> str:
    """The human text of ``code`` for the audit (code never reads it): ``other`` names the
    rule a priority code is about."""
    limit = rule.limit
    dismiss = policy.dismissals
    if code is Hold.DISMISS_PAUSE:
        return f"paused after {dismiss.count if dismiss else 0} dismissals"
    if code is Hold.CAP_SESSION:
        return f"capped: {limit.per_session} per session"
    if code is Hold.CAP_DAY:
        return f"capped: {limit.per_visitor_day} per day"
    if code is Hold.CAP_WEEK:
        return f"capped: {limit.per_visitor_week} per week"
    if code is Hold.CAP_SITE:
        return f"capped: {policy.max_prompts_per_session} prompts per session (site policy)"
    if code is Hold.LOWER_PRIORITY:
        return f"lower priority than {other}"
    if code is Hold.HIGHER_PRIORITY:
        return f"replaced by {other} (higher priority)"
    return REASONS[code]
