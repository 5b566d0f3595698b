"""The scenarios that run against live processes: memory, ingest, latency, timers, Redis cost.

Each returns a :class:`~bench.report.Table`; the README says what each one measures.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import redis.asyncio

from cuewire.settings import Settings
from cuewire.store import open_store
from cuewire.store.base import Schedule, Timer

from .context import Bench
from .procs import SITE, CpuMeter, LoadGenRun, echo_server, run_loadgen
from .report import Table, at_least, at_most, ms, summary

LATENCY_RULE = "exit-intent-product"
TIMER_RULE = "bench-timer"
TIMER_WITHIN_S = 2.0
TIMERS_KEY = "cw:timers"
RATE_PER_SESSION = 45  # events/s, under the server's 50/s per connection


def _cpu_note(cpu: dict[str, float]) -> str:
    parts = [f"{k.removesuffix('_pct_core')} {v:.0f}%" for k, v in cpu.items() if "pct_core" in k]
    if "steal_pct_core" in cpu:  # time the hypervisor gave to other machines
        parts[-1] = parts[-1].replace("steal", "hypervisor steal")
    return f"CPU (% of one core): {', '.join(parts)}"


def _generator_row(table: Table, label: str, cpu: dict[str, float]) -> None:
    table.add(
        f"load generator CPU, {label}",
        cpu.get("loadgen_pct_core", float("nan")),
        "% core",
        "< 90% (not the bottleneck)",
        at_most(90),
    )


# -- memory ---------------------------------------------------------------------------------


async def _idle_rss(
    bench: Bench, server: Any, n: int, tag: str, deflate: bool = True
) -> dict[str, float]:
    """RSS of ``server`` before and with ``n`` idle connections, after a small warm-up.
    ``deflate``: the clients offer permessage-deflate, as browsers do."""
    meter = CpuMeter({"server": server.pid})
    before = await bench.warm_rss(server, meter, tag)
    seen: dict[str, float] = {}

    async def measure(line: dict[str, Any], proc: Any) -> None:
        if line["t"] == "connected":
            await asyncio.sleep(2)
            seen["rss"] = server.rss()
            seen["connected"] = line["sessions"]
            seen["connect_s"] = line["seconds"]
            proc.stdin.write(b"close\n")
            await proc.stdin.drain()

    cfg = bench.config(server, "idle", sessions=n, connect_rate=1000, tag=tag, deflate=deflate)
    run = await run_loadgen(cfg, meter, measure, bench.log("loadgen"))
    conns = max(1, int(seen["connected"]))
    return {
        "connections": conns,
        "alive_at_close": run.result.get("alive", 0),
        "rss_before_mb": round(before / 2**20, 1),
        "rss_after_mb": round(seen["rss"] / 2**20, 1),
        "kb_per_connection": round((seen["rss"] - before) / conns / 1024, 2),
        "connect_per_s": round(conns / max(seen["connect_s"], 1e-9)),
    }


async def memory(bench: Bench) -> Table:
    n = bench.plan.memory_connections
    table = Table("memory", f"Memory: server RSS per idle connection at {n:,} connections")
    bench.redis.flush()
    server = bench.start_server()  # a fresh process: freed memory of earlier runs hides costs
    cw = await _idle_rss(bench, server, n, "mem")
    table.add(
        "Cuewire, KB per idle connection",
        cw["kb_per_connection"],
        "KB",
        "<= 40 KB",
        at_most(40),
    )
    details: dict[str, Any] = {"cuewire": cw}
    if bench.plan.memory_variants:
        with echo_server(bench.workdir) as echo:
            floor = await _idle_rss(bench, echo, n, "memecho")
        details["echo"] = floor
        table.add(
            "echo server (transport floor), KB per connection", floor["kb_per_connection"], "KB"
        )
        above = cw["kb_per_connection"] - floor["kb_per_connection"]
        table.add("Cuewire above the floor", above, "KB")
        bench.redis.flush()
        server = bench.start_server()
        plain = await _idle_rss(bench, server, n, "memnd", deflate=False)
        details["cuewire_without_deflate"] = plain
        table.add(
            "Cuewire, KB per connection, clients without permessage-deflate",
            plain["kb_per_connection"],
            "KB",
        )
    table.add("connections held", cw["connections"])
    table.add("connects per second (64 connecting at a time)", cw["connect_per_s"])
    table.note(
        "clients offer permessage-deflate as browsers do; uvicorn accepts it by default"
        " (ws_per_message_deflate), which keeps zlib state per connection"
    )
    table.note("RSS delta of a fresh server process, measured 2 s after the last connect")
    table.details = details
    return table


# -- ingest ---------------------------------------------------------------------------------

CAPACITY_TARGET = 0.7  # echo CPU per batch / Cuewire's, under the ingest load


def _ingest_figures(run: LoadGenRun) -> dict[str, Any]:
    r = run.result
    seconds = max(r["seconds"], 1e-9)
    server_cpu_s = run.cpu.get("server_pct_core", 0) / 100 * run.cpu.get("window_s", seconds)
    return {
        "events_per_s": round(r["accepted"] / seconds),
        "batches_per_s": round(r["batches"] / seconds),
        "rejected": r["rejected"],
        "reasons": r.get("reasons", {}),
        "timeouts": r["timeouts"],
        "ack_ms": summary(r["ack_ms"], lost=r["timeouts"]),
        "server_cpu_us_per_batch": round(server_cpu_s * 1e6 / max(r["batches"], 1)),
        "cpu": run.cpu,
        "sessions": r["sessions"],
    }


async def ingest(bench: Bench) -> Table:
    p = bench.plan
    table = Table("ingest", "Ingest: accepted events/s, Cuewire against the bare echo server")
    base = {
        "sessions": p.ingest_sessions,
        "batch": p.ingest_batch,
        "max_rate_per_session": RATE_PER_SESSION,
        "in_flight": p.ingest_in_flight,
        "warmup_s": p.ingest_warmup_s,
        "duration_s": p.ingest_s,
        "connect_rate": 1000,
    }
    await bench.settle()
    bench.redis.flush()
    server = bench.cuewire
    cw_run = await run_loadgen(
        bench.config(server, "ingest", tag="ing", **base), bench.meter(), log=bench.log("loadgen")
    )
    with echo_server(bench.workdir) as echo:
        echo_run = await run_loadgen(
            bench.config(echo, "ingest", tag="ingecho", **base),
            bench.meter(echo),
            log=bench.log("loadgen"),
        )
    cw, floor = _ingest_figures(cw_run), _ingest_figures(echo_run)
    ratio = cw["events_per_s"] / max(floor["events_per_s"], 1)
    # What one core carries: the inverse of the CPU a batch costs. When both servers saturate
    # it equals the events/s ratio; when the echo does not (the offered load caps it), the
    # events/s ratio flatters Cuewire, and this one does not.
    capacity = floor["server_cpu_us_per_batch"] / max(cw["server_cpu_us_per_batch"], 1)
    table.add("Cuewire, accepted events/s", cw["events_per_s"], "ev/s")
    table.add("echo server, accepted events/s", floor["events_per_s"], "ev/s")
    table.add("ratio Cuewire / echo, events/s", ratio, "x")
    table.add(
        "server CPU per batch (Cuewire / echo)",
        f"{cw['server_cpu_us_per_batch']} / {floor['server_cpu_us_per_batch']} us",
    )
    table.add(
        "ratio Cuewire / echo, capacity per core",
        capacity,
        "x",
        f">= {CAPACITY_TARGET:.2f}",
        at_least(CAPACITY_TARGET),
    )
    table.add("batches/s (Cuewire / echo)", f"{cw['batches_per_s']:,} / {floor['batches_per_s']:,}")
    for name, fig in (("Cuewire", cw), ("echo", floor)):
        ack = fig["ack_ms"]
        table.add(f"ack p50 / p99 ({name})", f"{ms(ack['p50'])} / {ms(ack['p99'])} ms")
    rejected = ", ".join(f"{k}: {v}" for k, v in cw["reasons"].items()) or "none"
    table.add("rejected events (Cuewire)", rejected)
    _generator_row(table, "Cuewire run", cw["cpu"])
    _generator_row(table, "echo run", floor["cpu"])
    table.note(
        f"{p.ingest_sessions:,} sessions, batches of {p.ingest_batch} mixed events (1 page_view"
        f" in 10), each session <= {RATE_PER_SESSION} events/s, at most {p.ingest_in_flight}"
        f" batches in flight in all; {p.ingest_s:g} s measured after {p.ingest_warmup_s:g} s"
    )
    table.note("Cuewire " + _cpu_note(cw["cpu"]))
    table.note("echo " + _cpu_note(floor["cpu"]))
    for name, fig in (("Cuewire", cw), ("echo", floor)):
        if fig["cpu"].get("server_pct_core", 0) < 85:
            table.note(f"{name} server below 85% CPU: not saturated, its rate is a lower bound")
    table.details = {"config": base, "cuewire": cw, "echo": floor}
    return table


# -- latency --------------------------------------------------------------------------------


async def _latency_level(bench: Bench, server: Any, n: int, tag: str) -> dict[str, Any]:
    """One level of the latency scenario against ``server``: its figures."""
    p = bench.plan
    cfg = bench.config(
        server,
        "latency",
        sessions=n,
        warmup_s=p.latency_warmup_s,
        window_s=p.latency_window_s,
        rule=LATENCY_RULE,
        ack_timeout_s=2 if p.name == "quick" else 10,
        drain_s=1 if p.name == "quick" else 5,
        resend_tries=1 if p.name == "quick" else 3,
        connect_rate=1000,
        tag=tag,
    )
    meter = bench.meter() if server is bench.cuewire else bench.meter(server)
    window: dict[str, float] = {}

    def mark(line: dict[str, Any], proc: Any) -> None:
        if line["t"] in ("measure_start", "measure_end"):
            window[line["t"]] = time.time()

    run = await run_loadgen(cfg, meter, mark, log=bench.log("loadgen"))
    r = run.result
    pauses = None
    if server.gc_file is not None and len(window) == 2:  # read after the drain: all written
        t0, t1 = window["measure_start"], window["measure_end"]
        pauses = [p for when, _, p in server.gc_stats()["pauses"] if t0 <= when <= t1]
    return {
        "gc_pauses_s": pauses,
        "loop_delay_ms": r.get("loop_delay_ms"),
        "prompt_ms": summary(r["prompt_ms"], lost=r["missing"]),
        "ack_ms": summary(r["ack_ms"], lost=r["timeouts"]),
        "sent": r["sent"],
        "skipped_ticks": r["skipped"],
        "rejected": r["rejected"],
        "reasons": r["reasons"],
        "ack_timeouts": r["timeouts"],
        "resent": r.get("resent", 0),
        "missing": r["missing"],
        "cpu": run.cpu,
        "connect_s": run.connected.get("seconds"),
        "ack_timeout_s": cfg["ack_timeout_s"],
    }


def _sustained(levels: dict[str, dict[str, Any]], bound_ms: float = 200) -> int:
    """Events/s of the largest level (1 event/s per session) whose p99 held ``bound_ms``."""
    held = [int(n) for n, f in levels.items() if (f["prompt_ms"].get("p99") or 1e9) <= bound_ms]
    return max(held, default=0)


async def latency(bench: Bench) -> Table:
    p = bench.plan
    table = Table("latency", "Event -> prompt latency, each session sending 1 event/s")
    levels: dict[str, Any] = {}
    floors: dict[str, Any] = {}
    bench.start_server(gc_probe=True)  # fresh, its collector's pauses timed (bench/gcprobe)
    for n in p.latency_levels:
        t0 = time.monotonic()
        await bench.settle()  # the previous level's backlog and disconnects
        settled = time.monotonic() - t0
        bench.redis.flush()
        figures = await _latency_level(bench, bench.cuewire, n, f"lat{n}")
        audit = bench.redis.client.xrange(f"cw:audit:{SITE}")
        server_side = [
            float(fields["latency_ms"])
            for _, fields in audit
            if fields.get("rule") == LATENCY_RULE and "latency_ms" in fields
        ]
        figures["server_side_ms"] = summary(server_side)
        figures["settle_s"] = round(settled, 1)
        with echo_server(bench.workdir) as echo:
            floor = await _latency_level(bench, echo, n, f"latecho{n}")
        figures["elapsed_s"] = round(time.monotonic() - t0, 1)
        levels[str(n)] = figures
        floors[str(n)] = floor
        prompt, echo_prompt = figures["prompt_ms"], floor["prompt_ms"]
        table.add(
            f"{n:,} sessions: p50 / p95 / p99 / max",
            f"{ms(prompt['p50'])} / {ms(prompt['p95'])} / {ms(prompt['p99'])}"
            f" / {ms(prompt['max'], 0)} ms",
        )
        table.add(
            f"{n:,} sessions: echo p50 / p99 (the transport floor)",
            f"{ms(echo_prompt['p50'])} / {ms(echo_prompt['p99'])} ms",
        )
        if n >= 2000:
            ratio = _ratio(prompt.get("p99"), echo_prompt.get("p99"))
            table.add(f"{n:,} sessions: p99 Cuewire / echo", ratio, "x", "<= 2", at_most(2))
        if n == 2000:
            table.add(f"{n:,} sessions: p99", prompt["p99"], "ms", "<= 25 ms", at_most(25))
        table.add(
            f"{n:,} sessions: samples / lost prompts",
            f"{prompt['n']:,} / {figures['missing']:,}",
        )
        ack = figures["ack_ms"]
        table.add(
            f"{n:,} sessions: ordinary events ack p50 / p99",
            f"{ms(ack['p50'])} / {ms(ack['p99'])} ms",
        )
        stalls = [f["loop_delay_ms"] for f in (figures, floor)]
        if all(stalls):
            table.add(
                f"{n:,} sessions: generator event-loop delay p99 / max (Cuewire run; echo run)",
                "; ".join(f"{d['p99']:.1f} / {d['max']:.1f} ms" for d in stalls),
            )
        if (pauses := figures["gc_pauses_s"]) is not None:
            table.add(
                f"{n:,} sessions: Cuewire's GC pauses > 5 ms in the window / longest",
                f"{len(pauses)} / {1000 * max(pauses, default=0):.0f} ms",
            )
        side = figures["server_side_ms"]
        table.add(
            f"{n:,} sessions: server part (audit latency_ms) p50 / p99",
            f"{ms(side['p50'], 0)} / {ms(side['p99'], 0)} ms",
        )
        trouble = [f"{k}: {v}" for k, v in figures["reasons"].items()]
        if figures["ack_timeouts"]:
            trouble.append(f"no ack within {figures['ack_timeout_s']} s: {figures['ack_timeouts']}")
        if figures["skipped_ticks"]:
            trouble.append(f"ticks skipped (4 in flight): {figures['skipped_ticks']}")
        if figures["resent"]:
            trouble.append(f"qualifying events resent: {figures['resent']}")
        if trouble:
            table.add(f"{n:,} sessions: trouble", "; ".join(trouble))
        _generator_row(table, f"{n:,} sessions", figures["cpu"])
        table.note(f"{n:,} sessions: " + _cpu_note(figures["cpu"]))
        table.note(f"{n:,} sessions, echo: " + _cpu_note(floor["cpu"]))
    table.add(
        "events/s one process sustains at p99 <= 200 ms (Cuewire / echo), of the levels run",
        f"{_sustained(levels):,} / {_sustained(floors):,}",
    )
    table.note(
        "one sample per session: rules fire once per session, so each session sends its"
        f" qualifying exit_intent once, at a random second of the {p.latency_window_s} s window,"
        f" after {p.latency_warmup_s} s of ordinary events (1 page_view in 10, 1 event/s);"
        " the echo server answers the same exit_intent with a prompt of the same size"
    )
    table.note("latency = client send -> client receipt of the prompt, one clock (Node)")
    table.details = {"levels": levels, "echo": floors}
    return table


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a is not None and b else None


# -- timers ---------------------------------------------------------------------------------


async def _schedule_background(redis_url: str, n: int, now_ms: int) -> float:
    """``n`` pending absence timers, due 10-30 min after the run. The first 2,000 go through
    ``RedisStore.apply([Schedule(...)])``; the rest are added to the same sorted set in bulk
    with the same member format (their session hashes, only read at fire time, are left
    out to keep the set-up short)."""
    rng = random.Random(n)

    def schedule(i: int) -> Schedule:
        timer = Timer(SITE, f"s_bg{i:07d}", f"v_bg{i:07d}", "hesitation-product", f"k{i}")
        return Schedule(timer, now_ms + 600_000 + rng.randrange(1_200_000))

    store = open_store(Settings(redis_url=redis_url))
    t0 = time.perf_counter()
    try:
        await store.apply([schedule(i) for i in range(min(n, 2000))])
    finally:
        await store.aclose()
    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        for start in range(2000, n, 20_000):
            chunk = [schedule(i) for i in range(start, min(n, start + 20_000))]
            await client.zadd(TIMERS_KEY, {s.timer.member(): s.due_ms for s in chunk})
    finally:
        await client.aclose()
    return time.perf_counter() - t0


async def timers(bench: Bench) -> Table:
    p = bench.plan
    table = Table("timers", "Timers: lateness of absence rules with many pending timers")
    runs: dict[str, Any] = {}
    for pending in p.timer_pending:
        await bench.settle()
        bench.redis.flush()
        server = bench.cuewire
        seconds = await _schedule_background(bench.redis.url, pending, int(time.time() * 1000))
        zcard = bench.redis.client.zcard(TIMERS_KEY)
        cfg = bench.config(
            server,
            "timers",
            sessions=p.timer_sessions,
            spread_s=p.timer_spread_s,
            within_s=TIMER_WITHIN_S,
            rule=TIMER_RULE,
            start_event="bench_timer",
            connect_rate=1000,
            tag=f"tim{pending}",
        )
        run = await run_loadgen(cfg, bench.meter(), log=bench.log("loadgen"))
        audit = bench.redis.client.xrange(f"cw:audit:{SITE}")
        fired = [
            float(f["latency_ms"])
            for _, f in audit
            if f.get("rule") == TIMER_RULE and f.get("outcome") == "fired"
        ]
        server_side = summary(fired, lost=max(0, p.timer_sessions - len(fired)))
        client = summary(run.result["client_lateness_ms"])
        runs[str(pending)] = {
            "pending_before": zcard,
            "schedule_s": round(seconds, 2),
            "server_lateness_ms": server_side,
            "client_lateness_ms": client,
            "missing": run.result["missing"],
            "cpu": run.cpu,
        }
        target, test = ("", None)
        if pending == max(p.timer_pending):
            target, test = ("p99 <= 50 ms", at_most(50))
        table.add(
            f"{pending:,} pending: lateness p50 / p99 / max",
            f"{ms(server_side['p50'], 0)} / {ms(server_side['p99'], 0)}"
            f" / {ms(server_side['max'], 0)} ms",
            target=target,
        )
        if test is not None:
            table.add(f"{pending:,} pending: lateness p99", server_side["p99"], "ms", target, test)
        table.add(
            f"{pending:,} pending: client-side p50 / p99",
            f"{ms(client['p50'], 0)} / {ms(client['p99'], 0)} ms",
        )
        table.add(
            f"{pending:,} pending: fired / expected",
            f"{server_side['n']:,} / {p.timer_sessions:,}",
        )
    table.note(
        "lateness = the audit record's latency_ms (server clock: prompt emitted and recorded"
        " minus the deadline), read with XRANGE cw:audit:bench; client-side = receipt - send"
        f" - {TIMER_WITHIN_S:g} s"
    )
    table.note(
        f"{p.timer_sessions:,} live sessions arm a {TIMER_WITHIN_S:g} s absence rule at random"
        f" times over {p.timer_spread_s:g} s; the pending set (cw:timers) also holds N timers"
        " due 10-30 min later (the first 2,000 through RedisStore.apply, the rest in bulk)"
    )
    table.details = {"runs": runs}
    return table


# -- Redis cost -----------------------------------------------------------------------------

COMPOSITIONS = {
    "single": "1 plain event (an audience that mostly reads)",
    "plain": "5 plain events (no rule involved)",
    "page_view": "page_view + 4 plain (restarts the hesitation timer)",
    "prompt": "1 exit_intent that fires a prompt",
}
IGNORED = ("info",)


def _delta(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
    return {k: b.get(k, 0) - a.get(k, 0) for k in b if k not in IGNORED}


def _script_calls(per_batch: dict[str, float]) -> float:
    """Script calls per batch (EVALSHA and EVAL)."""
    return round(per_batch.get("evalsha", 0) + per_batch.get("eval", 0), 2)


def _memory_by_owner(client: Any) -> dict[str, int]:
    """Bytes of Redis memory (MEMORY USAGE) per session (keys with a ``{...}`` hash tag, per
    tag), per visitor (``:v:`` hash and the other visitor keys, per visitor hash) and shared."""
    sessions: set[str] = set()
    visitors = 0
    owned = {"session": 0, "visitor": 0, "shared": 0}
    keys = list(client.scan_iter(count=1000))
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.memory_usage(key)
    for key, used in zip(keys, pipe.execute(), strict=True):
        name = key.decode() if isinstance(key, bytes) else str(key)
        if "{" in name:
            sessions.add(name[name.index("{") : name.index("}") + 1])
            owned["session"] += used or 0
        elif name.split(":")[1] in ("v", "vn", "rv"):
            visitors += name.split(":")[1] == "v"
            owned["visitor"] += used or 0
        else:
            owned["shared"] += used or 0
    return {
        "per_session": owned["session"] // max(len(sessions), 1),
        "per_visitor": owned["visitor"] // max(visitors, 1),
        "shared": owned["shared"],
        "sessions": len(sessions),
        "visitors": visitors,
    }


# INFO figures of the Redis-cost scenario that are not commands
NOT_COMMANDS = ("reads", "commands", "used_memory", "bytes_in", "bytes_out", "cpu_us")


async def redis_cost(bench: Bench) -> Table:
    p = bench.plan
    table = Table("redis_cost", "Redis cost per event batch (INFO stats / commandstats deltas)")
    await bench.settle()
    bench.redis.flush()
    server = bench.cuewire
    stats = bench.redis.stats
    t0, s0 = time.monotonic(), stats()
    await asyncio.sleep(2)
    t1, s1 = time.monotonic(), stats()
    idle = {k: v / (t1 - t0) for k, v in _delta(s0, s1).items()}
    kinds: dict[str, Any] = {}
    connect: dict[str, float] = {}
    for kind, label in COMPOSITIONS.items():
        marks: dict[str, tuple[float, dict[str, float]]] = {"start": (time.monotonic(), stats())}

        def mark(line: dict[str, Any], proc: Any, marks: Any = marks) -> None:
            if line["t"] in ("connected", "measure_start", "measure_end"):
                marks[line["t"]] = (time.monotonic(), stats())

        per = 1 if kind == "prompt" else p.cost_batches
        cfg = bench.config(
            server, "batches", sessions=p.cost_sessions, per_session=per, kind=kind, tag=kind
        )
        run = await run_loadgen(cfg, bench.meter(), mark, bench.log("loadgen"))

        def net(a: str, b: str, marks: Any = marks) -> dict[str, float]:
            (ta, sa), (tb, sb) = marks[a], marks[b]
            raw = _delta(sa, sb)
            return {
                k: v - idle.get(k, 0) * (tb - ta) - (3 if k == "reads" else 0)
                for k, v in raw.items()
            }

        batches = max(run.result["batches"], 1)
        d = net("measure_start", "measure_end")
        per_batch = {k: round(v / batches, 2) for k, v in d.items() if abs(v) / batches >= 0.05}
        in_scripts = sum(v for k, v in d.items() if k not in NOT_COMMANDS)
        kinds[kind] = {
            "batches": batches,
            "bad_acks": run.result["bad"],
            "round_trips": round(d["reads"] / batches, 2),
            "commands": round(in_scripts / batches, 2),
            "bytes_in": round(d["bytes_in"] / batches),
            "bytes_out": round(d["bytes_out"] / batches),
            "redis_cpu_us": round(d["cpu_us"] / batches, 1),
            "per_batch": {k: v for k, v in per_batch.items() if k not in NOT_COMMANDS},
        }
        if not connect:
            c = net("start", "connected")
            sessions = max(p.cost_sessions, 1)
            connect = {
                "round_trips": round(c["reads"] / sessions, 2),
                "per_connect": {
                    k: round(v / sessions, 2)
                    for k, v in c.items()
                    if abs(v) / sessions >= 0.05 and k not in ("used_memory",)
                },
            }
        calls = _script_calls(kinds[kind]["per_batch"])
        kinds[kind]["store_calls"] = calls
        # The calls a batch waits for in turn. Reads (requests Redis read off its sockets) are
        # fewer when sessions' calls share a pipeline (store/coalesce.py), so they are shown
        # but not judged.
        table.add(f"store calls (scripts) per batch: {label}", calls, "", "1", at_most(1.2))
        table.add(
            f"Redis reads per batch (pipelined across sessions): {kind}", kinds[kind]["round_trips"]
        )
        table.add(f"Redis commands per batch, incl. inside Lua: {kind}", kinds[kind]["commands"])
        fig = kinds[kind]
        table.add(
            f"Redis bytes in / out, CPU per batch: {kind}",
            f"{fig['bytes_in']:,} / {fig['bytes_out']:,} B, {fig['redis_cpu_us']} us",
        )
    table.add("round trips per connect (open session, session emit)", connect["round_trips"])
    held = _memory_by_owner(bench.redis.client)
    table.add(
        "Redis memory per session / per visitor (MEMORY USAGE of their keys)",
        f"{held['per_session']:,} / {held['per_visitor']:,} B",
    )
    table.add("Redis memory shared (streams, timers: capped)", held["shared"], "B")
    for kind, fig in kinds.items():
        top = fig["per_batch"]
        listed = ", ".join(f"{k} {v:g}" for k, v in sorted(top.items(), key=lambda kv: -kv[1]))
        table.note(f"{kind}: per batch {listed}")
    table.note(
        "round trips = requests Redis read off its sockets (total_reads_processed); commands"
        " from INFO commandstats (which counts the calls made inside Lua scripts too); idle"
        " traffic (timer polling) measured for 2 s beforehand is subtracted"
    )
    table.details = {"idle_per_s": idle, "kinds": kinds, "connect": connect, "memory": held}
    return table
