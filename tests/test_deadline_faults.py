"""Deadlines under process crashes and a Redis outage, with real `cuewire serve` processes
and real redis-servers. Run with ``-s`` to see the figures (docs/reliability.md).

Each deadline is one session's `remind` rule (it sets a fact and shows nothing, so no tab is
needed); the audit stream must hold exactly one record for each: fired, or dropped as too late.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis

from cuewire.ids import new_id
from cuewire.settings import Settings
from cuewire.store import RedisStore, open_store
from cuewire.store.base import Schedule, Timer
from support.paths import FIXTURES
from support.processes import ServerProcess, sites_file
from support.servers import WITH_CLUSTER, RedisServer, free_port
from support.waiting import eventually_blocking

BACKENDS = WITH_CLUSTER  # the store tests run on a Redis Cluster too

# Heavy: real processes. About 20-30 s each on an idle 2-core machine; the bound is for a
# loaded one.
pytestmark = pytest.mark.timeout(150)
LEASE_S = "2"
RULES = """
rules:
  - id: remind
    trigger:
      absence:
        after: {type: custom, name: start}
        missing: {type: custom, name: stop}
        within: WITHIN
    set: [{name: reminded}]
    MAX_LATE
"""


def rules_dir(tmp_path: Path, within: str, max_late: str | None = None) -> Path:
    folder = tmp_path / "rules"
    folder.mkdir()
    text = RULES.replace("WITHIN", within)
    text = text.replace("MAX_LATE", f"max_late: {max_late}" if max_late else "")
    (folder / "rules.yaml").write_text(text)
    return folder


async def start_deadlines(redis_url: str, n: int, first_in_s: float, spread_s: float) -> list[str]:
    """``n`` sessions, each with one pending `remind` deadline, falling due evenly from
    ``first_in_s`` to ``first_in_s + spread_s`` from now (what the rule schedules for a
    `start` event, written through the store to set up 1,000 of them in a second).
    Returns the sessions."""
    now = int(time.time() * 1000)

    limit = asyncio.Semaphore(16)

    async def one(store: RedisStore, i: int) -> str:
        visitor = f"v_fault{i:06d}"
        async with limit:
            opened = await store.open_session("test-site", visitor, None, now)
            timer = Timer("test-site", opened.session, visitor, "remind", new_id(nbytes=6))
            due = now + round((first_in_s + spread_s * i / n) * 1000)
            await store.apply([Schedule(timer, due)])
        return opened.session

    async with open_store(Settings(redis_url=redis_url)) as store:
        return list(await asyncio.gather(*(one(store, i) for i in range(n))))


@dataclass
class Figures:
    fired: int
    too_late: int
    lost: int
    doubled: int
    other: Counter[str]


def audit_figures(client: redis.Redis, sessions: list[str]) -> Figures:
    records = [
        {k.decode(): v.decode() for k, v in fields.items()}
        for _, fields in client.xrange("cw:audit:test-site")
    ]
    per_session = Counter(r["session"] for r in records if r["rule"] == "remind")
    outcomes = Counter(
        "fired" if r["outcome"] == "fired" else f"{r['outcome']}:{r.get('code', '')}"
        for r in records
    )
    return Figures(
        fired=outcomes.pop("fired", 0),
        too_late=outcomes.pop("dropped:too_late", 0),
        lost=sum(1 for s in sessions if per_session[s] == 0),
        doubled=sum(1 for s in sessions if per_session[s] > 1),
        other=outcomes,
    )


def wait_settled(client: redis.Redis, seconds: float) -> None:
    """Wait until no deadline is pending or claimed: each claim (also one a killed process
    left behind, reclaimed when its lease expired) has been fired or dropped, audited and
    acked, so a deadline fired twice would be in the audit by now."""
    eventually_blocking(
        lambda: client.zcard("cw:timers") + client.zcard("cw:timers:lease"),
        lambda pending: pending == 0,
        timeout=seconds,
        interval=0.1,
        what="every deadline settled",
    )


def wait_for_records(client: redis.Redis, n: int, seconds: float) -> None:
    """Wait up to ``seconds`` for ``n`` audit records; fewer is left to the assertions after
    (they print the figures of what was lost)."""
    with contextlib.suppress(AssertionError):
        eventually_blocking(
            lambda: client.xlen("cw:audit:test-site"),
            lambda have: have >= n,
            timeout=seconds,
            interval=0.1,
        )


@pytest.fixture
def two_servers(clean_redis: str, tmp_path: Path) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    ports = free_port(), free_port()
    sites = sites_file(tmp_path / "sites.yaml", *ports)
    rules = rules_dir(tmp_path, "4s")
    env = {"CUEWIRE_TIMER_LEASE_S": LEASE_S}
    servers = tuple(
        ServerProcess(clean_redis, rules, FIXTURES / "templates", sites, port, env)
        for port in ports
    )
    try:
        for server in servers:
            server.start()
        yield servers  # type: ignore[misc]
    finally:
        for server in servers:
            server.stop()


def test_sigkill_of_one_of_two_processes_while_1000_deadlines_fall_due_loses_none(
    two_servers: tuple[ServerProcess, ServerProcess], clean_redis: str
) -> None:
    victim, _survivor = two_servers
    n = 1000
    sessions = asyncio.run(start_deadlines(clean_redis, n, 1.0, 3.0))
    client = redis.Redis.from_url(clean_redis)
    try:
        wait_for_records(client, n // 3, 30)  # deadlines are falling due on both processes
        at_kill = client.xlen("cw:audit:test-site")
        leased = client.zcard("cw:timers:lease")
        victim.kill()
        wait_for_records(client, n, 40)
        wait_settled(client, 30)  # anything claimed twice would show up by now
        figures = audit_figures(client, sessions)
        print(
            f"\nSIGKILL of 1 of 2 processes, {n} deadlines: {at_kill} audited before the kill"
            f" ({leased} leased at that moment); fired {figures.fired}, too late"
            f" {figures.too_late}, lost {figures.lost}, doubled {figures.doubled},"
            f" other {dict(figures.other)}"
        )
        assert 0 < at_kill < n  # the kill landed while deadlines were falling due
        assert (figures.lost, figures.doubled) == (0, 0)
        assert figures.fired + figures.too_late == n
        assert client.zcard("cw:timers") == 0 and client.zcard("cw:timers:lease") == 0
    finally:
        client.close()


def test_deadlines_due_during_a_redis_outage_fire_after_it_or_are_audited_too_late(
    own_redis: RedisServer, tmp_path: Path
) -> None:
    port = free_port()
    sites = sites_file(tmp_path / "sites.yaml", port)
    rules = rules_dir(tmp_path, "3s", max_late="8s")
    env = {"CUEWIRE_TIMER_LEASE_S": LEASE_S}
    server = ServerProcess(own_redis.url, rules, FIXTURES / "templates", sites, port, env)
    n, outage_s = 300, 5.0
    try:
        server.start()
        sessions = asyncio.run(start_deadlines(own_redis.url, n, 1.5, 3.0))
        own_redis.stop()  # the deadlines fall due while Redis is down
        down = httpx.get(server.url + "/healthz", timeout=5).status_code
        time.sleep(outage_s)
        own_redis.start()
        client = redis.Redis(port=own_redis.port)
        try:
            wait_for_records(client, n, 30)
            wait_settled(client, 30)
            figures = audit_figures(client, sessions)
        finally:
            client.close()
        up = httpx.get(server.url + "/healthz", timeout=5).status_code
        print(
            f"\nRedis down {outage_s:g} s while {n} deadlines fell due: fired {figures.fired},"
            f" too late {figures.too_late}, lost {figures.lost}, doubled {figures.doubled},"
            f" other {dict(figures.other)}; /healthz {down} during, {up} after"
        )
        assert server.proc is not None and server.proc.poll() is None  # it did not crash
        assert (down, up) == (503, 200)
        assert (figures.lost, figures.doubled) == (0, 0)
        assert figures.fired + figures.too_late == n
    finally:
        server.stop()
