"""Who may open the QA view's socket and use its token-checked APIs: short-lived admin tokens,
and the handshake's same-origin check.

Tokens are ``<expiry ms>.<HMAC>`` keyed by the server secret (settings ``secret``,
CUEWIRE_SECRET), never by the admin password. Without a secret each process draws a random key
when the app is created: tokens then die with the process and are not accepted by another one.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any
from urllib.parse import urlsplit

from ..errors import ConfigError

TOKEN_TTL_MS = 10 * 60_000
MIN_SECRET = 16  # characters of CUEWIRE_SECRET


def token_key(secret: str | None) -> bytes:
    """The key admin tokens are signed with: derived from the server secret, or random for
    this process when there is none (tokens then do not survive a restart or reach another
    process)."""
    if secret is None:
        return secrets.token_bytes(32)
    if len(secret) < MIN_SECRET:
        raise ConfigError(
            f"CUEWIRE_SECRET is too short: use at least {MIN_SECRET} random characters "
            "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')"
        )
    return hmac.new(secret.encode(), b"cuewire-admin-token", hashlib.sha256).digest()


def admin_subject(user: str, password: str) -> str:
    """Whom a token is for: the admin user and a digest of the password, so a new password
    (or user) revokes every token. The token is keyed by the secret, so it reveals nothing
    that could be checked against guessed passwords."""
    return f"{user}\0{hashlib.sha256(password.encode()).hexdigest()}"


def _mac(key: bytes, subject: str, expiry: str) -> str:
    return hmac.new(key, f"{subject}\0{expiry}".encode(), hashlib.sha256).hexdigest()


def issue_token(key: bytes, subject: str, now_ms: int, ttl_ms: int = TOKEN_TTL_MS) -> str:
    """``<expiry ms>.<HMAC>`` for ``subject`` (:func:`admin_subject`), keyed by
    :func:`token_key`: every server process with the same secret accepts it; changing the
    secret, the admin user or the password revokes every token."""
    expiry = str(now_ms + ttl_ms)
    return f"{expiry}.{_mac(key, subject, expiry)}"


def token_ok(token: object, key: bytes, subject: str, now_ms: int) -> bool:
    if not isinstance(token, str):
        return False
    expiry, _, mac = token.partition(".")
    if not expiry.isdigit() or int(expiry) < now_ms:
        return False
    return hmac.compare_digest(mac, _mac(key, subject, expiry))


def same_origin(environ: dict[str, Any]) -> bool:
    """True when the handshake's ``Origin`` names the host it was sent to (``Host``): the page
    that opens the socket was served by this server. A missing Origin is refused (browsers
    always send it on WebSocket handshakes)."""
    origin, host = environ.get("HTTP_ORIGIN"), environ.get("HTTP_HOST")
    if not isinstance(origin, str) or not isinstance(host, str) or not origin or not host:
        return False
    try:
        page = urlsplit(origin)
        server = urlsplit("//" + host)
        if page.scheme not in ("http", "https") or not page.hostname or not server.hostname:
            return False
        default = 443 if page.scheme == "https" else 80
        return (page.hostname, page.port or default) == (server.hostname, server.port or default)
    except ValueError:  # a port that is not a number
        return False
