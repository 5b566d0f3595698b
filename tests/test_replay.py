"""Record and replay (cuewire.replay, ``cuewire record`` / ``cuewire replay``): sessions of a live
server, recorded from Redis and replayed on a simulated clock, fire the same rules the same
number of times, for the same reasons; a changed rule set shows what it would change.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from cuewire.cli import main
from cuewire.errors import ConfigError
from cuewire.replay import Recording, replay
from cuewire.settings import Settings
from support.harness import write
from support.paths import FIXTURES
from support.servers import LiveServer, deadlines_settled, site_for
from support.visitor import Visitor

SHOP = "http://shop.test"
RULES = """
policy: {max_prompts_per_session: 2}
rules:
  - id: exit-product
    priority: 30
    trigger: {event: {type: exit_intent}}
    when: {fact: page.path, glob: "/product/*"}
    show: {template: note, params: {headline: "Leaving so soon?"}}
  - id: hesitate
    priority: 20
    trigger:
      absence:
        after: {type: page_view}
        missing: {type: custom, name: add_to_cart}
        within: 1s
        scope: page
    when: {fact: page.path, glob: "/product/*"}
    show: {template: note, params: {headline: "Need help?"}}
  - id: cart-gone
    priority: 40
    trigger:
      absence:
        after: {type: custom, name: add_to_cart}
        missing: {type: custom, name: checkout_started}
        within: 1s
    show: {template: note, params: {headline: "Your cart"}}
  - id: idle-nudge
    priority: 10
    trigger: {inactivity: {for: 1500ms}}
    show: {template: note, params: {headline: "Still there?"}}
"""

Script = Callable[[Visitor], Awaitable[None]]


async def buys_quickly(v: Visitor) -> None:
    await v.send(v.event("page_view", f"{SHOP}/product/a"))
    await asyncio.sleep(0.2)
    await v.send(v.event("custom", f"{SHOP}/product/a", name="add_to_cart"))
    await asyncio.sleep(0.2)
    await v.send(v.event("custom", f"{SHOP}/checkout", name="checkout_started"))


async def hesitates(v: Visitor) -> None:
    await v.send(v.event("page_view", f"{SHOP}/product/b"))


async def leaves(v: Visitor) -> None:
    await v.send(v.event("page_view", f"{SHOP}/product/c"))
    await asyncio.sleep(0.2)
    await v.send(v.event("exit_intent", f"{SHOP}/product/c"))


async def abandons_cart(v: Visitor) -> None:
    await v.send(v.event("page_view", f"{SHOP}/blog/x"))
    await asyncio.sleep(0.2)
    await v.send(v.event("custom", f"{SHOP}/blog/x", name="add_to_cart"))


async def closes_the_prompt(v: Visitor) -> None:
    url = f"{SHOP}/product/e"
    await v.send(v.event("page_view", url))
    prompt = await v.wait_prompt(3)
    fields = {"prompt": prompt["id"], "rule": prompt["rule"]}
    await v.send(v.event("prompt_shown", url, **fields), v.event("prompt_dismiss", url, **fields))


SCRIPTS: list[Script] = [buys_quickly, hesitates, leaves, abandons_cart, closes_the_prompt]


async def cli(*args: str) -> int:
    """``cuewire ARGS`` (the CLI runs its own event loop: in a thread)."""
    return await asyncio.to_thread(main, list(args))


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    return write(tmp_path / "rules" / "rules.yaml", RULES).parent


@pytest.mark.parametrize("backend_url", ["redis"], indirect=True)
async def test_replay_of_a_recorded_live_run_fires_the_same_rules(
    settings: Settings,
    rules: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with LiveServer(settings.__class__(**{**vars(settings), "rules_dir": rules}), site_for) as live:
        visitors = [
            await Visitor(live.url, visitor=f"v_replay{i:04d}", tab="t1").connect()
            for i in range(len(SCRIPTS))
        ]
        await asyncio.gather(*(script(v) for script, v in zip(SCRIPTS, visitors, strict=True)))
        await deadlines_settled(live)  # every pending deadline fell due (or was cancelled)
        for v in visitors:
            await v.sio.disconnect()
        live_audit = await live.call(live.services.store.read_audit("test-site", 1000))

    monkeypatch.setenv("CUEWIRE_KEY_PREFIX", settings.key_prefix)
    out = tmp_path / "run.jsonl"
    assert (
        await cli(
            "record",
            "--redis-url",
            str(settings.redis_url),
            "--site",
            "test-site",
            "--out",
            str(out),
        )
        == 0
    )
    assert "recorded " in capsys.readouterr().out
    recording = Recording.load(out)
    assert {b.visitor for b in recording.batches} == {v.auth["visitor"] for v in visitors}
    assert len(recording.audit) == len(live_audit)

    code = await cli(
        "replay",
        str(out),
        "--rules",
        str(rules),
        "--templates",
        str(FIXTURES / "templates"),
        "--json",
    )
    assert code == 0
    replayed = json.loads(capsys.readouterr().out)

    def per_rule(records: list[dict[str, str]]) -> dict[str, dict[str, int]]:
        counts: dict[str, Counter[str]] = {}
        for r in records:
            counts.setdefault(r["rule"], Counter())[r["outcome"]] += 1
        return {rule: dict(c) for rule, c in counts.items()}

    assert {rule: r["replay"] for rule, r in replayed["rules"].items()} == per_rule(live_audit)
    assert {rule: r["live"] for rule, r in replayed["rules"].items()} == per_rule(live_audit)
    assert replayed["sessions"] == len(SCRIPTS)
    # the same firings visitor by visitor, with the same reasons for what was suppressed
    result = await replay(recording, rules, FIXTURES / "templates")

    def firings(records: list[dict[str, str]]) -> Counter[tuple[str, str, str, str]]:
        return Counter((r["visitor"], r["rule"], r["outcome"], r["reason"]) for r in records)

    assert firings(result.audit) == firings(live_audit)
    assert {rule for _, rule, outcome, _ in firings(live_audit) if outcome == "fired"} == {
        "exit-product",
        "hesitate",
        "cart-gone",
        "idle-nudge",
    }

    # A longer hesitation window: the replay tells what would change before it goes live.
    slower = write(
        tmp_path / "slower" / "rules.yaml",
        RULES.replace("within: 1s\n        scope", "within: 5s\n        scope"),
    ).parent
    templates = str(FIXTURES / "templates")
    assert await cli("replay", str(out), "--rules", str(slower), "--templates", templates) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].startswith(f"replayed {len(SCRIPTS)} sessions, ")
    assert table[1].split() == [
        "rule",
        "fired",
        "holdout",
        "suppressed",
        "queued",
        "live",
        "fired",
        "live",
        "holdout",
        "live",
        "suppressed",
        "live",
        "queued",
    ]
    # With a 5 s window the hesitation prompt comes after the idle nudge (1.5 s) and, with a
    # higher priority, replaces it instead of being held back: the counts move.
    rows = [line.split() for line in table[2:] if line and not line.startswith(" ")]
    assert any(row[1:5] != row[5:9] for row in rows), table
    print("\n".join(table))


def test_a_recording_with_a_broken_line_names_the_line() -> None:
    good = '{"kind":"batch","site":"s","id":"1-0","at":1,"session":"s1","visitor":"v","events":[]}'
    with pytest.raises(ConfigError, match=r"run\.jsonl:2: not JSON"):
        Recording.read([good, "{oops"], "run.jsonl")
    with pytest.raises(ConfigError, match=r"run\.jsonl:1: at: Expected `int`"):
        Recording.read([good.replace('"at":1', '"at":"soon"')], "run.jsonl")
    with pytest.raises(ConfigError, match="not a batch or an audit record"):
        Recording.read(['{"kind":"other"}'], "run.jsonl")
