"""The export (docs/export.md): events, decisions and conversions reach PostgreSQL exactly
once through a Redis consumer group.

Visitors with known outcomes go through the real pipeline (test_measure's script, on a fake
clock) on both store backends; the loader reads the site's streams into a database of the
test's own on the PostgreSQL server at 127.0.0.1:5432. The counts in the tables must equal
the counts the test works out itself: events from the live stream, decisions from the audit
stream, conversions from the script's own tally. A loader killed with SIGKILL after a commit
and before its XACK, then replaced, must leave nothing lost and nothing doubled.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import asyncpg
import httpx
import pytest
from prometheus_client import CollectorRegistry

from cuewire.export.loader import Loader, postgres_loader, readers_for
from cuewire.export.reader import GROUP
from cuewire.export.records import ConversionRecord, Source, decision_of, events_of
from cuewire.goals import MEASURE_FILE
from cuewire.settings import Settings
from cuewire.store import RedisStore, open_store
from cuewire.supervise import Supervisor
from support.harness import Harness, VisitorSession, write
from support.partition import PausableProxy
from support.paths import FIXTURES, ROOT
from support.servers import WITH_CLUSTER, LiveServer, RedisServer, site_for
from support.visitor import Visitor
from support.waiting import eventually
from test_measure import GOALS, RULES, SITE, run_visitors

LOADER = "cuewire-export"  # the application_name of the loader's connections


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    """test_measure's rules, with its goals in measure.toml beside them."""
    folder = write(tmp_path / "rules" / "measured.yaml", RULES).parent
    write(folder / MEASURE_FILE, GOALS)
    return folder


@pytest.fixture
def shop(store: RedisStore, settings: Settings, rules: Path) -> Harness:
    return Harness(store, replace(settings, rules_dir=rules))


async def drained(store: RedisStore, group: str = GROUP) -> bool:
    """Every entry of both streams delivered to the group and acknowledged."""
    for key in (store.keys.live(SITE), store.keys.audit(SITE)):
        found = [g for g in await store.client.xinfo_groups(key) if g["name"] == group]
        last = (await store.client.xinfo_stream(key))["last-generated-id"]
        if not found or found[0]["pending"] or found[0]["last-delivered-id"] != last:
            return False
    return True


async def export_all(loader: Loader, store: RedisStore) -> None:
    """Run the loader until both streams are drained, then stop it."""
    task = asyncio.create_task(loader.run())

    async def done() -> bool:
        if task.done():
            task.result()  # its failure, if it failed
            raise AssertionError("the loader stopped before the streams were drained")
        return await drained(store)

    try:
        await eventually(done, timeout=30, what="the export drained")
    finally:
        loader.stop()
        await task


async def expected(store: RedisStore) -> dict[str, object]:
    """What the tables must hold, counted from the streams themselves."""
    live = await store.read_live(SITE, 100_000)
    audit = await store.read_audit(SITE, 100_000)
    return {
        "events": sum(len(json.loads(batch["events"])) for batch in live),
        "decisions": Counter((r["outcome"], r["code"]) for r in audit),
    }


async def tables(dsn: str) -> dict[str, object]:
    conn = await asyncpg.connect(dsn)
    try:
        decisions = await conn.fetch(
            "SELECT outcome, code, count(*) AS n FROM cuewire_decisions GROUP BY 1, 2"
        )
        conversions = await conn.fetch(
            "SELECT d.rule, CASE WHEN d.outcome = 'holdout' THEN 'holdout' ELSE d.variant END"
            " AS arm, count(*) AS n FROM cuewire_conversions c JOIN cuewire_decisions d"
            " ON d.site = c.site AND d.entry_id = c.decision_id GROUP BY 1, 2"
        )
        return {
            "events": await conn.fetchval("SELECT count(*) FROM cuewire_events"),
            "decisions": Counter({(r["outcome"], r["code"]): r["n"] for r in decisions}),
            "conversions": {(r["rule"], r["arm"]): r["n"] for r in conversions},
            "gaps": [dict(r) for r in await conn.fetch("SELECT * FROM cuewire_export_gaps")],
        }
    finally:
        await conn.close()


def converted(tally: Counter[tuple[str, str, str]]) -> dict[tuple[str, str], int]:
    return {(rule, arm): n for (rule, arm, what), n in tally.items() if what == "converted" and n}


@pytest.mark.parametrize("backend_url", WITH_CLUSTER, indirect=True)
async def test_events_decisions_and_conversions_reach_postgres_once(
    shop: Harness, store: RedisStore, pg_dsn: str
) -> None:
    tally = await run_visitors(shop, 60, seed=7)
    settings = replace(shop.settings, export_dsn=pg_dsn)
    loader = postgres_loader(settings, store.client, store.keys, [SITE], "one")
    await export_all(loader, store)

    want = await expected(store)
    got = await tables(pg_dsn)
    assert got["events"] == want["events"]
    assert got["decisions"] == want["decisions"]
    assert ("suppressed", "cap_session") in got["decisions"]  # suppressions carry their code
    assert got["conversions"] == converted(tally)
    assert got["gaps"] == []
    rows = loader.totals
    assert rows["event"] == want["events"] and rows["replayed"] == 0

    # From the start again (the group rewound): every row is there already, none doubles.
    for key in (store.keys.live(SITE), store.keys.audit(SITE)):
        await store.client.xgroup_setid(key, GROUP, "0")
    registry = CollectorRegistry()
    again = postgres_loader(settings, store.client, store.keys, [SITE], "two", registry)
    await export_all(again, store)
    assert await tables(pg_dsn) == got
    assert again.totals["replayed"] == want["events"] + sum(want["decisions"].values())
    assert again.totals["event"] == again.totals["decision"] == 0
    replayed = registry.get_sample_value("cuewire_export_replayed_total")
    assert replayed == again.totals["replayed"]
    assert await records_of(store, pg_dsn) == documented()


def documented() -> dict[str, set[str]]:
    """The fields of each record kind, from the examples in docs/export.md."""
    text = (ROOT / "docs" / "export.md").read_text(encoding="utf-8")
    examples = [json.loads(block) for block in re.findall(r"```json\n(.*?)```", text, re.S)]
    return {example["kind"]: set(example) for example in examples}


async def records_of(store: RedisStore, dsn: str) -> dict[str, set[str]]:
    """The fields of each record kind, as the export makes them from real entries."""
    [batch] = await store.read_live(SITE, 1)
    [decision] = await store.read_audit(SITE, 1)
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow("SELECT * FROM cuewire_conversions LIMIT 1")
    finally:
        await conn.close()
    assert row is not None
    conversion = ConversionRecord(
        row["site"],
        row["decision_id"],
        row["rule"],
        row["variant"],
        row["visitor"],
        int(row["decided_at"].timestamp() * 1000),
        f"{row['goal_entry_id']}/{row['goal_idx']}",
        int(row["converted_at"].timestamp() * 1000),
    )
    made = [
        events_of(SITE, batch["id"], batch)[0].to_json(),
        decision_of(SITE, decision["id"], decision).to_json(),
        conversion.to_json(),
    ]
    return {record["kind"]: set(record) for record in made}


async def test_entries_trimmed_before_the_group_read_them_are_a_gap(
    settings: Settings, pg_dsn: str
) -> None:
    settings = replace(settings, live_stream_max=100, export_dsn=pg_dsn)
    async with open_store(settings) as store:
        v = await viewing(Harness(store, settings), "v_gap", 50)
        registry = CollectorRegistry()
        await export_all(postgres_loader(settings, store.client, store.keys, [SITE], "a"), store)
        for _ in range(400):  # the stream keeps about 100: most of these are trimmed unread
            await v.send("page_view")
        kept = await store.client.xlen(store.keys.live(SITE))
        loader = postgres_loader(settings, store.client, store.keys, [SITE], "a", registry)
        await export_all(loader, store)

    got = await tables(pg_dsn)
    assert got["events"] == 50 + kept
    [gap] = got["gaps"]
    assert (gap["stream"], gap["code"], gap["lost"]) == ("live", "trimmed", 400 - kept)
    labels = {"stream": "live", "code": "trimmed"}
    assert registry.get_sample_value("cuewire_export_gaps_total", labels) == 1
    assert registry.get_sample_value("cuewire_export_lost_entries_total", labels) == 400 - kept


class LoaderProcess:
    """``cuewire export postgres`` as a process of its own."""

    def __init__(self, settings: Settings, consumer: str) -> None:
        args = ["export", "postgres", "--redis-url", str(settings.redis_url), "--site", SITE]
        args += ["--dsn", str(settings.export_dsn), "--rules", str(settings.rules_dir)]
        args += ["--consumer", consumer, "--batch", "100", "--claim-idle-s", "0.1"]
        env = {**os.environ, "CUEWIRE_KEY_PREFIX": settings.key_prefix}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cuewire.cli", *args], env=env, stdout=subprocess.PIPE
        )

    def stop(self) -> dict[str, int]:
        """SIGTERM: the batch in flight finishes; what the process moved."""
        self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=20)
        assert self.proc.returncode == 0
        [said] = re.findall(r"export stopped: (.*)", out.decode())
        totals: dict[str, int] = json.loads(said)
        return totals


SESSIONS = "FROM pg_stat_activity WHERE application_name = $1"  # the loader's


async def loader_sessions(
    conn: asyncpg.Connection, state: str | None = None, *, waits: bool = False, busy: bool = False
) -> int:
    """The loader's PostgreSQL sessions (in ``state``; with ``waits``, waiting for a lock; with
    ``busy``, inside a transaction, in a statement or between two): how far a batch has gone."""
    query = f"SELECT count(*) {SESSIONS}"
    if waits:
        query += " AND wait_event_type = 'Lock'"
    if busy:
        query += " AND state <> 'idle'"
    if state is None:
        return int(await conn.fetchval(query, LOADER))
    return int(await conn.fetchval(query + " AND state = $2", LOADER, state))


SITE_LOCK = "hashtext('cuewire-export:' || $1)"  # what a batch's transaction locks first


@contextlib.asynccontextmanager
async def site_lock(conn: asyncpg.Connection) -> AsyncIterator[None]:
    """Hold the site's lock that each of the loader's batches takes first in its transaction
    (postgres.py): the batch in flight commits, the next waits inside its transaction."""
    await conn.execute(f"SELECT pg_advisory_lock({SITE_LOCK})", SITE)
    try:
        yield
    finally:
        await conn.execute(f"SELECT pg_advisory_unlock({SITE_LOCK})", SITE)


async def loaded_rows(conn: asyncpg.Connection, events: int) -> None:
    """Wait until the loader has loaded ``events`` rows (it may take seconds to start)."""

    async def rows() -> int:
        return int(await conn.fetchval("SELECT count(*) FROM cuewire_events"))

    await eventually(
        rows, lambda n: n >= events, timeout=30, ignoring=(asyncpg.UndefinedTableError,)
    )


async def committed_unacked(store: RedisStore, conn: asyncpg.Connection) -> dict[str, int]:
    """Pending entries (read, not acknowledged) whose rows are committed: per stream, the rows."""
    rows = {}
    for source, key in (("live", store.keys.live(SITE)), ("audit", store.keys.audit(SITE))):
        pending = [
            p["message_id"] for p in await store.client.xpending_range(key, GROUP, "-", "+", 10_000)
        ]
        table = "cuewire_events" if source == "live" else "cuewire_decisions"
        rows[source] = int(
            await conn.fetchval(f"SELECT count(*) FROM {table} WHERE entry_id = ANY($1)", pending)
        )
    return rows


def kill_settings(redis: RedisServer, rules: Path, dsn: str) -> Settings:
    return Settings(
        redis_url=redis.url,
        rules_dir=rules,
        templates_dir=FIXTURES / "templates",
        key_prefix="cwkill",
        export_dsn=dsn,
    )


async def busy_site(h: Harness) -> Counter[tuple[str, str, str]]:
    """Thirty scripted visitors (firings, conversions), then 2,000 page views: the tally."""
    tally = await run_visitors(h, 30, seed=11)
    await asyncio.gather(*(viewing(h, f"v_busy{i}", 200) for i in range(10)))
    return tally


async def viewing(h: Harness, visitor: str, views: int) -> VisitorSession:
    """A visitor of the site who has viewed ``views`` pages, one batch each."""
    v = await h.visit(visitor=visitor, site=SITE)
    for _ in range(views):
        await v.send("page_view")
    return v


UNREAD_MARGIN = 500  # five of the loader's batches: it cannot read them all before SIGTERM


async def mid_batch(conn: asyncpg.Connection, store: RedisStore, events: int) -> bool:
    """Looks every millisecond until ``events`` rows are in and the loader is inside a batch's
    transaction with entries still unread behind it (True), or it has read and acknowledged
    every entry first (False: a busy machine can let it finish between two looks)."""

    async def look() -> bool | None:
        if await conn.fetchval("SELECT count(*) FROM cuewire_events") < events:
            return None
        key = store.keys.live(SITE)
        active = await loader_sessions(conn, "active")
        [group] = await store.client.xinfo_groups(key)
        unread = await store.client.xlen(key) - (group["entries-read"] or 0)
        if active and unread >= UNREAD_MARGIN:
            return True
        return False if group["pending"] == 0 and unread == 0 else None

    caught: bool = await eventually(  # a loader started on a loaded machine may take seconds
        look,
        lambda seen: seen is not None,
        timeout=30,
        interval=0.001,
        ignoring=(asyncpg.UndefinedTableError,),
    )
    return caught


async def test_sigterm_lets_the_batch_in_flight_commit_and_be_acknowledged(
    own_redis: RedisServer, rules: Path, pg_dsn: str
) -> None:
    settings = kill_settings(own_redis, rules, pg_dsn)
    async with open_store(settings) as store:
        h = Harness(store, settings)
        await busy_site(h)
        entries = await store.client.xlen(store.keys.live(SITE))
        conn = await asyncpg.connect(pg_dsn)
        try:
            loader = LoaderProcess(settings, "only")
            for more in range(5):  # a loader that read everything first is given more to read
                if await mid_batch(conn, store, entries // 5):
                    break
                await asyncio.gather(*(viewing(h, f"v_more{more}_{i}", 200) for i in range(10)))
                entries = await store.client.xlen(store.keys.live(SITE))
            else:
                raise AssertionError("the loader was never seen inside a batch")
            totals = loader.stop()  # SIGTERM inside a transaction
            loaded = await conn.fetchval("SELECT count(DISTINCT entry_id) FROM cuewire_events")
        finally:
            await conn.close()
        [group] = await store.client.xinfo_groups(store.keys.live(SITE))
    assert group["pending"] == 0  # nothing read is left unacknowledged
    assert loaded == group["entries-read"] == totals["event"] < entries  # stopped mid-stream


async def test_a_loader_killed_between_commit_and_ack_loses_and_doubles_nothing(
    own_redis: RedisServer, rules: Path, pg_dsn: str
) -> None:
    settings = kill_settings(own_redis, rules, pg_dsn)
    async with open_store(settings) as store, PausableProxy(own_redis.port) as proxy:
        tally = await busy_site(Harness(store, settings))
        entries = await store.client.xlen(store.keys.live(SITE))
        conn = await asyncpg.connect(pg_dsn)
        try:
            caught: dict[str, int] = {}
            kills = 0
            while not any(caught.values()) and kills < 3:  # a round misses only if all was read
                loader = LoaderProcess(replace(settings, redis_url=proxy.url), f"round{kills}")
                await loaded_rows(conn, entries * (kills + 1) // 10)
                async with site_lock(conn):  # the loader's next batch waits in its transaction
                    await eventually(lambda: loader_sessions(conn, "active", waits=True))
                    proxy.pause()  # Redis no longer hears the loader: its next XACK is held
                # the lock released, that transaction commits; its XACK cannot reach Redis
                await eventually(lambda: loader_sessions(conn, busy=True), lambda n: n == 0)
                loader.proc.kill()  # SIGKILL, between COMMIT and XACK
                loader.proc.wait(10)
                kills += 1
                proxy.cut()
                caught = await committed_unacked(store, conn)
            assert any(caught.values()), "no SIGKILL landed between a commit and its XACK"

            last = LoaderProcess(settings, "last")  # takes the dead consumers' entries over
            await eventually(lambda: drained(store), timeout=30, what="the export drained")
            totals = last.stop()
            want = await expected(store)
        finally:
            await conn.close()
    got = await tables(pg_dsn)
    assert got["events"] == want["events"]  # none lost, none doubled
    assert got["decisions"] == want["decisions"]
    assert got["conversions"] == converted(tally)
    assert got["gaps"] == []
    assert totals["replayed"] == sum(caught.values())  # loaded again, skipped
    assert totals["reclaimed"] > 0
    print(
        f"export kill: {entries} live entries, {want['events']} events, {kills} SIGKILL(s),"
        f" rows committed but not acknowledged at the SIGKILL {caught},"
        f" replayed {totals['replayed']}, reclaimed {totals['reclaimed']}, lost 0, doubled 0"
    )


async def test_an_unreadable_entry_is_a_gap_and_the_entries_beside_it_load(
    settings: Settings, pg_dsn: str
) -> None:
    settings = replace(settings, export_dsn=pg_dsn)
    async with open_store(settings) as store:
        h = Harness(store, settings)
        v = await h.visit(visitor="v_odd", site=SITE)
        await v.send("page_view")
        junk = await store.client.xadd(store.keys.live(SITE), {"at": "soon", "events": "[1"})
        await v.send("page_view")
        await export_all(postgres_loader(settings, store.client, store.keys, [SITE], "a"), store)
    got = await tables(pg_dsn)
    assert got["events"] == 2
    [gap] = got["gaps"]
    assert (gap["stream"], gap["code"], gap["after_id"], gap["lost"]) == (
        "live",
        "unreadable",
        junk,
        1,
    )


@pytest.mark.parametrize("backend_url", ["embedded"], indirect=True)
async def test_cuewire_serve_exports_from_its_embedded_store(
    settings: Settings, pg_dsn: str
) -> None:
    with LiveServer(replace(settings, export_dsn=pg_dsn), site_for) as server:
        async with Visitor(server.url, site=SITE) as v:
            url = "http://shop.test/product/p1"
            for _ in range(5):
                await v.send(v.event("page_view", url), v.event("exit_intent", url))
            await v.barrier()
        store = server.services.store
        want = await server.call(expected(store))
        assert want["decisions"]  # exit-product fired once, then was held by its caps
        # the export task makes its tables when it starts: not yet there is "not yet"
        await eventually(
            lambda: tables(pg_dsn),
            # the live and the audit streams are read in turn: the decisions may come later
            lambda t: t["events"] == want["events"] and t["decisions"] == want["decisions"],
            ignoring=(asyncpg.UndefinedTableError,),
            what="every event and decision exported",
        )
        async with httpx.AsyncClient() as client:
            health = (await client.get(server.url + "/healthz")).json()
        export = health["tasks"]["export"]
        assert export["running"] and export["last_error"] is None


async def test_a_dead_loaders_batch_trimmed_before_it_was_taken_over_is_a_gap(
    settings: Settings, pg_dsn: str
) -> None:
    settings = replace(settings, live_stream_max=100, export_dsn=pg_dsn)
    async with open_store(settings) as store:
        v = await viewing(Harness(store, settings), "v_dead", 30)
        dead = readers_for(store.client, store.keys, [SITE], "dead", count=30)[0]
        assert dead.source is Source.LIVE
        taken = await dead.next_batch()  # read, never acknowledged: that loader died
        assert len(taken.entries) == 30
        for _ in range(400):  # the stream keeps about 100: the dead batch is trimmed away
            await v.send("page_view")
        kept = await store.client.xlen(store.keys.live(SITE))
        heir = postgres_loader(settings, store.client, store.keys, [SITE], "heir", claim_idle_ms=0)
        await export_all(heir, store)
        [group] = await store.client.xinfo_groups(store.keys.live(SITE))

    got = await tables(pg_dsn)
    assert got["events"] == kept
    by_code = Counter(gap["code"] for gap in got["gaps"])
    assert by_code == {"pending_trimmed": 30, "trimmed": 1}
    lost = {gap["after_id"] for gap in got["gaps"] if gap["code"] == "pending_trimmed"}
    assert lost == {entry for entry, _ in taken.entries}
    [trimmed] = [gap for gap in got["gaps"] if gap["code"] == "trimmed"]
    assert trimmed["lost"] == 400 - kept
    assert group["pending"] == 0


@pytest.mark.parametrize("backend_url", ["redis"], indirect=True)
async def test_a_postgres_outage_mid_batch_is_retried_and_loses_nothing(
    shop: Harness, store: RedisStore, pg_dsn: str
) -> None:
    tally = await busy_site(shop)
    settings = replace(shop.settings, export_dsn=pg_dsn)
    loader = postgres_loader(settings, store.client, store.keys, [SITE], "one", count=20)
    conn = await asyncpg.connect(pg_dsn)
    try:
        async with (
            Supervisor(base_s=0.05) as supervisor,
            supervisor.running("export", loader.run, stop=loader.stop),
        ):
            assert await mid_batch(conn, store, 200), "the loader read everything first"
            async with conn.transaction():  # the loader's next batch of events waits for us
                await conn.execute("LOCK TABLE cuewire_events IN ACCESS EXCLUSIVE MODE")
                waiting = f"SELECT count(*) {SESSIONS} AND wait_event_type = 'Lock'"
                await eventually(lambda: conn.fetchval(waiting, LOADER))
                # its session ends inside that transaction: the batch fails, unacknowledged
                await conn.execute(f"SELECT pg_terminate_backend(pid) {SESSIONS}", LOADER)
            await eventually(lambda: drained(store), timeout=30, what="the export drained")
            [state] = supervisor.states()
    finally:
        await conn.close()
    assert state.restarts >= 1 and state.last_error is not None  # the outage hit the loader
    want = await expected(store)
    got = await tables(pg_dsn)
    assert got["events"] == want["events"]
    assert got["decisions"] == want["decisions"]
    assert got["conversions"] == converted(tally)
