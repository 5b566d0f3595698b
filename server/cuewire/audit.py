"""One audit record: what happened to one firing (codes.Outcome), written to the site's audit
stream by the store (record.lua), read by `cuewire audit`, the QA view and measure.py."""

from __future__ import annotations

import msgspec

from .codes import Outcome


class AuditRecord(msgspec.Struct, frozen=True):
    """One firing's record, as :meth:`fields` writes it (a msgspec Struct: made in C, as a
    firing makes two or three)."""

    outcome: Outcome
    rule: str
    session: str
    visitor: str
    cause: str  # the trigger kind, "timer" or "queue"
    at_ms: int
    code: str = ""  # why it did not fire (codes.Hold, codes.Drop), "" when it did
    reason: str = ""  # the code in words, for people (never matched by code)
    prompt: str = ""
    template: str = ""
    variant: str = ""
    url: str = ""
    latency_ms: int = 0  # from the qualifying behaviour (or deadline) to this record
    event: str = "{}"  # the triggering event, JSON
    firing: str = ""  # a deadline's token: the record is written once per firing
    window_ms: int = 0  # an exposure's goal window (goals.py): how long it may convert
    digest: str = ""  # the rule's digest (rules.model.digest): which version of it ran
    model: str = ""  # the learned models' ids when it was decided (learn/models.py)

    def fields(self) -> dict[str, str]:
        """The stream entry's fields."""
        return {
            "outcome": str(self.outcome),
            "code": self.code,
            "reason": self.reason,
            "rule": self.rule,
            "session": self.session,
            "visitor": self.visitor,
            "cause": self.cause,
            "prompt": self.prompt,
            "template": self.template,
            "variant": self.variant,
            "url": self.url,
            "latency_ms": str(max(0, self.latency_ms)),
            "at": str(self.at_ms),
            "event": self.event,
            "firing": self.firing,
            "window_ms": str(self.window_ms),
            "rule_digest": self.digest,
            "model": self.model,
        }
