"""Supervised background work: crashes are logged, restarted with capped backoff, and shown
in /healthz; the reload watcher survives any broken rule file."""

from __future__ import annotations

import asyncio
import itertools
import logging
import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from cuewire.errors import RuleError, TemplateError
from cuewire.render import Catalog
from cuewire.rules.loader import load_rules
from cuewire.settings import Settings
from cuewire.supervise import Fault, Supervisor
from support.paths import FIXTURES
from support.servers import LiveServer, site_for
from support.visitor import Visitor
from support.waiting import eventually


async def test_a_crashing_loop_is_logged_restarted_and_reported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    runs: list[int] = []
    settled = asyncio.Event()

    async def flaky() -> None:
        runs.append(len(runs))
        if len(runs) <= 2:
            raise ValueError(f"boom {len(runs)}")
        settled.set()
        await asyncio.Event().wait()

    async with Supervisor(base_s=0.01, max_s=0.05) as supervisor:
        supervisor.spawn("flaky", flaky)
        await asyncio.wait_for(settled.wait(), 5)
        (state,) = supervisor.states()
        assert state.running
        assert state.restarts == 2
        assert state.last_error is not None
        assert state.last_error.code == Fault.CRASHED
        assert (state.last_error.type, state.last_error.text) == ("ValueError", "boom 2")
    crashes = [r for r in caplog.records if "crashed" in r.getMessage()]
    assert len(crashes) == 2
    assert all(r.exc_info is not None and r.levelno == logging.ERROR for r in crashes)


def test_backoff_doubles_and_is_capped() -> None:
    supervisor = Supervisor(base_s=0.5, max_s=30)
    assert [supervisor.backoff_s(n) for n in range(1, 9)] == [0.5, 1, 2, 4, 8, 16, 30, 30]


async def test_backoff_grows_between_restarts_of_a_loop_that_always_fails() -> None:
    loop = asyncio.get_running_loop()
    started: list[float] = []
    enough = asyncio.Event()

    async def always() -> None:
        started.append(loop.time())
        if len(started) == 6:
            enough.set()
        raise RuntimeError("no")

    async with Supervisor(base_s=0.02, max_s=0.08) as supervisor:
        supervisor.spawn("always", always)
        await asyncio.wait_for(enough.wait(), 10)
    gaps = [b - a for a, b in itertools.pairwise(started)]
    assert gaps[0] >= 0.02 and gaps[1] >= 0.04
    assert gaps[2] >= 0.08 and gaps[3] >= 0.08 and gaps[4] >= 0.08  # it keeps restarting


async def test_stopping_lets_the_work_in_flight_finish() -> None:
    stop = asyncio.Event()
    finished: list[str] = []
    ticking = asyncio.Event()

    async def loop() -> None:
        while not stop.is_set():
            ticking.set()
            await asyncio.sleep(0.2)  # a tick in flight when shutdown begins
            finished.append("tick")

    async with Supervisor(grace_s=5) as supervisor:
        supervisor.spawn("ticks", loop, stop=stop.set)
        await ticking.wait()
    assert finished == ["tick"]


async def test_a_loop_without_stop_is_cancelled_at_close() -> None:
    async with Supervisor() as supervisor:
        handle = supervisor.spawn("forever", lambda: asyncio.Event().wait())
        await asyncio.sleep(0)
    assert handle.task is not None and handle.task.cancelled()
    assert supervisor.states() == []


async def test_a_failing_one_shot_job_is_counted_not_retried() -> None:
    async def bad() -> None:
        raise KeyError("payload")

    async with Supervisor() as supervisor:
        await supervisor.run_once("webhooks", bad())
        (state,) = supervisor.states()
        assert (state.failures, state.in_flight, state.restarts) == (1, 0, 0)
        assert state.last_error is not None and state.last_error.code == Fault.FAILED


# ---------------------------------------------------------------- in the running server

RULES = """
rules:
  - id: welcome
    trigger: {event: {type: page_view}}
    show: {template: note}
"""


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "rules"
    shutil.copytree(FIXTURES / "rules", folder)
    return folder


@pytest.fixture
def server(settings: Settings, rules_dir: Path) -> Iterator[LiveServer]:
    with LiveServer(replace(settings, rules_dir=rules_dir, reload_poll_s=0.05), site_for) as s:
        yield s


async def healthz(server: LiveServer) -> dict[str, Any]:
    async with httpx.AsyncClient() as client:
        body: dict[str, Any] = (await client.get(server.url + "/healthz")).json()
    return body


async def test_a_control_character_in_a_rule_file_keeps_the_watcher_alive(
    server: LiveServer, rules_dir: Path
) -> None:
    """Before: yaml's ReaderError (not a MarkedYAMLError) ended the reload watcher silently."""
    before = await healthz(server)
    loaded = before["rules"]["loaded"]
    assert before["tasks"]["reload"]["running"] is True

    (rules_dir / "extra.yaml").write_text("rules:\n  - id: bad\x01rule\n", encoding="utf-8")
    broken = await eventually(
        lambda: healthz(server), lambda b: b["rules"]["error"] is not None, what="reload error"
    )
    assert "extra.yaml:2:" in broken["rules"]["error"]
    assert "character #x0001 not allowed" in broken["rules"]["error"]
    assert broken["rules"]["loaded"] == loaded  # the last good set still serves
    assert broken["tasks"]["reload"]["running"] is True
    assert broken["tasks"]["reload"]["restarts"] == 0
    async with Visitor(server.url) as visitor:
        ack = await visitor.send(visitor.event("page_view"))
        assert ack["accepted"] == 1

    (rules_dir / "extra.yaml").write_text(RULES, encoding="utf-8")
    fixed = await eventually(
        lambda: healthz(server), lambda b: b["rules"]["error"] is None, what="reload"
    )
    assert fixed["rules"]["loaded"] == loaded + 1


async def test_a_background_task_that_raises_is_restarted_and_shown_in_healthz(
    server: LiveServer,
) -> None:
    crashes = 0

    async def crash_twice() -> None:
        nonlocal crashes
        if crashes < 2:
            crashes += 1
            raise OSError(f"disk gone {crashes}")
        await asyncio.Event().wait()

    async def start() -> None:
        supervisor = server.services.supervisor
        supervisor.base_s = 0.01
        supervisor.spawn("crasher", crash_twice)

    await server.call(start())
    body = await eventually(
        lambda: healthz(server),
        lambda b: "crasher" in b["tasks"] and b["tasks"]["crasher"]["running"],
        what="the restarted task",
    )
    crasher = body["tasks"]["crasher"]
    assert crasher["restarts"] == 2
    assert crasher["last_error"]["code"] == "crashed"
    assert crasher["last_error"]["type"] == "OSError"
    assert crasher["last_error"]["text"] == "disk gone 2"
    assert body["tasks"]["timers"]["running"] is True


# ---------------------------------------------------------------- lifecycles


# ---------------------------------------------------------------- every YAML error is a SourceError


def test_a_control_character_in_a_rule_file_is_a_rule_error_at_its_line(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text("rules:\n  - id: a\x07b\n", encoding="utf-8")
    with pytest.raises(RuleError) as caught:
        load_rules(tmp_path)
    (problem,) = caught.value.problems
    assert (problem.line, problem.col) == (2, 10)
    assert "character #x0007 not allowed" in problem.message


def test_a_control_character_in_template_metadata_is_a_template_error(tmp_path: Path) -> None:
    source = (FIXTURES / "templates" / "note.html").read_text(encoding="utf-8")
    broken = source.replace("kind: modal", "kind: mo\x1bdal", 1)
    (tmp_path / "note.html").write_text(broken, encoding="utf-8")
    with pytest.raises(TemplateError) as caught:
        Catalog.load(tmp_path)
    (problem,) = caught.value.problems
    assert problem.line == 2
    assert "invalid metadata YAML: character #x001b not allowed" in problem.message
