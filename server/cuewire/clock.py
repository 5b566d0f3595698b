"""Time, passed in so tests can control it."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from typing import Final, Protocol

DAY_MS: Final = 86_400_000
WEEK_MS: Final = 7 * DAY_MS


class Clock(Protocol):
    def now_ms(self) -> int: ...


class SystemClock:
    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000


# ---------------------------------------------------------------- UTC days, as keys name them


def day_of(ms: int) -> str:
    """The UTC day of epoch ``ms`` as every per-day key is named (counters, heatmaps):
    ``2026-12-03``."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d")


def days_between(first: str, last: str) -> list[str]:
    """Every UTC day from ``first`` to ``last`` (both included, ``YYYY-MM-DD``)."""
    start, end = date.fromisoformat(first), date.fromisoformat(last)
    return [(start + timedelta(days=n)).isoformat() for n in range((end - start).days + 1)]
