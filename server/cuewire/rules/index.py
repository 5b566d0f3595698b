"""The rule set, indexed by what each rule depends on: an event touches only the rules it can
change (its type; a custom event's name; the events that change the facts a ``facts`` trigger
reads). Also the event patterns rules match."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection, Mapping
from enum import Enum
from typing import TYPE_CHECKING, Any

from msgspec import UNSET

from .. import fields
from ..facts import PROMPT_CLOSED
from ..learn.models import NO_MODELS, Models
from ..template_reads import ALL, TemplateReads
from .alpha import AlphaIndex, Gate, any_of, best, gate_of
from .conditions import Scope, evaluate
from .facts_view import walk
from .model import Condition, Match, Policy, Rule, digest
from .reads import fields_of

if TYPE_CHECKING:
    from ..measures import Measures

DEFAULT_POLICY = Policy()
FEW = 4  # entries of one event type the engine tries without consulting the alpha index


class Role(Enum):
    """How an event type relates to a rule."""

    TRIGGER = "trigger"  # the event itself fires the rule
    START = "start"  # starts an absence timer
    STOP = "stop"  # cancels an absence timer
    STEP = "step"  # a step of a sequence
    COUNT = "count"  # counted in a sliding window
    FACTS = "facts"  # may change a fact a facts trigger reads


def matches(match: Match, event: dict[str, Any]) -> bool:
    if event["type"] != match.type:
        return False
    if match.name is not UNSET and event.get("name") != match.name:
        return False
    if match.where is UNSET:
        return True
    return evaluate(match.where, Scope(lambda name: walk(event, name.split("."))))


def index_key(match: Match) -> str:
    """Where a pattern is indexed: by event type, and custom events also by name."""
    if match.type == "custom" and isinstance(match.name, str):
        return f"custom:{match.name}"
    return match.type


def fact_sources(name: str) -> set[str] | None:
    """The index keys of the events that can change fact ``name``; None when any event (or
    the passing of time, or another rule) can."""
    scope, _, rest = name.partition(".")
    head, _, tail = rest.partition(".")
    custom = f"custom:{tail.partition('.')[0]}"
    sources: dict[tuple[str, str], set[str]] = {
        ("page", "url"): {"page_view"},
        ("page", "path"): {"page_view"},
        ("page", "query"): {"page_view"},
        ("page", "scroll"): {"scroll", "page_view"},
        ("page", "attention_seconds"): {"attention", "page_view"},
        ("session", "count"): {tail},
        ("session", "custom"): {custom},
        ("session", "last"): {custom},
        ("session", "distinct"): {custom},
        ("session", "clicks"): {"click"},
        ("session", "pages"): {"page_view"},
        ("session", "landing"): {"page_view"},
        ("session", "referrer"): {"page_view"},
        ("session", "utm"): {"page_view"},
        ("visitor", "traits"): {"identify"},
        ("visitor", "user_id"): {"identify"},
        ("visitor", "custom"): {custom},
        ("visitor", "clicks"): {"click"},
    }
    return sources.get((scope, head))


def condition_sources(cond: Condition, segments: dict[str, Condition]) -> set[str] | None:
    """Union of :func:`fact_sources` over a condition's facts; None if any fact is unbound."""
    if isinstance(cond.fact, str):
        return fact_sources(cond.fact)
    if isinstance(cond.segment, str):
        segment = segments.get(cond.segment)
        return None if segment is None else condition_sources(segment, segments)
    parts = [*(cond.all or []), *(cond.any or [])] + ([cond.not_] if cond.not_ is not UNSET else [])
    keys: set[str] = set()
    for part in parts:
        found = condition_sources(part, segments)
        if found is None:
            return None
        keys |= found
    return keys


def _distinct_facts(cond: Condition | None, found: dict[str, set[str]]) -> None:
    """Collect ``session.distinct.<name>.<prop>`` facts so ingest records those values."""
    if cond is None:
        return
    for sub in [*(cond.all or []), *(cond.any or [])] + (
        [cond.not_] if cond.not_ is not UNSET else []
    ):
        _distinct_facts(sub, found)
    if isinstance(cond.fact, str) and cond.fact.startswith("session.distinct."):
        name, _, prop = cond.fact[len("session.distinct.") :].partition(".")
        found[name].add(prop)


def _click_names(cond: Condition | None, found: set[str]) -> None:
    """Collect the names of ``session.clicks.<name>`` / ``visitor.clicks.<name>`` facts so
    ingest counts clicks on those elements."""
    if cond is None:
        return
    for sub in [*(cond.all or []), *(cond.any or [])] + (
        [cond.not_] if cond.not_ is not UNSET else []
    ):
        _click_names(sub, found)
    if isinstance(cond.fact, str):
        for prefix in ("session.clicks.", "visitor.clicks."):
            if cond.fact.startswith(prefix) and len(cond.fact) > len(prefix):
                found.add(cond.fact[len(prefix) :])


class RuleSet:
    """Rules indexed by what they depend on: an event touches only the rules it can change."""

    few = FEW  # a type with this many entries or fewer is tried without the alpha index

    def __init__(
        self,
        rules: list[Rule],
        segments: dict[str, Condition] | None = None,
        policy: Policy | None = None,
        measures: Measures | None = None,
        models: Models = NO_MODELS,
        templates: TemplateReads = ALL,
    ) -> None:
        self.rules = {rule.id: rule for rule in rules}
        self.measures = measures  # goals and funnels (counters.py), when loaded with them
        self.models = models  # what learned facts use (learn/models.py)
        self.segments = dict(segments or {})
        self.policy = policy or DEFAULT_POLICY
        self.by_type: dict[str, list[tuple[Rule, Role]]] = defaultdict(list)
        self.on_every_event: list[Rule] = []  # facts and inactivity triggers
        self.on_page_view: list[Rule] = []  # page-scoped absence and dwell: reset per page
        self.dwell: list[Rule] = []
        found: dict[str, set[str]] = defaultdict(set)
        for rule in sorted(rules, key=lambda r: -r.priority):
            self._index(rule)
            _distinct_facts(rule.when, found)
            if rule.trigger.facts is not UNSET:
                _distinct_facts(rule.trigger.facts, found)
        for segment in self.segments.values():
            _distinct_facts(segment, found)
        self.distinct = {name: frozenset(props) for name, props in found.items()}
        clicks: set[str] = set()
        for cond in [r.when for r in rules] + [
            r.trigger.facts for r in rules if r.trigger.facts is not UNSET
        ]:
            _click_names(cond, clicks)
        for segment in self.segments.values():
            _click_names(segment, clicks)
        self.clicks = frozenset(clicks)
        # with what the templates read (template_reads.py): a show renders ahead (fold.py)
        self.fields = fields_of(rules, self.segments, self.clicks, templates)
        self.fields_json = self.fields.encoded()
        for entries in self.by_type.values():
            entries.sort(key=self._order)
        self._alpha = {key: self._alpha_of(entries) for key, entries in self.by_type.items()}
        self._timed: dict[str, dict[str, list[int]]] = {}  # key -> rule -> absence entries
        for key, entries in self.by_type.items():
            if not self._alpha[key].gated:
                continue  # every entry is tried anyway
            for position, (rule, role) in enumerate(entries):
                if role in (Role.START, Role.STOP):
                    self._timed.setdefault(key, {}).setdefault(rule.id, []).append(position)
        self._every = AlphaIndex([(rule, self._every_gate(rule)) for rule in self.on_every_event])
        # What the engine has anything to do for (Engine.on_events skips the rest): every
        # event when some rule depends on every event; else the types (and custom names) some
        # rule depends on, a new page (it resets page-scoped rules), a page visible again or
        # an attention beat (they resume dwell rules), a closed prompt (it releases queued
        # rules).
        self.busy_types = frozenset(
            {*self.by_type, *PROMPT_CLOSED}
            | ({"page_view"} if self.on_page_view else set())
            | ({"visibility", "attention"} if self.dwell else set())
        )
        self.busy_names = frozenset(
            key.removeprefix("custom:") for key in self.by_type if key.startswith("custom:")
        )
        self.every_busy = bool(self.on_every_event)
        self._timer_fields = {
            fields.timer(rule.id): rule.id
            for rule in rules
            if rule.trigger.kind in ("absence", "inactivity", "dwell")
        }
        self._page_order = {rule.id: i for i, rule in enumerate(self.on_page_view)}
        self._dwell_positions = [
            i for i, r in enumerate(self.on_page_view) if r.trigger.dwell is not UNSET
        ]
        self._dwell_on_page = [self.on_page_view[i] for i in self._dwell_positions]
        self._digests = {rule.id: digest(rule) for rule in rules}

    def digest_of(self, rule: Rule) -> str:
        """``rule``'s digest (model.digest: every audit record carries it), taken at load
        for the set's own rules."""
        if self.rules.get(rule.id) is rule:
            return self._digests[rule.id]
        return digest(rule)

    def _index(self, rule: Rule) -> None:
        t = rule.trigger
        if t.event is not UNSET:
            self.by_type[index_key(t.event)].append((rule, Role.TRIGGER))
        elif t.absence is not UNSET:
            # cancel first, so an event that both stops and restarts a timer restarts it
            self.by_type[index_key(t.absence.missing)].append((rule, Role.STOP))
            self.by_type[index_key(t.absence.after)].append((rule, Role.START))
            if t.absence.scope == "page":
                self.on_page_view.append(rule)
        elif t.sequence is not UNSET:
            for key in {index_key(step) for step in t.sequence.steps}:
                self.by_type[key].append((rule, Role.STEP))
        elif t.count is not UNSET:
            self.by_type[index_key(t.count.of)].append((rule, Role.COUNT))
        elif t.dwell is not UNSET:
            self.on_page_view.append(rule)
            self.dwell.append(rule)
        elif t.facts is not UNSET:
            keys = condition_sources(t.facts, self.segments)
            if keys is None:
                self.on_every_event.append(rule)
            else:  # a new page re-checks it too (true since an earlier session, say)
                for key in keys | {"page_view"}:
                    self.by_type[key].append((rule, Role.FACTS))
        else:  # inactivity: any activity moves its deadline
            self.on_every_event.append(rule)

    def entries_for(self, event: dict[str, Any]) -> list[tuple[Rule, Role]]:
        """The rules an event can change: those of its type, and for a custom event those of
        its name, in priority order (cancellations before starts)."""
        entries = self.by_type.get(event["type"], [])
        if event["type"] == "custom":
            named = self.by_type.get(f"custom:{event['name']}")
            if named:
                entries = sorted([*entries, *named], key=self._order)
        return entries

    def _gate(self, rule: Rule, role: Role) -> Gate | None:
        """What an entry's effect needs (alpha.py): the trigger's event pattern, and for a
        rule that becomes a candidate at once, its ``when`` too. An absence entry needs a
        pending deadline to cancel, or to start one (select() adds the pending ones)."""
        t, segments = rule.trigger, self.segments

        def where(match: Match) -> Gate | None:
            if match.where is UNSET:
                return None
            return gate_of(match.where, segments, lambda name: f"event.{name}")

        when = gate_of(rule.when, segments)
        if role is Role.TRIGGER and t.event is not UNSET:
            return best(where(t.event), when)
        if role is Role.STOP:
            return ()  # cancels a pending deadline: select() adds it when there is one
        if role is Role.START and t.absence is not UNSET:
            return best(where(t.absence.after), when)
        if role is Role.STEP and t.sequence is not UNSET:
            return any_of([where(step) for step in t.sequence.steps])
        if role is Role.COUNT and t.count is not UNSET:
            return where(t.count.of)
        if role is Role.FACTS and t.facts is not UNSET:
            return best(gate_of(t.facts, segments), when)
        return None

    def _every_gate(self, rule: Rule) -> Gate | None:
        if rule.trigger.facts is UNSET:
            return None  # inactivity: every activity moves its deadline
        return best(gate_of(rule.trigger.facts, self.segments), gate_of(rule.when, self.segments))

    def _alpha_of(self, entries: list[tuple[Rule, Role]]) -> AlphaIndex[tuple[Rule, Role]]:
        if len(entries) <= self.few:  # trying them costs less than looking them up
            return AlphaIndex([(entry, None) for entry in entries])
        return AlphaIndex([(entry, self._gate(*entry)) for entry in entries])

    def _pick(
        self, key: str, read: Callable[[str], Any], pending: Callable[[], Collection[str]]
    ) -> tuple[AlphaIndex[tuple[Rule, Role]] | None, list[int]]:
        alpha = self._alpha.get(key)
        if alpha is None:
            return None, []
        found = alpha.select(read)
        timed = self._timed.get(key)
        if timed:
            extra = [p for rule in pending() for p in timed.get(rule, ())]
            if extra:
                found = sorted({*found, *extra})
        return alpha, found

    def select(
        self,
        event: dict[str, Any],
        read: Callable[[str], Any],
        pending: Callable[[], Collection[str]],
    ) -> list[tuple[Rule, Role]]:
        """:meth:`entries_for` without the entries the event cannot concern: the alpha
        index drops those whose constant tests fail (``read(fact)`` gives a fact's value
        now), and keeps the absence entries of the rules with a deadline pending (``pending()``
        names them; called only when the event reaches absence entries)."""
        kind = event["type"]
        alpha = self._alpha.get(kind)
        if kind == "custom":
            named = self._alpha.get(f"custom:{event['name']}")
            if (alpha is None or not alpha.gated) and (named is None or not named.gated):
                return self.entries_for(event)  # few entries: all of them
        elif alpha is None:
            return []
        elif not alpha.gated:
            return alpha.items
        alpha, found = self._pick(kind, read, pending)
        entries = [alpha.items[p] for p in found] if alpha is not None else []
        if event["type"] == "custom":
            named, more = self._pick(f"custom:{event['name']}", read, pending)
            if named is not None and named.items:
                # as entries_for: a stable sort of the type's entries, then the name's
                ranked = [(self._order(e), 0, i, e) for i, e in enumerate(entries)]
                ranked += [(self._order(named.items[p]), 1, p, named.items[p]) for p in more]
                ranked.sort(key=lambda r: (r[0], r[1], r[2]))
                entries = [r[3] for r in ranked]
        return entries

    def every_event(self, read: Callable[[str], Any]) -> list[Rule]:
        """:attr:`on_every_event` without the facts rules whose constant tests fail."""
        every = self._every
        return [every.items[p] for p in every.select(read)]

    def pending(self, facts: Mapping[str, str]) -> set[str]:
        """The rules with a deadline pending in session ``facts`` (their timer field set)."""
        if len(self._timer_fields) <= len(facts):
            return {rule for name, rule in self._timer_fields.items() if name in facts}
        cut = len(fields.TIMER)
        return {k[cut:] for k in facts if k.startswith(fields.TIMER)}

    def page_resets(self, pending: Collection[str]) -> list[Rule]:
        """The :attr:`on_page_view` rules a new page changes: dwell rules (restarted) and
        the page-scoped absence rules with a deadline pending (cancelled), in that order."""
        extra = [i for r in pending if (i := self._page_order.get(r)) is not None]
        if not extra:
            return self._dwell_on_page
        ranked = sorted({*self._dwell_positions, *extra})
        return [self.on_page_view[i] for i in ranked]

    @staticmethod
    def _order(entry: tuple[Rule, Role]) -> tuple[bool, int]:
        return entry[1] is Role.START, -entry[0].priority

    def __len__(self) -> int:
        return len(self.rules)
