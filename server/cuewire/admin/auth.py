"""HTTP Basic authentication for the admin views, from settings (never a built-in password)."""

from __future__ import annotations

import base64
import secrets

from starlette.requests import HTTPConnection
from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

REALM = 'Basic realm="Cuewire admin", charset="UTF-8"'


class AdminAuth:
    """Wrap an ASGI app so only the configured admin gets through."""

    def __init__(self, app: ASGIApp, user: str, password: str | None) -> None:
        self.app = app
        self.user = user
        self.password = password

    def allowed(self, conn: HTTPConnection) -> bool:
        if not self.password:
            return False
        header = conn.headers.get("authorization", "")
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(encoded).decode().partition(":")
        except ValueError:  # binascii.Error, UnicodeDecodeError, non-ASCII base64 text
            return False
        # bytes: compare_digest raises TypeError for str with non-ASCII characters
        return secrets.compare_digest(user.encode(), self.user.encode()) & secrets.compare_digest(
            password.encode(), self.password.encode()
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or self.allowed(HTTPConnection(scope)):
            await self.app(scope, receive, send)
            return
        response: Response
        if not self.password:
            response = PlainTextResponse(
                "The admin views are disabled: set CUEWIRE_ADMIN_PASSWORD (and optionally "
                "CUEWIRE_ADMIN_USER) to enable them.",
                status_code=503,
            )
        else:
            response = PlainTextResponse(
                "Authentication required.", status_code=401, headers={"WWW-Authenticate": REALM}
            )
        await response(scope, receive, send)
