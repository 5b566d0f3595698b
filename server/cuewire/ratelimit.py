"""Rate limits: of events (held in the store, see store/lua/ingest.lua) and of log lines."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from .clock import Clock
from .codes import Refuse

log = logging.getLogger("cuewire.gateway")

REFUSAL_LOG_EVERY_MS = 60_000
REFUSAL_LOG_KEYS = 10_000  # distinct (code, site, origin) remembered before forgetting all


@dataclass(frozen=True)
class Rate:
    """A rate limit: ``per_second`` events, in bursts of ``burst``; 0 per second: none."""

    per_second: float
    burst: int

    def interval_ms(self) -> float:
        return 1000 / self.per_second if self.per_second > 0 else 0.0


class RefusalLog:
    """Log a refused connect once per (code, site key, origin) per minute: a misconfigured
    site speaks up in the server log without one line per page view."""

    def __init__(self, clock: Clock, every_ms: int = REFUSAL_LOG_EVERY_MS) -> None:
        self._clock = clock
        self._every_ms = every_ms
        self._last: dict[tuple[str, str, str], int] = {}

    def note(self, code: Refuse, site: str, origin: str | None) -> bool:
        """Log the refusal unless the same one was logged within the minute; True if logged."""
        now = self._clock.now_ms()
        key = (code.value, site[:128], (origin or "")[:256])
        last = self._last.get(key)
        if last is not None and now - last < self._every_ms:
            return False
        if len(self._last) >= REFUSAL_LOG_KEYS:
            self._last.clear()
        self._last[key] = now
        log.warning(
            "connect refused (%s): site key %r from origin %r; check the sites file "
            "(site key, scheme, www, port); logged once a minute per site and origin",
            code.value,
            key[1],
            origin,
        )
        return True
