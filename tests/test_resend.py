"""A batch's effects happen once: a batch whose rule actions failed to apply is decided again
when the client resends it, and facts are never counted twice. No RedisError leaves the store.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import pytest

from cuewire.errors import StoreError
from cuewire.facts import changes_for
from cuewire.origin import Origin
from cuewire.settings import Settings
from cuewire.store import RedisStore, open_store
from cuewire.store.base import Action, Commit, FiringRequest, Put, Resolved, Timer
from support.harness import Harness
from support.servers import WITH_CLUSTER, free_port

BACKENDS = WITH_CLUSTER  # the store tests run on a Redis Cluster too

PRODUCT = "http://shop.test/product/boots"


class CommitFailsOnce(RedisStore):
    """The real store, with a fault injected: the first commit of rule actions fails."""

    def __init__(self, store: RedisStore) -> None:
        super().__init__(store.client, store.settings)
        self.failures = 1

    async def commit(self, origin: Origin, seqs: list[int], actions: list[Action]) -> bool:
        if self.failures:
            self.failures -= 1
            raise StoreError("injected: the store failed while applying rule actions")
        return await super().commit(origin, seqs, actions)


class ResolveFailsOnce(RedisStore):
    """The real store, with a fault injected: the first call that applies a batch's actions
    together with governance's grants fails."""

    def __init__(self, store: RedisStore) -> None:
        super().__init__(store.client, store.settings)
        self.failures = 1

    async def resolve(
        self, requests: list[FiringRequest], commit: Commit | None = None
    ) -> Resolved | None:
        if self.failures:
            self.failures -= 1
            raise StoreError("injected: the store failed while granting a firing")
        return await super().resolve(requests, commit)


def page_view(h: Harness, seq: int) -> dict[str, Any]:
    return {"type": "page_view", "ts": h.clock.now, "seq": seq, "url": PRODUCT}


async def pending_timers(store: RedisStore) -> int:
    """Pending deadlines, in every shard of the deadline set (one on one Redis)."""
    await store.deferred()  # a cluster removes a replaced deadline after the batch
    k = store.keys
    return sum([int(await store.client.zcard(k.timers(n))) for n in range(k.timer_shards)])


async def test_a_batch_resent_after_its_actions_failed_schedules_its_deadline_once(
    store: RedisStore, settings: Settings
) -> None:
    faulty = CommitFailsOnce(store)
    h = Harness(faulty, settings)
    v = await h.visit()
    batch = [page_view(h, 0)]
    with pytest.raises(StoreError):  # the gateway answers store_unavailable: resend later
        await h.pipeline.process(v.origin, batch, h.clock.now_ms())
    assert await pending_timers(faulty) == 0

    await h.pipeline.process(v.origin, batch, h.clock.now_ms())  # the client resends it
    assert await pending_timers(faulty) == 1
    await h.pipeline.process(v.origin, batch, h.clock.now_ms())  # and once more: a no-op
    assert await pending_timers(faulty) == 1

    facts = await store.session_facts("test-site", v.origin.session)
    assert (facts["events"], facts["pages"]) == ("1", "1")  # facts counted once
    await h.pass_time(1)
    assert h.rules_shown == ["hesitate-product"]
    fired = [r for r in await h.audit() if r["outcome"] == "fired"]
    assert len(fired) == 1


async def test_a_firing_batch_whose_grant_failed_fires_once_when_it_is_resent(
    store: RedisStore, settings: Settings
) -> None:
    """The batch's actions and governance's grant are one atomic store call: when it fails,
    neither happened, and the resend decides and fires the batch again, once."""
    faulty = ResolveFailsOnce(store)
    h = Harness(faulty, settings)
    v = await h.visit()
    exit_intent = {"type": "exit_intent", "ts": h.clock.now, "seq": 1, "url": PRODUCT}
    batch = [page_view(h, 0), exit_intent]
    with pytest.raises(StoreError):
        await h.pipeline.process(v.origin, batch, h.clock.now_ms())
    assert h.rules_shown == [] and await pending_timers(faulty) == 0

    await h.pipeline.process(v.origin, batch, h.clock.now_ms())  # the client resends it
    await h.pipeline.process(v.origin, batch, h.clock.now_ms())  # and once more: a no-op
    assert h.rules_shown == ["exit-product"]
    assert await pending_timers(faulty) == 1  # the page view's deadline, scheduled once
    fired = [r["rule"] for r in await h.audit() if r["outcome"] == "fired"]
    assert fired == ["exit-product"]


async def test_a_resend_racing_its_original_applies_the_actions_once(
    store: RedisStore, settings: Settings
) -> None:
    """Two processes hold the same pending seq (the tab resent it to another one): the first
    commit applies the actions, the second applies nothing."""
    opened = await store.open_session("test-site", "v_race", None, 0)
    origin = Origin("test-site", "v_race", opened.session, "tab1", "sid-1")
    put = Put("test-site", origin.session, "v_race", "x:n", "1")
    h = Harness(store, settings)

    async def ingest() -> tuple[list[bool], list[bool]]:
        event = page_view(h, 7)
        changes = changes_for(event, h.clock.now_ms(), h.runtime.engine().rules.distinct)
        got = await store.ingest(replace(origin, sid=""), [event], [changes], 0)
        return got.fresh, got.todo

    assert await ingest() == ([True], [True])
    assert await ingest() == ([False], [True])  # stored, its actions still pending
    assert await store.commit(origin, [7], [put]) is True
    assert await store.commit(origin, [7], [put]) is False
    assert await ingest() == ([False], [False])  # done: a plain duplicate


async def test_no_store_call_lets_a_redis_error_escape(settings: Settings) -> None:
    """Against a Redis that is not there, every call raises StoreError (the gateway turns it
    into a store_unavailable ack), never a raw RedisError."""
    down = Settings(redis_url=f"redis://127.0.0.1:{free_port()}/0", key_prefix="down")
    s = open_store(down)
    timer = Timer("test-site", "s1", "v1", "r", "tok")
    calls: dict[str, Callable[[], Awaitable[object]]] = {
        "open_session": lambda: s.open_session("test-site", "v1", None, 0),
        "ingest": lambda: s.ingest(Origin("test-site", "v1", "s1", "t", ""), [], [], 0),
        "commit": lambda: s.commit(Origin("test-site", "v1", "s1", "t", ""), [1], []),
        "apply": lambda: s.apply([Put("test-site", "s1", "v1", "f", "1")]),
        "link_user": lambda: s.link_user("test-site", "u1", "v1"),
        "visitor_of_user": lambda: s.visitor_of_user("test-site", "u1"),
        "claim_due": lambda: s.claim_due(0, 10),
        "consume": lambda: s.consume(timer),
        "ack_timer": lambda: s.ack_timer(timer),
        "timer_due": lambda: s.timer_due(timer),
        "next_due_ms": lambda: s.next_due_ms(),
        "visitor_facts": lambda: s.visitor_facts("test-site", "v1"),
        "session_facts": lambda: s.session_facts("test-site", "s1"),
        "recent_events": lambda: s.recent_events("test-site", "s1", 5),
        "release_socket": lambda: s.release_socket("test-site", "s1", "sid"),
        "audit": lambda: s.audit("test-site", {"outcome": "fired"}),
        "audit once": lambda: s.audit("test-site", {"outcome": "fired", "firing": "tok"}),
        "read_audit": lambda: s.read_audit("test-site", 5),
        "read_live": lambda: s.read_live("test-site", 5),
        "stream_after": lambda: s.stream_after("k", None, 5),
    }
    escaped = []
    try:
        for name, call in calls.items():
            try:
                await call()
            except StoreError:
                continue
            except Exception as exc:
                escaped.append(f"{name}: {type(exc).__name__}")
            else:
                escaped.append(f"{name}: no error")
    finally:
        await s.aclose()
    assert escaped == []
