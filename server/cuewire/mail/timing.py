"""When an email may go: quiet hours in the visitor's time zone.

The time zone is the one the browser reported when the session opened (``tz``: JavaScript's
``getTimezoneOffset()``, minutes behind UTC); a visitor whose offset is unknown is taken to be
on UTC."""

from __future__ import annotations

from ..rules.model import QuietHours

MINUTE_MS = 60_000
DAY_MINUTES = 24 * 60


def _minutes(clock: str) -> int:
    hours, minutes = clock.split(":")
    return int(hours) * 60 + int(minutes)


def quiet_until(now_ms: int, tz_offset_min: int | None, quiet: QuietHours | None) -> int | None:
    """The epoch ms at which the quiet hours around ``now_ms`` end, or None when it is not
    within them (or there are none)."""
    if quiet is None:
        return None
    start, end = _minutes(quiet.start), _minutes(quiet.end)
    if start == end:
        return None
    local = (now_ms // MINUTE_MS - (tz_offset_min or 0)) % DAY_MINUTES
    inside = start <= local < end if start < end else (local >= start or local < end)
    if not inside:
        return None
    return (now_ms // MINUTE_MS + (end - local) % DAY_MINUTES) * MINUTE_MS
