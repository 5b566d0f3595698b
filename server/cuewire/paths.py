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


def or_shipped(folder: Path, default: Path, name: str) -> Path:
    """``folder``, unless it is the default one and does not exist here: then the shipped
    ``name`` (the starter templates), so a command run outside the repository still works."""
    if folder == default and not folder.is_dir():
        return shipped(name)
    return folder


def describe(folder: Path, default: Path | None = None, name: str = "templates") -> str:
    """``folder`` for people: says when it is the shipped ``name`` standing in for a missing
    ``default`` (see :func:`or_shipped`), or when it does not exist."""
    if default is not None and folder != default and folder == or_shipped(default, default, name):
        return f"{folder} (shipped with cuewire: there is no ./{default})"
    return str(folder) if folder.is_dir() else f"{folder} (missing)"
