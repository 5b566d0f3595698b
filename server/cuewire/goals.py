"""Conversion goals per rule, from ``measure.toml`` beside the rules (docs/qa.md).

A firing converts when the same visitor sends the goal event within the window after it::

    [default]
    goal = { type = "custom", name = "purchase" }
    window = "30m"

    [rules.size-help]
    goal = { type = "custom", name = "add_to_cart" }
    window = "10m"
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from .errors import ConfigError
from .protocol import error_reason
from .rules.model import Duration, Match, duration_ms

MEASURE_FILE = "measure.toml"


class GoalSpec(msgspec.Struct, forbid_unknown_fields=True):
    goal: Match
    window: Duration = "30m"


class MeasureFile(msgspec.Struct, forbid_unknown_fields=True):
    default: GoalSpec | None = None
    rules: dict[str, GoalSpec] = {}


@dataclass(frozen=True)
class Goal:
    """The event that counts as a conversion, and how long after the prompt it may come."""

    match: Match
    window_ms: int

    def describe(self) -> str:
        name = f" {self.match.name}" if isinstance(self.match.name, str) else ""
        return f"{self.match.type}{name}"

    def to_json(self) -> dict[str, Any]:
        return {"event": msgspec.to_builtins(self.match), "window_s": self.window_ms / 1000}


DEFAULT_GOAL = Goal(Match(type="custom", name="purchase"), 30 * 60_000)


@dataclass(frozen=True)
class Goals:
    default: Goal = DEFAULT_GOAL
    per_rule: Mapping[str, Goal] = field(default_factory=dict)

    def of(self, rule: str) -> Goal:
        return self.per_rule.get(rule, self.default)

    @classmethod
    def parse(cls, text: str, source: str = MEASURE_FILE) -> Goals:
        try:
            parsed = msgspec.convert(tomllib.loads(text), MeasureFile)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{source}: not valid TOML: {exc}") from exc
        except msgspec.ValidationError as exc:
            raise ConfigError(f"{source}: {error_reason(exc)}") from exc
        except ValueError as exc:  # raised by Match's own checks
            raise ConfigError(f"{source}: {exc}") from exc

        def goal(spec: GoalSpec) -> Goal:
            return Goal(spec.goal, duration_ms(spec.window))

        default = goal(parsed.default) if parsed.default else DEFAULT_GOAL
        return cls(default, {rule: goal(spec) for rule, spec in parsed.rules.items()})

    @classmethod
    def load(cls, path: Path) -> Goals:
        """Goals from ``path``; the default goal (a ``purchase`` within 30 min) without it."""
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return cls()
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
        return cls.parse(text, str(path))
