"""Shadow rules against live ones: ``GET /qa/shadow.json?site=[&since=MS]`` (docs/qa.md).

Per rule, over one period, how often a rule in ``mode: shadow`` would have fired
(``shadow_fired``) and would have been held (``shadow_suppressed``), beside how often the live
rules fired, were suppressed, or were left out by a rollout (``excluded``), read from the
site's audit stream. The period starts at ``since`` (epoch ms) or, without it, at the oldest
shadow record read, so shadow and live counts cover the same stretch of traffic; it ends at
the newest record. Mounted by admin/qa.py, behind the admin login like every QA route.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from ..codes import Outcome
from ..runtime import Runtime
from ..store.base import Store
from .pages import NO_STORE

COLUMNS = (
    Outcome.SHADOW_FIRED,
    Outcome.SHADOW_SUPPRESSED,
    Outcome.FIRED,
    Outcome.HOLDOUT,
    Outcome.SUPPRESSED,
    Outcome.EXCLUDED,
)
SHADOW = (Outcome.SHADOW_FIRED, Outcome.SHADOW_SUPPRESSED)
MAX_RECORDS = 100_000  # audit records read, newest first (the stream keeps about this many)


class ReportContext(Protocol):
    """What the report reads from the QA view's context (admin/qa.py's QaContext)."""

    @property
    def store(self) -> Store: ...

    @property
    def runtime(self) -> Runtime: ...

    def site(self, wanted: object) -> str: ...


def compare(
    records: Iterable[Mapping[str, str]], since_ms: int | None, modes: Mapping[str, str]
) -> dict[str, Any]:
    """The report over ``records`` (audit stream entries, oldest first); ``modes`` is each
    loaded rule's mode and rollout as shown (``shadow``, ``live``, ``live 10%``)."""
    kept = list(records)
    if since_ms is None:
        since_ms = next((_at(r) for r in kept if r.get("outcome") in SHADOW), None)
    if since_ms is not None:
        kept = [r for r in kept if _at(r) >= since_ms]
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    sessions: dict[str, set[str]] = defaultdict(set)
    for r in kept:
        outcome, rule = r.get("outcome", ""), r.get("rule", "")
        if outcome in COLUMNS:
            counts[rule][outcome] += 1
        if outcome in (Outcome.SHADOW_FIRED, Outcome.FIRED):
            sessions[rule].add(r.get("session", ""))
    rules = [
        {
            "rule": rule,
            "mode": modes.get(rule, "not loaded"),
            **{str(o): counts[rule][o] for o in COLUMNS},
            "sessions": len(sessions[rule]),  # sessions it fired (or would have fired) in
        }
        for rule in sorted(counts)
    ]
    return {
        "from": since_ms,
        "to": _at(kept[-1]) if kept else None,
        "records": len(kept),
        "columns": [str(o) for o in COLUMNS],
        "rules": rules,
        "shadow_fired": sum(c[Outcome.SHADOW_FIRED] for c in counts.values()),
        "fired": sum(c[Outcome.FIRED] for c in counts.values()),
    }


def _at(record: Mapping[str, str]) -> int:
    return int(record.get("at") or record.get("id", "0").split("-")[0])


def modes_of(runtime: Runtime) -> dict[str, str]:
    out: dict[str, str] = {}
    for rule in runtime.engine().rules.rules.values():
        out[rule.id] = rule.mode + (f" {rule.rollout}" if rule.rollout is not None else "")
    return out


def shadow_json(ctx: ReportContext) -> Callable[[Request], Awaitable[Response]]:
    """The endpoint: ``?site=`` (the QA view's default site without it), ``?since=`` ms."""

    async def endpoint(request: Request) -> Response:
        site = ctx.site(request.query_params.get("site"))
        since = request.query_params.get("since")
        if since is not None and not since.isdigit():
            return PlainTextResponse("since: give epoch milliseconds", status_code=400)
        records = await ctx.store.read_audit(site, MAX_RECORDS)
        body = compare(records, int(since) if since else None, modes_of(ctx.runtime))
        return JSONResponse({"site": site, **body}, headers=NO_STORE)

    return endpoint
