"""Stable codes that code branches on; people read the text made from them.

- :class:`Drop`: why a due deadline was dropped without firing (the audit record's ``code``
  beside ``outcome: dropped``).

Add members; never rename or remove one.
"""

from __future__ import annotations

from enum import StrEnum

DROPPED = "dropped"  # the audit ``outcome`` of every Drop


class Drop(StrEnum):
    """Why a deadline that fell due did not fire (``outcome: dropped`` in the audit)."""

    NOT_ELIGIBLE = "not_eligible"  # the rule's conditions no longer held at fire time
    SESSION_ENDED = "session_ended"  # the session had ended before the deadline
    NO_TAB = "no_tab"  # a prompt was due but no tab connected in time to show it
    TOO_LATE = "too_late"  # due longer ago than the rule's max_late (e.g. after an outage)
    RULE_REMOVED = "rule_removed"  # the rule is no longer loaded (a reload removed it)
