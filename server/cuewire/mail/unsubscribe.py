"""``/email/unsubscribe?t=<token>``: the link in every email and its ``List-Unsubscribe``.

A GET shows a confirmation page with one button (mail scanners follow links: a GET never
unsubscribes); a POST unsubscribes, from that button or from the mail client's one-click
``List-Unsubscribe-Post: List-Unsubscribe=One-Click`` (RFC 8058: no cookie, no login, the
signed token alone). An unsubscribed address gets no more email from the site: the queue
refuses new ones and the sender drops those already queued (``unsubscribed`` in the audit).
"""

from __future__ import annotations

import html

from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from .mailer import UNSUBSCRIBE_PATH, Mailer
from .tokens import read_token

# The pages hold no script and load nothing; the form may post only back here.
CSP = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"
STYLE = (
    "body{font:16px/1.5 system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;"
    "color:#1d2433}button{font:inherit;padding:.5rem 1rem;border-radius:.4rem;border:0;"
    "background:#1d2433;color:#fff;cursor:pointer}"
)


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    text = (
        f"<!doctype html><html lang=en><meta charset=utf-8><title>{html.escape(title)}</title>"
        f"<meta name=viewport content='width=device-width'><style>{STYLE}</style>"
        f"<h1>{html.escape(title)}</h1>{body}</html>"
    )
    headers = {
        "Content-Security-Policy": CSP,
        "Cache-Control": "no-store",
        "Referrer-Policy": "no-referrer",
    }
    return HTMLResponse(text, status_code=status, headers=headers)


INVALID = (
    "<p>This unsubscribe link is not valid (it may be cut short: copy the whole link from "
    "the email), or it was made by another server setup.</p>"
)


def unsubscribe_routes(mailer: Mailer) -> list[Route]:
    def verified(request: Request) -> tuple[str, str, str] | None:
        """The request's token, and the site and address it was signed for."""
        token = request.query_params.get("t", "")
        found = read_token(mailer.key, token)
        return None if found is None else (token, *found)

    async def confirm(request: Request) -> HTMLResponse:
        found = verified(request)
        if found is None:
            return _page("Link not valid", INVALID, 400)
        token, _, address = found
        body = (
            f"<p>Stop emails to <strong>{html.escape(address)}</strong>?</p>"
            f"<form method=post action='{UNSUBSCRIBE_PATH}?t={html.escape(token, quote=True)}'>"
            "<button type=submit>Unsubscribe</button></form>"
        )
        return _page("Unsubscribe", body)

    async def unsubscribe(request: Request) -> HTMLResponse:
        found = verified(request)
        if found is None:
            return _page("Link not valid", INVALID, 400)
        _, site, address = found
        await mailer.send_queue.unsubscribe(site, address)
        return _page("Unsubscribed", f"<p>{html.escape(address)} gets no more emails from us.</p>")

    return [
        Route(UNSUBSCRIBE_PATH, confirm, methods=["GET"]),
        Route(UNSUBSCRIBE_PATH, unsubscribe, methods=["POST"]),
    ]
