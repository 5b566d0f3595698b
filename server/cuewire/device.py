"""A coarse device class from the User-Agent, for targeting (``session.device``)."""

from __future__ import annotations

import re

_TABLET = re.compile(r"iPad|Tablet|Nexus (7|9|10)|SM-T|Kindle|Silk|(Android(?!.*Mobile))", re.I)
_MOBILE = re.compile(r"Mobi|iPhone|iPod|Android.*Mobile|Windows Phone|Opera Mini", re.I)
_BOT = re.compile(r"bot|crawler|spider|HeadlessChrome", re.I)


def device_class(user_agent: str | None) -> str:
    """``mobile``, ``tablet``, ``desktop``, ``bot`` or ``unknown``."""
    if not user_agent:
        return "unknown"
    if _BOT.search(user_agent):
        return "bot"
    if _TABLET.search(user_agent):
        return "tablet"
    if _MOBILE.search(user_agent):
        return "mobile"
    return "desktop"
