"""Measurement counters: what is counted per site, rule, variant and UTC day as it happens
(docs/qa.md, "Measurement"), and what one audit record or one batch's events count.

The store adds to them in the call that records the decision (record.lua: exposures,
suppressions, a new exposed visitor) or that ingests the event (ingest.lua: feedback on a
prompt, conversions, funnel steps), through counters.lua. One hash per site and UTC day
(keys.py ``counters``); its fields:

- ``rule|variant|kind``: ``fired``, ``holdout``, ``suppressed:<code>`` (one per audit record),
  ``visitors`` (a visitor exposed with no exposure of theirs to the rule still open: the unit
  conversions are counted in), ``shown`` / ``clicked`` / ``dismissed`` (once per prompt each),
  ``converted`` (a goal event while the visitor's exposure is open: once, it closes it);
- ``#f|funnel|segment|step``: visitors reaching a funnel step (funnels.py);
- ``#s|model|segment``: visitors the server assigned to a learned segment (``visitor.segment``
  with the segments model ``model``), once per visitor, segment and day (counters.lua
  ``count_segment``: in the batch's own call when it was decided ahead, else segment.lua).

A rule without variants counts under variant ``""``; a holdout under ``holdout``. A visitor's
exposure stays open for the rule's goal window (goals.py) after their last exposure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .codes import Outcome

FIRED, HELD_OUT, VISITORS, CONVERTED = "fired", "holdout", "visitors", "converted"
SUPPRESSED = "suppressed:"  # + the code governance (codes.Hold) gave
FEEDBACK = {"prompt_shown": "shown", "prompt_click": "clicked", "prompt_dismiss": "dismissed"}
FUNNEL = "#f"  # no rule id starts with "#"
SEGMENT = "#s"
PROMPT_MARK_TTL_S = 2 * 86400  # feedback on a prompt counts for this long after it was shown


def counter_field(rule: str, variant: str, kind: str) -> str:
    return f"{rule}|{variant}|{kind}"


def funnel_field(funnel: str, segment: str, step: int) -> str:
    return f"{FUNNEL}|{funnel}|{segment}|{step}"


def segment_field(model: str, segment: str) -> str:
    return f"{SEGMENT}|{model}|{segment}"


def segment_sizes(counters: Mapping[str, Mapping[str, int]], model: str) -> dict[str, int]:
    """Per segment of ``model``: the visitors assigned to it, summed over the days of
    ``counters`` (day -> field -> count, as ``Store.counters`` reads them)."""
    head = segment_field(model, "")
    sizes: dict[str, int] = {}
    for day in counters.values():
        for name, count in day.items():
            if name.startswith(head):
                segment = name[len(head) :]
                sizes[segment] = sizes.get(segment, 0) + count
    return sizes


# ---------------------------------------------------------------- one audit record


@dataclass(frozen=True)
class RecordCount:
    """What one audit record counts: ``fields`` to add 1 to; for an exposure, the rule and
    variant its marker holds, for the goal window ``window_ms``; for a prompt shown, its id."""

    fields: list[str]
    rule: str = ""
    variant: str = ""
    window_ms: int = 0
    prompt: str = ""

    @property
    def exposes(self) -> bool:
        return self.window_ms > 0


def record_count(record: Mapping[str, str]) -> RecordCount | None:
    """What ``record`` (audit.py's fields) counts, or None. Its ``window_ms`` is the goal
    window delivery gave an exposure (fired, holdout)."""
    outcome, rule = record.get("outcome"), record.get("rule", "")
    variant = record.get("variant", "")
    if outcome == Outcome.SUPPRESSED:
        return RecordCount([counter_field(rule, variant, SUPPRESSED + record.get("code", ""))])
    if outcome not in (Outcome.FIRED, Outcome.HOLDOUT):
        return None
    kind = HELD_OUT if outcome == Outcome.HOLDOUT else FIRED
    window = int(record.get("window_ms") or 0)
    prompt = record.get("prompt", "")
    return RecordCount([counter_field(rule, variant, kind)], rule, variant, window, prompt)


# ---------------------------------------------------------------- one batch's events


@dataclass(frozen=True)
class Feedback:
    """Event ``event`` of a batch tells what the visitor did with ``prompt``."""

    event: int
    prompt: str
    kind: str


@dataclass(frozen=True)
class GoalReached:
    """Event ``event`` of a batch is ``rule``'s goal."""

    event: int
    rule: str
    window_ms: int


@dataclass(frozen=True)
class StepReached:
    """Event ``event`` of a batch matches ``steps`` (1-based) of ``funnel``; ``split``: the
    rule whose open exposure (``split_ms``: its goal window) splits the funnel's counts."""

    event: int
    funnel: str
    steps: tuple[int, ...]
    window_ms: int
    split: str | None
    split_ms: int = 0


@dataclass(frozen=True)
class SegmentAssigned:
    """The batch's decision, made before the store call, assigned the visitor ``segment`` of
    the segments model ``model``: counted (:func:`segment_field`) only when the decision
    stands (ingest.lua), once per visitor, segment and day."""

    model: str
    segment: str


Mark = Feedback | GoalReached | StepReached | SegmentAssigned
