"""`cuewire audit --missed` (missed.py): recorded sessions replayed through the current rules;
the firings they expect that the audit stream does not hold, per session, with a code."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from pathlib import Path

import pytest

from cuewire.cli import main
from cuewire.codes import Missed
from cuewire.missed import compare, find_missed
from cuewire.settings import Settings
from cuewire.store import RedisStore
from support.harness import Harness, write

SITE = "test-site"
SHOP = "http://shop.test"

# The rules that ran live. `promo` only on sale pages; no rule for add_to_cart.
BEFORE = """
rules:
  - id: welcome
    trigger: {event: {type: page_view}}
    show: {template: note}
  - id: promo
    trigger: {event: {type: page_view}}
    when: {fact: page.path, glob: "/sale/*"}
    set: [{name: promo}]
  - id: daily
    trigger: {event: {type: page_view}}
    set: [{name: daily}]
    limit: {per_visitor_day: 1}
"""
# The current rules: `promo` on every page (changed), `cart-nudge` added.
AFTER = (
    BEFORE.replace('glob: "/sale/*"', 'glob: "/*"')
    + """
  - id: cart-nudge
    trigger: {event: {type: custom, name: add_to_cart}}
    set: [{name: nudged}]
"""
)


def rules(tmp_path: Path, name: str, text: str) -> Path:
    write(tmp_path / name / "rules.yaml", text)
    return tmp_path / name


async def live_run(h: Harness) -> dict[str, str]:
    """Four sessions under BEFORE; the first is older than the recording that is audited."""
    sessions = {}
    for name, visitor, pages in (
        ("older", "v_returning01", ["/sale/boots"]),  # daily fires: the visitor's one today
        ("capped", "v_returning01", ["/product/boots"]),  # daily capped for the day
        ("carted", "v_carting001", ["/sale/socks"]),
        ("complete", "v_complete01", ["/sale/hats"]),
    ):
        session = await h.visit(visitor)
        sessions[name] = session.origin.session
        for path in pages:
            await session.send("page_view", SHOP + path)
        if name == "carted":
            await session.send("custom", SHOP + "/sale/socks", name="add_to_cart")
        h.clock.advance(60)
    return sessions


async def test_missed_lists_the_firings_the_current_rules_expect_with_a_reason_each(
    store: RedisStore, settings: Settings, tmp_path: Path
) -> None:
    h = Harness(store, replace(settings, rules_dir=rules(tmp_path, "before", BEFORE)))
    sessions = await live_run(h)
    current = replace(settings, rules_dir=rules(tmp_path, "after", AFTER))

    # the latest 4 batches: every session but the oldest one
    report = await find_missed(store, SITE, current, max_batches=4)

    assert (report.sessions, report.batches) == (3, 4)
    found = {s.session: {(m.rule, m.code) for m in s.missed} for s in report.found}
    assert found == {
        # the day's cap was used in a session the recording does not hold: the recorded
        # suppression says so; promo now fires on every page, and its records are older
        sessions["capped"]: {("daily", Missed.SUPPRESSED), ("promo", Missed.RULE_CHANGED)},
        # a rule added since: no record of it anywhere
        sessions["carted"]: {("cart-nudge", Missed.RULE_NOT_IN_AUDIT)},
    }  # "complete" fired all it should: not listed
    [capped] = [s for s in report.found if s.session == sessions["capped"]]
    daily = next(m for m in capped.missed if m.rule == "daily")
    assert "cap_day" in daily.detail and daily.outcome == "fired"
    assert capped.visitor == "v_returning01"
    # 3 welcome, 3 daily, 3 promo and 1 cart-nudge firings expected; 3 of them missing
    assert (report.expected, report.missing) == (10, 3)


async def test_sessions_whose_firings_are_all_audited_list_nothing(
    store: RedisStore, settings: Settings, tmp_path: Path
) -> None:
    folder = rules(tmp_path, "before", BEFORE)
    h = Harness(store, replace(settings, rules_dir=folder))
    await live_run(h)
    report = await find_missed(store, SITE, replace(settings, rules_dir=folder))
    assert report.found == []
    assert report.expected == 10  # 4 welcome, 3 promo, 3 daily (the 4th capped, as live)


# the CLI reads a server's store; the embedded one lives inside its server's process
@pytest.mark.parametrize("backend_url", ["redis"], indirect=True)
async def test_the_cli_prints_the_missed_firings_as_text_and_json(
    store: RedisStore,
    settings: Settings,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert settings.redis_url is not None
    h = Harness(store, replace(settings, rules_dir=rules(tmp_path, "before", BEFORE)))
    sessions = await live_run(h)
    monkeypatch.setenv("CUEWIRE_KEY_PREFIX", settings.key_prefix)
    args = ["audit", "--missed", "--site", SITE, "--redis-url", settings.redis_url]
    args += ["--rules", str(rules(tmp_path, "after", AFTER))]
    args += ["--templates", str(settings.templates_dir)]

    assert await cli([*args, "--json"]) == 1  # something is missing
    report = json.loads(capsys.readouterr().out)
    missed = {
        (s["session"], m["rule"], m["code"]) for s in report["by_session"] for m in s["missed"]
    }
    assert (sessions["carted"], "cart-nudge", "rule_not_in_audit") in missed
    assert (sessions["capped"], "promo", "rule_changed") in missed
    assert await cli(args) == 1
    text = capsys.readouterr().out
    assert f"session {sessions['carted']} (visitor v_carting001)" in text
    assert "cart-nudge: fired (event)  rule_not_in_audit" in text


async def cli(args: list[str]) -> int:
    """The CLI runs an event loop of its own: in a thread of its own."""
    return await asyncio.to_thread(main, args)


def firing(session: str, rule: str, outcome: str = "fired", **more: str) -> dict[str, str]:
    """An audit record as record.lua writes it (the fields compare reads)."""
    return {"session": session, "rule": rule, "outcome": outcome, "visitor": "v_x0000001",
            "at": "1764000000000", "cause": "event", **more}  # fmt: skip


@pytest.mark.parametrize(
    ("recorded", "code"),
    [
        ([firing("s1", "r", "dropped", code="no_tab")], Missed.DROPPED),
        ([firing("s1", "r", "queued", code="showing")], Missed.QUEUED),
        ([firing("s1", "r", "excluded", code="not_in_rollout")], Missed.EXCLUDED),
        ([firing("s1", "r", "shadow_fired")], Missed.SHADOW),
        ([firing("s2", "r", rule_digest="d1")], Missed.NO_RECORD),  # same digest elsewhere
        ([firing("s2", "r", rule_digest="d0")], Missed.RULE_CHANGED),
        ([firing("s2", "r")], Missed.NO_RECORD),  # no digest recorded: a change cannot be told
        ([], Missed.RULE_NOT_IN_AUDIT),
    ],
)
def test_each_reason_comes_from_what_the_recording_holds(
    recorded: list[dict[str, str]], code: Missed
) -> None:
    """The replay fired rule ``r`` (digest d1 now) once in session s1; live recorded only
    ``recorded``."""
    [found] = compare([firing("s1", "r")], recorded, {}, {"r": "d1"})
    assert [m.code for m in found.missed] == [code]


def test_a_second_firing_is_missed_when_live_holds_one() -> None:
    """Firings are matched one for one: the replay fired twice, live once."""
    replayed = [firing("s1", "r"), firing("s1", "r", at="1764000060000")]
    [found] = compare(replayed, [firing("s1", "r", "holdout")], {}, {})
    assert [(m.at, m.code) for m in found.missed] == [(1764000060000, Missed.NO_RECORD)]
