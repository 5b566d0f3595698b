"""Real `cuewire serve` processes, for tests that need several, or a restart."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from cuewire.settings import Settings
from cuewire.store import open_store

from .servers import free_port, wait_healthy
from .subprocesses import Stoppable
from .waiting import eventually


class ServerProcess(Stoppable):
    def __init__(
        self,
        redis_url: str,
        rules: Path,
        templates: Path,
        sites: Path,
        port: int | None = None,
        env: dict[str, str] | None = None,
        workers: int = 1,
    ) -> None:
        self.extra_env = env or {}
        self.redis_url = redis_url
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = [
            sys.executable,
            "-m",
            "cuewire.cli",
            "serve",
            "--port",
            str(self.port),
            "--redis-url",
            redis_url,
            "--rules",
            str(rules),
            "--templates",
            str(templates),
            "--sites",
            str(sites),
            "--log-level",
            "warning",
            "--workers",  # with Redis the default is one per core; a test says how many
            str(workers),
        ]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ServerProcess:
        return start_all(self)[0]

    def launch(self) -> None:
        """Start the process; ``ready`` waits until it answers."""
        env = {**os.environ, "CUEWIRE_TIMER_POLL_S": "0.02", **self.extra_env}
        self.proc = subprocess.Popen(self.args, env=env)

    def ready(self) -> None:
        proc = self.proc
        assert proc is not None, "launch() first"
        wait_healthy(self.url, 60, lambda: proc.poll() is None)  # a loaded machine is slow


def start_all(*servers: ServerProcess) -> tuple[ServerProcess, ...]:
    """Start every server at once, then wait until each answers: a second of start-up each
    (importing, loading the rules) overlaps instead of adding up."""
    try:
        for server in servers:
            server.launch()
        for server in servers:
            server.ready()
    except BaseException:
        for server in servers:
            server.kill()  # a server that never answered is nobody's to stop: not left running
        raise
    return servers


async def deadlines_settled_in(redis_url: str, prefix: str = "cw", timeout: float = 10.0) -> None:
    """``servers.deadlines_settled`` for server processes: wait until the Redis (or the
    cluster) they share holds no pending or claimed deadline (each fired, dropped or
    cancelled, and acked)."""
    async with open_store(Settings(redis_url=redis_url, key_prefix=prefix)) as store:
        await eventually(
            store.next_due_ms,
            lambda due: due is None,
            timeout=timeout,
            what="every deadline settled",
        )


def sites_file(path: Path, *ports: int) -> Path:
    origins = ", ".join(f'"http://127.0.0.1:{p}"' for p in ports)
    path.write_text(f"sites:\n  test-site:\n    origins: [{origins}]\n    api_key: k-test\n")
    return path
