"""Explain everything (explain.py): for a session and a rule, where the trigger is (sequence
step, count in the window, pending deadline and its due time), each `when` condition with
the fact's value, caps and cooldown with their counters, snooze and opt-out, and the last
drop with its code: all read from the store, on a real Redis and the embedded store."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from cuewire.explain import explain_session
from cuewire.settings import Settings
from cuewire.store import RedisStore
from support.harness import Harness, VisitorSession, write
from support.paths import FIXTURES

SHOP = "http://shop.test"
RULES = """
policy: {snooze: 1h, max_prompts_per_session: 5}
rules:
  - id: compare
    trigger:
      sequence:
        steps: [{type: page_view}, {type: custom, name: add_to_cart}, {type: custom, name: checkout}]
        within: 10m
    set: [{name: compared}]

  - id: browse-3
    trigger:
      count: {of: {type: custom, name: product_view}, at_least: 3, within: 5m, group_by: props.category}
    set: [{name: browsing}]

  - id: help-product
    priority: 5
    trigger:
      absence:
        after: {type: page_view}
        missing: {type: custom, name: add_to_cart}
        within: 10s
    when:
      all:
        - {fact: page.path, glob: "/product/*"}
        - {fact: session.pages, gte: 2}
    show: {template: note, params: {headline: "Need help?"}}
    limit: {per_session: 2, per_visitor_day: 3, cooldown: 1m}
"""


@pytest.fixture
def h(store: RedisStore, settings: Settings, tmp_path: Path) -> Harness:
    rules = write(tmp_path / "rules" / "rules.yaml", RULES).parent
    templates = tmp_path / "templates"
    shutil.copytree(FIXTURES / "templates", templates)
    return Harness(store, replace(settings, rules_dir=rules, templates_dir=templates))


async def explain_rule(h: Harness, v: VisitorSession, rule: str) -> dict[str, Any]:
    body = await explain_session(
        h.store, h.runtime.engine(), "test-site", v.origin.session, h.clock.now_ms(), rule
    )
    assert body is not None
    [one] = body["rules"]
    assert one["rule"] == rule
    return one


async def test_sequence_step_reached_and_its_expiry(h: Harness) -> None:
    v = await h.visit()
    started = h.clock.now_ms()
    await v.send("page_view", f"{SHOP}/product/boots")
    await v.send("custom", f"{SHOP}/product/boots", name="add_to_cart")
    seq = (await explain_rule(h, v, "compare"))["trigger"]["sequence"]
    assert seq["steps"] == ["page_view", "custom add_to_cart", "custom checkout"]
    assert seq["reached"] == 2
    assert seq["expires_ms"] == started + 600_000
    await h.pass_time(601)  # the window closed: back to the start
    seq = (await explain_rule(h, v, "compare"))["trigger"]["sequence"]
    assert seq["reached"] == 0 and seq["expires_ms"] is None


async def test_count_so_far_in_the_window_per_group(h: Harness) -> None:
    v = await h.visit()
    for category in ("shoes", "shoes", "hats"):
        await v.send("custom", f"{SHOP}/p", name="product_view", props={"category": category})
        await h.pass_time(1)
    count = (await explain_rule(h, v, "browse-3"))["trigger"]["count"]
    assert count["at_least"] == 3 and count["within_ms"] == 300_000
    assert {g: c["count"] for g, c in count["groups"].items()} == {"shoes": 2, "hats": 1}
    await h.pass_time(298)  # the first two fell out of the window
    count = (await explain_rule(h, v, "browse-3"))["trigger"]["count"]
    assert {g: c["count"] for g, c in count["groups"].items()} == {"shoes": 0, "hats": 1}


async def test_pending_deadline_with_due_time_and_each_condition_with_its_value(
    h: Harness,
) -> None:
    v = await h.visit()
    await v.send("page_view", f"{SHOP}/")
    started = h.clock.now_ms()
    await v.send("page_view", f"{SHOP}/product/boots")
    rule = await explain_rule(h, v, "help-product")
    assert rule["state"] == "pending"
    assert rule["trigger"]["due_ms"] == started + 10_000
    leaves = {c["fact"]: c for c in rule["when"]["children"]}
    assert rule["when"]["kind"] == "all" and rule["when"]["ok"] is True
    assert leaves["page.path"]["value"] == "/product/boots" and leaves["page.path"]["ok"]
    assert leaves["session.pages"]["value"] == 2 and leaves["session.pages"]["ok"]
    assert rule["watches_page"] is True
    await v.send("page_view", f"{SHOP}/cart")
    rule = await explain_rule(h, v, "help-product")
    leaves = {c["fact"]: c for c in rule["when"]["children"]}
    assert leaves["page.path"] == {
        "ok": False,
        "kind": "fact",
        "fact": "page.path",
        "test": "page.path glob '/product/*'",
        "value": "/cart",
        "missing": False,
    }
    assert rule["watches_page"] is False


async def test_caps_and_cooldown_with_their_counters(h: Harness) -> None:
    v = await h.visit()
    await v.send("page_view", f"{SHOP}/")
    await v.send("page_view", f"{SHOP}/product/boots")
    await h.pass_time(11)
    assert h.rules_shown == ["help-product"]
    gov = (await explain_rule(h, v, "help-product"))["governance"]
    assert gov["session"] == {"count": 1, "cap": 2}
    assert gov["day"] == {"count": 1, "cap": 3}
    assert gov["shown_total"] == 1
    assert gov["cooldown"]["until_ms"] == gov["cooldown"]["last_fired_ms"] + 60_000
    # govern.lua's order: the cooldown answers before the prompt on screen
    assert gov["holds"] == "cooldown"
    await h.pass_time(61)
    assert (await explain_rule(h, v, "help-product"))["governance"]["holds"] == "showing"
    prompt = h.shown[-1][1]
    await v.send("prompt_dismiss", f"{SHOP}/product/boots", prompt=prompt.id, rule=prompt.rule)
    assert (await explain_rule(h, v, "help-product"))["governance"]["holds"] == ""


async def test_snooze_and_opt_out_state(h: Harness) -> None:
    v = await h.visit()
    at = h.clock.now_ms()
    await v.send("prompt_snooze", f"{SHOP}/", prompt="p_1", rule="help-product")
    gov = (await explain_rule(h, v, "help-product"))["governance"]
    assert gov["snooze"] == {"at_ms": at, "until_ms": at + 3_600_000, "active": True}
    assert gov["opted_out"] is False and gov["holds"] == "snoozed"
    await v.send("prompt_optout", f"{SHOP}/", prompt="p_1", rule="help-product")
    gov = (await explain_rule(h, v, "help-product"))["governance"]
    assert gov["opted_out"] is True and gov["holds"] == "opted_out"
    await h.pass_time(3601)
    gov = (await explain_rule(h, v, "help-product"))["governance"]
    assert gov["snooze"]["active"] is False and gov["holds"] == "opted_out"


async def test_last_drop_with_its_reason_code(h: Harness) -> None:
    v = await h.visit()
    await v.send("page_view", f"{SHOP}/")
    await v.send("page_view", f"{SHOP}/product/boots")
    assert (await explain_rule(h, v, "help-product"))["last_drop"] is None
    # the tab is gone when the deadline falls due: held for a tab, then dropped `no_tab`
    await h.store.release_socket("test-site", v.origin.session, v.origin.sid, v.origin.visitor)
    await h.pass_time(11)
    held = await explain_rule(h, v, "help-product")
    assert held["trigger"]["held_for_tab_since"] is not None and held["last_drop"] is None
    await h.pass_time(60)
    rule = await explain_rule(h, v, "help-product")
    assert rule["last_drop"] is not None
    assert (rule["last_drop"]["outcome"], rule["last_drop"]["code"]) == ("dropped", "no_tab")
    assert rule["last"]["code"] == "no_tab"
    assert h.rules_shown == []


async def test_a_gone_session_has_no_explanation(h: Harness) -> None:
    engine = h.runtime.engine()
    assert await explain_session(h.store, engine, "test-site", "s_none", 0) is None
