"""One store round trip per batch: a process that knows a session's facts from its last batch
decides the next one before the store call, and the store applies the batch with the
decision after checking those facts are what it holds (pipeline.py, prediction.py,
ingest.lua). What the process predicts must be exactly what the store then holds."""

from __future__ import annotations

import gc
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from cuewire import fields
from cuewire.origin import Origin
from cuewire.pipeline import Pipeline
from cuewire.prediction import KnownFacts
from cuewire.runtime import Runtime
from cuewire.settings import Settings
from cuewire.store import RedisStore
from cuewire.store.base import Put
from support.counting import CountingStore
from support.harness import Harness
from support.servers import WITH_CLUSTER

BACKENDS = WITH_CLUSTER  # the store tests run on a Redis Cluster too

REPO = Path(__file__).resolve().parent.parent
PRODUCT = "http://shop.test/product/boots"


class Shop:
    """A harness whose pipeline keeps its known facts where the test can see them."""

    def __init__(
        self, store: RedisStore, settings: Settings, loaded: Runtime | None = None
    ) -> None:
        self.counting = CountingStore(store)
        self.h = Harness(self.counting, settings, loaded=loaded)
        self.known = KnownFacts()
        self.pipeline = Pipeline(self.counting, self.h.runtime.engine, self.h.delivery, self.known)
        self.seq = 0

    def event(self, kind: str, url: str = PRODUCT, **body: Any) -> dict[str, Any]:
        return self.stamped(url, {"type": kind, **body})

    def stamped(self, url: str, body: dict[str, Any]) -> dict[str, Any]:
        """``body`` as the client sends it: with its time, seq and page."""
        self.seq += 1
        return {"ts": self.h.clock.now, "seq": self.seq, "url": url, **body}

    async def send(self, origin: Origin, *events: dict[str, Any]) -> list[str]:
        """Send one batch; the store calls it took."""
        self.counting.took()
        await self.pipeline.process(origin, list(events), self.h.clock.now_ms())
        return self.counting.took()

    async def stored(self, origin: Origin) -> tuple[dict[str, str], dict[str, str]]:
        """What the store holds of the fields the rules read."""
        reads = self.pipeline._reads_of(self.h.runtime.engine())
        session = await self.counting.session_facts(origin.site, origin.session)
        visitor = await self.counting.visitor_facts(origin.site, origin.visitor)
        return (
            {f: v for f, v in session.items() if reads.session(f)},
            {f: v for f, v in visitor.items() if reads.visitor(f)},
        )

    def known_facts(self, origin: Origin) -> tuple[dict[str, str], dict[str, str]] | None:
        reads = self.pipeline._reads_of(self.h.runtime.engine())
        known = self.known.get(origin.site, origin.session, reads)
        return (known.session, known.visitor) if known else None


async def timers(store: RedisStore) -> list[str]:
    """Every pending deadline, from every shard of the deadline set (one on one Redis)."""
    await store.deferred()  # a cluster removes a replaced deadline after the batch
    k = store.keys
    return [m for n in range(k.timer_shards) for m in await store.client.zrange(k.timers(n), 0, -1)]


async def test_a_page_view_that_restarts_a_deadline_takes_one_round_trip(
    store: RedisStore, settings: Settings
) -> None:
    shop = Shop(store, settings)
    v = await shop.h.visit()
    # the first batch of a session: the process knows nothing yet, so two calls
    assert await shop.send(v.origin, shop.event("page_view")) == ["ingest", "commit"]
    [first] = await timers(shop.counting)
    # the next page restarts the page-scoped hesitation deadline: decided ahead, one call
    other = "http://shop.test/product/hat"
    assert await shop.send(v.origin, shop.event("page_view", other)) == ["ingest"]
    assert shop.counting.applied[-1] is True
    [second] = await timers(shop.counting)
    assert second != first  # cancelled and scheduled again, with a new token
    assert await shop.send(v.origin, shop.event("scroll", other, depth=50)) == ["ingest"]
    assert shop.known_facts(v.origin) == await shop.stored(v.origin)

    # the deadline still fires once, on time, from the facts the store holds
    await shop.h.pass_time(1.5)
    assert shop.h.rules_shown == ["hesitate-product"]


async def test_a_session_opened_with_its_facts_takes_one_round_trip_from_its_first_batch(
    store: RedisStore, settings: Settings
) -> None:
    """A connect returns the facts the rules read (the gateway hands them to the pipeline),
    so even the first batch of a tab is decided ahead."""
    shop = Shop(store, settings)
    opened = await store.open_session("test-site", "v_new", None, 0, fields=shop.pipeline.fields())
    assert opened.facts is not None
    shop.pipeline.learn("test-site", opened.session, opened.facts)
    origin = Origin("test-site", "v_new", opened.session, "tab1", "sid-1")
    assert await shop.send(origin, shop.event("page_view")) == ["ingest"]
    assert len(await timers(shop.counting)) == 1
    assert shop.known_facts(origin) == await shop.stored(origin)


async def test_a_fact_changed_elsewhere_sends_the_batch_back_to_be_decided_again(
    store: RedisStore, settings: Settings
) -> None:
    """Another process (or a deadline) wrote a fact the rules read: the store refuses the
    decision made ahead, applies the batch alone, and the engine decides it from the facts
    the store returns."""
    shop = Shop(store, settings)
    v = await shop.h.visit()
    await shop.send(v.origin, shop.event("page_view"))
    # elsewhere: another process restarted the hesitation deadline of this session
    field = fields.timer("hesitate-product")
    await store.apply([Put("test-site", v.origin.session, v.origin.visitor, field, "elsewhere")])
    took = await shop.send(v.origin, shop.event("page_view", "http://shop.test/product/hat"))
    assert took == ["ingest", "commit"]
    assert shop.counting.applied[-1] is False
    session, _ = await shop.stored(v.origin)
    assert session[field] not in ("elsewhere", "")  # decided from the store's facts
    assert shop.known_facts(v.origin) == await shop.stored(v.origin)


async def test_a_batch_that_fires_is_granted_in_the_same_round_trip(
    store: RedisStore, settings: Settings
) -> None:
    shop = Shop(store, settings)
    v = await shop.h.visit()
    await shop.send(v.origin, shop.event("page_view"))
    # governance answers in the call that stores the batch, which also writes the audit
    # record (fold.py); on a cluster the audit stream is in another slot: a call of its own
    took = await shop.send(v.origin, shop.event("exit_intent"))
    assert took == (["ingest", "record"] if store.keys.cluster else ["ingest"])
    assert shop.h.rules_shown == ["exit-product"]
    assert shop.known_facts(v.origin) is None  # governance wrote facts the process did not see
    assert await shop.send(v.origin, shop.event("scroll", depth=25)) == ["ingest"]


async def test_a_resent_batch_is_never_applied_ahead(store: RedisStore, settings: Settings) -> None:
    shop = Shop(store, settings)
    v = await shop.h.visit()
    view = shop.event("page_view")
    await shop.send(v.origin, view)
    await shop.send(v.origin, shop.event("scroll", depth=25))
    before = await shop.stored(v.origin)
    took = await shop.send(v.origin, view)  # the client resends a batch already applied
    assert shop.counting.applied[-1] is False and took == ["ingest"]
    assert await shop.stored(v.origin) == before  # counted once


# --- the prediction is what the store holds, whatever the batch ---------------------------

URLS = ["http://shop.test/", PRODUCT, "http://shop.test/cart", "http://shop.test/c/shoes?x=1"]
NAMES = ["add_to_cart", "view_product", "checkout_start", "purchase"]
event_kinds = st.sampled_from(
    ["page_view", "scroll", "click", "custom", "identify", "visibility", "idle", "dismiss"]
)


@st.composite
def an_event(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    kind = draw(event_kinds)
    url = draw(st.sampled_from(URLS))
    if kind == "scroll":
        return url, {"type": "scroll", "depth": draw(st.sampled_from([25, 50, 75, 100]))}
    if kind == "click":
        track = draw(st.sampled_from(["add-to-cart", "size-guide", "nav"]))
        return url, {"type": "click", "selector": f"#{track}", "track": track}
    if kind == "custom":
        props = {
            "category": draw(st.sampled_from(["shoes", "hats"])),
            "price": draw(st.integers(1, 9)),
        }
        return url, {"type": "custom", "name": draw(st.sampled_from(NAMES)), "props": props}
    if kind == "identify":
        verified = draw(st.booleans())
        body: dict[str, Any] = {"type": "identify", "user_id": draw(st.sampled_from(["u1", "u2"]))}
        body["traits"] = {"plan": draw(st.sampled_from(["free", "pro"]))}
        if verified:
            body["verified"] = True
        return url, body
    if kind == "visibility":
        state = draw(st.sampled_from(["visible", "hidden"]))
        return url, {"type": "visibility", "state": state, "dwell_ms": draw(st.integers(0, 9000))}
    if kind == "idle":
        return url, {"type": "idle", "ms": 30000}
    if kind == "dismiss":
        return url, {"type": "prompt_dismiss", "prompt": "p_x", "rule": "cart-abandonment"}
    return url, {"type": "page_view"}


@pytest.fixture
def examples(settings: Settings) -> Settings:
    return replace(
        settings, rules_dir=REPO / "rules" / "examples", templates_dir=REPO / "templates"
    )


@pytest.fixture
def example_rules(examples: Settings) -> Runtime:
    """The example rules and the shipped templates, loaded once for every example of the
    test (as the store is): a harness only reads them."""
    return Runtime(examples.rules_dir, examples.templates_dir)


batches = st.lists(st.lists(an_event(), min_size=1, max_size=4), min_size=2, max_size=6)


@given(script=batches, gaps=st.lists(st.integers(0, 40_000), min_size=6, max_size=6))
@hypothesis_settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
async def test_what_the_process_predicts_is_what_the_store_holds(
    store: RedisStore,
    examples: Settings,
    example_rules: Runtime,
    script: list[list[tuple[str, dict[str, Any]]]],
    gaps: list[int],
) -> None:
    """With the example rules (counters, custom props, distinct values, clicks, traits,
    windows, sequences, deadlines): after every batch, the facts the process keeps are
    exactly the store's, field for field, whichever way the batch was decided."""
    shop = Shop(store, examples, loaded=example_rules)
    v = await shop.h.visit(visitor=f"v_{shop.h.clock.now}{len(script)}{gaps[0]}")
    for batch, gap in zip(script, gaps, strict=False):
        shop.h.clock.advance(gap / 1000)
        audited = len(await shop.h.audit())
        took = await shop.send(v.origin, *[shop.stamped(url, body) for url, body in batch])
        known = shop.known_facts(v.origin)
        # a firing (audited in the batch's own call when decided ahead, fold.py): governance
        # wrote facts the process does not see
        if "record" in took or len(await shop.h.audit()) > audited:
            assert known is None
            continue
        assert known == await shop.stored(v.origin)


async def test_batches_leave_nothing_of_ours_for_the_garbage_collector(
    store: RedisStore, settings: Settings
) -> None:
    """Whatever a batch makes is freed by the time it is answered, firings included: the
    collector, whose pauses stall every connection of the process, finds no cycle of our
    objects to break (the view of one event's facts used to refer to itself: one cycle per
    event). A connection redis-py opens meanwhile may leave one of its own (an error it
    caught in its handshake, with the traceback): those are not counted."""
    shop = Shop(store, settings)

    async def visitors(tag: str, n: int) -> None:
        visits = [await shop.h.visit(f"v_{tag}{i}") for i in range(n)]
        for v in visits:
            await shop.send(v.origin, shop.event("page_view"))
            await shop.send(v.origin, shop.event("scroll", depth=25))
            await shop.send(v.origin, shop.event("exit_intent"))
            await shop.send(v.origin, shop.event("click", selector="#buy"))

    await visitors("warm", 30)  # each script met once on every node, connections opened
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)  # what a collection finds stays in gc.garbage
    try:
        await visitors("gc", 10)
        gc.collect()
        ours = Counter(
            type(o).__qualname__ for o in gc.garbage if type(o).__module__.startswith("cuewire")
        )
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert shop.h.rules_shown == ["exit-product"] * 40
    assert ours == Counter()
