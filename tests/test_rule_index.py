"""The alpha index (rules/alpha.py) only skips work: an engine that consults it decides exactly
what an engine that tries every rule of the event's type decides, batch after batch."""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cuewire.facts import changes_for
from cuewire.prediction import Reads, after_actions, after_batch
from cuewire.rules.alpha import Atom, gate_of, literal_prefix
from cuewire.rules.engine import Decision, Engine
from cuewire.rules.index import Role, RuleSet
from cuewire.rules.model import Condition, Rule
from cuewire.store.base import Cancel, Schedule

SHOP = "https://shop.test"
PATHS = ["/product/1-boots", "/product/12-hat", "/category/1/x", "/landing/2/y", "/cart", "/"]
SELECTORS = ["#a", "#b", "#cta-1"]
ELEMENTS = ["price", "reviews"]
NAMES = ["add_to_cart", "checkout", "promo"]
TYPES = ["page_view", "click", "hover", "custom", "scroll", "exit_intent", "element_visible"]
SEGMENTS = {
    "product": {"fact": "page.path", "glob": "/product/*"},
    "buyer": {"fact": "session.custom.add_to_cart", "gte": 1},
}


class Unindexed(RuleSet):
    """The rule set as the engine used it before the alpha index: every event handled, every
    rule of its type tried."""

    def concerns(self, event: dict[str, Any]) -> bool:
        return True

    def select(
        self,
        event: dict[str, Any],
        read: Callable[[str], Any],
        pending: Callable[[], Collection[str]],
    ) -> list[tuple[Rule, Role]]:
        return self.entries_for(event)

    def every_event(self, read: Callable[[str], Any]) -> list[Rule]:
        return self.on_every_event

    def page_resets(self, pending: Collection[str]) -> list[Rule]:
        return self.on_page_view


class AlwaysIndexed(RuleSet):
    """Every type consults the alpha index, however few its rules."""

    few = 0


# -- generated rules ----------------------------------------------------------------------

globs = st.sampled_from(["/product/*", "/product/1*", "/category/*/x", "/cart", "*", "/[lc]*"])
page_leaf = st.one_of(
    st.builds(lambda g: {"fact": "page.path", "glob": g}, globs),
    st.builds(lambda p: {"fact": "page.path", "equals": p}, st.sampled_from(PATHS)),
    st.builds(lambda ps: {"fact": "page.path", "in": ps}, st.lists(st.sampled_from(PATHS))),
    st.builds(lambda g: {"fact": "page.url", "glob": SHOP + g}, globs),
    st.builds(lambda n: {"fact": "page.scroll", "gte": n}, st.sampled_from([0, 50, 75])),
    st.builds(lambda n: {"fact": "session.pages", "gte": n}, st.integers(1, 3)),
    st.builds(lambda s: {"fact": "event.selector", "equals": s}, st.sampled_from(SELECTORS)),
    st.just({"fact": "session.device", "equals": "None"}),
    st.just({"fact": "event.selector", "exists": True}),
    st.builds(lambda s: {"segment": s}, st.sampled_from([*SEGMENTS, "unknown"])),
)


def _tree(leaf: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    return st.recursive(
        leaf,
        lambda inner: st.one_of(
            st.builds(lambda xs: {"all": xs}, st.lists(inner, min_size=1, max_size=3)),
            st.builds(lambda xs: {"any": xs}, st.lists(inner, min_size=1, max_size=3)),
            st.builds(lambda x: {"not": x}, inner),
        ),
        max_leaves=4,
    )


conditions = _tree(page_leaf)
event_leaf = st.one_of(
    st.builds(lambda s: {"fact": "selector", "equals": s}, st.sampled_from(SELECTORS)),
    st.builds(lambda s: {"fact": "selector", "in": s}, st.lists(st.sampled_from(SELECTORS))),
    st.builds(lambda e: {"fact": "element", "equals": e}, st.sampled_from(ELEMENTS)),
    st.builds(lambda g: {"fact": "url", "glob": SHOP + g}, globs),
    st.builds(lambda n: {"fact": "depth", "gte": n}, st.sampled_from([25, 75])),
    st.just({"fact": "props.sku", "equals": "1"}),
)
wheres = _tree(event_leaf)


@st.composite
def matches(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(TYPES))
    match: dict[str, Any] = {"type": kind}
    if kind == "custom" and draw(st.booleans()):
        match["name"] = draw(st.sampled_from(NAMES))
    if draw(st.booleans()):
        match["where"] = draw(wheres)
    return match


triggers = st.one_of(
    st.builds(lambda m: {"event": m}, matches()),
    st.builds(lambda c: {"facts": c}, conditions),
    st.builds(
        lambda a, m, scope: {
            "absence": {"after": a, "missing": m, "within": "30s", "scope": scope}
        },
        matches(),
        matches(),
        st.sampled_from(["page", "session"]),
    ),
    st.builds(
        lambda steps: {"sequence": {"steps": steps, "within": "1m"}},
        st.lists(matches(), min_size=2, max_size=3),
    ),
    st.builds(
        lambda m, n, g: {"count": {"of": m, "at_least": n, "within": "1m", "group_by": g}},
        matches(),
        st.integers(1, 3),
        st.sampled_from([None, "selector"]),
    ),
    st.just({"inactivity": {"for": "20s"}}),
    st.builds(lambda a: {"dwell": {"for": "15s", "active": a}}, st.booleans()),
)


@st.composite
def rule_sets(draw: st.DrawFn) -> list[Rule]:
    found = []
    for i in range(draw(st.integers(1, 8))):
        raw: dict[str, Any] = {
            "id": f"r{i}",
            "priority": draw(st.integers(0, 2)),
            "trigger": draw(triggers),
            "show": {"template": "toast"},
        }
        if draw(st.booleans()):
            raw["when"] = draw(conditions)
        found.append(msgspec.convert(raw, Rule))
    return found


# -- generated visits ---------------------------------------------------------------------


@st.composite
def events(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from([*TYPES, "visibility", "prompt_dismiss"]))
    url = SHOP + draw(st.sampled_from(PATHS))
    event: dict[str, Any] = {"type": kind, "url": url}
    if kind == "page_view":
        event.update(referrer="", title="t", spa=False)
    elif kind == "click":
        event.update(selector=draw(st.sampled_from(SELECTORS)), text=None, track=None)
    elif kind in ("hover", "element_visible"):
        event.update(element=draw(st.sampled_from(ELEMENTS)), ms=600, ratio=0.5)
    elif kind == "custom":
        props = draw(st.sampled_from([{}, {"sku": "1"}, {"sku": "2"}]))
        event.update(name=draw(st.sampled_from(NAMES)), props=props)
    elif kind == "scroll":
        event.update(depth=draw(st.sampled_from([25, 50, 75, 90])))
    elif kind == "visibility":
        event.update(state=draw(st.sampled_from(["visible", "hidden"])), dwell_ms=900)
    elif kind == "prompt_dismiss":
        event.update(prompt="p1", rule="r0")
    return event


def _shown(decision: Decision) -> tuple[list[Any], list[Any]]:
    """A decision with the random tokens of the timers it schedules numbered in order."""
    actions: list[Any] = []
    new: dict[str, str] = {}
    for a in decision.actions:
        if isinstance(a, Schedule):
            new[a.timer.token] = f"new-{len(new)}"
            actions.append(("schedule", a.timer.rule, a.due_ms))
        elif isinstance(a, Cancel):
            actions.append(("cancel", a.timer.rule, new.get(a.timer.token, a.timer.token)))
        else:
            actions.append(("put", a.field, a.value, a.on_visitor))
    candidates = [(c.rule.id, c.cause, c.since_ms) for c in decision.candidates]
    return actions, candidates


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rules=rule_sets(),
    batches=st.lists(st.lists(events(), min_size=1, max_size=3), min_size=1, max_size=8),
)
def test_the_index_never_changes_a_decision(
    rules: list[Rule], batches: list[list[dict[str, Any]]]
) -> None:
    segments = {name: msgspec.convert(c, Condition) for name, c in SEGMENTS.items()}
    indexed = Engine(AlwaysIndexed(rules, segments))
    as_run = Engine(RuleSet(rules, segments))
    every_rule = Engine(Unindexed(rules, segments))
    # the facts as the pipeline keeps and changes them (prediction.py), the fields rules read
    reads = Reads(as_run.rules.fields)
    session: dict[str, str] = {"started": "0"}
    visitor: dict[str, str] = {"sessions": "1"}
    now = 1_000_000
    for batch in batches:
        now += 7_000
        changes = [changes_for(event, now) for event in batch]
        session, visitor = after_batch(session, visitor, reads, changes, now, "", "v1")
        args = ("site", "s1", "v1", batch, session, visitor, now)
        reference = every_rule.on_events(*args)
        want = _shown(reference)
        assert _shown(indexed.on_events(*args)) == want
        assert _shown(as_run.on_events(*args)) == want
        session, visitor = after_actions(session, visitor, reads, reference.actions)


# -- what the index reads from conditions -----------------------------------------------


def _cond(raw: dict[str, Any]) -> Condition:
    return msgspec.convert(raw, Condition)


def test_a_glob_is_looked_up_by_the_text_before_its_first_wildcard() -> None:
    assert literal_prefix("/product/*") == "/product/"
    assert literal_prefix("/p?/[ab]*") == "/p"
    assert literal_prefix("/cart") == "/cart"
    assert gate_of(_cond({"fact": "page.path", "glob": "/product/*"}), {}) == (
        Atom("page.path", "/product/", prefix=True),
    )
    assert gate_of(_cond({"fact": "page.path", "glob": "/cart"}), {}) == (
        Atom("page.path", "/cart"),
    )
    assert gate_of(_cond({"fact": "page.path", "glob": "*.html"}), {}) is None


def test_a_conjunction_is_gated_by_its_most_selective_part_and_a_disjunction_by_all() -> None:
    both = _cond(
        {
            "all": [
                {"fact": "page.path", "glob": "/p*"},
                {"fact": "event.selector", "equals": "#buy"},
                {"fact": "session.pages", "gte": 2},
            ]
        }
    )
    assert gate_of(both, {}) == (Atom("event.selector", "#buy"),)
    either = _cond(
        {"any": [{"fact": "page.path", "equals": "/a"}, {"fact": "page.path", "in": ["/b"]}]}
    )
    assert gate_of(either, {}) == (Atom("page.path", "/a"), Atom("page.path", "/b"))
    open_ended = _cond(
        {"any": [{"fact": "page.path", "equals": "/a"}, {"fact": "session.pages", "gte": 2}]}
    )
    assert gate_of(open_ended, {}) is None
    assert gate_of(_cond({"not": {"fact": "page.path", "equals": "/a"}}), {}) is None
    segment = {"product": _cond({"fact": "page.path", "glob": "/product/*"})}
    assert gate_of(_cond({"segment": "product"}), segment) == (
        Atom("page.path", "/product/", prefix=True),
    )


def test_an_event_reaches_only_the_rules_whose_constant_tests_it_can_pass() -> None:
    def rule(rule_id: str, trigger: dict[str, Any], when: dict[str, Any] | None = None) -> Rule:
        raw: dict[str, Any] = {"id": rule_id, "trigger": trigger, "set": [{"name": "x"}]}
        if when is not None:
            raw["when"] = when
        return msgspec.convert(raw, Rule)

    def button(i: int) -> Rule:
        where = {"fact": "selector", "equals": f"#buy-{i}"}
        return rule(f"buy-{i}", {"event": {"type": "click", "where": where}})

    rules = RuleSet(
        [
            *(button(i) for i in range(5)),
            rule("any", {"event": {"type": "click"}}),
            rule("boots", {"event": {"type": "click"}}, {"fact": "page.path", "glob": "/boots/*"}),
        ]
    )
    click = {"type": "click", "url": f"{SHOP}/hats/1", "selector": "#a"}
    values = {"event.selector": "#a", "page.path": "/hats/1"}
    picked = rules.select(click, values.__getitem__, lambda: ())
    assert [r.id for r, _ in picked] == ["any"]
    values = {"event.selector": "#buy-3", "page.path": "/boots/9"}
    picked = rules.select(click, values.__getitem__, lambda: ())
    assert sorted(r.id for r, _ in picked) == ["any", "boots", "buy-3"]


def test_a_type_with_few_rules_is_tried_whole() -> None:
    where = {"fact": "selector", "equals": "#buy"}
    trigger = {"event": {"type": "click", "where": where}}
    rule = msgspec.convert({"id": "buy", "trigger": trigger, "set": [{"name": "x"}]}, Rule)
    click = {"type": "click", "url": f"{SHOP}/", "selector": "#a"}
    picked = RuleSet([rule]).select(click, {"event.selector": "#a"}.__getitem__, lambda: ())
    assert [r.id for r, _ in picked] == ["buy"]


def test_page_path_is_the_path_of_the_events_url_whatever_the_session_stored() -> None:
    from cuewire.rules.facts_view import FactView

    after_ingest = {"url": f"{SHOP}/cart?x=1", "path": "/cart"}
    same_page = {"type": "click", "url": f"{SHOP}/cart?x=1", "selector": "#a"}
    earlier_page = {"type": "click", "url": f"{SHOP}/product/1-boots", "selector": "#a"}
    assert FactView(after_ingest, {}, 0, same_page).get("page.path") == "/cart"
    assert FactView(after_ingest, {}, 0, earlier_page).get("page.path") == "/product/1-boots"
    assert FactView({"url": f"{SHOP}/a/b"}, {}, 0).get("page.path") == "/a/b"
