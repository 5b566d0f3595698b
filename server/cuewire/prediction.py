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

import msgspec

from . import fields as names
from .facts import FactChanges
from .rules.reads import Fields
from .store.base import Action, Cancel, Facts, Put, Schedule

KNOWN_SESSIONS = 10_000  # sessions whose facts a process keeps (least recently used go)


# Answers a Reads keeps per hash: field names are few (rules and the event types name them),
# but custom event names come from browsers, so the memo stops growing here (it is a cache).
READS_MEMO = 4096


class _Memo(dict[str, bool]):
    """Whether rules read a field, answered once per name: a hit is a plain dict lookup, no
    Python call (after_batch asks for every field of every event)."""

    def __init__(self, exact: frozenset[str], prefixes: tuple[str, ...]) -> None:
        super().__init__()
        self._exact = exact
        self._prefixes = prefixes
        # the names answered "read" so far: a batch whose fields are all among them is
        # merged whole (``dict.update``), without asking for each field
        self.read: set[str] = set()

    def __missing__(self, field: str) -> bool:
        read = field in self._exact or field.startswith(self._prefixes)
        if len(self) < READS_MEMO:
            self[field] = read
            if read:
                self.read.add(field)
        return read


class Reads:
    """Which hash fields the rules read: exact names and prefixes, per hash.
    ``session(field)`` and ``visitor(field)`` answer for one field of each hash."""

    def __init__(self, wanted: Fields) -> None:
        self.wanted = wanted
        session = _Memo(frozenset(wanted.session), tuple(wanted.session_prefixes))
        visitor = _Memo(frozenset(wanted.visitor), tuple(wanted.visitor_prefixes))
        self.session: Callable[[str], bool] = session.__getitem__
        self.visitor: Callable[[str], bool] = visitor.__getitem__
        self.session_read = session.read  # the session fields known to be read
        self.last_seen = self.visitor("last_seen")  # every batch sets it


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
    single = len(changes) == 1
    merged = changes[0] if single else _merge(changes, visitor.get("user_verified") == "1")
    s = dict(session)
    wanted = reads.session
    # in ingest.lua's order: set-if-absent of the session's owner and start, counters,
    # set-if-absent, sets (and the socket), conditional clears; then the visitor's
    # (a set-if-absent asks whether rules read the field only when it is absent: rarely)
    if "visitor" not in s and wanted("visitor"):
        s["visitor"] = visitor_id
    if "started" not in s and wanted("started"):
        s["started"] = str(now_ms)
    for field in merged.incr:  # a field named twice counts twice
        if wanted(field):
            s[field] = str(int(s.get(field, "0")) + 1)
    for field, value in merged.setnx.items():
        if field not in s and wanted(field):
            s[field] = value
    sets = merged.set
    if sets.keys() <= reads.session_read:  # every field read (the rules read most): in C
        s.update(sets)
    else:
        for field, value in sets.items():
            if wanted(field):
                s[field] = value
    if sid and wanted("sid"):
        s["sid"] = sid
    if not single or merged.clear_if:  # only closed prompts clear a field
        cleared = [
            field
            for ch in changes
            for field, value in ch.clear_if.items()
            if wanted(field) and s.get(field) == value
        ]
        for field in cleared:
            s[field] = ""
    if merged.visitor_incr or merged.visitor_set or reads.last_seen:
        return s, _visitor_after(visitor, reads, merged, single, now_ms)
    return s, visitor  # most events change nothing on the visitor


def _visitor_after(
    visitor: Facts, reads: Reads, merged: FactChanges, single: bool, now_ms: int
) -> Facts:
    """The visitor's facts after ``merged``: rules seldom read what a batch changes there
    (then they are returned as they were, not copied)."""
    wanted = reads.visitor
    changed: Facts = {}
    for field in merged.visitor_incr:
        if wanted(field):
            changed[field] = str(int(changed.get(field, visitor.get(field, "0"))) + 1)
    if reads.last_seen:
        changed["last_seen"] = str(now_ms)
    visitor_set = merged.visitor_set
    if visitor_set:
        if (
            single
            and visitor_set.get("user_verified") == "0"
            and visitor.get("user_verified") == "1"
        ):
            visitor_set = _unverified_kept_out(visitor_set)
        for field, value in visitor_set.items():
            if wanted(field):
                changed[field] = value
    return {**visitor, **changed} if changed else visitor


def _merge(changes: Sequence[FactChanges], verified: bool) -> FactChanges:
    """The changes of several events as one, in ingest.lua's merge: counters added, the last
    set wins, the first set-if-absent wins; an unverified identify never downgrades a visitor
    verified before it or earlier in the batch. (Conditional clears are read from each.)"""
    merged = FactChanges()
    for ch in changes:
        merged.incr += ch.incr
        merged.set.update(ch.set)
        for field, value in ch.setnx.items():
            merged.setnx.setdefault(field, value)
        vs = ch.visitor_set
        if vs.get("user_verified") == "0" and (
            verified or merged.visitor_set.get("user_verified") == "1"
        ):
            vs = _unverified_kept_out(vs)
        merged.visitor_incr += ch.visitor_incr
        merged.visitor_set.update(vs)
    return merged


def _unverified_kept_out(visitor_set: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in visitor_set.items() if k not in ("user_id", "user_verified")}


def after_actions(
    session: Facts, visitor: Facts, reads: Reads, actions: Sequence[Action]
) -> tuple[Facts, Facts]:
    """The facts ``reads`` names after the engine's ``actions`` (as commit.lua applies them).
    Without actions (most events), the same mappings: facts are never changed in place."""
    if not actions:
        return session, visitor
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


class Known(msgspec.Struct, frozen=True):
    """A process's copy of one session's facts (what ``reads`` names), after its last batch.
    (A frozen Struct: one is made for every batch, at a fraction of a frozen dataclass's cost.)"""

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
