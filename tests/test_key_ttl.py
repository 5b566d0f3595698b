"""Every key a batch writes keeps a time to live of at least the session's (or visitor's)
from that batch: ingest.lua refreshes them only once a minute (a refresh done in the last
REFRESH_S seconds is not done again), so a key the batch makes in between (a new tab's seen
set, the pending set again, a session hash or recent list gone) gets its TTL at once."""

from __future__ import annotations

from typing import Any

from cuewire.facts import FactChanges
from cuewire.origin import Origin
from cuewire.pipeline import Pipeline
from cuewire.prediction import KnownFacts
from cuewire.settings import Settings
from cuewire.store import RedisStore
from support.harness import Harness
from support.servers import WITH_CLUSTER

BACKENDS = WITH_CLUSTER

GRACE_S, REFRESH_S = 300, 60  # ingest.lua, open_session.lua
SITE, VISITOR = "test-site", "v_ttltest1"
T0 = 1_764_000_000_000


def event(seq: int) -> dict[str, Any]:
    return {"type": "scroll", "depth": 50, "ts": T0 + seq, "seq": seq, "url": "http://shop.test/"}


async def ingest(store: RedisStore, origin: Origin, seq: int) -> None:
    """One event, its actions not applied: its seq stays pending."""
    await store.ingest(origin, [event(seq)], [FactChanges(incr=["events"])], T0 + seq)


async def check_ttls(store: RedisStore, settings: Settings, origin: Origin) -> list[str]:
    """Every key of the session and visitor that exists has a TTL in its bounds; the keys
    that exist."""
    k = store.keys
    s = settings.session_ttl_s + GRACE_S
    v = settings.visitor_ttl_s
    keys = {
        k.session(SITE, origin.session, VISITOR): s,
        k.recent(SITE, origin.session, VISITOR): s,
        k.visitor(SITE, VISITOR): v,
        **{k.seen(SITE, origin.session, tab, VISITOR): s for tab in ("tab1", "tab2")},
        **{k.pending(SITE, origin.session, tab, VISITOR): s for tab in ("tab1", "tab2")},
    }
    found = []
    for key, least in keys.items():
        ttl = await store.client.ttl(key)
        if ttl == -2:
            continue
        found.append(key)
        assert least - 2 <= ttl <= least + REFRESH_S, (key, ttl)
    return found


async def test_every_key_a_batch_writes_keeps_its_time_to_live(
    store: RedisStore, settings: Settings
) -> None:
    k = store.keys
    opened = await store.open_session(SITE, VISITOR, None, T0)
    tab1 = Origin(SITE, VISITOR, opened.session, "tab1", "sid-1")
    tab2 = Origin(SITE, VISITOR, opened.session, "tab2", "sid-2")
    session = k.session(SITE, opened.session, VISITOR)

    await ingest(store, tab1, 1)  # every key refreshed: the tab's seen set is new
    assert len(await check_ttls(store, settings, tab1)) == 5
    await ingest(store, tab1, 2)  # refreshed a moment ago: not again
    await ingest(store, tab2, 1)  # a new tab's seen and pending sets
    assert len(await check_ttls(store, settings, tab1)) == 7

    # the pending set emptied by the commit, and made again by the next batch
    assert await store.commit(tab1, [1, 2], [])
    assert await store.client.exists(k.pending(SITE, opened.session, "tab1", VISITOR)) == 0
    await ingest(store, tab1, 3)
    assert k.pending(SITE, opened.session, "tab1", VISITOR) in await check_ttls(
        store, settings, tab1
    )

    # the session hash and the recent events gone (as if expired), made again by a batch
    await store.client.delete(session)
    await store.client.delete(k.recent(SITE, opened.session, VISITOR))
    await ingest(store, tab1, 4)
    found = await check_ttls(store, settings, tab1)
    assert session in found and k.recent(SITE, opened.session, VISITOR) in found
    assert await store.client.hget(session, "events") == "1"  # a new hash: counted from 0

    # the recent events alone gone: the next batch's new list gets a TTL too
    await store.client.delete(k.recent(SITE, opened.session, VISITOR))
    await ingest(store, tab2, 2)
    assert k.recent(SITE, opened.session, VISITOR) in await check_ttls(store, settings, tab1)


async def test_a_seq_left_pending_keeps_its_mark_while_batches_are_decided_ahead(
    store: RedisStore, settings: Settings
) -> None:
    """Batches decided ahead add nothing to the pending set, but a seq an earlier batch left
    pending (its process died before the commit) keeps its mark as long as the session: the
    pending set is refreshed with the other keys."""
    h = Harness(store, settings)
    known = KnownFacts()
    pipeline = Pipeline(store, h.runtime.engine, h.delivery, known)
    opened = await store.open_session(SITE, VISITOR, None, T0, fields=pipeline.fields())
    assert opened.facts is not None
    pipeline.learn(SITE, opened.session, opened.facts)
    origin = Origin(SITE, VISITOR, opened.session, "tab1", "sid-1")
    k = store.keys
    seen = k.seen(SITE, opened.session, "tab1", VISITOR)
    pending = k.pending(SITE, opened.session, "tab1", VISITOR)

    await ingest(store, origin, 1)  # stored, its actions never applied: pending
    batch = [{**event(2), "ts": h.clock.now}]
    await pipeline.process(origin, batch, h.clock.now_ms())  # decided again: learns the facts
    # the last refresh long ago (the TTLs as they would be a few minutes later)
    stale_ms = (settings.session_ttl_s + GRACE_S - 5) * 1000
    await store.client.pexpire(seen, stale_ms)
    await store.client.pexpire(pending, stale_ms)
    await pipeline.process(origin, [{**event(3), "ts": h.clock.now}], h.clock.now_ms())
    assert await store.client.zscore(pending, "1") is not None
    assert await store.client.zscore(pending, "3") is None  # decided ahead: never pending
    assert await store.client.ttl(pending) > settings.session_ttl_s + GRACE_S
