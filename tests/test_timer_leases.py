"""Deadlines under faults: claimed with a lease, claimed again when a process dies before it
acks, fired once, and every one that does not fire is audited with a code."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest

from cuewire.cli import main
from cuewire.errors import StoreError
from cuewire.protocol import Prompt
from cuewire.settings import Settings
from cuewire.store import RedisStore
from cuewire.store.base import Timer
from support.harness import Harness, write
from support.servers import WITH_CLUSTER

BACKENDS = WITH_CLUSTER  # the store tests run on a Redis Cluster too

PRODUCT = "http://shop.test/product/boots"
RULE = "hesitate-product"

RULES = """
rules:
  - id: nudge
    trigger:
      absence: {after: {type: custom, name: start}, missing: {type: custom, name: stop}, within: 1s}
    when: {fact: session.pages, lt: 2}
    show: {template: note, params: {headline: Nudge}}
  - id: after-the-session
    trigger:
      absence: {after: {type: custom, name: go}, missing: {type: custom, name: stop}, within: 40m}
    show: {template: note, params: {headline: Late}}
  - id: remind
    trigger:
      absence: {after: {type: custom, name: remind}, missing: {type: custom, name: stop}, within: 1s}
    set: [{name: reminded}]
    max_late: 5s
"""


class AckFailsOnce(RedisStore):
    """The real store, with a fault injected: the first ack of a fired timer fails, as if the
    process died right after firing it."""

    def __init__(self, store: RedisStore) -> None:
        super().__init__(store.client, store.settings)
        self.failures = 1

    async def ack_timer(self, timer: Timer, clear_hold: bool = False) -> None:
        if self.failures:
            self.failures -= 1
            raise StoreError("injected: the process died before it acked the timer")
        await super().ack_timer(timer, clear_hold)


@pytest.fixture
def custom(settings: Settings, tmp_path: Path) -> Settings:
    write(tmp_path / "rules" / "rules.yaml", RULES)
    return replace(settings, rules_dir=tmp_path / "rules")


async def drops(h: Harness) -> list[tuple[str, str]]:
    return [(r["rule"], r["code"]) for r in await h.audit() if r["outcome"] == "dropped"]


async def fired(h: Harness) -> list[str]:
    return [r["rule"] for r in await h.audit() if r["outcome"] == "fired"]


async def test_a_deadline_claimed_by_a_process_that_died_fires_when_its_lease_expires(
    store: RedisStore, settings: Settings
) -> None:
    h = Harness(store, settings)
    v = await h.visit()
    await v.send("page_view", PRODUCT)
    h.clock.advance(1)
    claimed, _ = await store.claim_due(h.clock.now_ms(), 10)  # claimed, then the process died
    assert [t.rule for t, _ in claimed] == [RULE]
    await h.timers.tick()
    assert h.shown == []  # still leased to the dead process
    await h.pass_time(settings.timer_lease_s)
    assert h.rules_shown == [RULE]
    assert await fired(h) == [RULE]
    assert await store.next_due_ms() is None  # acked: nothing left, no lease


async def test_a_firing_claimed_again_after_a_crash_is_claimed_and_audited_once(
    store: RedisStore, settings: Settings
) -> None:
    h = Harness(AckFailsOnce(store), settings)
    v = await h.visit()
    await v.send("page_view", PRODUCT)
    await h.pass_time(1)  # fired, but the ack failed: the lease stays
    await h.pass_time(settings.timer_lease_s)  # claimed again and fired again
    assert h.rules_shown == [RULE, RULE]
    assert len({p.id for _, p in h.shown}) == 1  # the same prompt id: the tab shows it once
    assert await fired(h) == [RULE]
    facts = await store.session_facts("test-site", v.origin.session)
    assert facts[f"fired:{RULE}"] == "1"  # governance counted it once
    assert await store.next_due_ms() is None


async def test_a_timer_member_that_cannot_be_decoded_does_not_stop_the_timers(
    store: RedisStore, settings: Settings
) -> None:
    h = Harness(store, settings)
    v = await h.visit(site="odd|site")  # a "|" in a site key once broke the member format
    await v.send("page_view", PRODUCT)
    await store.client.zadd(store.keys.timers(), {"not a timer": h.clock.now_ms()})
    await h.pass_time(1)
    assert h.rules_shown == [RULE]
    assert await store.next_due_ms() is None  # the bad member is gone, not retried forever


async def test_a_deadline_due_long_ago_is_dropped_as_too_late(
    store: RedisStore, settings: Settings
) -> None:
    h = Harness(store, settings)
    v = await h.visit()
    await v.send("page_view", PRODUCT)
    h.clock.advance(600)  # an outage: nothing ran for ten minutes
    await h.timers.tick()
    assert h.shown == []
    assert await drops(h) == [(RULE, "too_late")]
    facts = await store.session_facts("test-site", v.origin.session)
    assert f"t:{RULE}" not in facts  # the rule can arm again


async def test_a_rule_sets_its_own_max_late(store: RedisStore, custom: Settings) -> None:
    h = Harness(store, custom)
    v = await h.visit()
    await v.send("custom", name="remind")
    h.clock.advance(1 + 6)
    await h.timers.tick()
    assert await drops(h) == [("remind", "too_late")]


async def test_a_deadline_no_longer_eligible_is_dropped_with_its_reason(
    store: RedisStore, custom: Settings
) -> None:
    h = Harness(store, custom)
    v = await h.visit()
    await v.send("custom", name="start")
    await v.send("page_view", "http://shop.test/a")
    await v.send("page_view", "http://shop.test/b")  # session.pages is 2 now
    await h.pass_time(1)
    assert h.shown == []
    assert await drops(h) == [("nudge", "not_eligible")]
    [record] = [r for r in await h.audit() if r["outcome"] == "dropped"]
    assert "session.pages" in record["reason"]


async def test_a_deadline_after_the_session_ended_is_dropped(
    store: RedisStore, custom: Settings
) -> None:
    h = Harness(store, custom)
    v = await h.visit()
    await v.send("custom", name="go")
    await h.pass_time(40 * 60)
    assert h.shown == []
    assert await drops(h) == [("after-the-session", "session_ended")]


async def test_a_due_prompt_no_tab_came_back_for_is_dropped_and_audited(
    store: RedisStore, settings: Settings
) -> None:
    h = Harness(store, settings)
    v = await h.visit()
    await v.send("page_view", PRODUCT)
    await store.release_socket("test-site", v.origin.session, v.origin.sid)
    await h.pass_time(60)
    assert h.shown == []
    assert await drops(h) == [(RULE, "no_tab")]
    facts = await store.session_facts("test-site", v.origin.session)
    assert f"hold:{RULE}" not in facts


class TabNeverAcks(Harness):
    """A tab whose socket takes the prompt but never acks it (its process died)."""

    async def _emit(self, sid: str, prompt: Prompt, confirm: bool) -> bool:
        self.shown.append((sid, prompt))
        return False


async def test_a_prompt_no_tab_acked_is_dropped_under_its_granted_firing_and_frees_the_slot(
    store: RedisStore, settings: Settings
) -> None:
    h = TabNeverAcks(store, settings)
    v = await h.visit()
    await v.send("page_view", PRODUCT)
    await h.pass_time(60)  # pushed, never acked, pushed again while held, then given up
    assert h.rules_shown and set(h.rules_shown) == {RULE}
    [granted] = {p.id for _, p in h.shown}  # every push was of the one firing
    assert await drops(h) == [(RULE, "no_tab")]
    [dropped] = [r for r in await h.audit() if r["outcome"] == "dropped"]
    assert f"p_{dropped['firing']}" == granted  # audited under the firing granted the claim
    facts = await store.session_facts("test-site", v.origin.session)
    assert facts.get("showing", "") == "" and f"hold:{RULE}" not in facts


async def test_a_hold_left_behind_does_not_cut_a_later_wait_for_a_tab_short(
    store: RedisStore, settings: Settings
) -> None:
    h = Harness(store, settings)
    v = await h.visit()
    await v.send("page_view", PRODUCT)
    await store.release_socket("test-site", v.origin.session, v.origin.sid)
    await h.pass_time(2)  # due, no tab: waiting for one
    await v.send("custom", PRODUCT, name="add_to_cart")  # cancels the wait
    await h.pass_time(60)
    await v.send("page_view", PRODUCT)  # a new deadline, and again no tab when it is due
    await store.release_socket("test-site", v.origin.session, v.origin.sid)
    await h.pass_time(10)
    await v.send("visibility", PRODUCT, state="visible", dwell_ms=900)  # the tab is back
    await h.pass_time(0.5)
    assert h.rules_shown == [RULE]


async def test_a_cancelled_deadline_is_not_audited_as_dropped(
    store: RedisStore, settings: Settings
) -> None:
    h = Harness(store, settings)
    v = await h.visit()
    await v.send("page_view", PRODUCT)
    h.clock.advance(0.5)
    await v.send("custom", PRODUCT, name="add_to_cart")
    await h.pass_time(60)
    assert await h.audit() == []


async def test_a_rule_that_shows_nothing_fires_without_a_tab(
    store: RedisStore, custom: Settings
) -> None:
    h = Harness(store, custom)
    v = await h.visit()
    await v.send("custom", name="remind")
    await store.release_socket("test-site", v.origin.session, v.origin.sid)
    await h.pass_time(1)
    assert await fired(h) == ["remind"]
    facts = await store.session_facts("test-site", v.origin.session)
    assert facts["x:reminded"] == "true"


class SlowConsume(RedisStore):
    """The real store, slowed down: reading a timer's facts takes 0.3 s."""

    def __init__(self, store: RedisStore) -> None:
        super().__init__(store.client, store.settings)
        self.firing = asyncio.Event()

    async def consume(self, timer: Timer) -> tuple[dict[str, str], dict[str, str]] | None:
        self.firing.set()
        await asyncio.sleep(0.3)
        return await super().consume(timer)


async def test_shutdown_lets_the_firing_in_flight_finish(
    store: RedisStore, settings: Settings
) -> None:
    slow = SlowConsume(store)
    h = Harness(slow, settings)
    v = await h.visit()
    await v.send("page_view", PRODUCT)
    h.clock.advance(1)
    task = asyncio.create_task(h.timers.run())
    await slow.firing.wait()  # claimed, being fired
    await h.timers.drain(timeout_s=5)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert h.rules_shown == [RULE]
    assert await store.next_due_ms() is None  # acked before the loop stopped


@pytest.mark.parametrize("backend_url", ["redis"], indirect=True)
async def test_cuewire_audit_lists_drops_with_their_code(
    store: RedisStore,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    h = Harness(store, settings)
    v = await h.visit()
    await v.send("page_view", PRODUCT)
    h.clock.advance(600)
    await h.timers.tick()
    monkeypatch.setenv("CUEWIRE_KEY_PREFIX", settings.key_prefix)
    args = ["audit", "--redis-url", str(settings.redis_url), "--site", "test-site"]
    assert await asyncio.to_thread(main, [*args, "--outcome", "dropped"]) == 0
    [_header, line] = capsys.readouterr().out.splitlines()
    assert " dropped " in line and RULE in line and "too_late: due " in line
