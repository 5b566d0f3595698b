"""What every admin page and endpoint shares: answers never cached, and which site a request
is about."""

from __future__ import annotations

from collections.abc import Sequence

NO_STORE = {"Cache-Control": "no-store"}  # admin answers hold live data: never cached


def pick_site(sites: Sequence[str], wanted: object) -> str:
    """The site a request names (``?site=``) when it is one of ``sites``; else ``demo`` when
    there is one (or no site at all), else the first."""
    if isinstance(wanted, str) and wanted in sites:
        return wanted
    return "demo" if "demo" in sites or not sites else sites[0]
