"""Record a site's sessions, and replay them through a rule set on a simulated clock.

``cuewire record`` copies the live stream (every accepted batch, see keys.py) of one site, and
the audit records of the same sessions, to a JSON-lines file. ``cuewire replay FILE --rules
DIR`` feeds those batches, in their order and at their server time, through the real pipeline
(embedded store, engine, delivery, timer loop), stepping the clock from deadline to deadline,
and counts what every rule would do. With the live audit in the file it shows both columns, so
a rule change can be judged against what the live rules did.

One line per batch or audit record::

    {"kind": "batch", "site": "demo", "id": "1764000000000-0", "at": 1764000000000,
     "session": "s_...", "visitor": "v_...", "device": "mobile",
     "events": [{"type": "page_view", ...}]}
    {"kind": "audit", "site": "demo", "id": "...", "outcome": "fired", "rule": "...", ...}

``device`` is the session's device class (device.py) when the batch was stored; recordings
made before it was kept have none.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

import msgspec

from .codes import Outcome
from .delivery import Delivery
from .errors import ConfigError
from .facts import PROMPT_CLOSED
from .origin import Origin
from .pipeline import Pipeline
from .protocol import Prompt, error_reason
from .runtime import Runtime
from .settings import Settings
from .store import open_store
from .store.base import Store
from .timers import TimerLoop

# The table's columns (every outcome is in the JSON).
OUTCOMES = (Outcome.FIRED, Outcome.HOLDOUT, Outcome.SUPPRESSED, Outcome.QUEUED)


class Batch(msgspec.Struct, frozen=True, forbid_unknown_fields=False):
    """One accepted batch of one session, at the server time it was stored."""

    kind: Literal["batch"]
    site: str
    id: str
    at: int
    session: str
    visitor: str
    events: list[dict[str, Any]]
    device: str = ""  # the session's device class as the batch was stored ("": not recorded)


def described(batch: Batch) -> dict[str, str] | None:
    """What the server set on the batch's session when a tab connected (the gateway's
    ``describe``), as far as a recording keeps it: the device class. None for recordings
    made before it was kept."""
    return {"device": batch.device} if batch.device else None


def stream_ms(entry_id: str) -> int:
    """The server time (ms) in a stream entry id ``<ms>-<seq>``."""
    return int(entry_id.split("-", 1)[0])


# ---------------------------------------------------------------- record


async def record(store: Store, site: str, out: IO[str], max_batches: int) -> tuple[int, int]:
    """Write the latest ``max_batches`` batches of ``site`` and the audit records of their
    sessions to ``out``; return (batches, audit records) written."""
    live = await store.read_live(site, max_batches)
    sessions = {entry.get("session", "") for entry in live}
    oldest = stream_ms(live[0]["id"]) if live else 0
    audit = [
        r
        for r in await store.read_audit(site, max(1000, 20 * max_batches))
        if r.get("session") in sessions and stream_ms(r["id"]) >= oldest
    ]
    for entry in live:
        batch = {
            "kind": "batch",
            "site": site,
            "id": entry["id"],
            "at": int(entry.get("at") or stream_ms(entry["id"])),
            "session": entry.get("session", ""),
            "visitor": entry.get("visitor", ""),
            "events": json.loads(entry.get("events") or "[]"),
        }
        if entry.get("device"):
            batch["device"] = entry["device"]
        out.write(json.dumps(batch, separators=(",", ":")) + "\n")
    for rec in audit:
        out.write(json.dumps({"kind": "audit", "site": site, **rec}, separators=(",", ":")) + "\n")
    return len(live), len(audit)


@dataclass
class Recording:
    batches: list[Batch] = field(default_factory=list)
    audit: list[dict[str, str]] = field(default_factory=list)

    @classmethod
    def read(cls, lines: Iterable[str], source: str = "recording") -> Recording:
        rec = cls()
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                raw = json.loads(line)
                kind = raw.get("kind") if isinstance(raw, dict) else None
                if kind == "batch":
                    rec.batches.append(msgspec.convert(raw, Batch))
                elif kind == "audit":
                    rec.audit.append({str(k): str(v) for k, v in raw.items()})
                else:
                    raise ConfigError(f"{source}:{number}: not a batch or an audit record")
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{source}:{number}: not JSON: {exc.msg}") from exc
            except msgspec.ValidationError as exc:
                raise ConfigError(f"{source}:{number}: {error_reason(exc)}") from exc
        rec.batches.sort(key=lambda b: (b.at, b.id))
        return rec

    @classmethod
    def load(cls, path: Path) -> Recording:
        try:
            with path.open(encoding="utf-8") as f:
                return cls.read(f, str(path))
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc


# ---------------------------------------------------------------- replay


@dataclass
class SimClock:
    now: int = 0

    def now_ms(self) -> int:
        return self.now


@dataclass
class RuleCounts:
    replay: Counter[str] = field(default_factory=Counter)
    live: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    live_reasons: Counter[str] = field(default_factory=Counter)


@dataclass
class ReplayResult:
    sessions: int = 0
    batches: int = 0
    events: int = 0
    first_ms: int = 0
    last_ms: int = 0
    has_live: bool = False
    rules: dict[str, RuleCounts] = field(default_factory=lambda: defaultdict(RuleCounts))
    audit: list[dict[str, str]] = field(default_factory=list)
    prompts: list[Prompt] = field(default_factory=list)
    recorded: dict[str, str] = field(default_factory=dict)  # replayed -> recorded session id

    def firings(self, which: Literal["replay", "live"] = "replay") -> Counter[tuple[str, str]]:
        """(rule, outcome) -> how often, in the replay or in the recorded live run."""
        out: Counter[tuple[str, str]] = Counter()
        for rule, counts in self.rules.items():
            for outcome, n in getattr(counts, which).items():
                out[(rule, outcome)] += n
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "sessions": self.sessions,
            "batches": self.batches,
            "events": self.events,
            "from": self.first_ms,
            "to": self.last_ms,
            "rules": {
                rule: {
                    "replay": dict(c.replay),
                    "suppressed_by": dict(c.reasons),
                    **(
                        {"live": dict(c.live), "live_suppressed_by": dict(c.live_reasons)}
                        if self.has_live
                        else {}
                    ),
                }
                for rule, c in sorted(self.rules.items())
            },
        }

    def table(self) -> Iterator[str]:
        """The result as a plain-text table."""
        head = ["rule", *OUTCOMES]
        if self.has_live:
            head += [f"live {o}" for o in OUTCOMES]
        rows = [head]
        for rule, c in sorted(self.rules.items()):
            row = [rule, *(str(c.replay[o]) for o in OUTCOMES)]
            if self.has_live:
                row += [str(c.live[o]) for o in OUTCOMES]
            rows.append(row)
        widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
        for row in rows:
            cells = [row[0].ljust(widths[0])]
            cells += [cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)]
            yield "  ".join(cells).rstrip()
        for rule, c in sorted(self.rules.items()):
            for reason, n in sorted(c.reasons.items()):
                yield f"  {rule}: suppressed {n}x: {reason}"


async def replay(
    recording: Recording, rules_dir: Path, templates_dir: Path, session_ttl_s: int = 30 * 60
) -> ReplayResult:
    """Run the recorded batches through the rules of ``rules_dir`` on a simulated clock."""
    runtime = Runtime(rules_dir, templates_dir)  # raises SourceError for invalid rules
    settings = Settings(
        redis_url=None,
        rules_dir=rules_dir,
        templates_dir=templates_dir,
        session_ttl_s=session_ttl_s,
        live_stream_max=0,
    )
    result = ReplayResult()
    first = recording.batches[0].at if recording.batches else 0
    clock = SimClock(first)

    # the id of the latest prompt of each (recorded session, rule) in this replay: a recorded
    # close names the live run's prompt id, and a close frees the slot only for its own prompt
    replayed: dict[tuple[str, str], str] = {}

    async def emit(sid: str, prompt: Prompt, confirm: bool) -> bool:
        result.prompts.append(prompt)
        replayed[(sid, prompt.rule)] = prompt.id
        return True  # a replay has no tab to lose

    sessions: dict[tuple[str, str], str] = {}
    sites: set[str] = set()
    async with open_store(settings) as store:
        delivery = Delivery(store, runtime.engine, runtime.catalog, emit, clock)
        pipeline = Pipeline(store, runtime.engine, delivery)
        timers = TimerLoop(store, runtime.engine, delivery, clock, 0.0, session_ttl_s)

        async def advance(to_ms: int) -> None:
            """Fire every deadline up to ``to_ms`` at its own time, then move the clock there."""
            while (due := await store.next_due_ms()) is not None and due <= to_ms:
                clock.now = max(clock.now, due)
                await timers.tick()
            clock.now = max(clock.now, to_ms)

        for index, batch in enumerate(recording.batches):
            await advance(batch.at)
            key = (batch.site, batch.session)
            if key not in sessions:
                opened = await store.open_session(
                    batch.site, batch.visitor, None, clock.now, described(batch)
                )
                sessions[key] = opened.session
                result.recorded[opened.session] = batch.session
            sites.add(batch.site)
            # one tab per batch: every recorded event was accepted once, none is a resend
            origin = Origin(batch.site, batch.visitor, sessions[key], f"r{index}", batch.session)
            events = [
                {**e, "prompt": replayed[(batch.session, e["rule"])]}
                if e["type"] in PROMPT_CLOSED and (batch.session, e.get("rule")) in replayed
                else e
                for e in batch.events
            ]
            await pipeline.process(origin, events, clock.now)
            result.events += len(batch.events)
        if recording.batches:
            await advance(recording.batches[-1].at + session_ttl_s * 1000)
        for site in sorted(sites):
            result.audit += await store.read_audit(site, 1_000_000)
    result.sessions = len(sessions)
    result.batches = len(recording.batches)
    if recording.batches:
        result.first_ms, result.last_ms = recording.batches[0].at, recording.batches[-1].at
    for rec in result.audit:
        counts = result.rules[rec["rule"]]
        counts.replay[rec["outcome"]] += 1
        if rec["outcome"] == Outcome.SUPPRESSED:
            counts.reasons[rec["reason"]] += 1
    result.has_live = bool(recording.audit)
    for rec in recording.audit:
        counts = result.rules[rec.get("rule", "")]
        counts.live[rec.get("outcome", "")] += 1
        if rec.get("outcome") == Outcome.SUPPRESSED:
            counts.live_reasons[rec.get("reason", "")] += 1
    return result
