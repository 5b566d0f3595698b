"""What the QA view reads from the app's services (:class:`QaContext`, handed to the QA
pages' modules), and one session as the view shows it (:func:`snapshot`: the live feed's
``snapshot`` and ``/qa/api/session``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..clock import Clock
from ..explain import explained, read_state
from ..runtime import Runtime
from ..store import RedisStore
from ..supervise import Supervisor
from .auth import AdminAuth
from .pages import pick_site
from .qa_tokens import admin_subject


@dataclass
class QaContext:
    """What the QA view reads from the app's services."""

    store: RedisStore
    runtime: Runtime
    clock: Clock
    sites: list[str]
    auth: AdminAuth
    token_key: bytes
    supervisor: Supervisor

    @property
    def subject(self) -> str:
        return admin_subject(self.auth.user, self.auth.password or "")

    def site(self, wanted: object) -> str:
        return pick_site(self.sites, wanted)


async def snapshot(ctx: QaContext, site: str, session: str) -> dict[str, Any]:
    """One session as the view shows it: facts, timers, rule states and their explanation
    (explain.py, whose reads give the facts and the session's audit records too), events."""
    now = ctx.clock.now_ms()
    store = ctx.store
    state = await read_state(store, site, session)
    body = explained(ctx.runtime.engine(), state, site, session, now) if state else None
    states = [
        {
            "rule": r["rule"],
            "state": r["state"],
            "detail": r["detail"],
            "due_ms": r["trigger"]["due_ms"],
        }
        for r in (body["rules"] if body else [])
    ]
    recent = await store.recent_events(site, session, 50)
    return {
        "site": site,
        "session": session,
        "now": now,
        "exists": state is not None,
        "facts": state.session if state else {},
        "visitor": state.visitor if state else {},
        "rules": states,
        "explain": body,
        "timers": [
            {"rule": s["rule"], "due_ms": s["due_ms"], "detail": s["detail"]}
            for s in states
            if s["state"] == "pending"
        ],
        "events": list(reversed(recent)),
        "audit": state.audit if state else [],
    }
