"""A Redis outage is logged once per change of state, not once per batch (STYLE.md 10c).

During an outage every batch fails; the gateway logs one ERROR when the store becomes
unreachable and one line when it is back, and counts every failure in the metrics.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from cuewire.settings import Settings
from support.paths import FIXTURES
from support.servers import LiveServer, RedisServer, site_for
from support.visitor import Visitor

BATCHES = 30


async def test_a_redis_outage_is_logged_once_not_once_per_batch(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    redis_server = RedisServer(tmp_path).start()
    settings = Settings(
        redis_url=redis_server.url,
        rules_dir=FIXTURES / "rules",
        templates_dir=FIXTURES / "templates",
        timer_poll_s=0.02,
    )
    try:
        with LiveServer(settings, site_for) as server, caplog.at_level(logging.WARNING):
            async with Visitor(server.url) as v:
                assert (await v.send(v.event("page_view")))["accepted"] == 1
                redis_server.kill()
                codes = []
                for _ in range(BATCHES):
                    ack = await v.send(v.event("scroll", depth=25))
                    codes += [r["code"] for r in ack["rejected"]]
                assert codes == ["store_unavailable"] * BATCHES
                redis_server.start()
                ack = await v.send(v.event("scroll", depth=50))
                for _ in range(50):  # the pool reconnects on its own
                    if ack["accepted"]:
                        break
                    ack = await v.send(v.event("scroll", depth=50))
                assert ack["accepted"] == 1
            gateway = [r for r in caplog.records if r.name == "cuewire.gateway"]
            errors = [r for r in gateway if r.levelno >= logging.ERROR]
            assert len(errors) == 1, [r.getMessage() for r in errors]
            back = [r for r in gateway if "reachable again" in r.getMessage()]
            assert len(back) == 1
            metric = server.services.metrics.store_errors.labels("ingest")._value.get()
            assert metric >= BATCHES
    finally:
        redis_server.kill()
