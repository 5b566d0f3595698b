"""The store interface: session and visitor state, timers, firing claims, audit.

It knows nothing of rules or transport. Two backends share one implementation
(:class:`cuewire.store.redis.RedisStore`): a real Redis, or the embedded in-process server.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

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
    """Fire ``rule`` in ``session`` at most once within ``ttl_s``."""

    site: str
    session: str
    rule: str
    ttl_s: int


Action = Schedule | Cancel | Claim


class Store(Protocol):
    async def ping(self) -> bool: ...

    async def open_session(
        self, site: str, visitor: str, session: str | None, now_ms: int
    ) -> OpenedSession: ...

    async def ingest(
        self,
        site: str,
        session: str,
        visitor: str,
        tab: str,
        socket_id: str,
        events: list[dict[str, Any]],
        now_ms: int,
    ) -> Ingested: ...

    async def apply(self, actions: list[Action]) -> list[bool]:
        """Apply timer changes and firing claims in one round trip; True per won claim."""
        ...

    async def claim_due(self, now_ms: int, limit: int) -> list[tuple[Timer, int]]: ...

    async def consume(self, timer: Timer) -> tuple[Facts, Facts] | None: ...

    async def next_due_ms(self) -> int | None: ...

    async def session_facts(self, site: str, session: str) -> Facts: ...

    async def recent_events(self, site: str, session: str, count: int) -> list[dict[str, Any]]: ...

    async def audit(self, site: str, record: dict[str, str]) -> None: ...

    async def read_audit(self, site: str, count: int) -> list[dict[str, str]]: ...

    async def aclose(self) -> None: ...
