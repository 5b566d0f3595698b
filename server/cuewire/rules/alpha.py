"""The alpha index: which of a list of rule entries an event can possibly concern, found by
looking values up instead of testing every rule (the alpha network of Rete, reduced to one
level).

Each entry comes with a *gate*: constant tests, at least one of which holds whenever the
entry can have an effect (derived from its conditions by :func:`gate_of`). A test reads one
fact and either equals a string (``equals``, ``in``, a glob without wildcards) or starts with
one (a glob's literal prefix, such as ``/product/`` of ``/product/*``). Per event, the index
reads each fact its tests name once and looks the value up; the entries found are a superset of
the entries that can pass, never fewer. Entries without a gate are always selected. The engine
still evaluates every selected entry in full: the index only skips work.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from .conditions import MISSING
from .model import Condition

T = TypeVar("T")
WILDCARDS = ("*", "?", "[")  # fnmatch's special characters: the literal part ends at one


@dataclass(frozen=True)
class Atom:
    """One constant test: fact ``fact`` (a name FactView.get reads) equals ``key`` as a
    string, or, with ``prefix``, starts with it."""

    fact: str
    key: str
    prefix: bool = False


# A disjunction of atoms: whenever the gated condition holds, one of them holds.
Gate = tuple[Atom, ...]


def literal_prefix(glob: str) -> str:
    """The part of ``glob`` before its first wildcard (all of it when it has none)."""
    cut = min((i for i in (glob.find(w) for w in WILDCARDS) if i >= 0), default=len(glob))
    return glob[:cut]


def _leaf(cond: Condition, fact: str) -> Gate | None:
    if isinstance(cond.equals, str):  # conditions._same: str(actual) == expected
        return (Atom(fact, cond.equals),)
    if isinstance(cond.in_, list) and cond.in_ and all(isinstance(o, str) for o in cond.in_):
        return tuple(Atom(fact, str(option)) for option in cond.in_)
    if isinstance(cond.glob, str):  # fnmatchcase(str(actual), glob): the literal part first
        literal = literal_prefix(cond.glob)
        if literal == cond.glob:
            return (Atom(fact, literal),)
        if literal:
            return (Atom(fact, literal, prefix=True),)
    return None


def _score(gate: Gate) -> tuple[bool, int, int]:
    """Prefer gates of equalities, then long prefixes, then few atoms."""
    return (
        not any(a.prefix for a in gate),
        min(len(a.key) for a in gate),
        -len(gate),
    )


def gate_of(
    cond: Condition | None,
    segments: Mapping[str, Condition],
    fact: Callable[[str], str] = str,
    depth: int = 0,
) -> Gate | None:
    """A gate for ``cond``: atoms one of which holds whenever ``cond`` holds; None when none
    can be derived. ``fact`` maps the condition's fact names to the names the index reads
    (``where`` tests name event fields: ``selector`` is read as ``event.selector``)."""
    if cond is None or depth > 16:
        return None
    if isinstance(cond.fact, str):
        return _leaf(cond, fact(cond.fact)) if cond.fact else None
    if isinstance(cond.all, list):  # every part holds: any part's gate will do
        found = [g for sub in cond.all if (g := gate_of(sub, segments, fact, depth + 1))]
        return max(found, key=_score) if found else None
    if isinstance(cond.any, list):  # one part holds: every part needs a gate
        parts = [gate_of(sub, segments, fact, depth + 1) for sub in cond.any]
        if not parts or any(p is None for p in parts):
            return None
        return tuple(dict.fromkeys(a for p in parts if p for a in p))
    if isinstance(cond.segment, str):
        segment = segments.get(cond.segment)
        return None if segment is None else gate_of(segment, segments, fact, depth + 1)
    return None  # `not`: what must fail is no constant to look up


def best(*gates: Gate | None) -> Gate | None:
    """The most selective of gates that all hold (a conjunction): one is enough."""
    found = [g for g in gates if g]
    return max(found, key=_score) if found else None


def any_of(gates: Sequence[Gate | None]) -> Gate | None:
    """A gate for "one of these holds": None unless each has one."""
    if not gates or any(g is None for g in gates):
        return None
    return tuple(dict.fromkeys(a for g in gates if g for a in g))


class _FactIndex:
    """The atoms on one fact: positions by equal value and by prefix (grouped by length)."""

    def __init__(self) -> None:
        self.equal: dict[str, list[int]] = {}
        self.prefix: dict[int, dict[str, list[int]]] = {}

    def add(self, atom: Atom, position: int) -> None:
        if atom.prefix:
            self.prefix.setdefault(len(atom.key), {}).setdefault(atom.key, []).append(position)
        else:
            self.equal.setdefault(atom.key, []).append(position)

    def find(self, value: Any, out: list[int]) -> None:
        if value is MISSING:
            return
        text = str(value)
        found = self.equal.get(text)
        if found:
            out.extend(found)
        if value is None:  # a glob never matches a missing value
            return
        for length, keys in self.prefix.items():
            found = keys.get(text[:length])
            if found:
                out.extend(found)


class AlphaIndex(Generic[T]):
    """Entries with their gates; :meth:`select` returns the positions of those an event's
    facts can pass, ascending."""

    def __init__(self, items: Sequence[tuple[T, Gate | None]]) -> None:
        self.items = [item for item, _ in items]
        self.always: list[int] = []
        self.facts: dict[str, _FactIndex] = {}
        for position, (_, gate) in enumerate(items):
            if gate is None:
                self.always.append(position)
                continue
            for atom in gate:
                self.facts.setdefault(atom.fact, _FactIndex()).add(atom, position)
        self.gated = len(self.always) < len(self.items)  # some entry is not always selected

    def select(self, read: Callable[[str], Any]) -> list[int]:
        """Positions of the entries to evaluate: the ungated, and those a looked-up value
        reaches. ``read(fact)`` is the fact's value now (MISSING when absent)."""
        if not self.gated:
            return self.always
        found = list(self.always)
        for name, index in self.facts.items():
            index.find(read(name), found)
        return sorted(set(found)) if len(found) > 1 else found

    def __len__(self) -> int:
        return len(self.items)
