"""``cuewire serve --workers N``: N server processes sharing one listening socket.

The process manager is uvicorn's own (``uvicorn.supervisors.Multiprocess``): the parent binds
the socket once and spawns N workers that inherit it; the kernel hands each new connection to
one of them. It restarts a worker that dies or stops answering its health ping, stops every
worker on SIGTERM / SIGINT, and on SIGHUP replaces the workers one at a time, each replacement
serving before the worker it replaces is stopped. :class:`WorkerPool` adds two things: the
wait for the workers to stop is bounded (a worker still running after ``STOP_BOUND_S`` is
killed), and the exit code says whether every worker stopped cleanly.

Each worker is a whole Cuewire server: :func:`worker_app` (the app factory uvicorn calls in
the worker) reads the settings from the ``CUEWIRE_*`` environment the parent wrote
(:func:`settings_env`), builds its own app with its own timer loop, and claims the lowest free
worker index (an ``flock`` on ``<slots>/<index>.lock``, released by the kernel when the worker
dies, so a replacement takes the index of the worker it replaces). Deadlines are in Redis, so
a killed worker's deadlines are fired by the others or by its replacement; that is why more
than one worker needs Redis: the embedded store lives inside one process. A long-polling
client's requests may reach any worker: each is passed on to the worker holding its session
(polling.py).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import fcntl
import functools
import gc
import itertools
import json
import logging
import multiprocessing.connection
import os
import pickle
import secrets
import signal
import socket
import sys
import tempfile
import time
from dataclasses import dataclass, fields, replace
from pathlib import Path

from starlette.types import ASGIApp
from uvicorn import Config
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors import Multiprocess
from uvicorn.supervisors.multiprocess import Process

from .codes import Misconfig
from .errors import ConfigError, CuewireError
from .settings import ENV_PREFIX, Settings
from .transport import uvicorn_options

log = logging.getLogger(__name__)

POOL_ENV = "CUEWIRE_WORKER_POOL"  # JSON {"parent": pid, "slots": folder}, set by the parent
STOP_BOUND_S = 15.0  # SIGTERM to the parent: every worker is gone within this (then killed)
GRACEFUL_S = 5  # uvicorn's wait for open connections and requests of a stopping worker
RETRY_S = 3.0  # a worker that cannot build its app exits after this; the parent starts another
HEALTHCHECK_S = 10  # a worker must start (and answer the parent's ping) within this
CLEAN_EXITS = frozenset({0, -signal.SIGTERM, -signal.SIGINT})  # see WorkerPool.exit_code
PR_SET_PDEATHSIG = 1  # prctl(2): the signal a process gets when its parent dies


def default_workers(settings: Settings) -> int:
    """One worker per core the process may run on with Redis; one on the embedded store."""
    if not settings.redis_url:
        return 1
    if hasattr(os, "sched_getaffinity"):  # Linux: the cores this process may run on
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def worker_count(requested: int | None, settings: Settings) -> int:
    """How many workers to run; ConfigError (``workers_need_redis``) for several on the
    embedded store, whose sessions and deadlines live inside one process."""
    count = default_workers(settings) if requested is None else requested
    if count < 1:
        raise ConfigError(f"--workers {count}: give at least 1")
    if count > 1 and not settings.redis_url:
        raise ConfigError(
            f"--workers {count} needs Redis: the embedded store lives inside one process, so "
            "several workers would each keep their own sessions and deadlines. Pass "
            "--redis-url redis://HOST:PORT/DB (or CUEWIRE_REDIS_URL), or run --workers 1",
            Misconfig.WORKERS_NEED_REDIS,
        )
    return count


def settings_env(settings: Settings) -> dict[str, str]:
    """The ``CUEWIRE_*`` variables that :meth:`Settings.from_env` reads back as ``settings``
    (a None setting is left out: unset is how the environment says None)."""
    env: dict[str, str] = {}
    for f in fields(Settings):
        value = getattr(settings, f.name)
        if f.name == "limits":
            for lf in fields(value):
                env[f"{ENV_PREFIX}LIMITS_{lf.name.upper()}"] = _text(getattr(value, lf.name))
        elif value is not None:
            env[ENV_PREFIX + f.name.upper()] = _text(value)
    return env


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return repr(value)  # round-trips exactly through float()
    return str(value)


def tune_gc() -> None:
    """After the app is built: long-lived objects (rules, templates, modules) leave the
    collector's sight, and young collections run less often: the default thresholds cost
    ~17% CPU under load (bench/)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def event_loop() -> str:
    """uvloop when installed (a dependency through uvicorn[standard])."""
    import importlib.util

    return "uvloop" if importlib.util.find_spec("uvloop") is not None else "asyncio"


@dataclass(frozen=True)
class PoolEnv:
    """What the parent tells its workers beside the settings (``CUEWIRE_WORKER_POOL``)."""

    parent: int  # the parent's pid: a worker whose parent is gone stops
    slots: Path  # the folder of the index locks

    def to_env(self) -> str:
        return json.dumps({"parent": self.parent, "slots": str(self.slots)})

    @classmethod
    def from_env(cls, raw: str | None) -> PoolEnv:
        if raw is None:
            raise ConfigError(f"{POOL_ENV} is unset: workers are started by `cuewire serve`")
        data = json.loads(raw)
        return cls(int(data["parent"]), Path(data["slots"]))


def take_index(slots: Path) -> int:
    """The lowest worker index no living worker holds. Its lock stays held (the descriptor
    is never closed) until this process ends, however it ends."""
    for index in itertools.count():
        fd = os.open(slots / f"{index}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        return index
    raise AssertionError("unreachable")


def die_with_parent(parent: int) -> None:
    """Ask the kernel for SIGTERM (a graceful stop) when the parent dies, even by SIGKILL,
    so no worker outlives its supervisor holding the port (Linux; elsewhere a no-op)."""
    libc_name = ctypes.util.find_library("c")
    if sys.platform == "linux" and libc_name:
        ctypes.CDLL(libc_name, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:  # it died before the request above took effect
        os.kill(os.getpid(), signal.SIGTERM)


def worker_app() -> ASGIApp:
    """The app factory uvicorn calls in each worker (``cuewire.workers:worker_app``).

    A worker that cannot build its app (the parent checked the files before it started any
    worker, so one changed since: a rules file saved broken, then a worker died) waits
    ``RETRY_S`` and exits; the parent starts another, while the other workers keep serving
    with the rules they loaded. So one crash while a file is broken costs one worker, not the
    server, and does not spin: the worker comes back once the file is fixed."""
    from .app import create_app, services_of
    from .polling import PeerRouting
    from .sites import Sites

    # uvicorn configured its own loggers from --log-level before calling this factory
    level = logging.getLogger("uvicorn.error").getEffectiveLevel()
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        pool = PoolEnv.from_env(os.environ.get(POOL_ENV))
        die_with_parent(pool.parent)
        settings = replace(Settings.from_env(), worker=take_index(pool.slots))
        if settings.sites_file is None:
            raise ConfigError("no sites file: CUEWIRE_SITES_FILE is unset")
        app = create_app(settings, Sites.load(settings.sites_file))
        services = services_of(app)
        forwarded = services.metrics.polling_forwarded
        routing = PeerRouting(settings.worker, pool.slots, forwarded, services.supervisor)
        routing.issue_ids(services.sio)
        app = routing.wrap(app)
    except CuewireError as exc:
        log.error("worker cannot start (retrying in %gs): %s", RETRY_S, exc)
        time.sleep(RETRY_S)
        # At once, not through the interpreter's shutdown: uvicorn's parent pings each worker
        # every 0.5 s over a pipe whose other end it also holds, so a worker that dies while
        # a ping is unanswered is not seen dead until the ping times out (HEALTHCHECK_S).
        # sys.exit's teardown left the ping unanswered for that long in 1 of 3 runs.
        logging.shutdown()
        os._exit(1)
    log.info("worker %d (pid %d) starting", settings.worker, os.getpid())
    tune_gc()
    return app


def _ping_until_answered_or_ended(process: Process, timeout: float = 5) -> bool:
    """Whether the worker ``process`` answers a health-check ping within ``timeout``; False as
    soon as it ends. uvicorn's ping waits on the pipe alone, whose other end this process
    holds too: a worker that died with a ping unanswered was seen dead only after the whole
    timeout (HEALTHCHECK_S, 10 s without it)."""
    conn = process.parent_conn
    try:
        conn.send(b"ping")
        ready = multiprocessing.connection.wait([conn, process.process.sentinel], timeout)
        if conn not in ready:
            return False  # it ended, or did not answer in time
        conn.recv()
        return True
    except (OSError, EOFError, pickle.UnpicklingError):
        return False


class WorkerPool(Multiprocess):
    """uvicorn's supervisor with a bounded stop, an exit code, and a worker that dies while
    it is pinged replaced at once (``_ping_until_answered_or_ended``)."""

    def __init__(self, config: Config, sockets: list[socket.socket], stop_bound_s: float) -> None:
        super().__init__(config, sockets)
        self.stop_bound_s = stop_bound_s
        self.killed: list[int] = []

    def keep_subprocess_alive(self) -> None:
        # uvicorn's loop, each worker pinged as above (a worker started since is given the
        # ping before its first one: this runs every half second, before uvicorn's)
        for process in self.processes:
            process.ping = functools.partial(_ping_until_answered_or_ended, process)  # type: ignore[method-assign]
        super().keep_subprocess_alive()

    def join_all(self) -> None:
        """Wait for every worker to stop, for at most ``stop_bound_s`` in all; kill the rest."""
        deadline = time.monotonic() + self.stop_bound_s
        for process in self.processes:
            process.process.join(max(0.0, deadline - time.monotonic()))
        for process in self.processes:
            if process.exitcode is None:
                bound = self.stop_bound_s
                log.error("worker %s did not stop within %gs: killed", process.pid, bound)
                self.killed.append(process.pid or 0)
                process.kill()
                process.join()

    def exit_code(self) -> int:
        """0 when every worker stopped cleanly; uvicorn's STARTUP_FAILURE (3) when one could
        not start; 1 when one had to be killed or ended with an error. (A worker that shut
        down gracefully on SIGTERM / SIGINT ends by that signal: uvicorn raises it again once
        it is done, so its exit code is ``-SIGTERM``.)"""
        codes = [p.exitcode for p in self.processes]
        if STARTUP_FAILURE in codes:
            return STARTUP_FAILURE
        unclean = [c for c in codes if c not in CLEAN_EXITS]
        for process in self.processes:
            if process.exitcode not in CLEAN_EXITS:
                log.error("worker %s ended with exit code %s", process.pid, process.exitcode)
        return 0 if not self.killed and not unclean else 1


def serve_workers(settings: Settings, count: int, log_level: str) -> int:
    """Run ``count`` workers on one socket until SIGTERM / SIGINT; the exit code."""
    from .runtime import load_sources

    load_sources(settings.rules_dir, settings.templates_dir)  # fail here, not in N workers
    if settings.secret is None:
        # one key for every worker, so an admin token from one is good on all (docs/deploy.md)
        settings = replace(settings, secret=secrets.token_urlsafe(32))
    with tempfile.TemporaryDirectory(prefix="cuewire-workers-") as slots:
        os.environ.update(settings_env(settings))  # this process exists to run the pool
        os.environ[POOL_ENV] = PoolEnv(os.getpid(), Path(slots)).to_env()
        config = Config(
            "cuewire.workers:worker_app",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=count,
            log_level=log_level,
            loop=event_loop(),
            lifespan="on",
            timeout_graceful_shutdown=GRACEFUL_S,
            timeout_worker_healthcheck=HEALTHCHECK_S,
            **uvicorn_options(settings.limits.max_payload_bytes),
        )
        sock = config.bind_socket()
        pool = WorkerPool(config, [sock], STOP_BOUND_S)
        try:
            pool.run()
        finally:
            sock.close()
        return pool.exit_code()
