"""`cuewire serve --workers N`: N real server processes on one port, under one supervisor.

Each test starts `cuewire serve --workers 2` as a subprocess against a real redis-server and
tells the workers apart by what their /healthz says (pid, worker index, open connections).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from cuewire.codes import Misconfig
from cuewire.errors import ConfigError
from cuewire.keys import Keys
from cuewire.settings import Limits, Settings
from cuewire.workers import (
    HEALTHCHECK_S,
    RETRY_S,
    STOP_BOUND_S,
    default_workers,
    settings_env,
    worker_count,
)
from support.paths import FIXTURES
from support.processes import ServerProcess, deadlines_settled_in, sites_file
from support.servers import free_port
from support.visitor import Visitor
from support.waiting import eventually

PRODUCT = "http://shop.test/product/boots"


@dataclass(frozen=True)
class Seen:
    """One worker as its /healthz answered."""

    pid: int
    index: int
    connections: int


async def healthz(url: str, http: httpx.AsyncClient | None = None) -> Seen:
    """One /healthz over a connection of its own, so the kernel may hand it to any worker
    (through ``http``, a client that keeps no connection, when given)."""
    if http is None:
        async with httpx.AsyncClient(timeout=2) as client:
            return await healthz(url, client)
    body: dict[str, Any] = (await http.get(url + "/healthz")).json()
    return Seen(body["worker"]["pid"], body["worker"]["index"], body["connections"])


async def workers(url: str, count: int, timeout: float = 20) -> dict[int, Seen]:
    """The latest answer of each of ``count`` distinct workers (by pid); each pid sampled
    twice in a row agreeing, so a connection count is not one caught mid-change."""
    seen: dict[int, Seen] = {}
    stable: set[int] = set()

    async def sample() -> set[int]:
        answer = await healthz(url)
        if seen.get(answer.pid) == answer:
            stable.add(answer.pid)
        else:
            stable.discard(answer.pid)
        seen[answer.pid] = answer
        return stable

    await eventually(
        sample,
        lambda pids: len(pids) >= count,
        timeout=timeout,
        interval=0.01,
        what=f"{count} workers answering /healthz",
        ignoring=(httpx.HTTPError,),
    )
    return {pid: seen[pid] for pid in stable}


def running(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def children(pid: int) -> set[int]:
    return {int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def rules_due_in(tmp_path: Path, within: str) -> Path:
    rules = tmp_path / "rules"
    rules.mkdir()
    text = (FIXTURES / "rules" / "rules.yaml").read_text()
    (rules / "rules.yaml").write_text(text.replace("within: 1s", f"within: {within}"))
    return rules


@pytest.fixture
def pool(clean_redis: str, tmp_path: Path) -> Iterator[ServerProcess]:
    """`cuewire serve --workers 2`; the hesitation deadline is 2 s after a product view."""
    port = free_port()
    sites = sites_file(tmp_path / "sites.yaml", port)
    rules = rules_due_in(tmp_path, "2s")
    server = ServerProcess(
        clean_redis, rules, FIXTURES / "templates", sites, port, workers=2
    ).start()
    yield server
    server.stop()


async def test_two_workers_share_the_port_and_both_serve_visitors(pool: ServerProcess) -> None:
    assert pool.proc is not None
    found = await workers(pool.url, 2)
    assert sorted(w.index for w in found.values()) == [0, 1]
    assert {parent_of(pid) for pid in found} == {pool.proc.pid}
    # tabs land where the kernel hands their connection; open more until both workers hold some
    tabs: list[Visitor] = []
    try:
        for _ in range(8):
            for _ in range(4):
                tab = await Visitor(pool.url, visitor=f"v_{len(tabs):08d}").connect()
                assert (await tab.send(tab.event("page_view", "http://shop.test/")))["accepted"]
                tabs.append(tab)
            held = await workers(pool.url, 2)
            if all(w.connections for w in held.values()):
                break
        assert sum(w.connections for w in held.values()) == len(tabs)
        assert all(w.connections > 0 for w in held.values()), held
    finally:
        await asyncio.gather(*(t.sio.disconnect() for t in tabs))


async def test_a_killed_worker_is_replaced_and_its_deadline_fires_once(
    pool: ServerProcess,
) -> None:
    before = await workers(pool.url, 2)
    v = await Visitor(pool.url).connect()
    assert v.info
    session = v.info["session"]
    holder = next(w for w in (await workers(pool.url, 2)).values() if w.connections == 1)
    await v.send(v.event("page_view", PRODUCT))  # arms the 2 s deadline, through `holder`
    os.kill(holder.pid, signal.SIGKILL)
    await v.sio.disconnect()
    # the tab comes back, on the other worker or the replacement; the deadline fires once
    back = await Visitor(pool.url, session=session).connect()
    assert back.info and back.info["session"] == session
    await back.send(back.event("visibility", PRODUCT, state="visible", dwell_ms=500))
    prompt = await back.wait_prompt(timeout=10)
    assert prompt["rule"] == "hesitate-product"
    await deadlines_settled_in(pool.redis_url)
    await back.barrier()
    assert [p["id"] for p in back.prompts] == [prompt["id"]]
    client = redis.Redis.from_url(pool.redis_url, decode_responses=True)
    keys = Keys("cw")
    audit = [f for _, f in client.xrange(keys.audit("test-site")) if f["rule"] == prompt["rule"]]
    assert [(r["outcome"], r["prompt"]) for r in audit] == [("fired", prompt["id"])]
    assert client.hget(keys.session("test-site", session), f"fired:{prompt['rule']}") == "1"
    client.close()
    await back.sio.disconnect()
    # the supervisor replaced the killed worker: a new pid serves under the freed index
    after = await workers(pool.url, 2)
    assert holder.pid not in after and not running(holder.pid)
    assert sorted(w.index for w in after.values()) == sorted(w.index for w in before.values())
    assert len(set(after) - set(before)) == 1


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_sigterm_stops_every_worker_gracefully_within_the_bound(
    pool: ServerProcess, sig: signal.Signals
) -> None:
    assert pool.proc is not None
    found = await workers(pool.url, 2)
    tab = await Visitor(pool.url).connect()
    disconnected = asyncio.Event()
    tab.sio.on("disconnect", disconnected.set)
    start = time.monotonic()
    pool.proc.send_signal(sig)
    code = await asyncio.to_thread(pool.proc.wait, STOP_BOUND_S + 5)
    took = time.monotonic() - start
    assert code == 0  # every worker ended with 0: none had to be killed at the bound
    assert took < STOP_BOUND_S
    assert not any(running(pid) for pid in found)
    await asyncio.wait_for(disconnected.wait(), 5)  # the tab's socket was closed, not left open


async def test_a_batch_in_flight_when_sigterm_comes_is_finished(pool: ServerProcess) -> None:
    """Redis is paused, so the batch the worker has read waits on its store call when the
    worker gets SIGTERM (what the parent sends each worker on its own SIGTERM): the worker
    closes the socket but finishes the batch, whole, before it exits."""
    await workers(pool.url, 2)
    v = await Visitor(pool.url).connect()
    assert v.info
    holder = next(w for w in (await workers(pool.url, 2)).values() if w.connections == 1)
    client = redis.Redis.from_url(pool.redis_url, decode_responses=True)
    client.execute_command("CLIENT", "PAUSE", 1500, "ALL")
    events = [v.event("page_view", f"http://shop.test/p/{i}") for i in range(100)]
    await v.sio.emit("events", events)
    await asyncio.sleep(0.4)  # the worker has read it and waits on the store
    os.kill(holder.pid, signal.SIGTERM)
    await eventually(lambda: not running(holder.pid), timeout=STOP_BOUND_S, what="it exiting")
    stored = client.hget(Keys("cw").session("test-site", v.info["session"]), "events")
    client.close()
    assert stored == "100"
    await v.sio.disconnect()


async def test_sighup_replaces_the_workers_one_at_a_time(pool: ServerProcess) -> None:
    """A rolling restart: every worker is replaced, and every request is answered all along,
    to 16 clients opening a connection per request (a stopping worker answers the requests
    of the connections it accepted, http_protocol.py: uvicorn alone dropped 2 to 5 here)."""
    assert pool.proc is not None
    before = await workers(pool.url, 2)
    answered: list[int] = []
    dropped: list[str] = []
    stop = asyncio.Event()

    async def client() -> None:
        # a new connection per request, as healthz() opens, without a new client each time
        # (16 clients building theirs in a loop kept this test's own process too busy to
        # connect within seconds on a loaded machine)
        fresh = httpx.Limits(max_keepalive_connections=0)
        async with httpx.AsyncClient(timeout=10, limits=fresh) as http:
            while not stop.is_set():
                try:
                    answered.append((await healthz(pool.url, http)).pid)
                except httpx.HTTPError as exc:
                    dropped.append(repr(exc))

    clients = [asyncio.create_task(client()) for _ in range(16)]
    try:
        await eventually(lambda: len(answered) >= 16, what="the clients answered")
        pool.proc.send_signal(signal.SIGHUP)
        await eventually(
            lambda: not any(running(pid) for pid in before),
            timeout=40,
            interval=0.05,
            what="both workers replaced",
        )
        served = len(answered)
        await eventually(lambda: len(answered) > served + 16, what="the new workers answered")
    finally:
        stop.set()
        await asyncio.gather(*clients)
    after = await workers(pool.url, 2)
    assert not set(after) & set(before)
    assert set(before) <= set(answered)  # the old workers answered before they went
    assert dropped == []
    assert pool.proc.poll() is None


async def test_a_worker_killed_while_the_parent_waits_for_its_ping_is_replaced_at_once(
    pool: ServerProcess,
) -> None:
    """The parent pings each worker every half second over a pipe whose other end it holds
    too, so the pipe never says the worker is gone: a worker that dies with a ping unanswered
    must be seen dead by its process ending, not after the ping's timeout (HEALTHCHECK_S)."""
    assert pool.proc is not None
    victim, _ = await workers(pool.url, 2)
    known = children(pool.proc.pid)
    os.kill(victim, signal.SIGSTOP)  # it answers no ping: the parent waits on one
    await asyncio.sleep(1.5)
    os.kill(victim, signal.SIGKILL)
    await eventually(
        lambda: children(pool.proc.pid) - known,
        timeout=HEALTHCHECK_S / 2,
        interval=0.05,
        what="a replacement worker",
    )
    assert len(await workers(pool.url, 2)) == 2


async def test_a_worker_that_cannot_load_the_rules_is_retried_while_the_other_serves(
    pool: ServerProcess, tmp_path: Path
) -> None:
    """A rules file saved broken, then a worker dies: its replacement cannot start. The server
    does not stop (the other worker keeps serving with the rules it loaded) and the replacement
    comes up once the file is fixed."""
    assert pool.proc is not None
    rules = tmp_path / "rules" / "rules.yaml"
    good = rules.read_text()
    found = await workers(pool.url, 2)
    victim, survivor = found
    known = children(pool.proc.pid)  # the workers and multiprocessing's resource tracker
    rules.write_text("rules: [\n")
    os.kill(victim, signal.SIGKILL)
    replacement = await eventually(
        lambda: children(pool.proc.pid) - known, what="a replacement worker", interval=0.05
    )
    # it cannot load the rules: it ends on its own after RETRY_S; meanwhile the other serves
    answers = [await healthz(pool.url) for _ in range(30)]
    assert {a.pid for a in answers} == {survivor}
    await eventually(
        lambda: not any(running(pid) for pid in replacement),
        timeout=RETRY_S + 10,
        what="the replacement giving up",
    )
    assert pool.proc.poll() is None  # the server did not stop
    rules.write_text(good)
    back = await workers(pool.url, 2, timeout=20)
    assert survivor in back and victim not in back
    assert pool.proc.poll() is None


async def test_a_rolling_restart_onto_broken_rules_keeps_the_old_workers(
    pool: ServerProcess, tmp_path: Path
) -> None:
    assert pool.proc is not None
    before = await workers(pool.url, 2)  # both started: the rules break only now
    (tmp_path / "rules" / "rules.yaml").write_text("rules: [\n")
    known = children(pool.proc.pid)
    pool.proc.send_signal(signal.SIGHUP)
    replacement = await eventually(
        lambda: children(pool.proc.pid) - known, what="a replacement worker", interval=0.05
    )
    await eventually(
        lambda: not any(running(pid) for pid in replacement),
        timeout=RETRY_S + 10,
        what="the replacement failing",
    )
    # the restart was given up: the same two workers serve, no other was started (the
    # replacement stays a child, a zombie, until the supervisor reaps it)
    assert set(await workers(pool.url, 2)) == set(before)
    await eventually(lambda: children(pool.proc.pid) == known, what="only the old workers")


async def test_workers_stop_when_their_supervisor_is_killed(pool: ServerProcess) -> None:
    """No worker outlives a SIGKILLed parent holding the port (they get SIGTERM from the
    kernel and stop gracefully)."""
    found = await workers(pool.url, 2)
    pool.kill()
    await eventually(
        lambda: not any(running(pid) for pid in found),
        timeout=STOP_BOUND_S,
        what="the orphaned workers stopping",
    )


def test_several_workers_without_redis_are_refused_with_a_code(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as refused:
        worker_count(2, Settings())
    assert refused.value.code is Misconfig.WORKERS_NEED_REDIS
    assert worker_count(None, Settings()) == 1
    assert default_workers(Settings(redis_url="redis://127.0.0.1:1/0")) == len(
        os.sched_getaffinity(0)
    )
    port = free_port()
    sites = sites_file(tmp_path / "sites.yaml", port)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CUEWIRE_")}
    argv = [sys.executable, "-m", "cuewire.cli", "serve", "--workers", "2", "--sites", str(sites)]
    done = subprocess.run(
        [*argv, "--port", str(port)], env=env, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 2
    assert f"[{Misconfig.WORKERS_NEED_REDIS}]" in done.stderr  # the code, for scripts


def test_the_settings_travel_to_the_workers_through_the_environment() -> None:
    settings = Settings(
        redis_url="redis://10.0.0.1:6379/2",
        rules_dir=Path("/srv/rules"),
        sites_file=Path("/srv/sites.yaml"),
        port=9000,
        timer_poll_s=0.1,
        limits=Limits(max_payload_bytes=131072, events_per_second=12.5),
        key_prefix="shop",
        admin_password="pw",
        secret="s" * 32,
    )
    assert Settings.from_env(env=settings_env(settings)) == settings
    assert Settings.from_env(env=settings_env(Settings())) == Settings()
