"""Outbound webhooks: a firing's JSON POSTed from the durable outbox (outbox.py, channel
``webhooks``), signed the Standard Webhooks way, retried with backoff, dead-lettered when the
receiver refuses it.

A granted firing of a rule with a ``webhook`` action becomes an outbox job (:func:`job`) in
the same store call that appends its audit record (store/lua/record.lua; on a Redis Cluster,
just before it: see docs/integrations.md). The outbox's loop (app.py, supervised as
``outbox:webhooks``) hands each job to :meth:`Webhooks.handle`, which POSTs it:

- headers ``webhook-id`` (the job's id, ``msg_<prompt id>``: the same on every attempt, so a
  receiver de-duplicates on it), ``webhook-timestamp`` (epoch seconds of this attempt) and
  ``webhook-signature`` (``v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">`` with the
  site's ``webhook_secret``; a ``whsec_<base64>`` secret is decoded first, as Standard
  Webhooks libraries do), plus the rule's own headers;
- a 2xx answer is done; a timeout, a failed connection or a 5xx is retried (the outbox's
  backoff), a 429 after its ``Retry-After``; any other answer is dead-lettered with a code
  (codes.Undelivered) and its status, visible and retryable in ``/qa``.

Receivers check a delivery with :func:`verify` (docs/integrations.md shows it standalone). The
HTTP client is passed in (the app opens one ``httpx.AsyncClient`` and closes it after the
outbox's loop).
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from .codes import Undelivered
from .errors import CuewireError
from .outbox import Dead, Done, Job, Retry, Verdict

log = logging.getLogger(__name__)

CHANNEL = "webhooks"
TIMEOUT_S = 5.0
TOLERANCE_S = 5 * 60  # the replay window: a receiver refuses a timestamp further off than this
SECRET_PREFIX = "whsec_"


class WebhookUnverified(CuewireError):
    """A delivery whose signature or timestamp does not check out: drop it."""


def secret_bytes(secret: str) -> bytes:
    """The HMAC key of a site's ``webhook_secret``: a ``whsec_`` secret is base64, decoded;
    any other string is used as its UTF-8 bytes. Raises ValueError for bad base64."""
    if secret.startswith(SECRET_PREFIX):
        try:
            return base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
        except binascii.Error as exc:
            raise ValueError(f"a {SECRET_PREFIX} secret must be base64 after the prefix") from exc
    return secret.encode()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header's value: ``v1,<base64 HMAC-SHA256>``."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_bytes(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance_s: int = TOLERANCE_S,
    now_s: float | None = None,
) -> dict[str, Any]:
    """The payload of a delivery whose signature is valid and whose timestamp is within
    ``tolerance_s`` of now; raises :class:`WebhookUnverified` otherwise. ``headers``: the
    request's, names in lower case. De-duplicate on ``headers["webhook-id"]`` after this."""
    try:
        msg_id = headers["webhook-id"]
        timestamp = int(headers["webhook-timestamp"])
        signatures = headers["webhook-signature"].split()
    except (KeyError, ValueError) as exc:
        raise WebhookUnverified(f"missing or malformed webhook header: {exc}") from exc
    now = time.time() if now_s is None else now_s
    if abs(now - timestamp) > tolerance_s:
        raise WebhookUnverified(
            f"timestamp {timestamp} is more than {tolerance_s} s from now: a replay or a "
            "clock off; check the sender's and the receiver's clocks"
        )
    expected = sign(secret, msg_id, timestamp, body)
    if not any(hmac.compare_digest(expected, given) for given in signatures):
        raise WebhookUnverified("no valid v1 signature: check the site's webhook_secret")
    payload: dict[str, Any] = json.loads(body)
    return payload


def job(url: str, headers: Mapping[str, str], site: str, payload: dict[str, Any]) -> dict[str, Any]:
    """The outbox job's data for one delivery (the secret is looked up when it is sent)."""
    return {"url": url, "headers": dict(headers), "site": site, "payload": payload}


def job_id(prompt_id: str) -> str:
    """The ``webhook-id`` of a firing: one per firing, whichever process sends it."""
    return f"msg_{prompt_id}"


def retry_after_s(value: str | None, now_s: float) -> float | None:
    """A ``Retry-After`` header (seconds or an HTTP date) in seconds from now, or None."""
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now_s)


def new_client(timeout_s: float = TIMEOUT_S) -> httpx.AsyncClient:
    """The client the app gives ``Webhooks`` (and closes after the outbox's loop)."""
    return httpx.AsyncClient(timeout=timeout_s)


class Webhooks:
    """Sends the ``webhooks`` outbox's jobs (:meth:`handle` is its handler). ``secret``
    gives a site's ``webhook_secret`` (None: deliveries are not signed)."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        secret: Callable[[str], str | None] = lambda _site: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._secret = secret
        self._clock = clock

    @property
    def client(self) -> httpx.AsyncClient:
        return self._client

    def request(self, job: Job) -> tuple[bytes, dict[str, str]]:
        """The body and headers of one attempt at ``job``."""
        data = job.data
        body = json.dumps(data["payload"], separators=(",", ":"), sort_keys=True).encode()
        timestamp = int(self._clock())
        headers = {
            **data.get("headers", {}),
            "Content-Type": "application/json",
            "webhook-id": job.id,
            "webhook-timestamp": str(timestamp),
        }
        secret = self._secret(str(data.get("site", "")))
        if secret:
            headers["webhook-signature"] = sign(secret, job.id, timestamp, body)
        return body, headers

    async def handle(self, job: Job) -> Verdict:
        """POST ``job`` once; what the outbox should do next."""
        url = str(job.data["url"])
        body, headers = self.request(job)
        try:
            response = await self._client.post(url, content=body, headers=headers)
        except httpx.TimeoutException as exc:
            return self._retry(job, url, Undelivered.TIMEOUT, type(exc).__name__)
        except httpx.HTTPError as exc:
            return self._retry(job, url, Undelivered.UNREACHABLE, f"{type(exc).__name__}: {exc}")
        status = response.status_code
        detail = f"HTTP {status}"
        if 200 <= status < 300:
            return Done()
        if status == 429:
            after = retry_after_s(response.headers.get("retry-after"), self._clock())
            return self._retry(job, url, Undelivered.THROTTLED, detail, after)
        if status >= 500:
            return self._retry(job, url, Undelivered.SERVER_ERROR, detail)
        log.warning("webhook %s to %s answered %s: dead-lettered", job.id, url, status)
        return Dead(Undelivered.REFUSED, detail)

    def _retry(
        self, job: Job, url: str, code: Undelivered, detail: str, after_s: float | None = None
    ) -> Retry:
        log.info("webhook %s to %s failed (%s), attempt %d", job.id, url, detail, job.attempts + 1)
        return Retry(code, after_s, detail)
