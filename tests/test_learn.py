"""Rules that learn (cuewire.learn, docs/learning.md): a feature vector per session computed
from the stored facts, k-means segments and a purchase propensity trained offline on recorded
sessions, evaluated by the server in pure Python, and tested by rules as ``visitor.segment``
and ``session.propensity.purchase``.

The sessions are generated shoppers with known intents (support/shoppers.py) run through the
real ingest path and store, so the features come from real facts.
"""

from __future__ import annotations

import asyncio
import datetime
import io
import json
import subprocess
import sys
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import msgspec
import pytest
from sklearn.metrics import adjusted_rand_score, roc_auc_score

from cuewire.cli import main
from cuewire.clock import DAY_MS, day_of
from cuewire.codes import Misconfig
from cuewire.counters import segment_sizes
from cuewire.device import device_class
from cuewire.errors import ConfigError, ModelError
from cuewire.export.loader import postgres_loader
from cuewire.export.sessions import read_sessions
from cuewire.goals import Goals
from cuewire.learn import features
from cuewire.learn.dataset import Row, rows
from cuewire.learn.models import ModelFiles, SegmentModel, load_propensity, load_segments
from cuewire.learn.training import fit_propensity, fit_segments
from cuewire.measure import from_counters
from cuewire.origin import Origin
from cuewire.pipeline import Processed
from cuewire.replay import Batch, Recording, record
from cuewire.runtime import Runtime
from cuewire.settings import Settings
from cuewire.store import RedisStore, open_store
from support.harness import Harness, VisitorSession, write
from support.paths import FIXTURES
from support.servers import POSTGRES, WITH_CLUSTER, LiveServer, free_port, site_for
from support.shoppers import INTENTS, recording
from test_export import export_all
from test_measure import SITE

VISITORS = 240  # about 470 sessions: a few seconds on Redis


@pytest.fixture(scope="module")
def shoppers_rows(redis_url: str) -> tuple[dict[str, str], list[Row]]:
    """The generated shoppers' sessions, replayed through the real store (Redis: the embedded
    store gives the same rows, see test_rows_are_the_same_on_both_stores, but slower)."""
    shoppers = recording(VISITORS, seed=1)
    found = asyncio.run(rows(Recording.read(shoppers.lines), redis_url))
    return shoppers.intents, found


def _json(path: Path, model: dict[str, Any]) -> Path:
    return write(path, json.dumps(model))


# ---------------------------------------------------------------- features


def test_the_feature_vector_is_named_versioned_and_read_from_facts() -> None:
    session = {
        "pages": "3",
        "started": "1764000000000",
        "last": "1764000060000",
        "scroll": "75",
        "c:product_view": "2",
        "c:add_to_cart": "1",
        "p:add_to_cart": '{"price": 49}',
        "n:hesitation": "1",
        "n:form_hesitation": "1",
        "device": "mobile",
        "referrer": "https://www.google.com/search",
        "landing": "https://shop.test/?utm_source=mail",
        "prev_seen": str(1764000000000 - 2 * 86_400_000),
    }
    x = dict(zip(features.NAMES, features.features(session, {"sessions": "2"}), strict=True))
    assert len(x) == len(features.FEATURES) and features.VERSION == 1
    assert x["pages"] == pytest.approx(1.386, abs=1e-3)  # log1p(3)
    assert x["duration"] == pytest.approx(4.111, abs=1e-3)  # log1p(60 s)
    assert x["scroll"] == 0.75 and x["checkout"] == 0.0
    assert x["hesitations"] == pytest.approx(1.099, abs=1e-3)  # log1p(2)
    assert x["cart_value"] == pytest.approx(3.912, abs=1e-3)  # log1p(49)
    assert x["recency"] == pytest.approx(1.099, abs=1e-3)  # log1p(2 days)
    assert (x["mobile"], x["search"], x["campaign"]) == (1.0, 1.0, 1.0)
    # a fact that is not a number counts as 0, never an error on the hot path
    assert features.features({"pages": "many", "p:add_to_cart": "{"}, {})[0:7] == (0.0,) * 7


async def test_rows_are_the_same_on_both_stores(redis_url: str) -> None:
    """The training rows come from the store's facts: Redis and the embedded store agree."""
    recorded = Recording.read(recording(12, seed=7).lines)
    on_redis = await rows(recorded, redis_url)
    embedded = await rows(recorded, None)
    assert on_redis == embedded
    assert {r.converted for r in embedded} == {True, False}


# ---------------------------------------------------------------- segments


def test_segments_recover_the_shoppers_intents(
    shoppers_rows: tuple[dict[str, str], list[Row]], tmp_path: Path
) -> None:
    intents, found = shoppers_rows
    model = load_segments(_json(tmp_path / "segments.json", fit_segments(found, len(INTENTS))))
    assigned = [model.assign(r.x) for r in found]  # the server's pure-Python assignment
    ari = adjusted_rand_score([intents[r.session] for r in found], assigned)
    print(f"adjusted Rand index of {len(found)} sessions' segments vs intents: {ari:.3f}")
    assert ari > 0.6
    names = [s.name for s in model.spec.segments]
    assert len(set(names)) == len(INTENTS)
    buyers = {a for r, a in zip(found, assigned, strict=True) if intents[r.session] == "buyer"}
    assert any("cart" in name or "checks out" in name for name in buyers), names


# ---------------------------------------------------------------- propensity


def test_propensity_beats_the_constant_baseline_on_held_out_sessions(
    shoppers_rows: tuple[dict[str, str], list[Row]], redis_url: str, tmp_path: Path
) -> None:
    _, found = shoppers_rows
    trained = fit_propensity(found)
    metrics = trained["metrics"]
    print(f"held-out AUC {metrics['auc']:.3f}, constant baseline {metrics['baseline_auc']}")
    assert metrics["baseline_auc"] == 0.5 and metrics["auc"] > 0.7
    # the server's pure-Python evaluation on sessions of shoppers never seen in training
    model = load_propensity(_json(tmp_path / "propensity.json", trained))
    fresh = asyncio.run(rows(Recording.read(recording(80, seed=2).lines), redis_url))
    auc = roc_auc_score([r.converted for r in fresh], [model.score(r.x) for r in fresh])
    print(f"AUC of the JSON model on {len(fresh)} new sessions: {auc:.3f}")
    assert auc > 0.7


# ---------------------------------------------------------------- rules


RULES = """
rules:
  - id: abandoner-offer
    trigger: {event: {type: exit_intent}}
    when: {fact: session.propensity.purchase, lt: 0.3}
    show: {template: note, params: {headline: "10% off today"}}
  - id: comparer-help
    trigger: {event: {type: custom, name: help_wanted}}
    when: {fact: visitor.segment, equals: "{segment}"}
    show: {template: note, params: {headline: "Compare them side by side"}}
"""


async def _walk(h: Harness, visitor: str, batches: list[Batch]) -> VisitorSession:
    """A generated session's events, at its pace from now on the test's clock, up to its
    conversion and without its exit intents (the test sends those)."""
    me = await h.visit(visitor)
    shift = h.clock.now - batches[0].at
    for event in (e for batch in batches for e in batch.events):
        if event.get("name") == "purchase":
            break
        if event["type"] != "exit_intent":
            h.clock.now = max(h.clock.now, event["ts"] + shift)
            fields = {k: v for k, v in event.items() if k not in ("type", "ts", "seq", "url")}
            await me.send(event["type"], url=event["url"], **fields)
    return me


async def _shop(h: Harness, visitor: str, intent: str, nth: int = 0) -> VisitorSession:
    """The ``nth`` generated shopper of ``intent``."""
    shoppers = recording(16, seed=11)
    session = [s for s, i in shoppers.intents.items() if i == intent][nth]
    batches = [b for b in Recording.read(shoppers.lines).batches if b.session == session]
    return await _walk(h, visitor, batches)


async def _shown(h: Harness, me: VisitorSession, type: str, **fields: Any) -> list[str]:
    before = len(h.shown)
    await me.send(type, **fields)
    return [p.rule for _, p in h.shown[before:]]


async def test_rules_fire_on_segment_and_propensity_for_the_right_shoppers(
    settings: Settings, tmp_path: Path, shoppers_rows: tuple[dict[str, str], list[Row]]
) -> None:
    intents, found = shoppers_rows
    rules = tmp_path / "rules"
    segments = fit_segments(found, len(INTENTS))
    model = load_segments(_json(rules / "models" / "segments.json", segments))
    # the segment most comparers fall in
    comparers = Counter(model.assign(r.x) for r in found if intents[r.session] == "comparer")
    write(rules / "learned.yaml", RULES.replace("{segment}", comparers.most_common(1)[0][0]))
    _json(rules / "models" / "propensity.json", fit_propensity(found))
    async with open_store(replace(settings, rules_dir=rules)) as store:
        h = Harness(store, replace(settings, rules_dir=rules))
        comparer = await _shop(h, "v_comparer01", "comparer")
        assert await _shown(h, comparer, "exit_intent") == ["abandoner-offer"]  # likely to leave
        other = await _shop(h, "v_comparer02", "comparer", nth=1)
        assert await _shown(h, other, "custom", name="help_wanted") == ["comparer-help"]
        buyer = await _shop(h, "v_buyer00001", "buyer")
        assert await _shown(h, buyer, "exit_intent") == []  # a checkout: no discount given away
        assert await _shown(h, buyer, "custom", name="help_wanted") == []  # not a comparer
        audit = await h.audit()
    version = h.runtime.engine().rules.models.version
    assert version.startswith("segments-") and ",propensity-" in version
    assert len(audit) == 2 and all(r["model"] == version for r in audit)


async def _ask_for_help(h: Harness, origin: Origin) -> Processed:
    """A help_wanted event: the rule that tests ``visitor.segment`` reads it."""
    event = {"type": "custom", "name": "help_wanted", "ts": h.clock.now, "seq": h.seq}
    h.seq += 1
    return await h.pipeline.process(origin, [{**event, "url": "https://shop.test/"}], h.clock.now)


async def _segment_now(store: RedisStore, model: SegmentModel, origin: Origin) -> str:
    """The segment of the visitor's vector as the store's facts are now."""
    s = await store.session_facts(SITE, origin.session, origin.visitor)
    return model.assign(features.features(s, await store.visitor_facts(SITE, origin.visitor)))


@pytest.mark.parametrize("backend_url", WITH_CLUSTER, indirect=True)
async def test_the_server_counts_the_visitors_it_assigns_to_each_segment_per_day(
    settings: Settings, tmp_path: Path, shoppers_rows: tuple[dict[str, str], list[Row]]
) -> None:
    """A rule tests ``visitor.segment``: each visitor is counted once a day in the segment the
    server assigned them, however many events (or processes) ask, in the day's counters: in
    the batch's own store call when it was decided ahead, else in a call of its own."""
    _, found = shoppers_rows
    rules = tmp_path / "rules"
    model = load_segments(_json(rules / "models" / "segments.json", fit_segments(found, 4)))
    write(rules / "learned.yaml", RULES.replace("{segment}", model.spec.segments[0].name))
    served = replace(settings, rules_dir=rules)
    async with open_store(served) as store:
        h = Harness(store, served)
        other = Harness(store, served)  # another process: knows nothing of what was counted
        other.seq = 100_000
        expected: Counter[str] = Counter()
        origins: list[Origin] = []
        for n, intent in enumerate(INTENTS * 2):
            me = await _shop(h, f"v_assigned{n:03d}", intent, nth=n // len(INTENTS))
            assert (await _ask_for_help(h, me.origin)).ahead  # counted in the batch's call
            await store.deferred()  # (on a cluster the counters are added beside it)
            counted = await store.counters(SITE, [day_of(h.clock.now)])
            assert sum(segment_sizes(counted, model.id).values()) == n + 1
            await _ask_for_help(h, me.origin)
            await _ask_for_help(other, replace(me.origin, tab="tab2"))
            expected[await _segment_now(store, model, me.origin)] += 1
            origins.append(me.origin)
        today = day_of(h.clock.now)
        h.clock.now += DAY_MS  # the next UTC day, a new visit: counted again, that day
        again = await h.visit(origins[0].visitor)
        assert not (await _ask_for_help(h, again.origin)).ahead  # counted in a call of its own
        tomorrow = await _segment_now(store, model, again.origin)
        await store.deferred()
        days = await store.counters(SITE, [today, day_of(h.clock.now)])
    assert segment_sizes({today: days[today]}, model.id) == dict(expected)
    assert segment_sizes(days, model.id) == dict(expected + Counter([tomorrow]))
    assert segment_sizes(days, "segments-retrained") == {}  # counts are per model
    assert sum(expected.values()) == 2 * len(INTENTS)
    assert len(expected) > 1  # the shoppers fall in several segments
    # the measurement report does not take them for a rule's counts
    report = from_counters(SITE, Goals(), days, today, day_of(h.clock.now))
    assert set(report.rules) <= {"comparer-help", "abandoner-offer"}


# ---------------------------------------------------------------- files


def test_a_model_of_another_version_is_refused_with_its_file(
    shoppers_rows: tuple[dict[str, str], list[Row]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, found = shoppers_rows
    rules = write(tmp_path / "rules" / "r.yaml", "rules: []\n").parent
    newer = {**fit_segments(found[:40], 2), "version": 2}
    path = _json(rules / "models" / "segments.json", newer)
    assert main(["check", "--rules", str(rules), "--templates", str(FIXTURES / "templates")]) == 1
    err = capsys.readouterr()
    assert f"{path}:1:1: cuewire.segments format version 2; this Cuewire reads version 1" in (
        err.out + err.err
    )
    older = fit_propensity(found)
    older["features"] = {"version": 0, "names": ["pages"]}
    prop = _json(tmp_path / "p.json", older)
    set_by_env = Settings.from_env(env={"CUEWIRE_PROPENSITY_MODEL": str(prop)})
    with pytest.raises(ModelError, match=r"p\.json:1:1: trained on features version 0"):
        ModelFiles.of(set_by_env).load()
    # a set path must exist; the default one (<rules>/models/) is optional
    missing = Settings.from_env(env={"CUEWIRE_SEGMENTS_MODEL": str(tmp_path / "none.json")})
    with pytest.raises(ModelError, match=r"none\.json:1:1: cannot read the model"):
        ModelFiles.of(missing).load()
    assert ModelFiles.beside(tmp_path / "elsewhere").load().version == ""


async def test_a_retrained_model_goes_live_with_the_next_reload(
    shoppers_rows: tuple[dict[str, str], list[Row]], tmp_path: Path
) -> None:
    _, found = shoppers_rows
    rules = write(tmp_path / "rules" / "r.yaml", "rules: []\n").parent
    runtime = Runtime(rules, FIXTURES / "templates")
    assert runtime.engine().rules.models.version == ""
    trained = fit_segments(found, 3)
    _json(rules / "models" / "segments.json", trained)
    assert await runtime.reload_if_changed()
    assert runtime.engine().rules.models.version == trained["id"]
    _json(rules / "models" / "segments.json", {**trained, "version": 10})
    assert not await runtime.reload_if_changed()  # refused: the last good one stays
    assert runtime.engine().rules.models.version == trained["id"]
    assert runtime.last_error and "segments.json:1:1: cuewire.segments format version 10" in (
        runtime.last_error
    )


def test_segment_and_train_commands_write_loadable_models(
    redis_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recorded = write(tmp_path / "shoppers.jsonl", "\n".join(recording(60, seed=5).lines))
    out = tmp_path / "models"
    common = ["--from", str(recorded), "--store", redis_url]
    assert main(["segment", *common, "--k", "4", "--out", str(out / "segments.json")]) == 0
    assert main(["train", *common, "--out", str(out / "propensity.json")]) == 0
    printed = capsys.readouterr().out
    assert "4 segments of" in printed and "held-out sessions (constant baseline 0.500)" in printed
    models = ModelFiles.beside(tmp_path).load()
    assert models.segments is not None and models.propensity is not None
    assert models.propensity.spec.target == "purchase"
    # --since and --until keep the batches received in the window, from any source
    batches = Recording.load(recorded).batches
    since, until = batches[len(batches) // 4].at, batches[-len(batches) // 4].at
    window = [b for b in batches if since <= b.at < until]
    iso = [
        datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC).isoformat()
        for ms in (since, until)
    ]
    args = ["segment", *common, "--since", iso[0], "--until", iso[1], "--k", "2"]
    assert main([*args, "--out", str(tmp_path / "window.json")]) == 0
    sessions = len({b.session for b in window})
    assert f"2 segments of {sessions} sessions" in capsys.readouterr().out
    assert 0 < sessions < len({b.session for b in batches})


@pytest.mark.parametrize("backend_url", ["redis"], indirect=True)  # --redis reads a Redis
async def test_segment_reads_a_sites_live_stream_from_redis(
    settings: Settings,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``--redis URL --site S``: the sessions a live server kept in its stream, no file."""
    shoppers = recording(12, seed=9)
    recorded = Recording.read(shoppers.lines).batches
    assert settings.redis_url is not None
    async with open_store(settings) as store:
        h = Harness(store, settings)
        for session in shoppers.intents:
            batches = [b for b in recorded if b.session == session]
            await _walk(h, batches[0].visitor, batches)
    monkeypatch.setenv("CUEWIRE_KEY_PREFIX", settings.key_prefix)
    out = tmp_path / "segments.json"
    args = ["segment", "--redis", settings.redis_url, "--site", "test-site", "--k", "2"]
    assert await asyncio.to_thread(main, [*args, "--out", str(out)]) == 0
    assert f"2 segments of {len(shoppers.intents)} sessions" in capsys.readouterr().out
    assert sum(s.size for s in load_segments(out).spec.segments) == len(shoppers.intents)


# ---------------------------------------------------------------- the PostgreSQL export

EXPORTED = 100  # visitors: about 190 sessions, 1,250 live stream entries


async def _serve(h: Harness, recorded: Recording) -> None:
    """The recorded batches through the server's ingest path, each at its own server time:
    the live stream then holds one entry per batch, as a live server would have written."""
    origins: dict[str, Origin] = {}
    for batch in recorded.batches:
        h.clock.now = batch.at
        origin = origins.get(batch.session)
        if origin is None:
            opened = await h.store.open_session(SITE, batch.visitor, None, batch.at)
            origin = Origin(SITE, batch.visitor, opened.session, f"tab-{batch.session}", "")
            origins[batch.session] = origin
        await h.pipeline.process(origin, batch.events, batch.at)


def _params(model: dict[str, Any]) -> dict[str, Any]:
    """A model file without the time it was written."""
    return {**model, "metrics": {k: v for k, v in model["metrics"].items() if k != "trained_at"}}


# what the gateway classifies (device.py): the recording keeps the class, never the agent
AGENTS = {
    "mobile": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile/15E148 Safari/604.1",
    "desktop": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/120.0",
}
MOBILE, SEARCH, CAMPAIGN = (features.NAMES.index(n) for n in ("mobile", "search", "campaign"))


async def _serve_as_live(h: Harness, recorded: Recording) -> dict[str, tuple[float, ...]]:
    """The generated batches as a live server takes them: each session opened with the device
    class the gateway reads from the User-Agent, its batches through the ingest path at their
    own time, the batch with the goal split before it. Returns, per live session, the vector
    the server computes from the stored facts at the moment a row is read (before the goal,
    else after the session's last batch)."""
    live: dict[str, tuple[float, ...]] = {}
    origins: dict[str, Origin] = {}
    last = {b.session: i for i, b in enumerate(recorded.batches)}

    async def vector(origin: Origin) -> tuple[float, ...]:
        s = await h.store.session_facts(SITE, origin.session, origin.visitor)
        return features.features(s, await h.store.visitor_facts(SITE, origin.visitor))

    for index, batch in enumerate(recorded.batches):
        h.clock.now = batch.at
        origin = origins.get(batch.session)
        if origin is None:
            describe = {"device": device_class(AGENTS[batch.device]), "sid": "socket"}
            opened = await h.store.open_session(SITE, batch.visitor, None, batch.at, describe)
            origin = Origin(SITE, batch.visitor, opened.session, f"tab-{batch.session}", "")
            origins[batch.session] = origin
        goal = next(
            (i for i, e in enumerate(batch.events) if e.get("name") == features.PURCHASE), None
        )
        if goal is None:
            await h.pipeline.process(origin, batch.events, batch.at)
            if index == last[batch.session] and origin.session not in live:
                live[origin.session] = await vector(origin)
            continue
        if goal > 0:
            await h.pipeline.process(origin, batch.events[:goal], batch.at)
        live.setdefault(origin.session, await vector(origin))
        await h.pipeline.process(origin, batch.events[goal:], batch.at)
    await h.store.deferred()  # on a cluster the live stream is written beside the batch
    return live


@pytest.mark.timeout(180)
@pytest.mark.parametrize("backend_url", ["redis", "cluster"], indirect=True)
async def test_replayed_rows_hold_the_device_and_source_the_server_computed(
    store: RedisStore, settings: Settings, pg_dsn: str, redis_url: str
) -> None:
    """Shoppers on phones buy less often. Served as a live server takes them, recorded from
    the live stream and exported: the replayed rows are the vectors the server computed for
    the same sessions, ``mobile``, ``search`` and ``campaign`` included, and the propensity
    learns that a phone lowers it. A recording without the device reads as before."""
    shoppers = recording(80, seed=5, site=SITE, mobile=0.4)
    generated = Recording.read(shoppers.lines)
    live = await _serve_as_live(Harness(store, settings), generated)
    out = io.StringIO()
    await record(store, SITE, out, 1_000_000)
    recorded = Recording.read(out.getvalue().splitlines())
    assert {b.device for b in recorded.batches} == {"mobile", "desktop"}

    replayed = await rows(recorded, redis_url)
    assert len(replayed) == len(live) == len(shoppers.intents)
    assert {row.session: row.x for row in replayed} == live
    for column in (MOBILE, SEARCH, CAMPAIGN):  # each seen both ways, so each can be learned
        assert {row.x[column] for row in replayed} == {0.0, 1.0}
    phones = {row.session for row in replayed if row.x[MOBILE]}
    assert phones == {b.session for b in recorded.batches if b.device == "mobile"}

    propensity = fit_propensity(replayed)
    assert propensity["coef"][MOBILE] < -0.3, propensity["coef"]

    # the export carries the device too, and reads back as the same batches and rows
    loader = postgres_loader(
        replace(settings, export_dsn=pg_dsn), store.client, store.keys, [SITE], "learnctx"
    )
    await export_all(loader, store)
    read = await read_sessions(pg_dsn, SITE)
    assert read.recording.batches == recorded.batches
    # a recording made before the device was kept: mobile is 0 in every row, nothing else moves
    old = Recording(batches=[replace_device(b, "") for b in recorded.batches])
    # two replays, each into its own keys (dataset.rows): run together, as two CLI runs could
    from_export, before = await asyncio.gather(
        rows(read.recording, redis_url), rows(old, redis_url)
    )
    assert from_export == replayed

    assert all(row.x[MOBILE] == 0.0 for row in before)
    assert [r.x[:MOBILE] + r.x[MOBILE + 1 :] for r in before] == [
        r.x[:MOBILE] + r.x[MOBILE + 1 :] for r in replayed
    ]
    assert fit_propensity(before)["coef"][MOBILE] == 0.0
    # an export table made before the column: read as such a recording
    conn = await asyncpg.connect(pg_dsn)
    try:
        await conn.execute("ALTER TABLE cuewire_events DROP COLUMN device")
    finally:
        await conn.close()
    assert (await read_sessions(pg_dsn, SITE)).recording.batches == old.batches


def replace_device(batch: Batch, device: str) -> Batch:
    return msgspec.structs.replace(batch, device=device)


@pytest.mark.timeout(180)  # about 10 s alone: 1,250 batches served, then replayed four times
@pytest.mark.parametrize("backend_url", ["redis"], indirect=True)  # the export reads Redis
async def test_training_from_the_export_equals_training_from_the_recording(
    store: RedisStore,
    settings: Settings,
    pg_dsn: str,
    redis_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Shoppers served, exported by the real loader into PostgreSQL, read back by
    ``--from-export``: the same sessions, rows and models as ``cuewire record``'s copy of
    the live stream gives."""
    shoppers = recording(EXPORTED, seed=3, site=SITE)
    await _serve(Harness(store, settings), Recording.read(shoppers.lines))
    loader = postgres_loader(
        replace(settings, export_dsn=pg_dsn), store.client, store.keys, [SITE], "learn"
    )
    await export_all(loader, store)
    out = io.StringIO()
    await record(store, SITE, out, 1_000_000)
    recorded = Recording.read(out.getvalue().splitlines())
    sent = sum(len(json.loads(line)["events"]) for line in shoppers.lines)
    assert sum(len(b.events) for b in recorded.batches) == sent  # every event accepted

    started = time.perf_counter()
    read = await read_sessions(pg_dsn, SITE, prefetch=100)  # 100 rows per cursor fetch
    took = time.perf_counter() - started
    assert read.recording.batches == recorded.batches and read.dropped == 0

    # two replays, each into its own keys (dataset.rows): run together, as two CLI runs could
    from_export, from_recording = await asyncio.gather(
        rows(read.recording, redis_url), rows(recorded, redis_url)
    )
    assert from_export == from_recording
    assert len(from_export) == len(shoppers.intents)
    trained = fit_propensity(from_recording)
    metrics = trained["metrics"]
    assert metrics["baseline_auc"] == 0.5 and metrics["auc"] > 0.7

    # the commands: the DSN given, or CUEWIRE_EXPORT_DSN
    models = tmp_path / "models"
    common = ["--site", SITE, "--store", redis_url]
    args = ["train", "--from-export", pg_dsn, *common, "--out", str(models / "propensity.json")]
    assert await asyncio.to_thread(main, args) == 0
    monkeypatch.setenv("CUEWIRE_EXPORT_DSN", pg_dsn)
    args = ["segment", "--from-export", *common, "--k", "4"]
    assert await asyncio.to_thread(main, [*args, "--out", str(models / "segments.json")]) == 0
    assert f"4 segments of {len(from_export)} sessions" in capsys.readouterr().out
    written = json.loads((models / "propensity.json").read_text(encoding="utf-8"))
    assert _params(written) == _params(trained)
    segments = json.loads((models / "segments.json").read_text(encoding="utf-8"))
    assert segments == fit_segments(from_recording, 4)

    # a window of time, and the latest batches only
    since, until = recorded.batches[len(recorded.batches) // 3].at, recorded.batches[-40].at
    window = await read_sessions(
        pg_dsn,
        SITE,
        datetime.datetime.fromtimestamp(since / 1000, datetime.UTC),
        datetime.datetime.fromtimestamp(until / 1000, datetime.UTC),
    )
    inside = [b for b in recorded.batches if since <= b.at < until]
    assert window.recording.batches == inside and 0 < len(inside) < len(recorded.batches)
    latest = await read_sessions(pg_dsn, SITE, max_batches=50, prefetch=7)
    assert latest.recording.batches == recorded.batches[-50:]
    assert latest.dropped == len(recorded.batches) - 50
    with capsys.disabled():
        print(
            f"\nread {sent} exported events as {read.batches} batches in {took:.2f} s;"
            f" {len(from_export)} sessions, held-out AUC {metrics['auc']:.3f}"
        )


async def test_training_from_an_export_that_is_not_there_says_what_to_do(
    pg_dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ConfigError) as empty:  # a database the export never wrote to
        await read_sessions(pg_dsn, SITE)
    assert empty.value.code is Misconfig.EXPORT_MISSING
    closed = f"postgresql://postgres@127.0.0.1:{free_port()}/cuewire"  # nobody listens
    for unreachable in (closed, f"{POSTGRES}/cw_no_such_database"):
        with pytest.raises(ConfigError) as caught:
            await read_sessions(unreachable, SITE)
        assert caught.value.code is Misconfig.EXPORT_UNREACHABLE, unreachable
    out = tmp_path / "propensity.json"
    args = ["train", "--from-export", pg_dsn, "--site", SITE, "--out", str(out)]
    assert await asyncio.to_thread(main, args) == 2
    assert "cuewire: [export_missing] " in capsys.readouterr().err and not out.exists()


def test_the_server_does_not_import_the_training_stack() -> None:
    code = "import sys, cuewire.app, cuewire.cli; print(sorted(m for m in ('sklearn', 'numpy') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("backend_url", ["redis"], indirect=True)  # counts seeded beside it
async def test_qa_shows_segment_sizes_and_centroids(
    settings: Settings, tmp_path: Path, shoppers_rows: tuple[dict[str, str], list[Row]]
) -> None:
    _, found = shoppers_rows
    rules = write(tmp_path / "rules" / "r.yaml", "rules: []\n").parent
    model = load_segments(_json(rules / "models" / "segments.json", fit_segments(found, 3)))
    served = replace(settings, rules_dir=rules, admin_password="qa-secret-1")
    first, second = (s.name for s in model.spec.segments[:2])
    with LiveServer(served, site_for) as server:
        now = int(time.time() * 1000)
        async with open_store(served) as store:  # what the server counts as it assigns them
            for n, (name, at) in enumerate([(first, now - DAY_MS), (first, now), (second, now)]):
                visitor = f"v_qa{n:010d}"
                await store.open_session(SITE, visitor, None, at)
                assert await store.assign_segment(SITE, visitor, model.id, name, at)
        async with httpx.AsyncClient(base_url=server.url) as http:
            assert (await http.get("/qa/segments.json")).status_code == 401
            auth = ("admin", "qa-secret-1")
            site = {"site": SITE}
            body = (await http.get("/qa/segments.json", auth=auth, params=site)).json()
            page = (await http.get("/qa/segments", auth=auth, params=site)).text
            params = {**site, "from": day_of(now)}
            today = (await http.get("/qa/segments.json", auth=auth, params=params)).json()
            bad = await http.get("/qa/segments.json", auth=auth, params={"from": "june"})
    shown = body["segments"]["segments"]
    assert sum(s["size"] for s in shown) == len(found) and len(shown) == 3
    assert set(shown[0]["centroid"]) == set(features.NAMES)
    assert "propensity" not in body
    assert all(s["name"] in page for s in shown)
    assert body["live"]["site"] == SITE and body["live"]["to"] == day_of(now)
    assert [s["assigned"] for s in shown] == [2, 1, 0]
    assert [s["assigned_share"] for s in shown] == [0.6667, 0.3333, 0.0]
    per_day = body["segments"]["assigned_per_day"]
    assert per_day == {day_of(now - DAY_MS): {first: 1}, day_of(now): {first: 1, second: 1}}
    assert [s["assigned"] for s in today["segments"]["segments"]] == [1, 1, 0]
    assert "visitors assigned live" in page and 'id="assigned-per-day"' in page
    assert bad.status_code == 400
