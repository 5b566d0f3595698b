"""Explain one session (explain.py) over HTTP: for the admin, and for the QA overlay of the
snippet (``?cuewire_qa=TOKEN`` on a page of the site), docs/qa.md.

    GET /qa/api/explain         (admin) ?site=&session=[&rule=]: the whole explanation
    GET /qa/api/overlay-token   (admin) ?site=: a QA overlay token for that site
    GET /qa/overlay/explain     (token) ?site=&session=&visitor=&token=: the explanation of
                                the session the overlay's page runs, for that page's origin
    GET /cw-qa.js               the overlay bundle (static/cw-qa.js), loaded by cw.js in QA mode

An overlay token is ``<expiry ms>.<HMAC>`` over the site and the admin's subject, keyed by the
server secret (:func:`~cuewire.admin.qa_tokens.issue_token`), valid :data:`OVERLAY_TTL_MS`:
it grants one thing, the explanation of a session of its site, and only to a caller that
names both the session and its visitor (the ids the page holds in its own storage). It opens
no admin route. Refusals are JSON ``{"code", "reason"}`` (codes.QaRefusal). The overlay is
fetched cross-origin: the answer allows the request's ``Origin`` when the site allows it
(sites.py), with no credentials.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from ..codes import QaRefusal
from ..explain import explain_session
from ..sites import Sites
from .pages import NO_STORE
from .qa import admin_route
from .qa_context import QaContext
from .qa_tokens import issue_token, token_ok

OVERLAY_TTL_MS = 30 * 60_000
OVERLAY_FILE = "cw-qa.js"
STATUS = {
    QaRefusal.BAD_REQUEST: 400,
    QaRefusal.CSRF: 403,
    QaRefusal.INVALID_TOKEN: 403,
    QaRefusal.TOKEN_EXPIRED: 403,
    QaRefusal.UNKNOWN_SITE: 404,
    QaRefusal.UNKNOWN_SESSION: 404,
    QaRefusal.UNKNOWN_RULE: 404,
    QaRefusal.NO_TAB: 409,
}


def refusal(code: QaRefusal, reason: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """A QA tool's refusal: its code (what code branches on) and a sentence for people."""
    return JSONResponse(
        {"code": code.value, "reason": reason},
        status_code=STATUS[code],
        headers={**NO_STORE, **(headers or {})},
    )


def overlay_subject(ctx: QaContext, site: str) -> str:
    """What an overlay token is for: one site, for the current admin (a new password revokes
    it), never usable as the admin token itself."""
    return f"qa-overlay\0{site}\0{ctx.subject}"


def overlay_check(ctx: QaContext, token: object, site: str) -> QaRefusal | None:
    """None when ``token`` is a live overlay token of ``site``; else why not."""
    subject = overlay_subject(ctx, site)
    if token_ok(token, ctx.token_key, subject, ctx.clock.now_ms()):
        return None
    if token_ok(token, ctx.token_key, subject, 0):  # signed right, but past its expiry
        return QaRefusal.TOKEN_EXPIRED
    return QaRefusal.INVALID_TOKEN


def explain_routes(
    ctx: QaContext, sites: Sites, admin: Callable[[ASGIApp], ASGIApp]
) -> list[Route]:
    """The routes above; the admin's wrapped in ``admin``."""
    overlay_js = resources.files("cuewire").joinpath("static", OVERLAY_FILE).read_bytes()

    async def explain_api(request: Request) -> Response:
        q = request.query_params
        site, session, rule = q.get("site", ""), q.get("session", ""), q.get("rule") or None
        if site not in ctx.sites:
            return refusal(QaRefusal.UNKNOWN_SITE, f"no site {site!r} on this server")
        if not session:
            return refusal(QaRefusal.BAD_REQUEST, "pass ?session=ID")
        engine = ctx.runtime.engine()
        if rule is not None and rule not in engine.rules.rules:
            return refusal(QaRefusal.UNKNOWN_RULE, f"no loaded rule {rule!r}")
        now = ctx.clock.now_ms()
        body = await explain_session(ctx.store, engine, site, session, now, rule)
        if body is None:
            return refusal(QaRefusal.UNKNOWN_SESSION, f"no live session {session!r} on {site}")
        return JSONResponse(body, headers=NO_STORE)

    async def overlay_token(request: Request) -> Response:
        site = request.query_params.get("site", "")
        if site not in ctx.sites:
            return refusal(QaRefusal.UNKNOWN_SITE, f"no site {site!r} on this server")
        now = ctx.clock.now_ms()
        token = issue_token(ctx.token_key, overlay_subject(ctx, site), now, OVERLAY_TTL_MS)
        return JSONResponse(
            {
                "site": site,
                "token": token,
                "expires_ms": now + OVERLAY_TTL_MS,
                "param": "cuewire_qa",
            },
            headers=NO_STORE,
        )

    async def overlay_explain(request: Request) -> Response:
        q = request.query_params
        site = q.get("site", "")
        found = sites.get(site)
        origin = request.headers.get("origin")
        cors = (
            {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}
            if found is not None and origin and found.allows(origin)
            else {"Vary": "Origin"}
        )
        if found is None:
            return refusal(QaRefusal.UNKNOWN_SITE, f"no site {site!r} on this server", cors)
        problem = overlay_check(ctx, q.get("token"), site)
        if problem is QaRefusal.TOKEN_EXPIRED:
            return refusal(problem, "this QA link has expired: open a new one from /qa", cors)
        if problem is not None:
            return refusal(problem, "this QA link is not valid for this site", cors)
        session, visitor = q.get("session", ""), q.get("visitor", "")
        if not session or not visitor:
            return refusal(QaRefusal.BAD_REQUEST, "pass ?session= and ?visitor=", cors)
        now = ctx.clock.now_ms()
        body = await explain_session(ctx.store, ctx.runtime.engine(), site, session, now)
        if body is None or body["visitor"] != visitor:
            return refusal(
                QaRefusal.UNKNOWN_SESSION,
                "no live session of this visitor (after a reset, reload the page)",
                cors,
            )
        return JSONResponse(body, headers={**NO_STORE, **cors})

    async def overlay_bundle(request: Request) -> Response:
        return Response(
            overlay_js,
            media_type="application/javascript; charset=utf-8",
            headers={"Cache-Control": "public, max-age=300", "X-Content-Type-Options": "nosniff"},
        )

    return [
        admin_route(admin, "/qa/api/explain", explain_api),
        admin_route(admin, "/qa/api/overlay-token", overlay_token),
        Route("/qa/overlay/explain", overlay_explain),
        Route("/" + OVERLAY_FILE, overlay_bundle),
    ]
