"""Where the demo shop, rules and templates are: in the wheel, or in the clone."""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
BUNDLED = PACKAGE_DIR / "_bundled"  # filled by the wheel build (pyproject: force-include)
CLONE = PACKAGE_DIR.parent.parent  # server/cuewire -> the repository root


def shipped(name: str) -> Path:
    """``demo-site``, ``rules`` or ``templates`` as shipped with this installation."""
    for base in (BUNDLED, CLONE):
        candidate = base / name
        if candidate.is_dir():
            return candidate
    return Path(name)
