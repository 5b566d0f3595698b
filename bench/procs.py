"""The processes of a run: our own redis-server, the Cuewire server, the echo server, the
Node load generator, and the CPU meter that watches them all."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import redis

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
LOADGEN = BENCH / "loadgen"
SITE = "bench"


@dataclass
class Tree:
    """The Cuewire sources under test: the work tree, or a git ref exported to a temp dir
    (others may be editing the work tree while a run goes on)."""

    root: Path
    label: str

    @property
    def pythonpath(self) -> str:
        return os.pathsep.join([str(self.root / "server"), str(ROOT)])

    def export(self, ref: str, dest: Path) -> None:
        """Make this tree ``ref``'s server/ and templates/, extracted under ``dest``."""
        commit = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", ref],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dest.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", ref, "server", "templates"],
            capture_output=True,
            check=True,
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
        self.root, self.label = dest, f"{ref} ({commit})"


TREE = Tree(ROOT, "work tree")
OTHERS: list[float] = []  # CPU of others (processes, hypervisor steal) per window, % of a core


class BenchError(Exception):
    """A process of the run did not start or did not behave; the message says which."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(
    check: Callable[[], bool], seconds: float, what: str, proc: subprocess.Popen[Any]
) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"{what} exited with code {proc.returncode} while starting")
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(0.05)
    raise BenchError(f"{what} did not become ready within {seconds:g} s")


def _stop(proc: subprocess.Popen[Any] | None, sig: int = signal.SIGTERM) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


class Redis:
    """A redis-server of our own on a free port and a unix socket in ``workdir``, without
    persistence. Never the system one. ``url`` is the one the server is given: over TCP, or
    with ``via="unix"`` over the socket (a Redis on the same host)."""

    def __init__(self, workdir: Path, via: str = "tcp") -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise BenchError("redis-server is not installed (apt-get install redis-server)")
        self.port = free_port()
        socket = workdir / "redis.sock"
        urls = {"tcp": f"redis://127.0.0.1:{self.port}/0", "unix": f"unix://{socket}?db=0"}
        self.url = urls[via]
        argv = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        argv += ["--appendonly", "no", "--dir", str(workdir), "--maxclients", "20000"]
        argv += ["--unixsocket", str(socket), "--unixsocketperm", "700"]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.client = redis.Redis(port=self.port, decode_responses=True)
        _wait(lambda: bool(self.client.ping()), 10, "redis-server", self.proc)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def version(self) -> str:
        return str(self.client.info("server")["redis_version"])

    def flush(self) -> None:
        self.client.flushall()

    def stats(self) -> dict[str, float]:
        """Counters for the Redis-cost scenario: reads (~ round trips), commands by name, bytes
        in and out, Redis's own CPU (us) and memory."""
        info = self.client.info("stats")
        cpu = self.client.info("cpu")
        out: dict[str, float] = {
            "reads": float(info["total_reads_processed"]),
            "commands": float(info["total_commands_processed"]),
            "bytes_in": float(info["total_net_input_bytes"]),
            "bytes_out": float(info["total_net_output_bytes"]),
            "cpu_us": 1e6 * (float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])),
        }
        for name, value in self.client.info("commandstats").items():
            out[name.removeprefix("cmdstat_")] = float(value["calls"])
        out["used_memory"] = float(self.client.info("memory")["used_memory"])
        return out

    def stop(self) -> None:
        self.client.close()
        _stop(self.proc)


class RedisCluster:
    """A Redis Cluster of our own: ``nodes`` primaries on free ports, no replicas, no
    persistence. ``url`` names its first node (Cuewire finds the rest)."""

    def __init__(self, workdir: Path, nodes: int = 3) -> None:
        binary, cli = shutil.which("redis-server"), shutil.which("redis-cli")
        if binary is None or cli is None:
            raise BenchError("redis-server and redis-cli are needed (apt-get install redis-server)")
        self.ports = [_cluster_port() for _ in range(nodes)]
        self.procs: list[subprocess.Popen[bytes]] = []
        for port in self.ports:
            folder = workdir / f"cluster-{port}"
            folder.mkdir(parents=True, exist_ok=True)
            argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
            argv += ["--appendonly", "no", "--dir", str(folder), "--cluster-enabled", "yes"]
            argv += ["--cluster-config-file", "nodes.conf", "--maxclients", "20000"]
            self.procs.append(
                subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            )
        self.clients = [redis.Redis(port=p, decode_responses=True) for p in self.ports]
        for client, proc in zip(self.clients, self.procs, strict=True):
            _wait(lambda c=client: bool(c.ping()), 10, "a cluster node", proc)
        create = [cli, "--cluster", "create", *(f"127.0.0.1:{p}" for p in self.ports)]
        subprocess.run(
            [*create, "--cluster-replicas", "0", "--cluster-yes"],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for client, proc in zip(self.clients, self.procs, strict=True):
            _wait(
                lambda c=client: c.cluster("info").get("cluster_state") == "ok",
                20,
                "the cluster",
                proc,
            )
        self.url = f"redis://127.0.0.1:{self.ports[0]}"

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def flush(self) -> None:
        for client in self.clients:
            client.flushall()

    def stop(self) -> None:
        for client in self.clients:
            client.close()
        for proc in self.procs:
            _stop(proc)


def _cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is free and valid too."""
    while True:
        port = free_port()
        if port + 10000 > 65535:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port


BENCH_LIMITS = {"CUEWIRE_LIMITS_ADDRESS_EVENTS_PER_SECOND": "0"}


class Server:
    """A server process (Cuewire or the echo server), waited for until /healthz answers."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        port: int,
        log: Path,
        gc_file: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        self.gc_file = gc_file
        # every load generator session comes from 127.0.0.1: the per-address rate limit (an
        # attacker's one address) would cap the whole run; the per-visitor limit stays on
        env = {**os.environ, "PYTHONPATH": TREE.pythonpath, **BENCH_LIMITS, **(env or {})}
        if gc_file is not None:  # bench/gcprobe/sitecustomize.py times every collection
            env["PYTHONPATH"] = os.pathsep.join([str(BENCH / "gcprobe"), env["PYTHONPATH"]])
            env["CW_BENCH_GC_FILE"] = str(gc_file)
        with log.open("ab") as sink:
            self.proc = subprocess.Popen(argv, stdout=sink, stderr=sink, cwd=ROOT, env=env)
        _wait(self._healthy, 30, f"{name} server (log: {log})", self.proc)

    def _healthy(self) -> bool:
        with urllib.request.urlopen(f"{self.url}/healthz", timeout=1) as resp:
            return bool(resp.status == 200)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def rss(self) -> int:
        return int(psutil.Process(self.pid).memory_info().rss)

    def stop(self) -> None:
        _stop(self.proc, signal.SIGINT)

    def gc_stats(self) -> dict[str, Any]:
        """What the GC probe wrote last (needs ``gc_file``)."""
        if self.gc_file is None:
            raise BenchError("this server runs without the GC probe")
        data: dict[str, Any] = json.loads(self.gc_file.read_text(encoding="utf-8"))
        return data

    @classmethod
    def cuewire(
        cls,
        workdir: Path,
        sites: Path,
        rules: Path,
        redis_url: str,
        gc_probe: bool = False,
        workers: int = 1,
        env: Mapping[str, str] | None = None,
    ) -> Server:
        """``cuewire serve``; ``env``: more CUEWIRE_* settings (over BENCH_LIMITS)."""
        port = free_port()
        argv = [sys.executable, "-m", "cuewire.cli", "serve", "--sites", str(sites)]
        argv += ["--rules", str(rules), "--templates", str(TREE.root / "templates")]
        argv += ["--redis-url", redis_url, "--port", str(port), "--workers", str(workers)]
        gc_file = workdir / "gc.json" if gc_probe else None
        return cls("cuewire", argv, port, workdir / "cuewire.log", gc_file, env)

    @classmethod
    def echo(cls, workdir: Path) -> Server:
        port = free_port()
        argv = [sys.executable, "-m", "bench.echo_server", "--port", str(port)]
        return cls("echo", argv, port, workdir / "echo.log")


def gc_figures(a: tuple[float, dict[str, Any]], b: tuple[float, dict[str, Any]]) -> dict[str, Any]:
    """The collections between two (wall time, ``Server.gc_stats()``) marks: per generation,
    their share of the process's CPU, and the pauses over 5 ms."""
    (t0, s0), (t1, s1) = a, b
    cpu = max(s1["cpu_s"] - s0["cpu_s"], 1e-9)
    gens = {
        g: {
            "collections": s1["stats"][g]["count"] - s0["stats"][g]["count"],
            "seconds": round(s1["stats"][g]["total_s"] - s0["stats"][g]["total_s"], 3),
        }
        for g in s1["stats"]
    }
    pauses = [p for when, _, p in s1["pauses"] if t0 <= when <= t1]
    return {
        "share_pct": round(100 * sum(g["seconds"] for g in gens.values()) / cpu, 1),
        "generations": gens,
        "pauses_over_5ms": len(pauses),
        "pauses_over_50ms": sum(1 for p in pauses if p > 0.05),
        "longest_ms": round(1000 * max(pauses, default=0.0), 1),
    }


@dataclass
class CpuSample:
    wall: float
    procs: dict[str, float]
    machine_busy: float
    steal: float  # time the hypervisor gave this VM's CPUs to others


@dataclass
class CpuMeter:
    """CPU seconds of named processes between two samples, as % of one core."""

    pids: dict[str, int] = field(default_factory=dict)

    def sample(self) -> CpuSample:
        procs: dict[str, float] = {}
        for name, pid in self.pids.items():
            try:
                proc = psutil.Process(pid)
                t = proc.cpu_times()
                procs[name] = t.user + t.system + t.children_user + t.children_system
                for child in proc.children(recursive=True):  # the workers of --workers N
                    with contextlib.suppress(psutil.NoSuchProcess):
                        c = child.cpu_times()
                        procs[name] += c.user + c.system
            except psutil.NoSuchProcess:
                continue
        m = psutil.cpu_times()
        busy = m.user + m.system + m.nice + getattr(m, "irq", 0) + getattr(m, "softirq", 0)
        return CpuSample(time.monotonic(), procs, busy, getattr(m, "steal", 0.0))

    @staticmethod
    def between(a: CpuSample, b: CpuSample) -> dict[str, float]:
        wall = max(b.wall - a.wall, 1e-9)
        out = {
            f"{name}_pct_core": round(100 * (b.procs[name] - a.procs[name]) / wall, 1)
            for name in a.procs
            if name in b.procs
        }
        cores = psutil.cpu_count() or 1
        busy = 100 * (b.machine_busy - a.machine_busy) / wall
        ours = sum(v for k, v in out.items() if k.endswith("_pct_core"))
        out["machine_busy_pct"] = round(busy / cores, 1)
        out["others_pct_core"] = round(max(0.0, busy - ours), 1)  # processes not of this run
        out["steal_pct_core"] = round(100 * (b.steal - a.steal) / wall, 1)
        out["window_s"] = round(wall, 2)
        return out


@dataclass
class LoadGenRun:
    result: dict[str, Any]
    cpu: dict[str, float]
    connected: dict[str, Any]


async def run_loadgen(
    config: dict[str, Any],
    meter: CpuMeter,
    on_line: Callable[[dict[str, Any], asyncio.subprocess.Process], Any] | None = None,
    log: Path | None = None,
) -> LoadGenRun:
    """Run ``node loadgen.mjs CONFIG`` and collect its result; CPU over its measured window.

    ``on_line`` sees every progress line (and may write to the generator's stdin); it may be
    a coroutine function.
    """
    stderr = log.open("ab") if log else subprocess.DEVNULL
    try:
        proc = await asyncio.create_subprocess_exec(
            "node",
            str(LOADGEN / "loadgen.mjs"),
            json.dumps(config),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
            cwd=LOADGEN,
            limit=256 * 1024 * 1024,
        )
    finally:
        if log:
            stderr.close()  # type: ignore[union-attr]
    meter = CpuMeter({**meter.pids, "loadgen": proc.pid})
    start: CpuSample | None = None
    cpu: dict[str, float] = {}
    connected: dict[str, Any] = {}
    result: dict[str, Any] | None = None
    if proc.stdout is None:
        raise BenchError("load generator has no stdout pipe")
    async for raw in proc.stdout:
        line = json.loads(raw)
        kind = line.get("t")
        if kind == "measure_start":
            start = meter.sample()
        elif kind == "measure_end" and start is not None:
            cpu = CpuMeter.between(start, meter.sample())
            OTHERS.append(cpu["others_pct_core"] + cpu["steal_pct_core"])
        elif kind == "connected":
            connected = line
            if line["failures"]:
                print(f"  ! {line['failures']} connections failed: {line['first_error']}")
        elif kind == "result":
            result = line
        elif kind == "error":
            raise BenchError(f"load generator failed: {line['message']}")
        if on_line is not None:
            outcome = on_line(line, proc)
            if asyncio.iscoroutine(outcome):
                await outcome
    await proc.wait()
    if result is None:
        raise BenchError(f"load generator exited ({proc.returncode}) without a result")
    return LoadGenRun(result, cpu, connected)


@contextlib.contextmanager
def echo_server(workdir: Path) -> Iterator[Server]:
    server = Server.echo(workdir)
    try:
        yield server
    finally:
        server.stop()
