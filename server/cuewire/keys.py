"""Every Redis key and channel name Cuewire uses, in one place.

Two layouts, one per kind of store (docs/architecture.md, "Key layout"):

- One Redis (and the embedded store): the keys of one session share the ``{site:session}``
  hash tag; visitor keys, streams and the deadline set have none (a script may touch any key).
- Redis Cluster (:class:`ClusterKeys`): a script may touch keys of one hash slot only, so every
  key a batch's script touches carries the visitor's tag ``{site:visitor}``: the session's
  hashes, lists and sets, the visitor's hash, names, sessions and rate key. The deadline set is
  sharded into :data:`TIMER_SHARDS` slots (``{prefix:N}``), each with its own leases and claimed
  hash; a deadline goes to the shard of its visitor. Each site's audit stream shares a tag with
  its firings' markers; the live stream has its own, and so do its heatmaps (``{h:site}``). Keys
  only ever read or written alone (the user link, the per-address rate key) need no tag.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import ClassVar

TIMER_SHARDS = 16  # deadline-set shards on a cluster: each its own slot, all claimed from
EXPORT_GROUP = "cuewire-export"  # the export's consumer group on the live and audit streams


@dataclass(frozen=True)
class Keys:
    """The keys on one Redis (and the embedded store)."""

    prefix: str = "cw"
    cluster: ClassVar[bool] = False
    timer_shards: ClassVar[int] = 1  # how many shards the deadline set has

    def timer_shard(self, site: str, visitor: str) -> int:
        """The deadline shard of a visitor's sessions."""
        return 0

    def _of(self, site: str, session: str, visitor: str) -> str:
        """The part after ``prefix:kind:`` of a session's keys: the session's tag."""
        return f"{{{site}:{session}}}"

    def session(self, site: str, session: str, visitor: str = "") -> str:
        """Hash of session facts (see facts.py). ``visitor``: needed on a cluster."""
        return f"{self.prefix}:s:{self._of(site, session, visitor)}"

    def recent(self, site: str, session: str, visitor: str = "") -> str:
        """List of the session's most recent events, newest first (JSON)."""
        return f"{self.prefix}:e:{self._of(site, session, visitor)}"

    def seen(self, site: str, session: str, tab: str, visitor: str = "") -> str:
        """Sorted set of the ``seq`` numbers received from one tab (resend de-duplication)."""
        return f"{self.prefix}:q:{self._of(site, session, visitor)}:{tab}"

    def pending(self, site: str, session: str, tab: str, visitor: str = "") -> str:
        """Sorted set of the ``seq`` numbers of one tab whose facts are stored but whose rule
        actions are not applied yet: a resend of one of them is decided again."""
        return f"{self.prefix}:p:{self._of(site, session, visitor)}:{tab}"

    def names(self, site: str, session: str, visitor: str = "") -> str:
        """Hash of the distinct names a session added (custom events, prop values) and their
        count per kind: the caps of Settings.limits (store/lua/ingest.lua)."""
        return f"{self.prefix}:n:{self._of(site, session, visitor)}"

    def session_visitor(self, site: str, session: str) -> str:
        """On a cluster: the visitor of a session, for reads that know only the session id
        (QA view, explain); written when the session starts."""
        return f"{self.prefix}:sv:{site}:{session}"

    def visitor(self, site: str, visitor: str) -> str:
        """Hash of visitor facts: first and last seen, session count, user id, traits."""
        return f"{self.prefix}:v:{site}:{visitor}"

    def visitor_sessions(self, site: str, visitor: str) -> str:
        """Sorted set of a visitor's sessions (ids) scored by when their keys' time to live
        was last set (ms): a member lives as long as its session's keys (open_session.lua,
        ingest.lua), so the QA search finds a visitor's sessions without the streams."""
        return f"{self.prefix}:vs:{site}:{visitor}"

    def user(self, site: str, user_id: str) -> str:
        """The visitor id last identified as ``user_id`` with a valid signature (for backend
        events). Verified links only; the ``u:`` keys of earlier versions, which any browser
        could set, are never read and expire."""
        return f"{self.prefix}:uv:{site}:{user_id}"

    def visitor_names(self, site: str, visitor: str) -> str:
        """Hash of the distinct names a visitor added (traits, custom events), counted."""
        return f"{self.prefix}:vn:{site}:{visitor}"

    def segment_seen(self, site: str) -> str:
        """Sorted set of the messageIds the Segment-compatible API applied for a site, scored
        by when each may be forgotten (segment_api.py); read and written alone."""
        return f"{self.prefix}:sg:{site}"

    def visitor_rate(self, site: str, visitor: str) -> str:
        """The visitor's event rate limit (GCRA: the theoretical arrival time, ms)."""
        return f"{self.prefix}:rv:{site}:{visitor}"

    def address_rate(self, address: str) -> str:
        """The event rate limit of one client address (GCRA)."""
        return f"{self.prefix}:ra:{address}"

    def timers(self, shard: int = 0) -> str:
        """Sorted set of pending timers scored by due time in epoch ms (one shard of it)."""
        return f"{self.prefix}:timers"

    def leases(self, shard: int = 0) -> str:
        """Sorted set of claimed timers being fired, scored by lease expiry in epoch ms: a
        member whose lease expired (its process died) is claimed again by any process."""
        return f"{self.timers(shard)}:lease"

    def claimed(self, shard: int = 0) -> str:
        """Hash of claimed timers (member -> due ms), removed when the firing is acked."""
        return f"{self.timers(shard)}:claimed"

    def audited(self, firing: str, site: str = "") -> str:
        """Marker of a firing (a timer token) already written to the audit stream; on a
        cluster it shares the tag of ``site``'s audit stream."""
        return f"{self.prefix}:fa:{firing}"

    def audit(self, site: str) -> str:
        """Stream of firings and suppressed firings."""
        return f"{self.prefix}:audit:{site}"

    def live(self, site: str) -> str:
        """Stream of accepted batches (session, visitor, events JSON) for the QA view."""
        return f"{self.prefix}:live:{site}"

    def counters(self, site: str, day: str) -> str:
        """Hash of one UTC day's measurement counters of ``site`` (counters.py: field
        ``rule|variant|kind``, and ``#f|funnel|segment|step`` for funnels); on a cluster it
        shares the tag of the site's audit stream (record.lua writes both)."""
        return f"{self.prefix}:m:{site}:{day}"

    def exposed(self, site: str, visitor: str, rule: str) -> str:
        """A visitor's exposure to ``rule`` (value: its variant and when), for conversions;
        lives as long as the rule's goal window after the last exposure (counters.lua)."""
        return f"{self.prefix}:x:{site}:{visitor}:{rule}"

    def prompt_mark(self, site: str, visitor: str, prompt: str) -> str:
        """Hash of one prompt shown: its rule, variant, and the feedback already counted."""
        return f"{self.prefix}:pm:{site}:{visitor}:{prompt}"

    def funnel(self, site: str, visitor: str, funnel: str) -> str:
        """Hash of a visitor's progress in a funnel: step reached, entry time, segment."""
        return f"{self.prefix}:fp:{site}:{visitor}:{funnel}"

    def heatmap(self, site: str, day: str, path: str) -> str:
        """Hash of one page's heatmap counts for one UTC day (heatmaps.py has its fields)."""
        return f"{self.prefix}:hm:{site}:{day}:{path}"

    def heatmap_pages(self, site: str, day: str) -> str:
        """Hash of the pages with heatmap counts on one UTC day: path -> events."""
        return f"{self.prefix}:hmp:{site}:{day}"

    def inbox(self, process: str) -> str:
        """Stream of the messages for one server process (inbox.py): prompts for its sockets,
        answers to its prompts. Its own hash tag: each call touches this one key."""
        return f"{self.prefix}:inbox:{{{process}}}"

    def outbox(self, channel: str, part: str) -> str:
        """One key of a channel's durable outbox (outbox.py): ``stream`` (jobs to do, read by a
        consumer group), ``due`` (retries by due time), ``dead`` (dead letters), ``counts``.
        Every key of one channel shares the channel's hash tag: its scripts touch one slot."""
        return f"{self.prefix}:ob:{{ob:{channel}}}:{part}"


@dataclass(frozen=True)
class ClusterKeys(Keys):
    """The keys on a Redis Cluster: what one script touches shares one hash slot."""

    cluster: ClassVar[bool] = True
    timer_shards: ClassVar[int] = TIMER_SHARDS

    def timer_shard(self, site: str, visitor: str) -> int:
        return zlib.crc32(f"{site}:{visitor}".encode()) % TIMER_SHARDS

    def _of(self, site: str, session: str, visitor: str) -> str:
        """The part after ``prefix:kind:`` of a session's keys: its visitor's tag first."""
        if not visitor:
            raise ValueError("on a cluster a session's keys carry its visitor's tag")
        return f"{{{site}:{visitor}}}:{session}"

    def visitor(self, site: str, visitor: str) -> str:
        return f"{self.prefix}:v:{{{site}:{visitor}}}"

    def visitor_names(self, site: str, visitor: str) -> str:
        return f"{self.prefix}:vn:{{{site}:{visitor}}}"

    def visitor_sessions(self, site: str, visitor: str) -> str:
        return f"{self.prefix}:vs:{{{site}:{visitor}}}"

    def visitor_rate(self, site: str, visitor: str) -> str:
        return f"{self.prefix}:rv:{{{site}:{visitor}}}"

    def timers(self, shard: int = 0) -> str:
        return f"{self.prefix}:timers:{{{self.prefix}:{shard}}}"

    def audited(self, firing: str, site: str = "") -> str:
        return f"{self.prefix}:fa:{{a:{site}}}:{firing}"

    def audit(self, site: str) -> str:
        return f"{self.prefix}:audit:{{a:{site}}}"

    def live(self, site: str) -> str:
        return f"{self.prefix}:live:{{l:{site}}}"

    def counters(self, site: str, day: str) -> str:
        return f"{self.prefix}:m:{{a:{site}}}:{day}"

    def exposed(self, site: str, visitor: str, rule: str) -> str:
        return f"{self.prefix}:x:{{{site}:{visitor}}}:{rule}"

    def prompt_mark(self, site: str, visitor: str, prompt: str) -> str:
        return f"{self.prefix}:pm:{{{site}:{visitor}}}:{prompt}"

    def funnel(self, site: str, visitor: str, funnel: str) -> str:
        return f"{self.prefix}:fp:{{{site}:{visitor}}}:{funnel}"

    def heatmap(self, site: str, day: str, path: str) -> str:
        return f"{self.prefix}:hm:{{h:{site}}}:{day}:{path}"

    def heatmap_pages(self, site: str, day: str) -> str:
        return f"{self.prefix}:hmp:{{h:{site}}}:{day}"


def keys_for(prefix: str, cluster: bool) -> Keys:
    """The key layout for one Redis or for a cluster."""
    return ClusterKeys(prefix) if cluster else Keys(prefix)
