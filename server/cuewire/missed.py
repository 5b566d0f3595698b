"""``cuewire audit --missed``: the firings the current rules expect in recorded sessions that
the audit stream does not hold, with why (docs/qa.md, "Missed firings").

The site's recent sessions are taken from the store the way ``cuewire record`` takes them
(the live stream and those sessions' audit records, replay.py), replayed through the current
rules in an isolated embedded store (replay.py: the real pipeline on a simulated clock), and
every firing of the replay (``fired``, ``holdout``, or ``shadow_fired`` for a shadow rule) is
matched, per session and rule, with the recorded ones of the same kind. What is left over is
missed, with a :class:`~cuewire.codes.Missed` code chosen from the recorded audit alone:

- what the live run recorded for that session and rule instead, first (``suppressed`` with
  governance's code, ``dropped`` with the deadline's code such as ``no_tab``, ``queued``,
  ``excluded`` by a rollout, ``shadow``);
- else, from the rule's records in the whole recording: ``rule_changed`` when they carry
  another rule digest than the current rule's, ``rule_not_in_audit`` when there is none;
- else ``no_record``: the rule ran, unchanged, and left nothing for this session.

The replay starts from an empty store, so visitor state older than the recording (caps per
day or week, opt-outs, snoozes) is not in it: a firing those held back live shows with the
recorded ``suppressed`` record that says so, never as a bare miss.
"""

from __future__ import annotations

import asyncio
import datetime
import io
import json
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from .codes import Missed, Outcome
from .replay import Recording, record, replay
from .rules.model import digest
from .runtime import Runtime
from .settings import Settings
from .store import open_store
from .store.base import Store

MAX_BATCHES = 10_000  # the latest batches of the site taken, as `cuewire record` does
# a firing of the replay and the recorded outcomes that hold it
HELD_BY: dict[str, tuple[str, ...]] = {
    Outcome.FIRED: (Outcome.FIRED, Outcome.HOLDOUT),
    Outcome.HOLDOUT: (Outcome.FIRED, Outcome.HOLDOUT),
    Outcome.SHADOW_FIRED: (Outcome.SHADOW_FIRED,),
}
# what the live run recorded instead, in the order a reason is taken from
INSTEAD: tuple[tuple[str, Missed], ...] = (
    (Outcome.SUPPRESSED, Missed.SUPPRESSED),
    (Outcome.DROPPED, Missed.DROPPED),
    (Outcome.QUEUED, Missed.QUEUED),
    (Outcome.EXCLUDED, Missed.EXCLUDED),
    (Outcome.SHADOW_FIRED, Missed.SHADOW),
    (Outcome.SHADOW_SUPPRESSED, Missed.SHADOW),
)


@dataclass(frozen=True)
class MissedFiring:
    rule: str
    outcome: str  # what the current rules do: fired, holdout or shadow_fired
    at: int  # when, in the recording's server time (ms)
    cause: str
    code: Missed
    detail: str  # for people: the recorded codes, or the digests compared


@dataclass
class SessionMisses:
    session: str  # the recorded session id
    visitor: str
    missed: list[MissedFiring] = field(default_factory=list)


@dataclass
class MissedReport:
    site: str
    rules_dir: str
    sessions: int = 0
    batches: int = 0
    expected: int = 0  # firings of the replay
    first_ms: int = 0
    last_ms: int = 0
    found: list[SessionMisses] = field(default_factory=list)  # sessions that miss some

    @property
    def missing(self) -> int:
        return sum(len(s.missed) for s in self.found)

    def to_json(self) -> dict[str, Any]:
        return {
            "site": self.site,
            "rules": self.rules_dir,
            "sessions": self.sessions,
            "batches": self.batches,
            "from": self.first_ms,
            "to": self.last_ms,
            "expected": self.expected,
            "missing": self.missing,
            "by_session": [asdict(s) for s in self.found],
        }

    def lines(self) -> Iterator[str]:
        yield (
            f"replayed {self.sessions} sessions ({self.batches} batches) of site {self.site!r} "
            f"through {self.rules_dir}: {self.expected} firings expected, {self.missing} not "
            f"in the audit stream ({len(self.found)} sessions)"
        )
        for s in self.found:
            yield f"session {s.session} (visitor {s.visitor})"
            for m in s.missed:
                at = datetime.datetime.fromtimestamp(m.at / 1000, datetime.UTC)
                when = at.strftime("%Y-%m-%d %H:%M:%S")
                yield f"  {when} UTC  {m.rule}: {m.outcome} ({m.cause})  {m.code}: {m.detail}"


def compare(
    replayed: list[dict[str, str]],
    recorded: list[dict[str, str]],
    sessions: Mapping[str, str],
    digests: Mapping[str, str],
) -> list[SessionMisses]:
    """The replay's firings (``replayed``, its sessions mapped to the recorded ones by
    ``sessions``) that the recorded audit does not hold, per recorded session;
    ``digests``: each current rule's digest."""
    live: dict[tuple[str, str], list[dict[str, str]]] = defaultdict(list)
    rule_digests: dict[str, set[str]] = defaultdict(set)
    for r in recorded:
        live[(r.get("session", ""), r.get("rule", ""))].append(r)
        rule_digests[r.get("rule", "")].add(r.get("rule_digest", ""))
    expected: dict[tuple[str, str], list[dict[str, str]]] = defaultdict(list)
    visitors: dict[str, str] = {}
    for r in replayed:
        if r["outcome"] in HELD_BY:
            session = sessions.get(r["session"], r["session"])
            expected[(session, r["rule"])].append(r)
            visitors[session] = r["visitor"]
    found: dict[str, SessionMisses] = {}
    for (session, rule), firings in sorted(expected.items()):
        records = live[(session, rule)]
        left = list(records)
        for firing in firings:
            held = next((r for r in left if r.get("outcome") in HELD_BY[firing["outcome"]]), None)
            if held is not None:
                left.remove(held)
                continue
            code, detail = _why(records, rule_digests.get(rule, set()), digests.get(rule, ""))
            missed = MissedFiring(
                rule, firing["outcome"], int(firing["at"]), firing["cause"], code, detail
            )
            entry = found.setdefault(session, SessionMisses(session, visitors[session]))
            entry.missed.append(missed)
    return list(found.values())


def _why(records: list[dict[str, str]], seen: set[str], current: str) -> tuple[Missed, str]:
    """Why a firing is missing, from what was recorded for its session and rule
    (``records``) and the digests the rule's records carry anywhere (``seen``)."""
    for outcome, code in INSTEAD:
        codes = sorted({r.get("code", "") or outcome for r in records if r["outcome"] == outcome})
        if codes:
            return code, f"recorded {outcome}: {', '.join(codes)}"
    if not seen:
        return Missed.RULE_NOT_IN_AUDIT, "no record of this rule in the recording"
    known = seen - {""}
    if known and current not in known:
        return Missed.RULE_CHANGED, f"recorded under {', '.join(sorted(known))}, now {current}"
    return Missed.NO_RECORD, "the rule ran unchanged and left no record for this session"


async def find_missed(
    store: Store, site: str, settings: Settings, max_batches: int = MAX_BATCHES
) -> MissedReport:
    """Take the site's latest ``max_batches`` batches from ``store`` (the live one) and find
    the firings the rules of ``settings`` expect in them that its audit stream lacks."""
    out = io.StringIO()
    await record(store, site, out, max_batches)
    recording = Recording.read(out.getvalue().splitlines(), f"site {site}")
    result = await replay(
        recording, settings.rules_dir, settings.templates_dir, settings.session_ttl_s
    )
    runtime = Runtime(settings.rules_dir, settings.templates_dir)
    digests = {rule.id: digest(rule) for rule in runtime.engine().rules.rules.values()}
    report = MissedReport(site, str(settings.rules_dir))
    report.sessions, report.batches = result.sessions, result.batches
    report.first_ms, report.last_ms = result.first_ms, result.last_ms
    report.expected = sum(1 for r in result.audit if r["outcome"] in HELD_BY)
    report.found = compare(result.audit, recording.audit, result.recorded, digests)
    return report


def main(settings: Settings, site: str, as_json: bool) -> int:
    """``cuewire audit --missed``: print the report; 1 when a firing is missing."""

    async def run() -> MissedReport:
        async with open_store(settings) as store:
            return await find_missed(store, site, settings)

    report = asyncio.run(run())
    if as_json:
        print(json.dumps(report.to_json(), indent=2, sort_keys=True))
    else:
        for line in report.lines():
            print(line)
    return 1 if report.found else 0
