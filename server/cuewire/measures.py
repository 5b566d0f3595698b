"""What a batch's events count (counters.py): the goals (measure.toml) and funnels (rule
files) of the live rule set, matched against each event the pipeline hands to the store."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .counters import FEEDBACK, Feedback, GoalReached, Mark, StepReached
from .goals import Goal, Goals
from .rules.index import RuleSet, matches
from .rules.model import Funnel, duration_ms


class Measures:
    """The goals (measure.toml) and funnels (rule files) of the live rule set, as the
    pipeline tallies batches with them; ``rules``: the rules whose goals are watched."""

    def __init__(
        self, goals: Goals | None = None, funnels: Iterable[Funnel] = (), rules: Iterable[str] = ()
    ) -> None:
        self.goals = goals or Goals()
        self.funnels = tuple(funnels)
        grouped: dict[int, tuple[Goal, list[str]]] = {}
        for rule in rules:
            goal = self.goals.of(rule)
            grouped.setdefault(id(goal), (goal, []))[1].append(rule)
        self._by_goal = list(grouped.values())
        self._windows = {
            f.id: duration_ms(f.within) if f.within is not None else 0 for f in self.funnels
        }
        types = {g.match.type for g, _ in self._by_goal}
        types |= {step.type for f in self.funnels for step in f.steps}
        self._types = frozenset(types) | frozenset(FEEDBACK)

    def window_ms(self, rule: str) -> int:
        """How long after an exposure to ``rule`` its goal counts as a conversion."""
        return self.goals.of(rule).window_ms

    def marks(self, events: Iterable[dict[str, Any]]) -> list[Mark]:
        """What each event of a batch counts, in the batch's order."""
        found: list[Mark] = []
        for index, event in enumerate(events):
            kind = event.get("type")
            if kind not in self._types:
                continue
            feedback = FEEDBACK.get(str(kind))
            if feedback is not None and isinstance(event.get("prompt"), str):
                found.append(Feedback(index, event["prompt"], feedback))
            for goal, rules in self._by_goal:
                if matches(goal.match, event):
                    found += [GoalReached(index, rule, goal.window_ms) for rule in rules]
            for funnel in self.funnels:
                steps = tuple(n for n, m in enumerate(funnel.steps, 1) if matches(m, event))
                if steps:
                    window, split = self._windows[funnel.id], funnel.split
                    split_ms = self.window_ms(split) if split else 0
                    found.append(StepReached(index, funnel.id, steps, window, split, split_ms))
        return found


def measures_of(rules: RuleSet) -> Measures:
    """The goals and funnels of ``rules``; the default goal and no funnels when it was built
    without them (then kept on it)."""
    if rules.measures is None:
        rules.measures = Measures(Goals(), (), list(rules.rules))
    return rules.measures
