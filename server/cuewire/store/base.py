"""The store interface: session and visitor state, timers, governance of firings, audit.

It knows nothing of rules or transport. Two backends share one implementation
(:class:`cuewire.store.redis.RedisStore`): a real Redis, or the embedded in-process server.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

import msgspec

from ..facts import FactChanges, NewName
from ..origin import Origin
from ..ratelimit import Rate

# compact, as json.dumps(separators=(",", ":"), ensure_ascii=False) writes it, without
# building an encoder per call (a page view restarts several deadlines)
_member_json = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode

if TYPE_CHECKING:
    from ..counters import Mark

Facts = dict[str, str]


@dataclass(frozen=True)
class OpenedSession:
    session: str
    resumed: bool
    returning: bool
    previous_visit_ms: int | None
    facts: tuple[Facts, Facts] | None = None  # session and visitor: the fields asked for


class Admitted(msgspec.Struct, frozen=True):
    """What a batch's :class:`Gate` let through: the first ``granted`` events had a token; of
    those, ``capped[i]`` is "" or the kind of cap event ``i`` would pass."""

    granted: int
    retry_ms: int
    capped: list[str]


@dataclass(frozen=True)
class Gate:
    """The limits a batch passes in the store, in the call that stores it: rate limits per
    visitor and per address (the GCRA of ingest.lua), and caps on distinct names per kind."""

    address: str
    visitor_rate: Rate
    address_rate: Rate
    caps: Mapping[str, int]


class Ingested(msgspec.Struct, frozen=True):
    """The outcome of one batch: which events were new, which the engine must decide (new
    ones, and resends of events whose actions were never applied), and the facts after it."""

    fresh: list[bool]  # facts applied by this batch
    todo: list[bool]  # handed to the engine: fresh, or stored but its actions not applied
    session: Facts
    visitor: Facts
    admitted: Admitted  # what the gate let in; the events it kept out were not stored
    applied: bool = False  # the caller's Decided actions were applied (no facts returned)
    resolved: Resolved | None = None  # when applied: governance's answer to its requests


class Timer(msgspec.Struct, frozen=True):
    """A pending deadline of one rule in one session. (It and the actions below are frozen
    msgspec Structs: the engine makes several per page view, and a frozen dataclass's
    ``__init__`` costs an ``object.__setattr__`` per field.)"""

    site: str
    session: str
    visitor: str
    rule: str
    token: str

    def member(self) -> str:
        """The timer as a sorted-set member: a JSON array, so any character is safe in it."""
        return _member_json([self.site, self.session, self.visitor, self.rule, self.token])

    @classmethod
    def from_member(cls, member: str) -> Timer:
        """Decode :meth:`member` (or the older ``a|b|c|d|e`` form); ValueError if neither."""
        # json.JSONDecodeError is a ValueError
        parts = json.loads(member) if member.startswith("[") else member.split("|")
        if not isinstance(parts, list) or len(parts) != 5:
            raise ValueError(f"not a timer: {member[:200]!r}")
        if not all(isinstance(p, str) for p in parts):
            raise ValueError(f"not a timer: {member[:200]!r}")
        site, session, visitor, rule, token = parts
        return cls(site, session, visitor, rule, token)


class Schedule(msgspec.Struct, frozen=True):
    timer: Timer
    due_ms: int


class Cancel(msgspec.Struct, frozen=True):
    timer: Timer


# How a firing request is governed (FiringRequest.mode)
Mode = Literal["live", "shadow", "out"]


@dataclass(frozen=True)
class FiringRequest:
    """Ask governance whether ``rule`` may fire now; counted when granted (govern.lua)."""

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
    firing: str = ""  # a timer's token: the request of one firing is granted again, not twice
    priority: int = 0  # a show of strictly higher priority replaces the prompt on screen
    whole_facts: bool = False  # granted, its show renders: return the whole hashes with it
    # "shadow": governed as if live, counted apart, shows nothing; "out": outside the rule's
    # rollout, answered not_in_rollout without asking (govern_all.lua)
    mode: Mode = "live"


@dataclass(frozen=True)
class Verdict:
    """Governance's answer to a :class:`FiringRequest`.

    ``code`` is "" when the firing is granted, else why not (a ``codes.Hold`` value). A granted
    show may take the place of a lower-priority prompt on screen: ``replaces`` is that
    prompt's id and ``replaces_rule`` its rule (both "" otherwise).
    """

    code: str = ""
    replaces: str = ""
    replaces_rule: str = ""

    @property
    def granted(self) -> bool:
        return not self.code


@dataclass(frozen=True)
class Queued:
    """An outbox job (outbox.py) put in the same call that writes audit record number
    ``record`` of ``Store.record``, and only when that record is written (once per firing).
    ``job``: its JSON, from ``outbox.job_json``."""

    channel: str
    job: str
    record: int


class Put(msgspec.Struct, frozen=True):
    """Set a fact on the session or the visitor (rule actions, sequence and window state)."""

    site: str
    session: str
    visitor: str
    field: str
    value: str | None  # None deletes the field
    on_visitor: bool = False


Action = Schedule | Cancel | FiringRequest | Put


@dataclass(frozen=True)
class Commit:
    """A batch's actions (no FiringRequests) and the seqs they are for: applied once, with
    the seqs marked done (commit.lua)."""

    origin: Origin
    seqs: list[int]
    actions: list[Action]


class Decided(msgspec.Struct, frozen=True):
    """A batch decided before the store call, from the caller's copy of the facts (the
    fields the rules read, as they were before the batch): its actions are applied with the
    batch when the copy is what the store holds (ingest.lua)."""

    session: Facts
    visitor: Facts
    seqs: list[int]
    actions: list[Action]
    requests: list[FiringRequest] = msgspec.field(default_factory=list)  # asked of governance too
    # per request: the writes of its outcomes, for the call to write the one governance
    # gives (None: written after the call, by delivery)
    outcomes: list[Outcomes | None] = msgspec.field(default_factory=list)


@dataclass(frozen=True)
class Outcomes:
    """The writes of one firing request's outcomes, made before governance answers, so that
    the store call that asks it also writes what the answer leaves (ingest.lua, fold.lua).

    Granted, replacing no prompt on screen: ``granted`` (the facts its rule sets), the audit
    record ``fired`` and its outbox job ``job``. Refused with a code: the record
    ``refused``, whose ``code`` and ``reason`` fields the store fills in (``reasons``: code,
    or ``code|rule`` for the code about an earlier granted show of the same call, -> the
    reason); a code in ``queues`` writes ``queued`` and the facts ``queue`` instead. A grant
    that replaces a prompt, or a code without a reason, writes nothing: delivery then does."""

    granted: list[Put]
    fired: dict[str, str]
    job: Queued | None
    refused: dict[str, str]
    reasons: dict[str, str]
    queued: dict[str, str] | None = None
    queue: list[Put] = field(default_factory=list)
    queues: frozenset[str] = frozenset()


class Resolved(msgspec.Struct, frozen=True):
    """Governance's verdicts on a batch's firing requests, in order; with the whole session
    and visitor hashes when a granted show asked for them (``whole_facts``) and the store did
    not write what it leaves (``written``), else empty."""

    verdicts: list[Verdict]
    session: Facts
    visitor: Facts
    # per verdict: the store wrote what it leaves (Decided.outcomes); empty when none did
    written: list[bool] = msgspec.field(default_factory=list)


class Store(Protocol):
    @property
    def writes_firings_ahead(self) -> bool:
        """Whether the ingest call writes what governance's answer leaves for firings whose
        writes the caller made before it (``Decided.outcomes``, fold.py)."""
        ...

    async def ping(self) -> bool: ...

    async def open_session(
        self,
        site: str,
        visitor: str,
        session: str | None,
        now_ms: int,
        describe: dict[str, str] | None = None,
        fields: str = "",
    ) -> OpenedSession: ...

    async def ingest(
        self,
        origin: Origin,
        events: list[dict[str, Any]],
        changes: list[FactChanges],
        now_ms: int,
        fields: str = "",
        gate: Gate | None = None,
        names: list[list[NewName]] | None = None,
        decided: Decided | None = None,
        marks: list[Mark] | None = None,
    ) -> Ingested: ...

    async def apply(self, actions: list[Action]) -> None:
        """Apply actions (no FiringRequests: :meth:`resolve` asks governance) in one round
        trip."""
        ...

    async def resolve(
        self, requests: list[FiringRequest], commit: Commit | None = None
    ) -> Resolved | None:
        """Apply ``commit`` and ask governance about ``requests`` (all of one session,
        highest priority first) atomically, in one round trip; a show after a granted show is
        held ``lower_priority``. None, and nothing applied, when the commit's seqs are no
        longer pending (another process committed them)."""
        ...

    async def record(
        self,
        site: str,
        puts: list[Put],
        records: list[dict[str, str]],
        jobs: Sequence[Queued] = (),
    ) -> None:
        """Write ``puts`` and append the audit ``records`` (once per ``firing`` when a record
        has one), in one round trip, with the outbox ``jobs`` of the records written."""
        ...

    async def commit(self, origin: Origin, seqs: list[int], actions: list[Action]) -> bool:
        """Apply a batch's actions (no FiringRequests) and mark its seqs done, atomically.
        False, and nothing applied, when a seq is no longer pending (another process
        committed it)."""
        ...

    async def visitor_facts(self, site: str, visitor: str) -> Facts: ...

    async def release_socket(
        self, site: str, session: str, sid: str, visitor: str | None = None
    ) -> None:
        """Forget ``sid`` as the session's tab to push to, if it still is. ``visitor``: the
        session's (on a cluster, saves looking it up)."""
        ...

    async def link_user(self, site: str, user_id: str, visitor: str) -> None: ...

    async def visitor_of_user(self, site: str, user_id: str) -> str | None: ...

    async def visitor_sessions(self, site: str, visitor: str, now_ms: int) -> dict[str, int]:
        """The visitor's sessions whose keys may still live at ``now_ms``: session id -> when
        their time to live was last set (ms), newest first. Kept with the sessions' keys, so
        it answers however far back the streams reach."""
        ...

    async def timer_due(self, timer: Timer) -> int | None: ...

    async def claim_due(
        self, now_ms: int, limit: int
    ) -> tuple[list[tuple[Timer, int]], int | None]:
        """Claim due timers atomically: (timer, due ms) each, and the next deadline left."""
        ...

    async def consume(self, timer: Timer) -> tuple[Facts, Facts] | None:
        """The facts to fire ``timer`` on, or None when it is stale. Reads only."""
        ...

    async def ack_timer(self, timer: Timer, clear_hold: bool = False) -> None:
        """The claimed ``timer`` is done: release its lease and clear its token (if still its
        own) and, with ``clear_hold``, the rule's hold. Idempotent."""
        ...

    async def next_due_ms(self) -> int | None: ...

    async def session_facts(self, site: str, session: str, visitor: str | None = None) -> Facts: ...

    async def recent_events(
        self, site: str, session: str, count: int, visitor: str | None = None
    ) -> list[dict[str, Any]]: ...

    async def audit(self, site: str, record: dict[str, str]) -> None: ...

    async def read_audit(self, site: str, count: int) -> list[dict[str, str]]: ...

    async def counters(self, site: str, days: list[str]) -> dict[str, dict[str, int]]:
        """The measurement counters of ``site`` per UTC day (counters.py)."""
        ...

    async def assign_segment(
        self, site: str, visitor: str, model: str, segment: str, now_ms: int
    ) -> bool:
        """Count ``visitor`` in ``segment`` of the segments model ``model`` on the UTC day of
        ``now_ms``, once a day (counters.py ``segment_field``); whether it counted now."""
        ...

    async def read_live(self, site: str, count: int) -> list[dict[str, str]]: ...

    async def aclose(self) -> None: ...
