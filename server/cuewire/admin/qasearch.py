"""The QA search (docs/qa.md, "Find sessions"): the sessions of a site whose visitor, user id,
URLs, firings or id match a query, and how far back the answer reaches.

Three sources, each saying what it covered (``covered`` in the answer):

- ``index``: exact lookups that do not depend on the streams. A session id is looked up in
  the store (its hash, while its keys live); a visitor's sessions are in its index
  (``keys.visitor_sessions``, kept as long as the sessions' keys); a user id goes through
  its verified link (``visitor_of_user``) to its visitor. They reach back one session
  lifetime (``session_ttl_s`` and the keys' grace period).
- ``streams``: the latest :data:`SCAN` entries of the site's live stream (accepted batches:
  session, visitor, events with their URLs) and audit stream (firings: rule, session,
  visitor, URL). The only source of URL and rule searches without the export, and of
  sessions whose keys are gone; ``since_ms`` is the time of the oldest entry read.
- ``export``: with ``CUEWIRE_EXPORT_DSN``, the export's PostgreSQL tables
  (export/history.py), every kind of search, back to the oldest exported row, with a LIMIT.
  When PostgreSQL fails the answer says so (code ``export_unavailable``) and holds what the
  other sources found.

The sessions found are merged by id (first and last activity, up to ten URLs and rules each),
latest activity first, :data:`RESULTS` at most, each looked up in the store (live, tab).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from ..codes import SearchGap
from ..errors import HistoryError
from ..export.history import ExportHistory
from ..store.sessions import SESSION_GRACE_S
from .qa_context import QaContext

SCAN = 10_000  # entries of each stream searched
RESULTS = 50  # sessions answered, latest activity first
SEARCH_BY = ("visitor", "user", "url", "rule", "session")
VISITORS = 10  # visitors of one user id followed
KEPT = 10  # URLs and rules kept per session


@dataclass
class Source:
    """What one source covered: ``since_ms``, the oldest time it reaches (None: it holds
    nothing); ``entries``, the stream entries read; ``code``, why it was not read."""

    source: str
    since_ms: int | None = None
    entries: int | None = None
    code: str = ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"source": self.source, "since_ms": self.since_ms}
        if self.entries is not None:
            out["entries"] = self.entries
        if self.code:
            out["code"] = self.code
        return out


@dataclass
class Search:
    """The sessions found so far and the sources read."""

    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    sources: list[Source] = field(default_factory=list)

    def hit(
        self,
        session: str,
        visitor: str,
        first: int,
        last: int,
        urls: list[str] | tuple[str, ...] = (),
        rules: list[str] | tuple[str, ...] = (),
    ) -> None:
        s = self.sessions.setdefault(
            session,
            {
                "session": session,
                "visitor": visitor,
                "first_at": first,
                "last_at": last,
                "urls": [],
                "rules": [],
            },
        )
        s["first_at"], s["last_at"] = min(s["first_at"], first), max(s["last_at"], last)
        for key, values in (("urls", urls), ("rules", rules)):
            kept = s[key]
            for value in values:
                if value and value not in kept and len(kept) < KEPT:
                    kept.append(value)

    def covered(self) -> dict[str, Any]:
        """``source``: the deepest source read (export, else index, else streams);
        ``since_ms``: the oldest time any source read reaches; ``entries``: the stream
        entries read; ``sources``: each one's own."""
        read = [s for s in self.sources if not s.code]
        order = ("export", "index", "streams")
        deepest = min((s.source for s in read), key=order.index, default="streams")
        times = [s.since_ms for s in read if s.since_ms is not None]
        return {
            "source": deepest,
            "since_ms": min(times) if times else None,
            "entries": sum(s.entries or 0 for s in self.sources),
            "sources": [s.to_json() for s in self.sources],
        }


async def search(
    ctx: QaContext, site: str, by: str, query: str, history: ExportHistory | None = None
) -> dict[str, Any]:
    """``{"sessions": [...], "covered": {...}}`` for ``query`` on ``site`` (module doc)."""
    store = ctx.store
    now = ctx.clock.now_ms()
    found = Search()
    live, audit = await asyncio.gather(store.read_live(site, SCAN), store.read_audit(site, SCAN))
    visitors = {query} if by == "visitor" else set()
    linked = await store.visitor_of_user(site, query) if by == "user" else None
    if by == "user":
        visitors = {linked} if linked else set()
        for entry in live:
            events = json.loads(entry.get("events") or "[]")
            if any(e.get("type") == "identify" and e.get("user_id") == query for e in events):
                visitors.add(entry.get("visitor", ""))
    if history is not None:
        await _from_export(found, history, site, by, query, visitors)
    if by in ("visitor", "user", "session"):
        # the verified link first, then the visitors identifies named
        ordered = ([linked] if linked else []) + sorted(visitors - {linked or ""})
        await _from_index(found, ctx, site, by, query, ordered[:VISITORS], now)
    _from_streams(found, live, audit, by, query, visitors)
    latest = sorted(found.sessions.values(), key=lambda s: -s["last_at"])[:RESULTS]
    facts = await asyncio.gather(*(store.session_facts(site, s["session"]) for s in latest))
    for s, f in zip(latest, facts, strict=True):
        s["live"] = bool(f)
        s["tab"] = bool(f.get("sid"))
    return {"sessions": latest, "covered": found.covered()}


async def _from_export(
    found: Search, history: ExportHistory, site: str, by: str, query: str, visitors: set[str]
) -> None:
    """The export's sessions; for a user id, the visitors its identifies named join
    ``visitors``."""
    try:
        if by == "user":
            visitors |= set(await history.visitors_of_user(site, query, VISITORS))
        wanted: str | list[str] = sorted(visitors) if by in ("visitor", "user") else query
        rows = await history.sessions(site, "visitor" if by == "user" else by, wanted, RESULTS)
        since = await history.since_ms(site)
    except HistoryError:
        found.sources.append(Source("export", code=SearchGap.EXPORT_UNAVAILABLE))
        return
    for r in rows:
        found.hit(r.session, r.visitor, r.first_at, r.last_at, r.urls, r.rules)
    found.sources.append(Source("export", since))


async def _from_index(
    found: Search, ctx: QaContext, site: str, by: str, query: str, visitors: list[str], now: int
) -> None:
    """Exact lookups in the store: the session ``query``, or the indexed sessions of
    ``visitors``."""
    store = ctx.store
    reach = now - (ctx.store.settings.session_ttl_s + SESSION_GRACE_S) * 1000
    owned: list[tuple[str, str, int]] = []  # session, visitor, when last refreshed
    if by == "session":
        owned.append((query, "", 0))
    else:
        indexes = await asyncio.gather(*(store.visitor_sessions(site, v, now) for v in visitors))
        for visitor, sessions in zip(visitors, indexes, strict=True):
            owned += [(session, visitor, at) for session, at in list(sessions.items())[:RESULTS]]
    facts = await asyncio.gather(*(store.session_facts(site, s, v or None) for s, v, _ in owned))
    recent = await asyncio.gather(
        *(
            store.recent_events(site, s, 20, v or None)
            for (s, v, _), f in zip(owned, facts, strict=True)
            if f
        )
    )
    urls = iter(recent)
    for (session, visitor, at), f in zip(owned, facts, strict=True):
        if not f:
            continue
        pages = [str(e.get("url", "")) for e in next(urls)]
        started = int(f.get("started") or at or now)
        last = int(f.get("last") or at or started)
        found.hit(session, f.get("visitor", visitor), started, last, pages)
    found.sources.append(Source("index", reach))


def _from_streams(
    found: Search,
    live: list[dict[str, str]],
    audit: list[dict[str, str]],
    by: str,
    query: str,
    visitors: set[str],
) -> None:
    """The matches among the latest entries of the live and audit streams."""
    oldest: list[int] = []
    for entry in live:
        session, visitor = entry.get("session", ""), entry.get("visitor", "")
        at = int(entry.get("at") or entry["id"].split("-")[0])
        urls = [e.get("url", "") for e in json.loads(entry.get("events") or "[]")]
        if (
            (by in ("visitor", "user") and visitor in visitors)
            or (by == "session" and session == query)
            or (by == "url" and any(query in u for u in urls))
        ):
            found.hit(session, visitor, at, at, urls)
    for r in audit:
        session, visitor, at = r.get("session", ""), r.get("visitor", ""), int(r.get("at") or 0)
        if (
            (by in ("visitor", "user") and visitor in visitors)
            or (by == "session" and session == query)
            or (by == "url" and query in r.get("url", ""))
            or (by == "rule" and r.get("rule") == query)
        ):
            found.hit(session, visitor, at, at, [r.get("url", "")], [r.get("rule", "")])
    for entries in (live, audit):
        if entries:
            first = entries[0]
            oldest.append(int(first.get("at") or first["id"].split("-")[0]))
    since = min(oldest) if oldest else None
    found.sources.append(Source("streams", since, len(live) + len(audit)))
