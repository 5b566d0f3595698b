"""A firing batch decided ahead takes one store round trip: its prompt is rendered before the
call from the facts the process predicts, and the call that asks governance also writes what
the answer leaves: the rule's facts, the audit record with its counts and the webhook job
(fold.py, store/fold.py, fold.lua). It must leave exactly what the two-call path leaves
(delivery.deliver after the call), which a batch the process does not know the facts of
still takes; firings that cannot be written ahead (a prompt replaced, the holdout arm, a rule
in shadow mode, any firing on a Redis Cluster) take that path too."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from cuewire import fields
from cuewire.clock import day_of
from cuewire.origin import Origin
from cuewire.protocol import Prompt
from cuewire.settings import Settings
from cuewire.store import RedisStore
from cuewire.webhooks import CHANNEL
from support.counting import CountingStore
from support.harness import Harness, write
from support.paths import FIXTURES
from support.servers import WITH_CLUSTER

BACKENDS = WITH_CLUSTER  # the store tests run on a Redis Cluster too

SITE = "test-site"
PRODUCT = "http://shop.test/product/boots"

# a template that reads every kind of fact templates see (FactView.template_context)
PROBE = """{#---
kind: modal
description: Reads traits, the latest custom event's props, pages and the page.
---#}
<div class="probe">{{ params.get("headline", "") }} {{ visitor.traits.get("name", "?") }}
{{ session.last.get("viewed", {}).get("sku", "?") }} {{ session.pages }} {{ session.path }}
{{ visitor.returning }} {{ visitor.sessions }}</div>
"""

COMMON = """
rules:
  - id: exit-offer
    priority: 20
    trigger: {event: {type: exit_intent}}
    show: {template: probe, params: {headline: Wait}}
    set: [{name: offered}, {name: saw_offer, scope: visitor, value: 2}]
    webhook: {url: "http://127.0.0.1:9/offer"}
  - id: exit-later
    priority: 10
    on_conflict: queue
    trigger: {event: {type: exit_intent}}
    show: {template: note}
  - id: exit-hook
    priority: 5
    trigger: {event: {type: exit_intent}}
    webhook: {url: "http://127.0.0.1:9/hook"}
"""

# fields whose values name the session, the tab or the prompt, or the time they were set
VOLATILE = {"id", "at", "session", "visitor", "prompt", "sid", "started", "showing"}


class Watching(Harness):
    """A harness whose tabs see how many audit records there were when a prompt came; a tab
    gone (``gone``) takes no prompt (the push answers False)."""

    gone = False

    def __post_init__(self) -> None:
        super().__post_init__()
        self.audited_at_push: list[int] = []

    async def _emit(self, sid: str, prompt: Prompt, confirm: bool) -> bool:
        self.audited_at_push.append(len(await self.store.read_audit(SITE, 1000)))
        return not self.gone and await super()._emit(sid, prompt, confirm)


class Shop:
    """One harness on the counting store, with rules ``rules`` (YAML) and the probe template."""

    def __init__(
        self,
        store: RedisStore,
        settings: Settings,
        tmp: Path,
        rules: str,
        extra: dict[str, str] | None = None,
    ) -> None:
        templates = tmp / "templates"
        for name, text in {"probe": PROBE, **(extra or {})}.items():
            write(templates / f"{name}.html", text)
        write(templates / "note.html", (FIXTURES / "templates" / "note.html").read_text())
        write(tmp / "rules" / "rules.yaml", rules)
        settings = replace(settings, rules_dir=tmp / "rules", templates_dir=templates)
        self.counting = CountingStore(store)
        self.h = Watching(self.counting, settings)
        self.seqs: dict[str, int] = {}

    async def visit(self, visitor: str) -> Origin:
        opened = await self.counting.open_session(SITE, visitor, None, self.h.clock.now_ms())
        return Origin(SITE, visitor, opened.session, "tab1", "sid-" + visitor)

    async def send(self, origin: Origin, kind: str, ahead: bool = True, **body: Any) -> list[str]:
        """One batch of one event; the store calls it took. ``ahead=False``: the process
        forgets the session's facts first, so the batch takes the two-call path."""
        if not ahead:
            self.h.pipeline.forget(origin.site, origin.session)
        seq = self.seqs[origin.visitor] = self.seqs.get(origin.visitor, 0) + 1
        event = {"type": kind, "ts": self.h.clock.now, "seq": seq, "url": PRODUCT, **body}
        self.counting.took()
        await self.h.pipeline.process(origin, [event], self.h.clock.now_ms())
        return self.counting.took()

    async def browse(self, origin: Origin) -> None:
        """What the visitor does before the firing: its facts then known to the process."""
        await self.send(origin, "page_view")
        await self.send(origin, "identify", user_id="u1", traits={"name": "Ada"})
        await self.send(origin, "custom", name="viewed", props={"sku": "b-42"})

    async def records(self, origin: Origin) -> list[dict[str, str]]:
        """The session's audit records, without what names the session or its time."""
        audit = await self.h.store.read_audit(SITE, 1000)
        return [_kept(r) for r in audit if r["session"] == origin.session]

    async def facts(self, origin: Origin) -> tuple[dict[str, str], dict[str, str]]:
        store = self.counting
        session = await store.session_facts(SITE, origin.session, origin.visitor)
        visitor = await store.visitor_facts(SITE, origin.visitor)
        return _kept(session, times=True), _kept(visitor, times=True)

    async def counters(self) -> dict[str, int]:
        day = day_of(self.h.clock.now_ms())
        return (await self.counting.counters(SITE, [day])).get(day, {})

    async def jobs(self, origin: Origin) -> list[dict[str, Any]]:
        """The webhook jobs queued for the session, without their ids and times."""
        k = self.counting.keys
        entries = await self.counting.client.xrange(k.outbox(CHANNEL, "stream"))
        out = []
        for _, entry in entries:
            data = json.loads(entry["j"] if "j" in entry else entry[b"j"])["data"]
            payload = data["payload"]
            if payload["session"] == origin.session:
                out.append({**data, "payload": _kept(payload)})
        return out

    def prompts(self, origin: Origin) -> list[tuple[str, str, bool]]:
        """The prompts pushed to the session's tab: rule, HTML, whether it replaces one."""
        return [(p.rule, p.html, bool(p.replaces)) for sid, p in self.h.shown if sid == origin.sid]


def _kept(fields: dict[str, Any], times: bool = False) -> dict[str, Any]:
    kept = {f: v for f, v in fields.items() if f not in VOLATILE and f != "latency_ms"}
    if times:  # hash fields holding a time or a token: compared by presence
        return {
            f: v if not f.startswith(("queued:", "fired_at:", "last_")) else "set"
            for f, v in kept.items()
            if f not in ("last_seen", "first_seen", "active_at", "page_started")
        }
    return kept


def _added(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {f: n - before.get(f, 0) for f, n in after.items() if n != before.get(f, 0)}


async def _both(
    shop: Shop, steps: list[tuple[str, dict[str, Any]]]
) -> tuple[list[list[str]], list[list[str]], Origin, Origin, dict[str, int], dict[str, int]]:
    """Run ``steps`` (firing batches) after the same browsing for two visitors: decided
    ahead, and on the two-call path. Their calls, origins and what each added to the
    counters."""
    ahead, fallback = await shop.visit("v_ahead"), await shop.visit("v_after")
    took_ahead, took_after = [], []
    before = await shop.counters()
    await shop.browse(ahead)
    for kind, body in steps:
        took_ahead.append(await shop.send(ahead, kind, **body))
    middle = await shop.counters()
    await shop.browse(fallback)
    for kind, body in steps:
        took_after.append(await shop.send(fallback, kind, ahead=False, **body))
    end = await shop.counters()
    return took_ahead, took_after, ahead, fallback, _added(before, middle), _added(middle, end)


async def _same_outcome(shop: Shop, ahead: Origin, fallback: Origin) -> None:
    """Both sessions hold the same records, facts, webhook jobs and prompts."""
    assert await shop.records(ahead) == await shop.records(fallback)
    assert await shop.facts(ahead) == await shop.facts(fallback)
    assert await shop.jobs(ahead) == await shop.jobs(fallback)
    assert shop.prompts(ahead) == shop.prompts(fallback)


async def test_a_firing_batch_decided_ahead_takes_one_call_and_leaves_what_two_calls_leave(
    store: RedisStore, settings: Settings, tmp_path: Path
) -> None:
    shop = Shop(store, settings, tmp_path, COMMON)
    # the first exit fires the offer (shown, sets facts, calls its webhook), queues the lower
    # show behind it and calls the plain webhook; the second is refused for each (a scroll
    # between: governance wrote facts the process does not know, it learns them)
    exit_intent: tuple[str, dict[str, Any]] = ("exit_intent", {})
    steps = [exit_intent, ("scroll", {"depth": 10}), exit_intent]
    took_ahead, took_after, ahead, fallback, counted, counted_after = await _both(shop, steps)
    if not store.keys.cluster:
        assert took_ahead == [["ingest"], ["ingest"], ["ingest"]]
    else:  # the audit stream is in another slot: written by a call of its own
        assert took_ahead == [["ingest", "record"], ["ingest"], ["ingest", "record"]]
    firing = ["ingest", "resolve", "record"]
    assert took_after == [firing, ["ingest"], firing]
    records = await shop.records(ahead)
    assert [(r["rule"], r["outcome"], r["code"]) for r in records] == [
        ("exit-offer", "fired", ""),
        ("exit-later", "queued", "lower_priority"),
        ("exit-hook", "fired", ""),
        ("exit-offer", "suppressed", records[3]["code"]),
        ("exit-later", "queued", "showing"),
        ("exit-hook", "suppressed", "cap_session"),
    ]
    assert records[1]["reason"] == "lower priority than exit-offer"
    assert records[3]["code"] in ("showing", "cap_session")
    await _same_outcome(shop, ahead, fallback)
    session, visitor = await shop.facts(ahead)
    assert session[fields.fact("offered")] == "true" and visitor[fields.fact("saw_offer")] == "2"
    assert session[fields.queued("exit-later")] == "set"
    assert [job["url"] for job in await shop.jobs(ahead)] == [
        "http://127.0.0.1:9/offer",
        "http://127.0.0.1:9/hook",
    ]
    assert counted == counted_after
    assert counted["exit-offer||fired"] == 1
    assert counted["exit-hook||suppressed:cap_session"] == 1
    # the prompt was rendered ahead from the predicted facts: traits and props included
    [(rule, html, replaces)] = shop.prompts(ahead)
    assert rule == "exit-offer" and not replaces
    assert "Wait Ada" in html and "b-42" in html and "/product/boots" in html


REPLACES = """
rules:
  - id: low-note
    priority: 1
    trigger: {event: {type: custom, name: viewed}}
    show: {template: note}
  - id: exit-offer
    priority: 20
    trigger: {event: {type: exit_intent}}
    show: {template: probe, params: {headline: Wait}}
"""


async def test_a_show_that_replaces_the_prompt_on_screen_is_written_after_the_call(
    store: RedisStore, settings: Settings, tmp_path: Path
) -> None:
    """A grant that replaces a prompt is not written ahead (its prompt names the one it
    replaces, and the replaced one is audited too): the two-call path writes it."""
    shop = Shop(store, settings, tmp_path, REPLACES)
    # the low note fired while browsing; a scroll lets the process learn the facts again
    steps: list[tuple[str, dict[str, Any]]] = [("scroll", {"depth": 10}), ("exit_intent", {})]
    took_ahead, _, ahead, fallback, counted, counted_after = await _both(shop, steps)
    assert took_ahead == [["ingest"], ["ingest", "record"]]
    records = await shop.records(ahead)
    assert [(r["rule"], r["outcome"]) for r in records] == [
        ("low-note", "fired"),
        ("low-note", "replaced"),
        ("exit-offer", "fired"),
    ]
    await _same_outcome(shop, ahead, fallback)
    assert counted == counted_after
    [_, (rule, _, replaces)] = shop.prompts(ahead)
    assert rule == "exit-offer" and replaces


STAGED = """
rules:
  - id: exit-shadow
    priority: 30
    mode: shadow
    trigger: {event: {type: exit_intent}}
    show: {template: note}
  - id: exit-held
    priority: 20
    trigger: {event: {type: exit_intent}}
    show: {template: probe, holdout: 0.99, params: {headline: Wait}}
"""


async def test_shadow_and_holdout_firings_are_written_after_the_call(
    store: RedisStore, settings: Settings, tmp_path: Path
) -> None:
    shop = Shop(store, settings, tmp_path, STAGED)
    steps: list[tuple[str, dict[str, Any]]] = [("exit_intent", {})]
    took_ahead, _, ahead, fallback, counted, counted_after = await _both(shop, steps)
    assert took_ahead == [["ingest", "record"]]
    records = await shop.records(ahead)
    assert [(r["rule"], r["outcome"]) for r in records] == [
        ("exit-shadow", "shadow_fired"),
        ("exit-held", "holdout"),
    ]
    await _same_outcome(shop, ahead, fallback)
    assert counted == counted_after
    assert shop.prompts(ahead) == []


FAILING = """{#---
kind: modal
description: Takes the name trait for a number; renders until a visitor has a name.
---#}
<div>{{ visitor.traits.get("name", 1) + 1 }}</div>
"""


async def test_a_template_that_fails_ahead_is_audited_after_the_call(
    store: RedisStore, settings: Settings, tmp_path: Path
) -> None:
    """A prompt that does not render from the predicted facts is not written ahead: the
    two-call path renders it from the whole hashes, and audits the failure."""
    rules = REPLACES.replace("name: viewed", "name: never").replace("probe", "failing")
    shop = Shop(store, settings, tmp_path, rules, {"failing": FAILING})
    steps: list[tuple[str, dict[str, Any]]] = [("exit_intent", {})]
    took_ahead, _, ahead, fallback, counted, counted_after = await _both(shop, steps)
    assert took_ahead == [["ingest", "record"]]
    records = await shop.records(ahead)
    assert [(r["rule"], r["outcome"], r["code"]) for r in records] == [
        ("exit-offer", "suppressed", "render_failed")
    ]
    await _same_outcome(shop, ahead, fallback)
    assert counted == counted_after and shop.prompts(ahead) == []


async def test_the_record_is_written_with_the_claim_before_the_prompt_is_pushed(
    store: RedisStore, settings: Settings, tmp_path: Path
) -> None:
    """On one Redis the firing's record is in the audit stream when its prompt is pushed (the
    claim and the record are one script); a tab gone by then keeps the record and takes no
    prompt. On a cluster the prompt goes first and the record after it, as before."""
    shop = Shop(store, settings, tmp_path, REPLACES.replace("name: viewed", "name: never"))
    for visitor, gone in (("v_there", False), ("v_gone", True)):
        origin = await shop.visit(visitor)
        await shop.browse(origin)
        shop.h.gone = gone
        before = len(await shop.h.store.read_audit(SITE, 1000))
        await shop.send(origin, "exit_intent")
        at_push = shop.h.audited_at_push[-1] - before
        records = [(r["rule"], r["outcome"]) for r in await shop.records(origin)]
        if not store.keys.cluster:
            assert at_push == 1 and records == [("exit-offer", "fired")]
        else:  # pushed first; a prompt the tab did not take is not audited (claim alone)
            assert at_push == 0 and records == ([] if gone else [("exit-offer", "fired")])
    assert shop.h.rules_shown == ["exit-offer"]  # the tab that was there, alone
