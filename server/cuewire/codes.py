"""Stable codes that code branches on; people read the text made from them.

- :class:`Outcome`: what became of one candidate firing (the audit record's ``outcome``).
- :class:`Hold`: why governance held a candidate back, or took a prompt off the screen (the
  audit record's ``code``; claim.lua returns the governance ones).
"""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    """The ``outcome`` of an audit record."""

    FIRED = "fired"  # governance granted it: shown, or its actions ran
    SUPPRESSED = "suppressed"  # governance (or a failed render) stopped it; ``code`` says why
    QUEUED = "queued"  # blocked by a prompt on screen; shown when that one closes
    HOLDOUT = "holdout"  # granted, but the visitor is in the experiment's holdout
    REPLACED = "replaced"  # a prompt on screen, closed for a higher-priority one
    DROPPED = "dropped"  # a due prompt that found no tab to show it in


class Hold(StrEnum):
    """The ``code`` of an audit record that is not ``fired``."""

    OPTED_OUT = "opted_out"  # "don't show this again" for this rule
    SNOOZED = "snoozed"  # "remind me later", within the policy's snooze
    DISMISS_PAUSE = "dismiss_pause"  # paused after the policy's count of dismissals
    COOLDOWN = "cooldown"  # the rule's cooldown since it last fired
    CAP_SESSION = "cap_session"  # the rule's per-session cap
    CAP_DAY = "cap_day"  # the rule's per-visitor-day cap
    CAP_WEEK = "cap_week"  # the rule's per-visitor-week cap
    CAP_SITE = "cap_site"  # the policy's prompts per session
    SHOWING = "showing"  # another prompt of equal or higher priority is on screen
    LOWER_PRIORITY = "lower_priority"  # a higher-priority rule fired in the same batch
    RENDER_FAILED = "render_failed"  # the template raised (logged with the traceback)
    HIGHER_PRIORITY = "higher_priority"  # (replaced) a higher-priority prompt took its place


# Codes that mean "another prompt is in the way": a rule with ``on_conflict: queue`` waits.
CONFLICTS = frozenset({Hold.SHOWING, Hold.LOWER_PRIORITY})
