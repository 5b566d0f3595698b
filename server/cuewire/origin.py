"""Who a batch or a firing is for: one value carried from the gateway to the store and
delivery, instead of loose positional strings."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Origin:
    """Who sent a batch: site, visitor, session, tab, and the socket to answer on.

    A deadline that fires has no tab (``tab`` is ""); ``sid`` is "" when no socket of the
    session is known (a rule that shows nothing needs none)."""

    site: str
    visitor: str
    session: str
    tab: str
    sid: str
