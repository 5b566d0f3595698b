"""The facts after a batch, predicted in the process from its own copy of the facts before it.

With them the engine decides a batch before the store call, and the store applies the batch
and the decision's actions in one round trip (ingest.lua), after checking that the copy is
what it holds: when another tab, process or deadline changed a fact meanwhile, the store
applies the batch alone and returns the facts, and the batch is decided again from those.

:func:`after_batch` mirrors ingest.lua's merge of a batch's changes (counters summed, last set
wins, first set-if-absent wins, an unverified identify never downgrades a verified visitor)
on the fields rules read (``RuleSet.fields``): keep the two in step.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from . import fields as names
from .facts import FactChanges
from .rules.reads import Fields
from .store.base import Action, Cancel, Facts, Put, Schedule

KNOWN_SESSIONS = 10_000  # sessions whose facts a process keeps (least recently used go)


class Reads:
    """Which hash fields the rules read: exact names and prefixes, per hash."""

    def __init__(self, wanted: Fields) -> None:
        self.wanted = wanted
        self._session = frozenset(wanted.session)
        self._session_prefixes = tuple(wanted.session_prefixes)
        self._visitor = frozenset(wanted.visitor)
        self._visitor_prefixes = tuple(wanted.visitor_prefixes)

    def session(self, field: str) -> bool:
        return field in self._session or field.startswith(self._session_prefixes)

    def visitor(self, field: str) -> bool:
        return field in self._visitor or field.startswith(self._visitor_prefixes)


def after_batch(
    session: Facts,
    visitor: Facts,
    reads: Reads,
    changes: Sequence[FactChanges],
    now_ms: int,
    sid: str,
    visitor_id: str,
) -> tuple[Facts, Facts]:
    """The facts ``reads`` names after ``changes`` (every event new), from those before.
    ValueError when a counter holds something that is not a number (the store would fail)."""
    incr: dict[str, int] = {}
    sets: dict[str, str] = {}
    first: dict[str, str] = {}
    visitor_incr: dict[str, int] = {}
    visitor_sets: dict[str, str] = {"last_seen": str(now_ms)}
    clear_if: dict[str, set[str]] = {}
    verified = visitor.get("user_verified") == "1"
    for ch in changes:
        for field in ch.incr:
            incr[field] = incr.get(field, 0) + 1
        sets.update(ch.set)
        for field, value in ch.setnx.items():
            first.setdefault(field, value)
        vs = ch.visitor_set
        if vs.get("user_verified") == "0" and (
            verified or visitor_sets.get("user_verified") == "1"
        ):
            vs = {k: v for k, v in vs.items() if k not in ("user_id", "user_verified")}
        for field in ch.visitor_incr:
            visitor_incr[field] = visitor_incr.get(field, 0) + 1
        visitor_sets.update(vs)
        for field, value in ch.clear_if.items():
            clear_if.setdefault(field, set()).add(value)
    if sid:
        sets["sid"] = sid

    s, v = dict(session), dict(visitor)
    wanted, wanted_visitor = reads.session, reads.visitor
    # in ingest.lua's order: set-if-absent of the session's owner and start, counters,
    # set-if-absent, sets (and the socket), conditional clears; then the visitor's
    _set_if_absent(s, wanted, "visitor", visitor_id)
    _set_if_absent(s, wanted, "started", str(now_ms))
    for field, n in incr.items():
        if wanted(field):
            s[field] = str(int(s.get(field, "0")) + n)
    for field, value in first.items():
        _set_if_absent(s, wanted, field, value)
    for field, value in sets.items():
        if wanted(field):
            s[field] = value
    for field, values in clear_if.items():
        if wanted(field) and s.get(field) in values:
            s[field] = ""
    for field, n in visitor_incr.items():
        if wanted_visitor(field):
            v[field] = str(int(v.get(field, "0")) + n)
    for field, value in visitor_sets.items():
        if wanted_visitor(field):
            v[field] = value
    return s, v


def _set_if_absent(facts: Facts, wanted: Callable[[str], bool], field: str, value: str) -> None:
    if wanted(field) and field not in facts:
        facts[field] = value


def after_actions(
    session: Facts, visitor: Facts, reads: Reads, actions: Sequence[Action]
) -> tuple[Facts, Facts]:
    """The facts ``reads`` names after the engine's ``actions`` (as commit.lua applies them)."""
    s, v = dict(session), dict(visitor)
    for action in actions:
        if isinstance(action, Schedule | Cancel):
            field = names.timer(action.timer.rule)
            value = action.timer.token if isinstance(action, Schedule) else None
            target, wanted = s, reads.session(field)
        elif isinstance(action, Put):
            field, value = action.field, action.value
            target = v if action.on_visitor else s
            wanted = reads.visitor(field) if action.on_visitor else reads.session(field)
        else:
            raise TypeError("a batch's actions hold no FiringRequest")
        if not wanted:
            continue
        if value is None:
            target.pop(field, None)
        else:
            target[field] = value
    return s, v


@dataclass(frozen=True)
class Known:
    """A process's copy of one session's facts (what ``reads`` names), after its last batch."""

    reads: Reads
    session: Facts
    visitor: Facts


class KnownFacts:
    """The copies of the sessions a process served last, least recently used forgotten."""

    def __init__(self, capacity: int = KNOWN_SESSIONS) -> None:
        self._capacity = capacity
        self._known: OrderedDict[tuple[str, str], Known] = OrderedDict()

    def get(self, site: str, session: str, reads: Reads) -> Known | None:
        known = self._known.get((site, session))
        if known is None or known.reads is not reads:
            return None
        self._known.move_to_end((site, session))
        return known

    def put(self, site: str, session: str, known: Known) -> None:
        self._known[(site, session)] = known
        self._known.move_to_end((site, session))
        while len(self._known) > self._capacity:
            self._known.popitem(last=False)

    def forget(self, site: str, session: str) -> None:
        self._known.pop((site, session), None)

    def __len__(self) -> int:
        return len(self._known)
