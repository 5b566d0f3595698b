"""QA tools for the admin (docs/qa.md, "QA tools"): find sessions, reset a test visitor,
force a rule to fire.

    GET  /qa/api/search   ?site=&by=visitor|user|url|rule|session&q=: the sessions found,
                          and what the search covered
    POST /qa/api/reset    {"site", "visitor"}: forget the visitor (store/forget.py), and
                          tell its open tabs to start afresh (a ``reset`` push)
    POST /qa/api/force    {"site", "session", "rule"}: fire the rule in the session now

Search (qasearch.py) looks a session, visitor or user id up exactly in the store (the
visitor's index of sessions), scans the latest entries of the live and audit streams, and
with the export configured queries PostgreSQL for the full history; its answer says how far
back each source reached (``covered``).

After a reset, each socket the visitor's sessions recorded gets a ``reset`` push (protocol.Reset,
code ``visitor_reset``), on this process or through its holder's inbox (inbox.py): the snippet
drops its session id and its unsent events, reconnects and opens a fresh session of the same
visitor id, which the store now knows as new. The answer's ``tabs`` counts the sockets the
push was handed to (not acked: a tab that closed meanwhile just does not reconnect).

A forced rule goes through delivery like a firing (firing_plan.FORCED): its template renders
and is pushed to the session's tab, which must ack it, and the audit says ``forced``; it
skips the trigger and ``when``, the caps, cooldown, snooze, dismissal pause and the site's
prompt cap, and replaces the prompt on screen, but an opt-out holds it (``suppressed``,
code ``opted_out``: reset the visitor first). It counts toward the caps like any firing.

Every route is behind the admin's Basic auth. The POSTs also want the header
``X-Cuewire-Token`` with a token from ``/qa/api/token`` (a page of another site cannot read
one, nor send the header without a CORS preflight this server never grants), and an
``Origin``, when there is one, naming this server: else ``403 {"code": "csrf"}``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from ..codes import QaRefusal, Restart
from ..delivery import Delivery
from ..export.history import ExportHistory
from ..firing_plan import FORCED
from ..origin import Origin
from ..protocol import Push, Reset
from ..rules.engine import Candidate
from ..store.forget import forget_visitor
from .explain_view import refusal
from .pages import NO_STORE
from .qa import admin_route
from .qa_context import QaContext
from .qa_tokens import same_origin, token_ok
from .qasearch import SEARCH_BY, search

TOKEN_HEADER = "x-cuewire-token"
# push(address, what, confirm): sockets.LocalSockets.emit or inbox.Inbox.emit
PushTo = Callable[[str, Push, bool], Awaitable[bool]]


def csrf_ok(ctx: QaContext, request: Request) -> bool:
    """The POST carries the page's admin token and, when the browser names its origin, comes
    from a page of this server."""
    token = request.headers.get(TOKEN_HEADER)
    if not token_ok(token, ctx.token_key, ctx.subject, ctx.clock.now_ms()):
        return False
    origin = request.headers.get("origin")
    return origin is None or same_origin(
        {"HTTP_ORIGIN": origin, "HTTP_HOST": request.headers.get("host")}
    )


def qatools_routes(
    ctx: QaContext,
    delivery: Delivery,
    push: PushTo,
    admin: Callable[[ASGIApp], ASGIApp],
    history: ExportHistory | None = None,
) -> list[Route]:
    """The routes above, each wrapped in ``admin``; ``push`` reaches a tab's socket;
    ``history``, when the export is configured, lets the search read PostgreSQL."""

    async def search_api(request: Request) -> Response:
        q = request.query_params
        site, by, query = q.get("site", ""), q.get("by", ""), q.get("q", "").strip()
        if site not in ctx.sites:
            return refusal(QaRefusal.UNKNOWN_SITE, f"no site {site!r} on this server")
        if by not in SEARCH_BY or not query:
            return refusal(
                QaRefusal.BAD_REQUEST, f"pass ?q= and ?by= one of: {', '.join(SEARCH_BY)}"
            )
        found = await search(ctx, site, by, query, history)
        return JSONResponse({"site": site, "by": by, "q": query, **found}, headers=NO_STORE)

    async def body_of(request: Request, *names: str) -> dict[str, str] | Response:
        """The POST's JSON fields ``names`` (strings), or the refusal to answer."""
        if not csrf_ok(ctx, request):
            return refusal(
                QaRefusal.CSRF,
                "send this from the QA page: the X-Cuewire-Token header is missing or stale, "
                "or the request came from another origin",
            )
        try:
            data = json.loads(await request.body() or b"{}")
        except ValueError:
            data = None
        if not isinstance(data, dict):
            return refusal(QaRefusal.BAD_REQUEST, "send a JSON object")
        for name in names:
            if not isinstance(data.get(name), str) or not data[name]:
                return refusal(QaRefusal.BAD_REQUEST, f"{name!r} is missing (a string)")
        if data["site"] not in ctx.sites:
            return refusal(QaRefusal.UNKNOWN_SITE, f"no site {data['site']!r} on this server")
        return {name: str(data[name]) for name in names}

    async def reset_api(request: Request) -> Response:
        body = await body_of(request, "site", "visitor")
        if isinstance(body, Response):
            return body
        site, visitor = body["site"], body["visitor"]
        found = await search(ctx, site, "visitor", visitor)  # the store and the streams
        sessions = {s["session"] for s in found["sessions"]}
        forgotten = await forget_visitor(ctx.store, site, visitor, sessions)
        # after the keys are gone, so that the fresh sessions the tabs open are not deleted
        reset = Reset(Restart.VISITOR_RESET)
        told = await asyncio.gather(*(push(a, reset, False) for a in forgotten.sockets))
        return JSONResponse(
            {
                "site": site,
                "visitor": visitor,
                "sessions": sorted(sessions),
                "deleted": forgotten.deleted,
                "tabs": sum(told),
            },
            headers=NO_STORE,
        )

    async def force_api(request: Request) -> Response:
        body = await body_of(request, "site", "session", "rule")
        if isinstance(body, Response):
            return body
        site, session = body["site"], body["session"]
        engine = ctx.runtime.engine()
        rule = engine.rules.rules.get(body["rule"])
        if rule is None:
            return refusal(QaRefusal.UNKNOWN_RULE, f"no loaded rule {body['rule']!r}")
        facts = await ctx.store.session_facts(site, session)
        if not facts:
            return refusal(QaRefusal.UNKNOWN_SESSION, f"no live session {session!r} on {site}")
        visitor, sid = facts.get("visitor", ""), facts.get("sid", "")
        if rule.show is not None and not sid:
            return refusal(QaRefusal.NO_TAB, "no tab of this session is connected to show it")
        now = ctx.clock.now_ms()
        view = engine.view(facts, await ctx.store.visitor_facts(site, visitor), now)
        origin = Origin(site, visitor, session, "", sid)
        delivered = await delivery.fire(origin, Candidate(rule, view, FORCED, now))
        if not delivered:
            return refusal(QaRefusal.NO_TAB, "the session's tab did not take the prompt in time")
        audit = await ctx.store.read_audit(site, 50)
        record = next(
            (
                r
                for r in reversed(audit)
                if r.get("session") == session and r.get("rule") == rule.id
            ),
            {},
        )
        return JSONResponse(
            {
                "site": site,
                "session": session,
                "rule": rule.id,
                "outcome": record.get("outcome", ""),
                "code": record.get("code", ""),
                "prompt": record.get("prompt", ""),
            },
            headers=NO_STORE,
        )

    return [
        admin_route(admin, "/qa/api/search", search_api, ["GET"]),
        admin_route(admin, "/qa/api/reset", reset_api, ["POST"]),
        admin_route(admin, "/qa/api/force", force_api, ["POST"]),
    ]
