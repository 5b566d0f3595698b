"""The store interface: session and visitor state, timers, firing claims, audit.

It knows nothing of rules or transport. Two backends share one implementation
(:class:`cuewire.store.redis.RedisStore`): a real Redis, or the embedded in-process server.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from ..facts import FactChanges, NewName
from ..ratelimit import Rate

Facts = dict[str, str]


@dataclass(frozen=True)
class OpenedSession:
    session: str
    resumed: bool
    returning: bool
    previous_visit_ms: int | None


@dataclass(frozen=True)
class Ingested:
    """The outcome of one batch: which events were new, and the facts after it."""

    fresh: list[bool]
    session: Facts
    visitor: Facts


@dataclass(frozen=True)
class Timer:
    """A pending deadline of one rule in one session."""

    site: str
    session: str
    visitor: str
    rule: str
    token: str

    def member(self) -> str:
        return "|".join((self.site, self.session, self.visitor, self.rule, self.token))

    @classmethod
    def from_member(cls, member: str) -> Timer:
        site, session, visitor, rule, token = member.split("|")
        return cls(site, session, visitor, rule, token)


@dataclass(frozen=True)
class Schedule:
    timer: Timer
    due_ms: int


@dataclass(frozen=True)
class Cancel:
    timer: Timer


@dataclass(frozen=True)
class Claim:
    """Ask governance whether ``rule`` may fire now; counted when granted (claim.lua)."""

    site: str
    session: str
    visitor: str
    rule: str
    now_ms: int
    shows: bool = True
    prompt_id: str = ""
    per_session: int = 1
    per_day: int = 0
    per_week: int = 0
    cooldown_ms: int = 0
    max_prompts: int = 0
    one_at_a_time: bool = True
    snooze_ms: int = 0
    dismiss_count: int = 0
    dismiss_pause_ms: int = 0


@dataclass(frozen=True)
class Put:
    """Set a fact on the session or the visitor (rule actions, sequence and window state)."""

    site: str
    session: str
    visitor: str
    field: str
    value: str | None  # None deletes the field
    on_visitor: bool = False


Action = Schedule | Cancel | Claim | Put


@dataclass(frozen=True)
class Admission:
    """What :meth:`Store.admit` let through: the first ``granted`` events had a token; of
    those, ``capped[i]`` is "" or the kind of cap event ``i`` would pass."""

    granted: int
    retry_ms: int
    capped: list[str]


class Store(Protocol):
    async def ping(self) -> bool: ...

    async def open_session(
        self,
        site: str,
        visitor: str,
        session: str | None,
        now_ms: int,
        describe: dict[str, str] | None = None,
    ) -> OpenedSession: ...

    async def ingest(
        self,
        site: str,
        session: str,
        visitor: str,
        tab: str,
        socket_id: str,
        events: list[dict[str, Any]],
        changes: list[FactChanges],
        now_ms: int,
    ) -> Ingested: ...

    async def apply(self, actions: list[Action]) -> list[str]:
        """Apply actions in one round trip; per Claim, "" when granted or the reason not."""
        ...

    async def admit(
        self,
        site: str,
        session: str,
        visitor: str,
        address: str,
        names: list[list[NewName]],
        visitor_rate: Rate,
        address_rate: Rate,
        caps: dict[str, int],
        now_ms: int,
    ) -> Admission:
        """Rate limits (per visitor, per address) and caps on distinct names, in one call,
        before a batch is ingested; ``names`` holds the names each event would add."""
        ...

    async def visitor_facts(self, site: str, visitor: str) -> Facts: ...

    async def release_socket(self, site: str, session: str, sid: str) -> None:
        """Forget ``sid`` as the session's tab to push to, if it still is."""
        ...

    async def link_user(self, site: str, user_id: str, visitor: str) -> None: ...

    async def visitor_of_user(self, site: str, user_id: str) -> str | None: ...

    async def timer_due(self, timer: Timer) -> int | None: ...

    async def claim_due(
        self, now_ms: int, limit: int
    ) -> tuple[list[tuple[Timer, int]], int | None]:
        """Claim due timers atomically: (timer, due ms) each, and the next deadline left."""
        ...

    async def consume(self, timer: Timer) -> tuple[Facts, Facts] | None: ...

    async def next_due_ms(self) -> int | None: ...

    async def session_facts(self, site: str, session: str) -> Facts: ...

    async def recent_events(self, site: str, session: str, count: int) -> list[dict[str, Any]]: ...

    async def audit(self, site: str, record: dict[str, str]) -> None: ...

    async def read_audit(self, site: str, count: int) -> list[dict[str, str]]: ...

    async def read_live(self, site: str, count: int) -> list[dict[str, str]]: ...

    async def aclose(self) -> None: ...
