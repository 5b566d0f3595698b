"""Identity verification: which ``identify`` events may link a user id to a visitor.

A browser can claim any user id. As Intercom and Crisp do, the site's backend signs the user id
with the site's ``identity_secret`` (sites file) and the page passes the signature along::

    signature = hex(HMAC-SHA256(identity_secret, user_id))
    cuewire.identify(userId, traits, {signature})

An identify with a valid signature is *verified*: it links the user id to the visitor, and
backend events by ``user_id`` (backend.py) go to that visitor. An unsigned identify is accepted
only where the site allows it (``allow_unsigned_identify``); it is *unverified*: it sets the
visitor's ``user_id`` and traits with ``user_verified`` 0 and links nothing, so it can never
take over a verified link. Anything else is rejected with ``identity_unverified``.

The signature itself is a credential for that user id: it is dropped here, never stored.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from .errors import IdentityUnverified
from .sites import Site

VERIFIED = "verified"  # set on every accepted identify event by the server, never by a client


def sign(secret: str, user_id: str) -> str:
    """The signature of ``user_id`` the site's backend renders into the page (lowercase hex)."""
    return hmac.new(secret.encode(), user_id.encode(), hashlib.sha256).hexdigest()


def verify(site: Site, event: dict[str, Any]) -> dict[str, Any]:
    """An identify event from a browser, checked against ``site``: returned without its
    signature and with ``verified`` set; raises :class:`IdentityUnverified` when refused."""
    signature = event.get("signature")
    checked = {k: v for k, v in event.items() if k != "signature"}
    secret = site.identity_secret
    if signature and secret:
        # bytes: compare_digest refuses str with non-ASCII characters (a browser may send any)
        given = str(signature).lower().encode()
        if not hmac.compare_digest(given, sign(secret, event["user_id"]).encode()):
            raise IdentityUnverified(
                "identify: the signature does not match the user id (sign the user id with "
                "HMAC-SHA256 and the site's identity_secret, as lowercase hex)"
            )
        checked[VERIFIED] = True
        return checked
    if not site.unsigned_identify_allowed:
        raise IdentityUnverified(
            "identify: this site requires a signature (cuewire.identify(userId, traits, "
            "{signature}) with HMAC-SHA256 of the user id and the site's identity_secret)"
        )
    checked[VERIFIED] = False
    return checked


def trusted(event: dict[str, Any]) -> dict[str, Any]:
    """An identify event from the site's backend (authenticated by its API key): verified."""
    checked = {k: v for k, v in event.items() if k != "signature"}
    checked[VERIFIED] = True
    return checked


def is_verified(event: dict[str, Any]) -> bool:
    return event.get(VERIFIED) is True
