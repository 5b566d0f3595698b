"""Forget a visitor (the QA view's "reset a test visitor"): every key the store keeps for the
visitor and the sessions named, and their pending deadlines.

What goes (keys.py): the visitor's hash (sessions, returning status, per-day and per-week caps,
cooldowns, snoozes, opt-outs, dismissals, traits, the facts rules set), its names and rate keys,
its index of sessions (each session it names is forgotten too), its verified user link when it
still names this visitor, its exposures, prompt marks and funnel progress (measurement: it
converts and enters funnels afresh); per session: the session hash (per-session caps, trigger
state, the prompt on screen), its recent events, distinct names, every tab's seen and pending
seq sets (found with SCAN ... MATCH on the session's tag: on a cluster every node is asked) and,
on a cluster, the session's visitor lookup. Pending deadlines leave the deadline set first, so
none fires for a forgotten session.

The sessions' socket records (their ``sid`` facts, sockets.py) are read before the keys go and
answered: the caller tells those tabs to start afresh (admin/qatools.py), else a tab still open
would go on sending under the forgotten session.

Not forgotten: the audit and live streams (history, capped by length), the site's day
counters (what was counted stays counted), and sessions of the
visitor the caller does not name (their keys expire with the session's time to live).
The same calls on one Redis, the embedded store and a cluster (where ``DELETE`` of keys in
several slots is split per slot by the client).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .. import fields
from .base import Cancel, Timer
from .redis import RedisStore
from .shared import guard

_GLOB = re.compile(r"([*?\[\]\\])")


def _literal(text: str) -> str:
    """``text`` as a SCAN MATCH pattern that matches only itself."""
    return _GLOB.sub(r"\\\1", text)


@dataclass(frozen=True)
class Forgotten:
    deleted: int  # keys deleted
    sockets: list[str]  # the socket addresses the forgotten sessions recorded (their tabs)


async def forget_visitor(
    store: RedisStore, site: str, visitor: str, sessions: set[str]
) -> Forgotten:
    """Delete the visitor's keys and those of ``sessions`` (theirs only: a session whose hash
    names another visitor is left alone)."""
    k, r = store.keys, store.client
    visitor_facts = await store.visitor_facts(site, visitor)
    if visitor_facts.get("session"):
        sessions = sessions | {visitor_facts["session"]}
    async with guard("read a visitor's sessions"):  # every one its index still holds
        indexed = await r.zrange(k.visitor_sessions(site, visitor), 0, -1)
    sessions = sessions | {str(s) for s in indexed}
    doomed = [
        k.visitor(site, visitor),
        k.visitor_names(site, visitor),
        k.visitor_sessions(site, visitor),
        k.visitor_rate(site, visitor),
    ]
    user = visitor_facts.get("user_id", "")
    if user and await store.visitor_of_user(site, user) == visitor:
        doomed.append(k.user(site, user))
    cancels = []
    sockets = []
    for session in sorted(sessions):
        facts = await store.session_facts(site, session, visitor)
        if facts.get("visitor", visitor) != visitor:
            continue
        if facts.get("sid"):
            sockets.append(facts["sid"])
        cancels += [
            Cancel(Timer(site, session, visitor, name.removeprefix(fields.TIMER), token))
            for name, token in facts.items()
            if name.startswith(fields.TIMER) and token
        ]
        doomed += [
            k.session(site, session, visitor),
            k.recent(site, session, visitor),
            k.names(site, session, visitor),
        ]
        if k.cluster:
            doomed.append(k.session_visitor(site, session))
        for tab_key in (k.seen, k.pending):
            pattern = tab_key(_literal(site), _literal(session), "*", _literal(visitor))
            async with guard("find a session's tab keys"):
                doomed += [str(key) async for key in r.scan_iter(match=pattern, count=1000)]
    # measurement (counters.lua): its exposures, prompt marks and funnel progress; the site's
    # day counters stay (history)
    for visitor_key in (k.exposed, k.prompt_mark, k.funnel):
        pattern = visitor_key(_literal(site), _literal(visitor), "*")
        async with guard("find a visitor's measurement keys"):
            doomed += [str(key) async for key in r.scan_iter(match=pattern, count=1000)]
    await store.apply(list(cancels))
    await store.deferred()
    async with guard("forget a visitor"):
        return Forgotten(int(await r.delete(*doomed)), sockets)
