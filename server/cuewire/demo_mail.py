"""The demo's mailbox: a local SMTP sink (aiosmtpd, on the app's own event loop, loopback
only) that ``cuewire demo`` sends its emails to, and ``/qa/mail``, the page that lists what
arrived (behind the admin login, like the QA view).

An email's HTML part is shown in an ``<iframe sandbox srcdoc>``: no script runs in it, it
cannot navigate the page, and the page's Content-Security-Policy (inherited by ``srcdoc``)
loads nothing from anywhere. Every header is escaped.
"""

from __future__ import annotations

import asyncio
import html
from collections import deque
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session
from starlette.requests import Request
from starlette.responses import HTMLResponse

from .lifecycle import Closing

KEPT = 50
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-src 'self'"


@dataclass(frozen=True)
class Received:
    sender: str
    recipients: list[str]
    message: EmailMessage

    def part(self, subtype: str) -> str:
        body = self.message.get_body(preferencelist=(subtype,))
        return str(body.get_content()) if body is not None else ""


class MailSink(Closing):
    """An SMTP server on 127.0.0.1 (by default a free port) keeping the last :data:`KEPT`
    messages."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self.messages: deque[Received] = deque(maxlen=KEPT)
        self._server: asyncio.Server | None = None

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        message = message_from_bytes(raw, policy=policy.default)
        recipients = [str(r) for r in envelope.rcpt_tos]
        self.messages.append(Received(str(envelope.mail_from), recipients, message))
        return "250 Message accepted for delivery"

    async def __aenter__(self) -> MailSink:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: SMTP(self, hostname="cuewire-demo"), self.host, self.port
        )
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def page(self, request: Request) -> HTMLResponse:
        items = "".join(_item(m) for m in reversed(self.messages)) or (
            "<p>No email yet. In the shop: add something to the cart, enter an email at "
            "checkout and leave without ordering; the reminder arrives here.</p>"
        )
        text = (
            "<!doctype html><html lang=en><meta charset=utf-8><title>Demo mailbox</title>"
            f"<style>{STYLE}</style><h1>Demo mailbox</h1>"
            f"<p>Emails the demo sent, newest first (SMTP sink on 127.0.0.1:{self.port}; the "
            f"last {KEPT} are kept). Reload to see new ones.</p>{items}</html>"
        )
        return HTMLResponse(
            text, headers={"Content-Security-Policy": CSP, "Cache-Control": "no-store"}
        )


STYLE = (
    "body{font:15px/1.5 system-ui,sans-serif;margin:2rem;color:#1d2433}"
    "article{border:1px solid #ccd;border-radius:8px;padding:1rem;margin:1rem 0}"
    "dl{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem;margin:0}"
    "dt{font-weight:600}iframe{width:100%;height:420px;border:1px solid #ccd;background:#fff}"
    "pre{white-space:pre-wrap;background:#f4f5f8;padding:.5rem}"
)


def _item(received: Received) -> str:
    m = received.message
    headers: list[tuple[str, Any]] = [
        ("From", m["From"]),
        ("To", m["To"]),
        ("Subject", m["Subject"]),
        ("Date", m["Date"]),
        ("Message-ID", m["Message-ID"]),
        ("List-Unsubscribe", m["List-Unsubscribe"]),
        ("List-Unsubscribe-Post", m["List-Unsubscribe-Post"]),
    ]
    rows = "".join(
        f"<dt>{html.escape(k)}</dt><dd>{html.escape(str(v or ''))}</dd>" for k, v in headers
    )
    srcdoc = html.escape(received.part("html"), quote=True)
    return (
        f"<article class=mail><dl>{rows}</dl>"
        f"<h2>HTML part</h2><iframe sandbox title='HTML part' srcdoc=\"{srcdoc}\"></iframe>"
        f"<h2>Text part</h2><pre>{html.escape(received.part('plain'))}</pre></article>"
    )
