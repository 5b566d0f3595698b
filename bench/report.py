"""Figures, targets and verdicts: percentiles, the printed tables, machine info, JSON output."""

from __future__ import annotations

import json
import math
import platform
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil

from .procs import LOADGEN, ROOT, TREE

HOLDS = "holds"
MISSES = "misses"

PACKAGES = (
    "python-socketio",
    "python-engineio",
    "uvicorn",
    "uvloop",
    "websockets",
    "starlette",
    "redis",
    "hiredis",
    "msgspec",
    "msgpack",
    "durable_rules",
    "py-spy",
    "psutil",
)


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    a, b = ordered[low], ordered[high]
    if math.isinf(a) or (math.isinf(b) and pos > low):
        return math.inf
    return a + (b - a) * (pos - low)


def summary(values: Sequence[float], lost: int = 0) -> dict[str, float | None]:
    """n, p50, p95, p99 and max of samples (ms). ``lost`` samples (no answer at all) count
    as infinitely late: a percentile that falls on them is None (shown as "lost")."""
    ordered = sorted(values) + [math.inf] * lost

    def pick(q: float) -> float | None:
        v = percentile(ordered, q) if ordered else math.nan
        return None if math.isinf(v) or math.isnan(v) else round(v, 2)

    return {
        "n": len(values),
        "lost": lost,
        "p50": pick(50),
        "p95": pick(95),
        "p99": pick(99),
        "max": pick(100),
    }


def ms(value: float | None, digits: int = 1) -> str:
    """A latency for a table cell; None is a lost sample."""
    return "lost" if value is None else f"{value:.{digits}f}"


def at_most(limit: float) -> Callable[[float], bool]:
    return lambda v: v <= limit


def at_least(limit: float) -> Callable[[float], bool]:
    return lambda v: v >= limit


@dataclass
class Row:
    metric: str
    value: float | str
    unit: str = ""
    target: str = ""
    verdict: str = ""


@dataclass
class Table:
    """One scenario's figures: rows with their target and verdict, plus the raw details."""

    name: str
    title: str
    rows: list[Row] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add(
        self,
        metric: str,
        value: float | str | None,
        unit: str = "",
        target: str = "",
        test: Callable[[float], bool] | None = None,
    ) -> None:
        if value is None:  # a percentile that fell on lost samples
            self.rows.append(Row(metric, "lost", unit, target, MISSES if test else ""))
            return
        verdict = ""
        if test is not None and isinstance(value, int | float) and not math.isnan(value):
            verdict = HOLDS if test(value) else MISSES
        elif test is not None:
            verdict = MISSES
        self.rows.append(Row(metric, value, unit, target, verdict))

    def note(self, text: str) -> None:
        self.notes.append(text)

    def render(self) -> str:
        head = ("metric", "measured", "target", "verdict")
        body = [(r.metric, _fmt(r.value, r.unit), r.target, r.verdict) for r in self.rows]
        widths = [max(len(str(line[i])) for line in [head, *body]) for i in range(4)]
        sep = "  "
        lines = [f"== {self.title} =="]
        lines.append(sep.join(h.ljust(w) for h, w in zip(head, widths, strict=True)))
        lines.append(sep.join("-" * w for w in widths))
        for line in body:
            cells = [line[0].ljust(widths[0]), line[1].rjust(widths[1])]
            cells += [line[2].ljust(widths[2]), line[3]]
            lines.append(sep.join(cells).rstrip())
        lines += [f"  * {n}" for n in self.notes]
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "rows": [r.__dict__ for r in self.rows],
            "notes": self.notes,
            "details": self.details,
        }


def _fmt(value: float | str, unit: str) -> str:
    if isinstance(value, str):
        return value
    if math.isnan(value):
        text = "n/a"
    elif abs(value) >= 1000:
        text = f"{value:,.0f}"
    elif abs(value) >= 100:
        text = f"{value:.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return f"{text} {unit}".rstrip()


def _command(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return (out.stdout or out.stderr).strip().splitlines()[0] if out.stdout or out.stderr else ""


def machine_info(redis_version: str) -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions: dict[str, str] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    try:
        manifest = LOADGEN / "node_modules" / "socket.io-client" / "package.json"
        versions["socket.io-client (node)"] = json.loads(manifest.read_text())["version"]
    except (OSError, ValueError, KeyError):
        versions["socket.io-client (node)"] = "unknown"
    commit = _command(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    dirty = _command(["git", "-C", str(ROOT), "status", "--porcelain", "--", "server"])
    return {
        "cpu_model": cpu,
        "cores": psutil.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "node": _command(["node", "--version"]),
        "redis_server": redis_version,
        "packages": versions,
        "git_commit": commit,
        "server_under_test": TREE.label,
        "work_tree_server_dirty": bool(dirty),
        "redis_binary": shutil.which("redis-server"),
    }
