"""Every Redis key and channel name Cuewire uses, in one place.

Keys of one session share the ``{site:session}`` hash tag so a Lua script may touch them all.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Keys:
    prefix: str = "cw"

    def session(self, site: str, session: str) -> str:
        """Hash of session facts (see facts.py)."""
        return f"{self.prefix}:s:{{{site}:{session}}}"

    def recent(self, site: str, session: str) -> str:
        """List of the session's most recent events, newest first (JSON)."""
        return f"{self.prefix}:e:{{{site}:{session}}}"

    def seen(self, site: str, session: str, tab: str) -> str:
        """Sorted set of the ``seq`` numbers received from one tab (resend de-duplication)."""
        return f"{self.prefix}:q:{{{site}:{session}}}:{tab}"

    def pending(self, site: str, session: str, tab: str) -> str:
        """Sorted set of the ``seq`` numbers of one tab whose facts are stored but whose rule
        actions are not applied yet: a resend of one of them is decided again."""
        return f"{self.prefix}:p:{{{site}:{session}}}:{tab}"

    def visitor(self, site: str, visitor: str) -> str:
        """Hash of visitor facts: first and last seen, session count, user id, traits."""
        return f"{self.prefix}:v:{site}:{visitor}"

    def user(self, site: str, user_id: str) -> str:
        """The visitor id last identified as ``user_id`` with a valid signature (for backend
        events). Verified links only; the ``u:`` keys of earlier versions, which any browser
        could set, are never read and expire."""
        return f"{self.prefix}:uv:{site}:{user_id}"

    def names(self, site: str, session: str) -> str:
        """Hash of the distinct names a session added (custom events, prop values) and their
        count per kind: the caps of Settings.limits (store/lua/ingest.lua)."""
        return f"{self.prefix}:n:{{{site}:{session}}}"

    def visitor_names(self, site: str, visitor: str) -> str:
        """Hash of the distinct names a visitor added (traits, custom events), counted."""
        return f"{self.prefix}:vn:{site}:{visitor}"

    def visitor_rate(self, site: str, visitor: str) -> str:
        """The visitor's event rate limit (GCRA: the theoretical arrival time, ms)."""
        return f"{self.prefix}:rv:{site}:{visitor}"

    def address_rate(self, address: str) -> str:
        """The event rate limit of one client address (GCRA)."""
        return f"{self.prefix}:ra:{address}"

    def timers(self) -> str:
        """Sorted set of pending timers scored by due time in epoch ms."""
        return f"{self.prefix}:timers"

    def leases(self) -> str:
        """Sorted set of claimed timers being fired, scored by lease expiry in epoch ms: a
        member whose lease expired (its process died) is claimed again by any process."""
        return f"{self.prefix}:timers:lease"

    def claimed(self) -> str:
        """Hash of claimed timers (member -> due ms), removed when the firing is acked."""
        return f"{self.prefix}:timers:claimed"

    def audited(self, firing: str) -> str:
        """Marker of a firing (a timer token) already written to the audit stream."""
        return f"{self.prefix}:fa:{firing}"

    def audit(self, site: str) -> str:
        """Stream of firings and suppressed firings."""
        return f"{self.prefix}:audit:{site}"

    def live(self, site: str) -> str:
        """Stream of accepted batches (session, visitor, events JSON) for the QA view."""
        return f"{self.prefix}:live:{site}"

    def inbox(self, process: str) -> str:
        """Stream of the messages for one server process (inbox.py): prompts for its sockets,
        answers to its prompts. Its own hash tag: each call touches this one key."""
        return f"{self.prefix}:inbox:{{{process}}}"
