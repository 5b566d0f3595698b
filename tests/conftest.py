"""Fixtures: a real redis-server per test session, both store backends, a live server, a
scratch PostgreSQL database.

Helpers live in tests/support/; this file holds only fixtures."""

from __future__ import annotations

import itertools
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
import redis

from cuewire.settings import Settings
from cuewire.store import RedisStore, open_store
from support.paths import FIXTURES
from support.servers import (
    BACKENDS,
    POSTGRES,
    LiveServer,
    RedisClusterServer,
    RedisServer,
    site_for,
)

_prefixes = itertools.count()


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A redis-server of our own on a free port; it is the only server tests ever flush."""
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed: run ./scripts/test (it installs it)")
    workdir = tempfile.mkdtemp(prefix="cw-redis-")
    server = RedisServer(Path(workdir), durable=False)
    try:
        server.start()
    except AssertionError as exc:
        server.kill()
        pytest.fail(f"redis-server did not start: {exc}")
    yield server.url
    server.stop()
    shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of the test's own with the append-only file on: the fault tests stop,
    kill and start it again on the same port to make an outage."""
    folder = tmp_path / "redis"
    folder.mkdir()
    server = RedisServer(folder).start()
    yield server
    server.stop()


@pytest.fixture
def clean_redis(redis_url: str) -> str:
    client = redis.Redis.from_url(redis_url)
    client.flushall()
    client.close()
    return redis_url


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisClusterServer]:
    """A Redis Cluster of our own (3 primaries on free ports), started once, when a test
    first asks for it."""
    for binary in ("redis-server", "redis-cli"):
        if shutil.which(binary) is None:
            pytest.fail(f"{binary} is not installed: run ./scripts/test (it installs it)")
    workdir = tempfile.mkdtemp(prefix="cw-cluster-")
    cluster = RedisClusterServer(Path(workdir))
    try:
        cluster.start()
    except (AssertionError, subprocess.SubprocessError) as exc:
        cluster.stop()
        pytest.fail(f"the Redis Cluster did not start: {exc}")
    yield cluster
    cluster.stop()
    shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def clean_cluster(redis_cluster: RedisClusterServer) -> str:
    """The URL of our own cluster (its first node), every node flushed."""
    redis_cluster.flush()
    return redis_cluster.url


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``backend_url``: a real Redis and the embedded store; a module that sets
    ``BACKENDS = WITH_CLUSTER`` (support/servers.py) runs on a Redis Cluster too."""
    chosen = any(
        "backend_url" in str(mark.args[0])
        for mark in metafunc.definition.iter_markers("parametrize")
    )  # a test that names its own backends
    if "backend_url" in metafunc.fixturenames and not chosen:
        backends = getattr(metafunc.module, "BACKENDS", BACKENDS)
        metafunc.parametrize("backend_url", backends, indirect=True)


@pytest.fixture
def backend_url(request: pytest.FixtureRequest) -> str | None:
    """The store backend: a real Redis, the embedded in-process store or a Redis Cluster."""
    if request.param == "redis":
        return str(request.getfixturevalue("clean_redis"))
    if request.param == "cluster":
        return str(request.getfixturevalue("clean_cluster"))
    return None


@pytest.fixture
def settings(backend_url: str | None, tmp_path: Path) -> Settings:
    return Settings(
        redis_url=backend_url,
        rules_dir=FIXTURES / "rules",
        templates_dir=FIXTURES / "templates",
        timer_poll_s=0.02,
        key_prefix=f"cwt{next(_prefixes)}",
        reload_poll_s=0.1,
    )


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[RedisStore]:
    async with open_store(settings) as s:
        yield s


@pytest.fixture
def live(settings: Settings) -> Iterator[LiveServer]:
    """A live server whose site key ``test-site`` allows only the server's own origin."""
    with LiveServer(settings, site_for) as server:
        yield server


@pytest.fixture
async def pg_dsn() -> AsyncIterator[str]:
    """A database of the test's own on the PostgreSQL at 127.0.0.1:5432, dropped afterwards."""
    name = f"cw_export_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(f"{POSTGRES}/test")
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{POSTGRES}/{name}"
    finally:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()
