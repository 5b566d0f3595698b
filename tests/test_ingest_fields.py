"""ingest.lua returns only the fields the engine reads (RuleSet.fields), and nothing it reads
is missing.

A visit through the seed scenarios (rules/examples) builds real session and visitor hashes;
then the engine reads them through recording mappings: every field it looks up must be in
what ingest returns, with the same value, and its decisions on the returned facts must equal
its decisions on the whole hashes. The reply size for a session with 50 custom event names
and 50 traits is printed (``pytest -s``).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from cuewire.rules.engine import Engine
from cuewire.settings import Settings
from cuewire.store import RedisStore
from cuewire.store.base import Action, Cancel, Put, Schedule
from support.harness import Harness, VisitorSession
from support.servers import WITH_CLUSTER

BACKENDS = WITH_CLUSTER  # the store tests run on a Redis Cluster too

ROOT = Path(__file__).parent.parent
SHOP = "http://shop.test"
BOOTS = f"{SHOP}/product/boots"


class Recording(dict[str, str]):
    """A dict that remembers the keys looked up in it with ``get`` (how FactView and the
    engine read facts; reads by prefix, and the engine's private copy of the batch's facts,
    are covered by comparing decisions)."""

    def __init__(self, facts: dict[str, str], seen: set[str]) -> None:
        super().__init__(facts)
        self.seen = seen

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        self.seen.add(key)
        return super().get(key, default)


async def a_busy_visit(v: VisitorSession) -> None:
    await v.send("identify", BOOTS, user_id="u-1", traits={"plan": "pro", "name": "Ann"})
    for slug in ("boots", "socks", "hat"):
        url = f"{SHOP}/product/{slug}"
        await v.send("page_view", url)
        props = {"product_id": slug, "category": "shoes", "name": slug.title()}
        await v.send("custom", url, name="product_view", props=props)
        await v.send("scroll", url, depth=50)
        await v.send("click", url, selector="#buy", track="buy")
    await v.send("custom", BOOTS, name="add_to_cart", props={"product_id": "boots"})
    await v.send("visibility", BOOTS, state="hidden", dwell_ms=4000)
    await v.send("visibility", BOOTS, state="visible", dwell_ms=4000)
    await v.send("exit_intent", BOOTS)


async def returned(h: Harness, v: VisitorSession) -> tuple[dict[str, str], dict[str, str]]:
    """What ingest.lua returns for this session under the live rule set (an empty batch)."""
    o = v.origin
    fields = h.runtime.engine().rules.fields_json
    got = await h.store.ingest(replace(o, sid=""), [], [], h.clock.now_ms(), fields)
    return dict(got.session), dict(got.visitor)


def shape(action: Action) -> tuple[str, str]:
    """An action without its random parts (timer tokens)."""
    if isinstance(action, Schedule | Cancel):
        return type(action).__name__, action.timer.rule
    if isinstance(action, Put):
        return "put", action.field
    return type(action).__name__, action.rule


def decisions(engine: Engine, s: dict[str, str], vf: dict[str, str], now: int) -> list[Any]:
    out: list[Any] = []
    for rule in engine.rules.rules.values():
        view = engine.view(s, vf, now)
        out.append((rule.id, engine.eligible(rule, view), engine.why_not(rule, view)))
    for event in (
        {"type": "page_view", "url": BOOTS, "seq": 99},
        {"type": "custom", "name": "add_to_cart", "url": BOOTS, "seq": 99, "props": {}},
        {"type": "prompt_dismiss", "url": BOOTS, "seq": 99, "prompt": "p", "rule": "x"},
        {"type": "scroll", "url": BOOTS, "seq": 99, "depth": 75},
    ):
        d = engine.on_events("test-site", "s", "v", [event], s, vf, now)
        out.append((sorted(c.rule.id for c in d.candidates), sorted(map(shape, d.actions))))
    return out


async def test_every_fact_the_engine_reads_in_the_seed_scenarios_is_returned(
    store: RedisStore, settings: Settings
) -> None:
    h = Harness(
        store,
        replace(settings, rules_dir=ROOT / "rules" / "examples", templates_dir=ROOT / "templates"),
    )
    v = await h.visit()
    await a_busy_visit(v)
    await h.pass_time(90)
    await v.send("page_view", f"{SHOP}/cart")
    o = v.origin
    full_s = await h.store.session_facts(o.site, o.session)
    full_v = await h.store.visitor_facts(o.site, o.visitor)
    part_s, part_v = await returned(h, v)
    assert set(part_s) < set(full_s) and set(part_v) < set(full_v)  # less, and nothing made up
    assert all(full_s[k] == part_s[k] for k in part_s)

    engine = h.runtime.engine()
    now = h.clock.now_ms()
    seen_s: set[str] = set()
    seen_v: set[str] = set()
    on_full = decisions(engine, Recording(full_s, seen_s), Recording(full_v, seen_v), now)
    read_s = {k for k in seen_s if k in full_s}
    read_v = {k for k in seen_v if k in full_v}
    assert read_s <= set(part_s), read_s - set(part_s)
    assert read_v <= set(part_v), read_v - set(part_v)
    assert decisions(engine, part_s, part_v, now) == on_full


async def test_reply_size_with_50_custom_events_and_50_traits(
    store: RedisStore, settings: Settings
) -> None:
    h = Harness(
        store,
        replace(settings, rules_dir=ROOT / "rules" / "examples", templates_dir=ROOT / "templates"),
    )
    v = await h.visit()
    await v.send("identify", BOOTS, user_id="u-1", traits={f"t{i}": "x" * 20 for i in range(50)})
    for i in range(50):
        await v.send("custom", BOOTS, name=f"event_{i}", props={"a": i, "b": "y" * 20})
    o = v.origin
    full = await h.store.ingest(replace(o, sid=""), [], [], 0)
    part_s, part_v = await returned(h, v)

    def size(facts: dict[str, str]) -> int:
        return len(json.dumps(facts))

    before = size(full.session) + size(full.visitor)
    after = size(part_s) + size(part_v)
    print(
        f"\ningest reply, 50 custom event names + 50 traits: whole hashes "
        f"{len(full.session) + len(full.visitor)} fields / {before} bytes; "
        f"the rule set's fields {len(part_s) + len(part_v)} fields / {after} bytes"
    )
    assert len(part_s) + len(part_v) < (len(full.session) + len(full.visitor)) / 3
