"""The one exception tree of Cuewire.

    CuewireError
    +-- ConfigError          settings, sites file: the server cannot start as configured
    +-- SourceError          a rule or template file is invalid (carries file:line:col)
    |   +-- RuleError
    |   +-- TemplateError
    +-- StoreError           the session store (Redis or embedded) failed
    +-- HistoryError         the export's PostgreSQL could not be searched (QA search)
    +-- ProtocolError        a client sent something the wire protocol does not allow
        +-- IdentityUnverified   an identify without the signature its site requires

Every message says what to do about it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .codes import Misconfig


class CuewireError(Exception):
    """Root of every error Cuewire raises on purpose."""


class ConfigError(CuewireError):
    """The configuration cannot work; the message names the setting to fix. ``code`` (when
    set) is the stable reason code should branch on."""

    def __init__(self, message: str, code: Misconfig | None = None) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Problem:
    """One problem in a source file, printed as ``file:line:col: message``."""

    path: Path
    line: int
    col: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.col}: {self.message}"


class SourceError(CuewireError):
    """One or more problems in user-authored files (rules, templates)."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class RuleError(SourceError):
    """A rule file is invalid."""


class TemplateError(SourceError):
    """A template file is invalid."""


class ModelError(SourceError):
    """A model file (learn/models.py: segments, propensity) is invalid or of another version."""


class StoreError(CuewireError):
    """The session store failed; check that Redis is reachable at CUEWIRE_REDIS_URL."""


class HistoryError(CuewireError):
    """The export's PostgreSQL (CUEWIRE_EXPORT_DSN) could not be searched: check that it is
    reachable and that the export has made its tables (docs/export.md)."""


class ProtocolError(CuewireError):
    """A client broke the wire protocol (see docs/protocol.md)."""


class IdentityUnverified(ProtocolError):
    """An identify event without a valid signature where its site requires one."""
