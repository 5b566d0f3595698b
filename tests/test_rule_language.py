"""Each construct of the rule language (docs/rules.md), table-driven, on a fake clock."""

from __future__ import annotations

import textwrap
from dataclasses import replace
from pathlib import Path
from typing import Any

import msgspec
import pytest

from cuewire.rules.conditions import MISSING, Scope, evaluate
from cuewire.rules.facts_view import FactView
from cuewire.rules.model import Condition
from cuewire.settings import Settings
from cuewire.store import RedisStore
from support.harness import Harness, VisitorSession, write
from support.servers import WITH_CLUSTER

BACKENDS = WITH_CLUSTER  # the store tests run on a Redis Cluster too

SHOP = "http://shop.test"
BOOTS = f"{SHOP}/product/boots"
FIXTURES = Path(__file__).parent / "fixtures"


def cond(**raw: Any) -> Condition:
    return msgspec.convert(raw, Condition)


FACTS = {
    "page.path": "/product/boots",
    "session.pages": 3,
    "visitor.traits.plan": "pro",
    "event.props.tags": ["sale", "new"],
    "visitor.returning": True,
}

CONDITIONS = [
    ({"fact": "page.path", "glob": "/product/*"}, True),
    ({"fact": "page.path", "glob": "/blog/*"}, False),
    ({"fact": "page.path", "regex": r"^/product/[a-z]+$"}, True),
    ({"fact": "page.path", "contains": "boot"}, True),
    ({"fact": "session.pages", "gte": 3}, True),
    ({"fact": "session.pages", "gt": 3}, False),
    ({"fact": "session.pages", "lt": 4}, True),
    ({"fact": "session.pages", "lte": 2}, False),
    ({"fact": "session.pages", "equals": 3}, True),
    ({"fact": "session.pages", "in": [1, 2, 3]}, True),
    ({"fact": "visitor.traits.plan", "in": ["free", "team"]}, False),
    ({"fact": "event.props.tags", "contains": "sale"}, True),
    ({"fact": "visitor.returning", "equals": True}, True),
    ({"fact": "visitor.traits.nope", "exists": False}, True),
    ({"fact": "visitor.traits.plan", "exists": True}, True),
    ({"fact": "visitor.traits.nope", "equals": "x"}, False),
    ({"all": [{"fact": "session.pages", "gte": 1}, {"fact": "page.path", "glob": "/p*"}]}, True),
    ({"all": [{"fact": "session.pages", "gte": 1}, {"fact": "page.path", "glob": "/b*"}]}, False),
    ({"any": [{"fact": "session.pages", "gte": 9}, {"fact": "page.path", "glob": "/p*"}]}, True),
    ({"not": {"fact": "session.pages", "gte": 9}}, True),
    ({"not": {"any": [{"all": [{"not": {"fact": "session.pages", "equals": 3}}]}]}}, True),
]


@pytest.mark.parametrize(("raw", "expected"), CONDITIONS, ids=[str(c[0]) for c in CONDITIONS])
def test_conditions(raw: dict[str, Any], expected: bool) -> None:
    assert evaluate(cond(**raw), Scope(lambda name: FACTS.get(name, MISSING))) is expected


def test_segments_are_named_reusable_conditions() -> None:
    big = cond(fact="session.pages", gte=3)
    scope = Scope(lambda name: FACTS.get(name, MISSING), {"engaged": big})
    assert evaluate(cond(segment="engaged"), scope)
    assert evaluate(cond(**{"not": {"segment": "engaged"}}), scope) is False


@pytest.fixture
def make(store: RedisStore, settings: Settings, tmp_path: Path):  # type: ignore[no-untyped-def]
    """A harness over the rules written in the test (templates: tests/fixtures/templates)."""

    def build(rules_yaml: str) -> Harness:
        write(tmp_path / "rules" / "rules.yaml", textwrap.dedent(rules_yaml))
        return Harness(store, replace(settings, rules_dir=tmp_path / "rules"))

    return build


async def custom(v: VisitorSession, name: str, **props: Any) -> None:
    await v.send("custom", BOOTS, name=name, props=props)


SEQUENCE = """
rules:
  - id: browse-compare-leave
    trigger:
      sequence:
        steps:
          - {type: custom, name: product_view}
          - {type: custom, name: compare}
          - {type: exit_intent}
        within: 2m
    show: {template: note}
"""


@pytest.mark.parametrize(
    ("steps", "fires"),
    [
        ([("product_view", 0), ("compare", 10), ("exit", 10)], True),
        ([("compare", 0), ("product_view", 10), ("exit", 10)], False),  # out of order
        ([("product_view", 0), ("compare", 60), ("exit", 61)], False),  # past the window
        ([("product_view", 0), ("product_view", 100), ("compare", 10), ("exit", 10)], True),
        ([("product_view", 0), ("exit", 10)], False),  # a step missing
    ],
)
async def test_sequence_a_then_b_then_c_within_a_window(make, steps, fires) -> None:  # type: ignore[no-untyped-def]
    h = make(SEQUENCE)
    v = await h.visit()
    for step, wait in steps:
        await h.pass_time(wait)
        if step == "exit":
            await v.send("exit_intent", BOOTS)
        else:
            await custom(v, step)
    assert (h.rules_shown == ["browse-compare-leave"]) is fires


COUNT = """
rules:
  - id: category-fan
    trigger:
      count:
        of: {type: custom, name: product_view}
        at_least: 3
        within: 10m
        group_by: props.category
    show: {template: note}
"""


@pytest.mark.parametrize(
    ("views", "fires"),
    [
        ([("shoes", 0), ("shoes", 60), ("shoes", 60)], True),
        ([("shoes", 0), ("packs", 60), ("shoes", 60)], False),
        ([("shoes", 0), ("shoes", 400), ("shoes", 400)], False),  # the first slid out
        ([("shoes", 0), ("shoes", 400), ("shoes", 400), ("shoes", 1)], True),
    ],
)
async def test_count_in_a_sliding_window_grouped_by_a_property(make, views, fires) -> None:  # type: ignore[no-untyped-def]
    h = make(COUNT)
    v = await h.visit()
    for category, wait in views:
        await h.pass_time(wait)
        await custom(v, "product_view", category=category)
    assert (h.rules_shown == ["category-fan"]) is fires


async def test_facts_trigger_fires_when_the_condition_becomes_true(make) -> None:  # type: ignore[no-untyped-def]
    h = make("""
    rules:
      - id: deep-reader
        trigger:
          facts: {all: [{fact: page.scroll, gte: 75}, {fact: session.pages, gte: 2}]}
        show: {template: note}
    """)
    v = await h.visit()
    await v.send("page_view", f"{SHOP}/blog/a")
    await v.send("scroll", f"{SHOP}/blog/a", depth=90)
    assert h.rules_shown == []
    await v.send("page_view", f"{SHOP}/blog/b")
    await v.send("scroll", f"{SHOP}/blog/b", depth=50)
    assert h.rules_shown == []
    await v.send("scroll", f"{SHOP}/blog/b", depth=75)
    assert h.rules_shown == ["deep-reader"]


async def test_attention_beats_keep_a_reader_active_and_count_attentive_time(make) -> None:  # type: ignore[no-untyped-def]
    h = make("""
    rules:
      - id: still-there
        trigger: {inactivity: {for: 10s}}
        show: {template: note}
      - id: engaged
        trigger: {facts: {fact: page.attention_seconds, gte: 30s}}
        show: {template: note}
    policy: {one_prompt_at_a_time: false}
    """)
    v = await h.visit()
    await v.send("page_view", f"{SHOP}/blog/a")
    for beat in range(1, 6):  # 25 s of reading: a beat every 5 s, no other event
        await h.pass_time(5)
        await v.send("attention", f"{SHOP}/blog/a", active_ms=5000 * beat, reading=True)
    assert h.rules_shown == []  # 25 s without a click, but reading
    await v.send("page_view", f"{SHOP}/blog/b", spa=True)  # a new page starts at 0
    await v.send("attention", f"{SHOP}/blog/b", active_ms=5000)
    assert h.rules_shown == []
    await v.send("attention", f"{SHOP}/blog/b", active_ms=30_000)
    assert h.rules_shown == ["engaged"]
    await h.pass_time(11)  # stopped: no beat
    assert h.rules_shown == ["engaged", "still-there"]


async def test_active_time_counts_attention_beats_and_a_sure_tail_never_an_idle_or_hidden_tab(
    make,  # type: ignore[no-untyped-def]
) -> None:
    h = make("""
    rules:
      - id: attentive
        trigger: {dwell: {for: 20s, active: true}}
        show: {template: note}
    """)
    v = await h.visit()
    url = f"{SHOP}/blog/a"

    async def active_seconds() -> float:
        stored = await h.store.session_facts("test-site", v.origin.session)
        seconds: float = FactView(stored, {}, h.clock.now_ms()).get("page.active_seconds")
        return seconds

    await v.send("page_view", url)
    await h.pass_time(30)  # open and visible, nobody there
    assert await active_seconds() == 0 and h.rules_shown == []
    await v.send("attention", url, active_ms=5000, reading=True)
    await h.pass_time(4)
    assert await active_seconds() == 9  # the beat, then the time since
    await h.pass_time(60)  # the input before the beat keeps them attentive 10 s at least
    assert await active_seconds() == 15 and h.rules_shown == []
    await v.send("visibility", url, state="hidden", dwell_ms=90_000, active_ms=16_000)
    await h.pass_time(60)  # hidden: nothing added
    assert await active_seconds() == 16
    await v.send("visibility", url, state="visible", dwell_ms=90_000, active_ms=16_000)
    await h.pass_time(30)  # visible again, untouched
    assert await active_seconds() == 16 and h.rules_shown == []
    await v.send("attention", url, active_ms=20_000)  # the next beat re-arms the dwell rule
    await h.pass_time(0.1)
    assert h.rules_shown == ["attentive"]


async def test_cooldown_and_daily_cap_across_sessions(make) -> None:  # type: ignore[no-untyped-def]
    h = make("""
    rules:
      - id: exit
        trigger: {event: {type: exit_intent}}
        show: {template: note}
        limit: {per_session: 5, per_visitor_day: 2, cooldown: 10m}
    policy: {one_prompt_at_a_time: false}
    """)
    v = await h.visit()
    await v.send("exit_intent", BOOTS)
    await v.send("exit_intent", BOOTS)  # cooldown
    await h.pass_time(11 * 60)
    await v.send("exit_intent", BOOTS)
    await h.pass_time(11 * 60)
    await v.send("exit_intent", BOOTS)  # daily cap
    assert h.rules_shown == ["exit", "exit"]
    suppressed = [r for r in await h.audit() if r["outcome"] == "suppressed"]
    assert [r["code"] for r in suppressed] == ["cooldown", "cap_day"]
    assert [r["reason"] for r in suppressed] == ["cooldown", "capped: 2 per day"]


async def test_opt_out_and_snooze_are_honoured(make) -> None:  # type: ignore[no-untyped-def]
    h = make("""
    rules:
      - id: exit
        trigger: {event: {type: exit_intent}}
        show: {template: note}
        limit: {per_session: 0}
      - id: scroll
        trigger: {event: {type: scroll}}
        show: {template: note}
        limit: {per_session: 0}
    policy: {snooze: 1h, dismissals: null}
    """)
    v = await h.visit()
    await v.send("exit_intent", BOOTS)
    await v.send("prompt_optout", BOOTS, prompt=h.shown[-1][1].id, rule="exit")
    await v.send("scroll", BOOTS, depth=25)
    await v.send("prompt_snooze", BOOTS, prompt=h.shown[-1][1].id, rule="scroll")
    await v.send("exit_intent", BOOTS)
    await v.send("scroll", BOOTS, depth=50)
    assert h.rules_shown == ["exit", "scroll"]
    await h.pass_time(3601)
    await v.send("exit_intent", BOOTS)
    await v.send("scroll", BOOTS, depth=75)
    assert h.rules_shown == ["exit", "scroll", "scroll"]
    codes = {r["code"] for r in await h.audit() if r["outcome"] == "suppressed"}
    assert codes == {"opted_out", "snoozed"}


async def test_one_prompt_at_a_time_by_priority_and_queue(make) -> None:  # type: ignore[no-untyped-def]
    h = make("""
    rules:
      - id: low
        priority: 1
        trigger: {event: {type: exit_intent}}
        show: {template: note}
        on_conflict: queue
      - id: high
        priority: 9
        trigger: {event: {type: exit_intent}}
        show: {template: note}
      - id: dropped
        priority: 5
        trigger: {event: {type: exit_intent}}
        show: {template: note}
    """)
    v = await h.visit()
    await v.send("exit_intent", BOOTS)
    assert h.rules_shown == ["high"]
    await v.send("prompt_dismiss", BOOTS, prompt=h.shown[-1][1].id, rule="high")
    assert h.rules_shown == ["high", "low"]
    outcomes = {r["rule"]: r["outcome"] for r in await h.audit()}
    assert outcomes == {"high": "fired", "dropped": "suppressed", "low": "fired"}


async def test_a_higher_priority_prompt_replaces_the_one_on_screen(make) -> None:  # type: ignore[no-untyped-def]
    h = make("""
    rules:
      - id: welcome
        priority: 1
        trigger: {event: {type: page_view}}
        show: {template: note}
      - id: same
        priority: 1
        trigger: {event: {type: scroll}}
        show: {template: note}
      - id: offer
        priority: 9
        trigger: {event: {type: exit_intent}}
        show: {template: note}
    """)
    v = await h.visit()
    await v.send("page_view", BOOTS)
    await v.send("scroll", BOOTS, depth=25)  # equal priority: waits its turn
    await v.send("exit_intent", BOOTS)
    assert h.rules_shown == ["welcome", "offer"]
    welcome, offer = h.shown[0][1], h.shown[1][1]
    assert offer.replaces == welcome.id and welcome.replaces is None
    audit = await h.audit()
    replaced = [r for r in audit if r["outcome"] == "replaced"]
    assert [(r["rule"], r["prompt"], r["code"]) for r in replaced] == [
        ("welcome", welcome.id, "higher_priority")
    ]
    same = next(r for r in audit if r["rule"] == "same")
    assert (same["outcome"], same["code"]) == ("suppressed", "showing")
    assert (await h.store.session_facts("test-site", v.origin.session))["showing"] == offer.id


@pytest.mark.parametrize("close", ["prompt_dismiss", "prompt_expired"])
async def test_a_late_close_of_a_replaced_prompt_keeps_the_slot_of_the_one_on_screen(  # type: ignore[no-untyped-def]
    make, close: str
) -> None:
    h = make("""
    rules:
      - id: welcome
        priority: 1
        trigger: {event: {type: page_view}}
        show: {template: note}
      - id: offer
        priority: 9
        trigger: {event: {type: exit_intent}}
        show: {template: note}
      - id: later
        priority: 1
        trigger: {event: {type: scroll}}
        show: {template: note}
    """)
    v = await h.visit()
    await v.send("page_view", BOOTS)
    await v.send("exit_intent", BOOTS)
    welcome, offer = h.shown[0][1], h.shown[1][1]
    assert offer.replaces == welcome.id
    # the replaced prompt's close arrives after the replacement (sent before it was received)
    await v.send(close, BOOTS, prompt=welcome.id, rule="welcome")
    assert (await h.store.session_facts("test-site", v.origin.session))["showing"] == offer.id
    await v.send("scroll", BOOTS, depth=25)
    assert h.rules_shown == ["welcome", "offer"]  # the offer is still on screen: one at a time
    await v.send(close, BOOTS, prompt=offer.id, rule="offer")
    assert (await h.store.session_facts("test-site", v.origin.session))["showing"] == ""


async def test_a_prompt_that_expires_frees_the_slot_without_counting_as_dismissed(make) -> None:  # type: ignore[no-untyped-def]
    h = make("""
    rules:
      - id: first
        trigger: {event: {type: exit_intent}}
        show: {template: note}
        limit: {per_session: 0}
      - id: later
        trigger: {event: {type: scroll}}
        show: {template: note}
        limit: {per_session: 0}
    policy: {dismissals: {count: 1, pause: 1h}}
    """)
    v = await h.visit()
    await v.send("exit_intent", BOOTS)
    await v.send("scroll", BOOTS, depth=25)
    assert h.rules_shown == ["first"]  # one at a time
    await h.pass_time(5)
    await v.send("prompt_expired", BOOTS, prompt=h.shown[-1][1].id, rule="first")
    expired_at = str(h.clock.now)
    await h.pass_time(1)
    await v.send("scroll", BOOTS, depth=50)
    assert h.rules_shown == ["first", "later"]  # the slot is free, and no dismissal pause
    visitor = await h.store.visitor_facts("test-site", v.origin.visitor)
    assert visitor.get("dismissed", "0") == "0"
    session = await h.store.session_facts("test-site", v.origin.session)
    assert session["active_at"] != expired_at  # not the visitor acting (inactivity goes on)


async def test_a_prompt_names_what_it_must_not_cover(make) -> None:  # type: ignore[no-untyped-def]
    h = make("""
    rules:
      - id: help
        trigger: {event: {type: click}}
        show: {template: note, avoid: ["#buy"]}
    """)
    v = await h.visit()
    await v.send("click", BOOTS, selector="main > button.add", track='add"cart')
    [(_, prompt)] = h.shown
    assert prompt.avoid == ("#buy", "main > button.add", '[data-cw-track="add\\"cart"]')
    assert prompt.dismiss_after_ms == 0  # the note is a modal: it waits for the visitor


async def test_set_actions_let_rules_chain(make) -> None:  # type: ignore[no-untyped-def]
    h = make("""
    rules:
      - id: mark-at-risk
        trigger: {event: {type: idle}}
        set: [{name: at-risk, value: true}]
      - id: rescue
        trigger: {event: {type: exit_intent}}
        when: {fact: session.facts.at-risk, equals: true}
        show: {template: note}
    """)
    v = await h.visit()
    await v.send("exit_intent", BOOTS)
    assert h.rules_shown == []
    await v.send("idle", BOOTS, ms=30000)
    await v.send("exit_intent", BOOTS)
    assert h.rules_shown == ["rescue"]


async def test_holdout_records_would_have_shown_without_showing(make) -> None:  # type: ignore[no-untyped-def]
    h = make("""
    rules:
      - id: exit
        trigger: {event: {type: exit_intent}}
        show:
          template: note
          holdout: 0.5
          variants: [{id: a, params: {headline: A}}, {id: b, params: {headline: B}}]
    """)
    outcomes: dict[str, str] = {}
    for i in range(40):
        v = await h.visit(visitor=f"v_visitor{i:04d}")
        await v.send("exit_intent", BOOTS)
    records = await h.audit()
    outcomes = {r["visitor"]: r["outcome"] + ":" + r["variant"] for r in records}
    assert set(outcomes.values()) == {"fired:a", "fired:b", "holdout:holdout"}
    assert len(h.shown) == sum(1 for o in outcomes.values() if o.startswith("fired"))
    by_id = {p.id: p for _, p in h.shown}
    assert {p.variant for p in by_id.values()} == {"a", "b"}
    assert all(f">{p.variant.upper()}<" in p.html for p in by_id.values())


async def test_a_delayed_prompt_never_lands_on_a_page_it_does_not_target(make) -> None:  # type: ignore[no-untyped-def]
    h = make("""
    rules:
      - id: idle-on-product
        trigger: {inactivity: {for: 30s}}
        when: {fact: page.path, glob: "/product/*"}
        show: {template: note}
    """)
    v = await h.visit()
    await v.send("page_view", BOOTS)
    await h.pass_time(20)
    await v.send("page_view", f"{SHOP}/blog/a", spa=True)
    await h.pass_time(60)
    assert h.rules_shown == []


def test_rules_are_indexed_by_the_events_that_can_change_them() -> None:
    from cuewire.rules.index import Role, RuleSet
    from cuewire.rules.model import Rule

    def rule(rule_id: str, trigger: dict[str, Any]) -> Rule:
        return msgspec.convert({"id": rule_id, "trigger": trigger, "set": [{"name": "x"}]}, Rule)

    rules = RuleSet(
        [
            rule("deep", {"facts": {"fact": "page.scroll", "gte": 75}}),
            rule("fan", {"facts": {"fact": "session.custom.product_view", "gte": 5}}),
            rule("long", {"facts": {"fact": "session.seconds", "gte": 600}}),
            rule("cart", {"event": {"type": "custom", "name": "add_to_cart"}}),
        ]
    )
    assert [r.id for r in rules.on_every_event] == ["long"]  # time passes with every event
    keys = {
        key
        for key, entries in rules.by_type.items()
        for r, role in entries
        if r.id in ("deep", "fan") and role is Role.FACTS
    }
    assert keys == {"scroll", "page_view", "custom:product_view"}
    click = {"type": "click", "url": "u", "selector": "a"}
    assert rules.entries_for(click) == []
    view = {"type": "custom", "name": "product_view", "url": "u"}
    assert [r.id for r, _ in rules.entries_for(view)] == ["fan"]


DURATION_BOUNDS = [
    ("visitor.days_since_last_visit", {"lt": "24h"}, 1.0),
    ("visitor.days_since_last_visit", {"gte": "2 h"}, 2 / 24),
    ("visitor.days_since_last_visit", {"gte": "30d"}, 30.0),
    ("session.seconds", {"gt": "1.5h"}, 5400.0),
    ("visitor.since.add_to_cart", {"lte": "90s"}, 90.0),
    ("event.ms", {"gte": "2m"}, 120_000.0),
]


@pytest.mark.parametrize(
    ("fact", "bound", "value"), DURATION_BOUNDS, ids=[str(b[1]) for b in DURATION_BOUNDS]
)
def test_a_duration_compares_with_a_time_fact_in_its_unit(
    fact: str, bound: dict[str, str], value: float
) -> None:
    from cuewire.rules.conditions import describe
    from cuewire.rules.model import bound_value

    ((op, text),) = bound.items()
    parsed = cond(fact=fact, **bound)
    assert bound_value(fact, getattr(parsed, op)) == pytest.approx(value)
    assert describe(parsed) == f"{fact} {op} {text!r}"  # explain shows what was written
    at = {fact: value}
    edge = {"lt": False, "lte": True, "gt": False, "gte": True}[op]
    assert evaluate(parsed, Scope(lambda name: at.get(name, MISSING))) is edge


def test_a_duration_on_a_fact_that_is_not_a_time_is_an_error() -> None:
    with pytest.raises(msgspec.ValidationError, match="compares only with a time fact"):
        cond(fact="session.pages", gte="2h")


async def test_a_returning_visitor_within_24_hours_in_hours(make) -> None:  # type: ignore[no-untyped-def]
    h = make("""
    rules:
      - id: back-soon
        trigger: {event: {type: page_view}}
        when:
          all:
            - {fact: visitor.days_since_last_visit, lt: 24h}
            - {fact: visitor.days_since_last_visit, gte: 2 h}
        show: {template: note}
        limit: {per_session: 1}
    """)
    first = await h.visit()
    await first.send("page_view", BOOTS)
    await h.pass_time(3600)  # an hour away: too soon
    second = await h.visit(session=None)
    await second.send("page_view", BOOTS)
    await h.pass_time(3 * 3600)  # three hours after the last event: within a day
    third = await h.visit(session=None)
    await third.send("page_view", BOOTS)
    await h.pass_time(25 * 3600)  # more than a day
    fourth = await h.visit(session=None)
    await fourth.send("page_view", BOOTS)
    assert h.rules_shown == ["back-soon"]
    assert [r["session"] for r in await h.audit() if r["outcome"] == "fired"] == [
        third.origin.session
    ]


NEVER_SIGNED_UP = """
rules:
  - id: sign-up-nudge
    trigger: {event: {type: page_view}}
    when:
      all:
        - {fact: session.pages, gte: 3}
        - {fact: visitor.clicks.signup, equals: 0}
    show: {template: note}
"""


async def test_never_clicked_sign_up_needs_no_helper_rule(make) -> None:  # type: ignore[no-untyped-def]
    h = make(NEVER_SIGNED_UP)
    clicker = await h.visit("v_clicker01")
    await clicker.send("page_view", f"{SHOP}/")
    await clicker.send("click", f"{SHOP}/", selector="a.btn", text="Sign up", track="signup")
    await clicker.send("page_view", f"{SHOP}/blog/a")
    await clicker.send("page_view", f"{SHOP}/blog/b")
    browser = await h.visit("v_browser01")
    await browser.send("page_view", f"{SHOP}/")
    await browser.send("click", f"{SHOP}/", selector="a.more", text="Read more", track="more")
    await browser.send("page_view", f"{SHOP}/blog/a")
    await browser.send("page_view", f"{SHOP}/blog/b")
    fired = [r["visitor"] for r in await h.audit() if r["outcome"] == "fired"]
    assert fired == ["v_browser01"]
    # only the names rules test are counted: the browser's track values add no fields
    session = await h.store.session_facts("test-site", browser.origin.session)
    assert [k for k in session if k.startswith("clk:")] == []
    visitor = await h.store.visitor_facts("test-site", "v_clicker01")
    assert visitor["clk:signup"] == "1"


async def test_clicks_by_selector_wake_a_facts_trigger(make) -> None:  # type: ignore[no-untyped-def]
    h = make("""
    rules:
      - id: size-help
        trigger:
          facts: {fact: "session.clicks.button#size-guide", gte: 2}
        show: {template: note}
    """)
    v = await h.visit()
    await v.send("page_view", BOOTS)
    await v.send("click", BOOTS, selector="button#size-guide", text="Size guide")
    assert h.rules_shown == []
    await v.send("click", BOOTS, selector="button#size-guide", text="Size guide")
    assert h.rules_shown == ["size-help"]


@pytest.mark.parametrize(
    ("text", "ms"), [("24h", 86_400_000), ("2 h", 7_200_000), ("1.5h", 5_400_000), ("90s", 90_000)]
)
def test_durations_take_hours_everywhere(text: str, ms: int) -> None:
    from cuewire.rules.model import Limit, Policy, duration_ms

    assert duration_ms(text) == ms
    assert duration_ms(msgspec.convert({"cooldown": text}, Limit).cooldown or 0) == ms
    assert duration_ms(msgspec.convert({"snooze": text}, Policy).snooze) == ms
