"""Random, URL-safe identifiers."""

from __future__ import annotations

import secrets


def new_id(prefix: str = "", nbytes: int = 12) -> str:
    return prefix + secrets.token_urlsafe(nbytes)
