"""Where the server's time goes: py-spy samples of the Cuewire process under the ingest
scenario's load (``profile``) and the latency scenario's (``profile_latency``)."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .context import Bench
from .procs import BenchError, Server, echo_server, gc_figures, run_loadgen
from .report import Table
from .scenarios import CAPACITY_TARGET, LATENCY_RULE, RATE_PER_SESSION

FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^():]+):(?P<line>\d+)\)$")

# Cuewire's own files that are transport, not its work: engine.io's websocket path
TRANSPORT_FILES = ("cuewire/engine_socket",)

# Layers by the file of the innermost frame (the code on CPU; C code counts for its caller).
LAYERS = (
    ("Socket.IO / Engine.IO packets", ("socketio/", "engineio/", *TRANSPORT_FILES)),
    ("redis-py client (command packing, RESP parsing)", ("redis/",)),
    ("Cuewire: store adapter (store/)", ("cuewire/store/",)),
    ("Cuewire: rule engine (rules/)", ("cuewire/rules/",)),
    (
        "Cuewire: delivery, rendering (delivery, render, jinja2)",
        ("cuewire/delivery", "cuewire/render", "jinja2/"),
    ),
    ("Cuewire: validation (protocol.py, msgspec)", ("cuewire/protocol",)),
    ("Cuewire: facts, gateway, pipeline, other", ("cuewire/",)),
    ("websocket protocol (websockets, uvicorn)", ("websockets/", "uvicorn/")),
    ("msgpack, json", ("msgpack/", "json/")),
    ("asyncio streams and tasks", ("asyncio/",)),
)


def _in_redis(files: list[str]) -> bool:
    return any(f.startswith("redis/") for f in files)


def _in_cuewire(files: list[str]) -> bool:
    return any(
        f.startswith("cuewire/") and not f.startswith(("cuewire/cli", *TRANSPORT_FILES))
        for f in files
    )


# Inclusive shares: a sample counts when its stack passes the test (the first three add up).
SPLITS: dict[str, Callable[[list[str]], bool]] = {
    "Redis client calls (redis-py, incl. its asyncio stream I/O)": _in_redis,
    "Cuewire code, outside Redis client calls": lambda f: _in_cuewire(f) and not _in_redis(f),
    "transport and event loop (no Cuewire, no redis-py frame)": lambda f: (
        not (_in_cuewire(f) or _in_redis(f))
    ),
    "  of which the rule engine (rules/)": lambda files: any(
        f.startswith("cuewire/rules/") for f in files
    ),
    "  of which delivery and rendering": lambda files: any(
        f.startswith(("cuewire/delivery", "cuewire/render", "jinja2/")) for f in files
    ),
}

# Inclusive shares of the functions of the hot path.
HOT_PATH = (
    "AsyncServer._handle_event_internal",
    "Gateway.events",
    "Gateway._validate",
    "validate_batch",
    "parse_event",
    "Pipeline.process",
    "changes_for",
    "RedisStore.ingest",
    "Engine.on_events",
    "RedisStore.apply",
    "Delivery.resolve",
    "_AsyncRESP3Parser.read_response",
    "AbstractConnection.pack_command",
    "MsgPackPacket.encode",
    "MsgPackPacket.decode",
)


def _parse(frame: str) -> tuple[str, str]:
    match = FRAME.match(frame)
    if not match:
        return frame, ""
    return match["func"], match["file"]


def _layer(file: str, func: str) -> str:
    for name, prefixes in LAYERS:
        if any(file.startswith(p) or f"/{p}" in file for p in prefixes):
            return name
    if func in ("Runner.run", "run", "asyncio_run", "Server.run"):
        return "event loop in C (uvloop: socket I/O, callbacks)"
    if "concurrent/futures" in file or "threading" in file:
        return "worker threads (reload watcher)"
    return "other"


def analyse(raw: Path) -> dict[str, Any]:
    """Self time by layer, inclusive time of the hot path, top leaf functions."""
    layers: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    total = 0
    for line in raw.read_text(encoding="utf-8").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [_parse(f) for f in stack.split(";")]
        func, file = frames[-1]
        layers[_layer(file, func)] += n
        leaves[f"{func} ({file})"] += n
        for name in {f for f, _ in frames}:
            inclusive[name] += n
        files = [file for _, file in frames]
        for split, test in SPLITS.items():
            if test(files):
                packages[split] += n

    def share(v: int) -> float:
        return round(100 * v / max(total, 1), 1)

    return {
        "samples": total,
        "layers_pct": {k: share(v) for k, v in layers.most_common()},
        "hot_path_pct": {k: share(inclusive[k]) for k in HOT_PATH if inclusive[k]},
        "splits_pct": {k: share(packages[k]) for k in SPLITS},
        "top_self_pct": {k: share(v) for k, v in leaves.most_common(12)},
    }


def ceiling(ingest: Table, profile: Table, echo_profile: Table | None = None) -> Table:
    """What the ingest target asks of Cuewire's own code, from one run's ingest figures and
    its profile: the capacity ratio Cuewire would reach if its own work cost nothing (what
    the echo does too, validating the batch, counts as floor), and how much of that work
    the target leaves. With the echo's profile too, each layer's CPU per batch in both."""
    table = Table("ceiling", "What the capacity target asks of Cuewire's own code")
    cw = ingest.details["cuewire"]["server_cpu_us_per_batch"]
    echo = ingest.details["echo"]["server_cpu_us_per_batch"]
    found = profile.details
    own_pct = found["splits_pct"]["Cuewire code, outside Redis client calls"]
    shared_pct = found["hot_path_pct"].get("validate_batch", 0.0)
    own = cw * (own_pct - shared_pct) / 100
    rest = cw - own
    best = echo / max(rest, 1e-9)
    budget = echo / CAPACITY_TARGET - rest
    table.add("server CPU per batch (Cuewire / echo, the ingest scenario)", f"{cw} / {echo} us")
    table.add("Cuewire's own work, share of its profile samples", own_pct - shared_pct, "%")
    table.add("Cuewire's own work per batch", round(own), "us")
    table.add("the rest per batch (transport, event loop, Redis client)", round(rest), "us")
    # no verdict: the summary lists the scenarios' targets, and this is what bounds one
    table.add("capacity ratio if Cuewire's own work cost nothing", round(best, 2), "x")
    if budget > 0:
        table.add(
            f"Cuewire's own work per batch that {CAPACITY_TARGET:.2f}x leaves", round(budget), "us"
        )
        table.add("cut in Cuewire's own work that the target needs", round(own / budget, 1), "x")
    else:
        table.add(f"Cuewire's own work per batch that {CAPACITY_TARGET:.2f}x leaves", "none")
    if echo_profile is not None:
        _layers_side_by_side(table, cw, found, echo, echo_profile.details)
    table.note(
        "own work: the profile's samples with a Cuewire frame outside Redis client calls, less"
        " validate_batch (the echo validates every batch too); the rest is charged at the"
        " ingest scenario's CPU per batch. Samples hold the GIL, so C code that releases it"
        " is not in the shares"
    )
    table.details = {
        "own_us": round(own, 1),
        "rest_us": round(rest, 1),
        "best_ratio": round(best, 3),
        "budget_us": round(budget, 1),
    }
    return table


def _layers_side_by_side(
    table: Table, cw: float, found: dict[str, Any], echo: float, echo_found: dict[str, Any]
) -> None:
    """Rows of each layer's self time per batch, Cuewire's beside the echo's: the profiles'
    shares of the ingest scenario's CPU per batch."""
    ours, theirs = found["layers_pct"], echo_found["layers_pct"]
    for name in sorted(ours.keys() | theirs.keys(), key=lambda n: -ours.get(n, 0.0)):
        a, b = cw * ours.get(name, 0.0) / 100, echo * theirs.get(name, 0.0) / 100
        table.add(f"per batch, {name} (Cuewire / echo)", f"{a:.0f} / {b:.0f} us")


def _py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(found).exists():
        raise BenchError("py-spy is not installed (pip install -e '.[bench]')")
    return found


async def _recorded(
    bench: Bench,
    out: Path,
    table: Table,
    mode: str,
    *,
    delay_s: float,
    echo: Server | None = None,
    **load: Any,
) -> Table:
    """``table``, filled from py-spy's record of a fresh server under the load generator's
    ``mode`` with ``load``, sampled for the plan's profile_s from ``delay_s`` after the
    measured window opens (a load whose window includes its warmup skips it that way).
    The server is Cuewire, with the garbage-collector probe, or else ``echo``."""
    p = bench.plan
    if echo is None:
        bench.redis.flush()
    server = echo or bench.start_server(gc_probe=True)
    spy: dict[str, subprocess.Popen[bytes]] = {}
    argv = [_py_spy(), "record", "--pid", str(server.pid), "--rate", "200", "--format", "raw"]
    argv += ["--gil", "--duration", str(int(p.profile_s)), "--output", str(out)]
    gc_marks: dict[str, tuple[float, dict[str, Any]]] = {}

    def mark(name: str) -> None:
        if echo is None:
            gc_marks[name] = (time.time(), server.gc_stats())

    def record() -> None:
        spy["p"] = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        mark("measure_start")

    def start(line: dict[str, Any], proc: Any) -> None:
        if line["t"] == "measure_start":
            asyncio.get_running_loop().call_later(delay_s, record)
        if line["t"] == "measure_end":
            mark("measure_end")

    cfg = bench.config(server, mode, connect_rate=1000, **load)
    await run_loadgen(cfg, bench.meter(server), start, bench.log("loadgen"))
    if "p" not in spy:
        raise BenchError("py-spy did not start")
    _, err = await asyncio.to_thread(spy["p"].communicate)
    if spy["p"].returncode != 0 or not await asyncio.to_thread(out.exists):
        raise BenchError(f"py-spy failed: {err.decode(errors='replace').strip()}")
    found = analyse(out)
    if echo is None:
        found["gc"] = _gc_rows(table, gc_marks)
    for name, pct in found["layers_pct"].items():
        table.add(f"self time: {name}", pct, "%")
    for name, pct in found["splits_pct"].items():
        table.add(f"split: {name}", pct, "%")
    for name, pct in found["hot_path_pct"].items():
        table.add(f"inclusive: {name}", pct, "%")
    for name, pct in list(found["top_self_pct"].items())[:8]:
        table.add(f"top: {name}", pct, "%")
    table.note(
        f"py-spy --gil at 200 Hz for {p.profile_s:g} s: {found['samples']:,} samples of the"
        f" server holding the GIL; raw stacks: {out.name}"
    )
    if echo is None:
        table.note(
            "collections run inside whatever allocates: py-spy charges GC time to that frame"
            " (often a dataclass __init__ in changes_for); the GC rows come from gc.callbacks"
            " (bench/gcprobe, loaded into this server process only)"
        )
    table.details = found
    return table


def _gc_rows(table: Table, marks: dict[str, tuple[float, dict[str, Any]]]) -> dict[str, Any]:
    """The garbage collector's rows of a profile, from the probe's marks around the window."""
    gc = gc_figures(marks["measure_start"], marks["measure_end"])
    table.add("garbage collection, share of server CPU", gc["share_pct"], "%")
    table.add(
        "GC pauses > 5 ms / > 50 ms in the window / longest",
        f"{gc['pauses_over_5ms']} / {gc['pauses_over_50ms']} / {gc['longest_ms']:.0f} ms",
    )
    young = gc["generations"]["0"]
    table.add(
        "young collections in the window / their mean pause",
        f"{young['collections']} / {1000 * young['seconds'] / max(young['collections'], 1):.1f} ms",
    )
    return gc


def _ingest_load(p: Any) -> dict[str, Any]:
    """The ingest scenario's load, for a profile's window of the plan's profile_s."""
    return {
        "sessions": p.ingest_sessions,
        "batch": p.ingest_batch,
        "max_rate_per_session": RATE_PER_SESSION,
        "in_flight": p.ingest_in_flight,
        "warmup_s": 1,
        "duration_s": p.profile_s + 1,
    }


async def profile(bench: Bench, out: Path) -> Table:
    """The ingest scenario's load: closed loop, batches of five, many in flight."""
    table = Table("profile", "Profile: where the Cuewire server's CPU time goes under ingest load")
    table.note("the ingest scenario's load: batches of 5, at most 64 in flight (closed loop)")
    load = _ingest_load(bench.plan)
    return await _recorded(bench, out, table, "ingest", delay_s=0, tag="prof", **load)


async def profile_echo(bench: Bench, out: Path) -> Table:
    """The echo server under the same load as ``profile``: the transport floor's profile."""
    table = Table(
        "profile_echo", "Profile: where the echo server's CPU time goes under ingest load"
    )
    table.note("the ingest scenario's load: batches of 5, at most 64 in flight (closed loop)")
    load = _ingest_load(bench.plan)
    with echo_server(bench.workdir) as echo:
        return await _recorded(
            bench, out, table, "ingest", delay_s=0, echo=echo, tag="profecho", **load
        )


async def profile_latency(bench: Bench, out: Path) -> Table:
    """The latency scenario's first level: open loop, one event a batch, every session
    sending one a second. Here most loop turns carry one batch, so the per-batch costs that
    batching hides under the ingest load (a store call, an ack, a write) show whole."""
    p = bench.plan
    n = p.latency_levels[0]
    table = Table(
        "profile_latency",
        f"Profile: where the Cuewire server's CPU time goes at {n:,} sessions x 1 event/s",
    )
    table.note(f"the latency scenario's load at {n:,} sessions: one event a batch, open loop")
    return await _recorded(
        bench,
        out,
        table,
        "latency",
        delay_s=1,  # its window includes the warmup
        sessions=n,
        warmup_s=1,
        window_s=int(p.profile_s) + 1,
        rule=LATENCY_RULE,
        ack_timeout_s=2,
        drain_s=1,
        resend_tries=1,
        tag="proflat",
    )
