"""Unsubscribe tokens: ``<payload>.<signature>``, base64url, HMAC-SHA256 over the payload
(the site and the address), so a link opts out exactly the address it was sent to and no
other. The key is derived from the server's ``CUEWIRE_SECRET``: links keep working across
restarts and processes only when it is set (without it each process draws its own)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets

SIGNATURE_BYTES = 16


def unsubscribe_key(secret: str | None) -> bytes:
    """The key of unsubscribe tokens, derived from the server's secret (one job per key)."""
    if secret is None:
        return secrets.token_bytes(32)
    return hmac.new(secret.encode(), b"cuewire mail unsubscribe", hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(key: bytes, payload: str) -> str:
    return _b64(hmac.new(key, payload.encode(), hashlib.sha256).digest()[:SIGNATURE_BYTES])


def make_token(key: bytes, site: str, address: str) -> str:
    payload = _b64(json.dumps([site, address], separators=(",", ":")).encode())
    return f"{payload}.{_signature(key, payload)}"


def read_token(key: bytes, token: str) -> tuple[str, str] | None:
    """The (site, address) a token was made for, or None when it is not one of ours."""
    payload, _, signature = token.partition(".")
    if not payload or not hmac.compare_digest(
        signature.encode(), _signature(key, payload).encode()
    ):
        return None
    try:
        site, address = json.loads(_unb64(payload))
    except (ValueError, TypeError, binascii.Error):
        return None
    if not isinstance(site, str) or not isinstance(address, str):
        return None
    return site, address
