"""Jinja filters for prompt templates (docs/templates.md, "Filters").

Every filter returns plain text, never markup, so autoescape still escapes what it prints.
Values often come from the browser (event props, traits): a filter given something it cannot
use prints it back as text, or returns its fallback, rather than failing the render.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from typing import Any

# A few common codes get their symbol; any other code is printed in front: "CHF 12.50".
SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "INR": "₹", "KRW": "₩"}
ZERO_DECIMALS = {"JPY", "KRW", "CLP", "ISK", "VND"}

# Values at least this large are epoch milliseconds (1973 onwards); smaller ones are seconds.
EPOCH_MS_FROM = 10**11

_UNITS = (("year", 365 * 86400), ("month", 30 * 86400), ("week", 7 * 86400), ("day", 86400),
          ("hour", 3600), ("minute", 60), ("second", 1))  # fmt: skip

_HEX = r"#(?:[0-9a-fA-F]{3,4}|[0-9a-fA-F]{6}|[0-9a-fA-F]{8})"
_FUNC = r"(?:rgb|rgba|hsl|hsla)\(\s*[0-9.%\s,/+-]{1,60}\)"
_COLOR = re.compile(rf"^(?:{_HEX}|{_FUNC}|[a-zA-Z]{{3,20}})$")
_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*):")
_SAFE_SCHEMES = {"http", "https", "mailto", "tel"}
_CONTROL = re.compile(r"[\x00-\x20\x7f]")


def _number(value: Any) -> float | None:
    """A finite number from a number or a numeric string; None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip().replace(",", ""))
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def number(value: Any, decimals: int = 0) -> str:
    """``1234.5 | number`` -> "1,235"; ``| number(2)`` -> "1,234.50"."""
    n = _number(value)
    if n is None:
        return str(value)
    return f"{n:,.{max(0, min(int(decimals), 6))}f}"


def currency(amount: Any, code: str = "USD") -> str:
    """``19.9 | currency`` -> "$19.90"; ``| currency("EUR")`` -> "€19.90";
    ``| currency("CHF")`` -> "CHF 19.90". No locale rules: always "," for thousands."""
    n = _number(amount)
    if n is None:
        return str(amount)
    code = str(code).upper()
    digits = 0 if code in ZERO_DECIMALS else 2
    sign = "-" if n < 0 else ""
    body = f"{abs(n):,.{digits}f}"
    symbol = SYMBOLS.get(code)
    return f"{sign}{symbol}{body}" if symbol else f"{sign}{code} {body}"


def plural(count: Any, singular: str, plural: str | None = None) -> str:
    """``3 | plural("item")`` -> "3 items"; ``1 | plural("person", "people")`` -> "1 person"."""
    n = _number(count)
    word = singular if n is not None and abs(n) == 1 else (plural or singular + "s")
    shown = number(count, 0 if n is None or n == int(n) else 1)
    return f"{shown} {word}"


def _now_ms(now_ms: Any) -> float:
    given = _number(now_ms)
    return given if given is not None else time.time() * 1000


def duration(seconds: Any) -> str:
    """``900 | duration`` -> "15 minutes"; ``3700 | duration`` -> "1 hour" (the largest unit)."""
    n = _number(seconds)
    if n is None:
        return str(seconds)
    size = abs(n)
    for unit, length in _UNITS:
        if size >= length:
            count = int(size // length)
            return f"{count} {unit}{'' if count == 1 else 's'}"
    return "0 seconds"


def relative_time(value: Any, now_ms: Any = None) -> str:
    """Epoch milliseconds, or a delta in seconds (negative: past), as "3 minutes ago" /
    "in 2 hours" / "just now". ``now_ms`` defaults to the server's clock."""
    n = _number(value)
    if n is None:
        return str(value)
    seconds = (n - _now_ms(now_ms)) / 1000 if abs(n) >= EPOCH_MS_FROM else n
    if abs(seconds) < 1:
        return "just now"
    text = duration(seconds)
    return f"in {text}" if seconds > 0 else f"{text} ago"


def seconds_until(deadline: Any, now_ms: Any = None) -> int:
    """Whole seconds from now until ``deadline`` (epoch ms); 0 when it has passed or is not a
    number. For countdowns: ``{% set left = params.ends_at | seconds_until %}``."""
    n = _number(deadline)
    if n is None:
        return 0
    return max(0, int((n - _now_ms(now_ms)) // 1000))


def clock(seconds: Any) -> str:
    """``899 | clock`` -> "14:59"; ``3725 | clock`` -> "1:02:05"; negative counts as 0."""
    n = _number(seconds)
    total = max(0, int(n)) if n is not None else 0
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def safe_url(value: Any, fallback: str = "") -> str:
    """``value`` when it is an http(s), mailto or tel URL, a path on the same site ("/cart")
    or a fragment ("#chat"); ``fallback`` otherwise (``javascript:``, ``data:``, "//host")."""
    if not isinstance(value, str):
        return fallback
    url = value.strip()
    probe = _CONTROL.sub("", url)  # browsers ignore these: "java\tscript:" is javascript:
    if not url or len(url) > 2048 or "\\" in probe:
        return fallback
    scheme = _SCHEME.match(probe)
    if scheme:
        return url if scheme.group(1).lower() in _SAFE_SCHEMES else fallback
    if probe.startswith("#") or (probe.startswith("/") and not probe.startswith("//")):
        return url
    return fallback


def css_color(value: Any, fallback: str = "") -> str:
    """``value`` when it is a plain CSS colour (#hex, rgb(), hsl(), a named colour), for use
    inside a template's <style>; ``fallback`` otherwise, so nothing else reaches the CSS."""
    if isinstance(value, str) and _COLOR.match(value.strip()):
        return value.strip()
    return fallback


def css_int(value: Any, fallback: int = 0, low: int = 0, high: int = 10**7) -> int:
    """An integer clamped to [low, high], safe to print inside <style> (a countdown's seconds);
    ``fallback`` when ``value`` is not a number."""
    n = _number(value)
    return max(low, min(high, int(n))) if n is not None else fallback


FILTERS: dict[str, Callable[..., Any]] = {
    "number": number,
    "currency": currency,
    "plural": plural,
    "relative_time": relative_time,
    "duration": duration,
    "seconds_until": seconds_until,
    "clock": clock,
    "safe_url": safe_url,
    "css_color": css_color,
    "css_int": css_int,
}
