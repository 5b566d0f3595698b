"""Fixtures: a real redis-server per test session, both store backends, a live server."""

from __future__ import annotations

import asyncio
import itertools
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import redis
import uvicorn
from starlette.types import Receive, Scope, Send

from cuewire.app import create_app, services_of
from cuewire.settings import Settings
from cuewire.sites import Site, Sites
from cuewire.store import RedisStore, open_store

T = TypeVar("T")
_prefixes = itertools.count()
ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def wait_healthy(url: str, seconds: float, alive: Callable[[], bool]) -> None:
    """Poll ``url``/healthz until it answers 200; fail early when ``alive()`` turns false."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError(f"the server at {url} stopped while starting")
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"the server at {url} did not become healthy in {seconds:g} s")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A redis-server of our own on a free port; it is the only server tests ever flush."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed: run ./scripts/test (it installs it)")
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="cw-redis-")
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            workdir,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                proc.kill()
                pytest.fail("redis-server did not start")
            time.sleep(0.02)
    client.close()
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(10)
    shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def clean_redis(redis_url: str) -> str:
    client = redis.Redis.from_url(redis_url)
    client.flushall()
    client.close()
    return redis_url


@pytest.fixture(params=["redis", "embedded"])
def backend_url(request: pytest.FixtureRequest) -> str | None:
    """Both store backends: a real Redis and the embedded in-process store."""
    if request.param == "redis":
        return str(request.getfixturevalue("clean_redis"))
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
    s = open_store(settings)
    yield s
    await s.aclose()


class LiveServer:
    """The real app under uvicorn in a thread, on a free port.

    ``sites`` gets the server's own origin and returns the site registry to serve.
    """

    def __init__(self, settings: Settings, sites: Callable[[str], Sites]) -> None:
        self.settings = replace(settings, port=free_port())
        self.origin = f"http://127.0.0.1:{self.settings.port}"
        self.url = self.origin
        self.app = create_app(self.settings, sites(self.origin))
        self.services = services_of(self.app)
        self.loop: asyncio.AbstractEventLoop | None = None
        config = uvicorn.Config(
            self._app,
            host="127.0.0.1",
            port=self.settings.port,
            log_level="warning",
            lifespan="on",
            ws="websockets-sansio",
            ws_max_size=self.settings.limits.max_payload_bytes,
            interface="asgi3",
            timeout_graceful_shutdown=2,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    async def _app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            self.loop = asyncio.get_running_loop()
        await self.app(scope, receive, send)

    async def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the server's own event loop (its store lives there)."""
        if self.loop is None:
            raise RuntimeError("the server is not running")
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    def __enter__(self) -> LiveServer:
        self.thread.start()
        wait_healthy(self.url, 15, self.thread.is_alive)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        if self.thread.is_alive():
            frame = sys._current_frames()[self.thread.ident]
            stack = "".join(traceback.format_stack(frame))
            if self.loop:
                for t in asyncio.all_tasks(self.loop):
                    stack += "\nTASK " + repr(t)
            raise RuntimeError("the server did not stop within 10 s\n" + stack)


def site_for(origin: str, honor_dnt: bool = False) -> Sites:
    return Sites({"test-site": Site(origins=[origin], honor_dnt=honor_dnt)})


@pytest.fixture
def live(settings: Settings) -> Iterator[LiveServer]:
    """A live server whose site key ``test-site`` allows only the server's own origin."""
    with LiveServer(settings, site_for) as server:
        yield server
