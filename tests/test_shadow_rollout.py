"""Shadow mode and staged rollout (docs/rules.md, "Shadow mode and rollout").

A rule in ``mode: shadow`` is evaluated and governed as if live, audited ``shadow_fired`` (or
``shadow_suppressed`` with governance's code), and does nothing else: no prompt in the tab, no
`set`, no webhook, and no count any live rule's governance reads. A rule with ``rollout: N%`` is live for
a deterministic share of visitors; the others' candidates are audited ``excluded`` /
``not_in_rollout``.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from playwright.async_api import expect

from cuewire import fields
from cuewire.cli import main
from cuewire.codes import Hold, Outcome
from cuewire.explain import explain
from cuewire.origin import Origin
from cuewire.rules.engine import Candidate
from cuewire.settings import Settings
from cuewire.store import RedisStore
from cuewire.webhooks import CHANNEL as WEBHOOKS
from support.browser import NewContext, Serve
from support.harness import Harness, write
from support.servers import WITH_CLUSTER, LiveServer, site_for
from support.visitor import Visitor
from support.waiting import eventually

pytest_plugins = ["support.browser"]

BACKENDS = WITH_CLUSTER  # a shadow or rollout decision is governed like a live one on every store

SITE = "test-site"
PAGE = "http://shop.test/product/boots"


def rules(tmp_path: Path, text: str) -> Path:
    write(tmp_path / "rules" / "rules.yaml", text)
    return tmp_path / "rules"


def in_rollout(site: str, rule: str, visitor: str, share: float) -> bool:
    """The assignment docs/rules.md documents, computed here on its own: the first 8 bytes of
    SHA-256("rollout\\0<site>\\0<rule>\\0<visitor>") as a fraction of 2**64, below the share."""
    digest = hashlib.sha256(f"rollout\0{site}\0{rule}\0{visitor}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


def outcomes(audit: list[dict[str, str]], rule: str) -> list[str]:
    return [r["outcome"] for r in audit if r["rule"] == rule]


SHADOW_AND_LIVE = """
rules:
  - id: new-offer
    mode: shadow
    priority: 10
    trigger: {event: {type: page_view}}
    show: {template: note, params: {headline: "Shadow offer"}}
    webhook: {url: "http://127.0.0.1:9/never"}
    set: [{name: offered}]
  - id: welcome
    trigger: {event: {type: page_view}}
    show: {template: note, params: {headline: "Welcome"}}
"""


async def test_a_shadow_rule_is_audited_would_have_fired_and_shows_nothing_in_the_tab(
    settings: Settings, tmp_path: Path
) -> None:
    """Over a real Socket.IO connection: the shadow rule outranks the live one, yet the tab
    gets the live rule's prompt only, and the shadow rule's `set` is not applied."""
    folder = rules(tmp_path, SHADOW_AND_LIVE)
    live_settings = replace(settings, rules_dir=folder, admin_password="shadow-pass")
    with LiveServer(live_settings, site_for) as server:
        store = server.services.store
        async with Visitor(server.url, visitor="v_shadow0001") as tab:
            await tab.send(tab.event("page_view", PAGE))
            prompt = await tab.wait_prompt()
            audit = await eventually(
                lambda: server.call(store.read_audit(SITE, 100)),
                lambda a: {r["rule"] for r in a} == {"new-offer", "welcome"},
                what="both rules audited",
            )
            await tab.barrier()  # whatever the server pushed before now has arrived
            assert [p["rule"] for p in tab.prompts] == ["welcome"]
            assert prompt["rule"] == "welcome"
            [shadow] = [r for r in audit if r["rule"] == "new-offer"]
            assert shadow["outcome"] == Outcome.SHADOW_FIRED
            assert (shadow["prompt"], shadow["code"]) == ("", "")
            assert outcomes(audit, "welcome") == [Outcome.FIRED]
            assert tab.info is not None
            facts = await server.call(store.session_facts(SITE, tab.info["session"]))
            assert fields.fact("offered") not in facts
            assert facts["showing_rule"] == "welcome"
            # no webhook job: one would wait in the outbox (its receiver never answers)
            depth = await server.call(server.services.outboxes[WEBHOOKS].depth())
            assert (depth.queued, depth.pending, depth.due, depth.dead) == (0, 0, 0, 0)
            assert depth.counts == {}
        # the QA report: the shadow rule's would-fire count beside the live rule's firings
        admin = httpx.BasicAuth(live_settings.admin_user, "shadow-pass")
        async with httpx.AsyncClient(base_url=server.url, auth=admin) as http:
            report = (await http.get("/qa/shadow.json", params={"site": SITE})).json()
        by_rule = {r["rule"]: r for r in report["rules"]}
        assert by_rule["new-offer"]["mode"] == "shadow"
        assert (by_rule["new-offer"]["shadow_fired"], by_rule["new-offer"]["fired"]) == (1, 0)
        assert (by_rule["welcome"]["shadow_fired"], by_rule["welcome"]["fired"]) == (0, 1)
        assert report["from"] == int(shadow["at"])  # the period starts at the first shadow record


CAPPED_SHADOW = """
policy: {max_prompts_per_session: 1}
rules:
  - id: new-offer
    mode: {mode}
    priority: 10
    trigger: {event: {type: page_view}}
    show: {template: note}
    limit: {per_session: 1, cooldown: 1h}
  - id: welcome
    trigger: {event: {type: custom, name: signed_up}}
    show: {template: note}
"""


async def test_a_shadow_firing_consumes_no_cap_or_cooldown_of_the_visitor(
    store: RedisStore, settings: Settings, tmp_path: Path
) -> None:
    """The shadow rule is governed by its own limits (a second page view: would have been
    held by its cooldown), yet the site cap of one prompt per session is still free for a live rule, and
    the same rule switched to live shows at once, its cooldown untouched."""
    folder = rules(tmp_path, CAPPED_SHADOW.replace("{mode}", "shadow"))
    h = Harness(store, replace(settings, rules_dir=folder))
    v = await h.visit("v_capped0001")
    await v.send("page_view", PAGE)
    await v.send("page_view", PAGE)
    audit = await h.audit()
    assert outcomes(audit, "new-offer") == [Outcome.SHADOW_FIRED, Outcome.SHADOW_SUPPRESSED]
    assert audit[-1]["code"] == Hold.COOLDOWN  # its own cooldown, checked before its cap
    assert h.shown == []
    # explain (the CLI, the QA view) reads the shadow rule's own counts, as governance does
    engine = h.runtime.engine()
    states = await explain(store, engine, SITE, v.origin.session, h.clock.now_ms())
    assert [s.state for s in states if s.rule == "new-offer"] == ["fired"]
    await v.send("custom", PAGE, name="signed_up")  # the site cap is not used up
    assert h.rules_shown == ["welcome"]

    # the same visitor, a new session, the rule now live: no cooldown from its shadow runs
    folder = rules(tmp_path, CAPPED_SHADOW.replace("{mode}", "live"))
    live = Harness(store, replace(settings, rules_dir=folder), clock=h.clock)
    w = await live.visit("v_capped0001")
    await w.send("page_view", PAGE)
    assert live.rules_shown == ["new-offer"]


ROLLOUT = """
rules:
  - id: staged
    rollout: 10%
    trigger: {event: {type: page_view}}
    show: {template: note}
"""


async def test_a_ten_percent_rollout_shows_to_exactly_the_assigned_visitors(
    store: RedisStore, settings: Settings, tmp_path: Path
) -> None:
    """2,000 visitors: the prompt reaches exactly those the documented assignment puts in
    the rollout (about 10%); every other one is audited excluded / not_in_rollout."""
    h = Harness(store, replace(settings, rules_dir=rules(tmp_path, ROLLOUT)))
    visitors = [f"v_roll{i:05d}" for i in range(2000)]
    expected = {v for v in visitors if in_rollout(SITE, "staged", v, 0.10)}

    async def one(visitor: str) -> None:
        # a batch of a session the store has not seen opens it (no connect needed)
        origin = Origin(SITE, visitor, "s_" + visitor, "tab1", "sid-" + visitor)
        event = {"type": "page_view", "ts": h.clock.now, "seq": 0, "url": PAGE}
        await h.pipeline.process(origin, [event], h.clock.now_ms())

    for start in range(0, len(visitors), 100):
        await asyncio.gather(*(one(v) for v in visitors[start : start + 100]))
    shown = {sid.removeprefix("sid-") for sid, _ in h.shown}
    assert shown == expected
    assert 160 <= len(expected) <= 240  # 10% of 2,000, give or take two standard errors
    audit = await store.read_audit(SITE, 10_000)
    excluded = [r for r in audit if r["outcome"] == Outcome.EXCLUDED]
    assert {r["visitor"] for r in excluded} == set(visitors) - expected
    assert len(excluded) == len(visitors) - len(expected)
    assert len(audit) == len(visitors)  # one record per visitor: fired or excluded
    assert {r["code"] for r in excluded} == {Hold.NOT_IN_ROLLOUT}
    fired = [r for r in audit if r["outcome"] == Outcome.FIRED]
    assert {r["visitor"] for r in fired} == expected


TIMERS = """
rules:
  - id: idle-shadow
    mode: shadow
    priority: 10  # would replace idle-staged's prompt whichever deadline fires first
    trigger: {inactivity: {for: 30s}}
    show: {template: note}
  - id: idle-staged
    rollout: 50%
    trigger: {inactivity: {for: 30s}}
    show: {template: note}
"""


async def test_deadline_rules_run_in_shadow_and_rollout_too(
    store: RedisStore, settings: Settings, tmp_path: Path
) -> None:
    """Deadlines (timers.py): a shadow deadline is audited when due and needs no tab; a
    staged one fires for a visitor in its rollout and is audited excluded for one out."""
    h = Harness(store, replace(settings, rules_dir=rules(tmp_path, TIMERS)))
    ids = [f"v_idle{i:04d}" for i in range(40)]
    inside = next(v for v in ids if in_rollout(SITE, "idle-staged", v, 0.5))
    outside = next(v for v in ids if not in_rollout(SITE, "idle-staged", v, 0.5))
    for visitor in (inside, outside):
        session = await h.visit(visitor)
        await session.send("page_view", PAGE)
    await h.pass_time(31)
    audit = await h.audit()
    by = {(r["rule"], r["visitor"]): r for r in audit}
    for visitor in (inside, outside):
        shadow = by[("idle-shadow", visitor)]
        assert (shadow["outcome"], shadow["cause"]) == (Outcome.SHADOW_FIRED, "inactivity")
        assert shadow["firing"]  # a deadline's firing, audited once
    assert by[("idle-staged", inside)]["outcome"] == Outcome.FIRED
    assert by[("idle-staged", outside)]["outcome"] == Outcome.EXCLUDED
    assert by[("idle-staged", outside)]["code"] == Hold.NOT_IN_ROLLOUT
    assert [(sid, p.rule) for sid, p in h.shown] == [(f"sid-{inside}", "idle-staged")]
    assert len(audit) == 4
    assert await store.next_due_ms() is None  # every deadline settled, none held for a tab


def test_check_points_at_an_invalid_rollout_or_mode(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`cuewire check`: a share over 100% and an unknown mode, each at its file:line:col."""
    templates = Path(__file__).parent / "fixtures" / "templates"
    for field, line in (("rollout: 150%", 5), ("mode: dark", 5)):
        folder = tmp_path / field.split(":")[0]
        text = (
            "rules:\n  - id: staged\n    trigger: {event: {type: page_view}}\n"
            f"    show: {{template: note}}\n    {field}\n"
        )
        write(folder / "rules.yaml", text)
        assert main(["check", str(folder), "--templates", str(templates)]) == 1
        err = capsys.readouterr().err
        assert f"rules.yaml:{line}:" in err and f"rules.0.{field.split(':')[0]}" in err, err
        assert "regex" not in err  # what a valid value looks like, not msgspec's pattern


@pytest.mark.asyncio(loop_scope="session")  # BROWSER_TEST: the browser's loop, Redis only
@pytest.mark.parametrize("backend_url", ["redis"], indirect=True)
async def test_the_metrics_page_shows_shadow_against_live(
    serve: Serve, new_context: NewContext, tmp_path: Path
) -> None:
    server = serve(rules_dir=rules(tmp_path, SHADOW_AND_LIVE), admin_password="shadow-pass")
    async with Visitor(server.url, visitor="v_page00001") as tab:
        await tab.send(tab.event("page_view", PAGE))
        await tab.wait_prompt()
    store = server.services.store
    await eventually(
        lambda: server.call(store.read_audit(SITE, 100)),
        lambda a: len(a) == 2,
        what="both rules audited",
    )
    context = await new_context(http_credentials={"username": "admin", "password": "shadow-pass"})
    page = await context.new_page()
    await page.goto(f"{server.url}/qa/metrics?site={SITE}")
    # mode, would fire, would be held, fired, holdout, suppressed, not in rollout, sessions
    shadow = page.locator('#shadow-rules tr[data-rule="new-offer"] td')
    await expect(shadow).to_have_text(["shadow", "1", "0", "0", "0", "0", "0", "1"])
    live = page.locator('#shadow-rules tr[data-rule="welcome"] td')
    await expect(live).to_have_text(["live", "0", "0", "1", "0", "0", "0", "1"])


async def test_a_shadow_deadline_claimed_twice_is_audited_and_counted_once(
    store: RedisStore, settings: Settings, tmp_path: Path
) -> None:
    """A deadline's firing runs again when its lease expires after a crash (timers.py): the
    shadow firing is granted again under its token, not counted again, and audited once."""
    h = Harness(store, replace(settings, rules_dir=rules(tmp_path, TIMERS)))
    visitor = "v_twice0001"
    session = await h.visit(visitor)
    await session.send("page_view", PAGE)
    h.clock.advance(31)
    claimed, _ = await store.claim_due(h.clock.now_ms(), 10)
    [(timer, due)] = [(t, d) for t, d in claimed if t.rule == "idle-shadow"]
    facts = await store.consume(timer)
    assert facts is not None
    candidate = h.runtime.engine().on_timer(timer, *facts, due, h.clock.now_ms())
    assert isinstance(candidate, Candidate)
    origin = replace(session.origin, tab="")
    for _ in range(2):  # the first run, then the run of a second claim of the same deadline
        await h.delivery.resolve(origin, [candidate])
    audit = [r for r in await h.audit() if r["rule"] == "idle-shadow"]
    assert [r["outcome"] for r in audit] == [Outcome.SHADOW_FIRED]
    facts_after = await store.session_facts(SITE, session.origin.session)
    assert facts_after[fields.fired("idle-shadow", shadow=True)] == "1"
    assert fields.fired("idle-shadow") not in facts_after
