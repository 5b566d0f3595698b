"""Outbound webhooks: JSON POSTs, signed per site, retried with capped backoff, off the hot path.

The HTTP client is passed in (the app opens one ``httpx.AsyncClient`` and closes it after the
webhooks; tests pass a client on an ``httpx.MockTransport`` or one that posts to a receiver on
loopback), and so is ``sleep`` (the pause between attempts), so a test can count the backoff
without waiting for it.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
from collections.abc import Awaitable, Callable, Coroutine
from enum import StrEnum
from typing import Any

import httpx

from .lifecycle import Closing

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Cuewire-Signature"
ATTEMPTS = 4
FIRST_PAUSE_S = 0.5
MAX_PAUSE_S = 8.0
TIMEOUT_S = 5.0


class Sent(StrEnum):
    """How one delivery ended."""

    DELIVERED = "delivered"  # a 1xx-3xx answer
    REFUSED = "refused"  # a 4xx answer: the receiver will not take it, so it is not retried
    GAVE_UP = "gave_up"  # 5xx answers or transport errors on every attempt


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def pause_before(attempt: int) -> float:
    """The pause before attempt ``attempt`` (1-based after the first, which has none)."""
    return min(FIRST_PAUSE_S * 2.0 ** (attempt - 1), MAX_PAUSE_S)


def new_client(timeout_s: float = TIMEOUT_S) -> httpx.AsyncClient:
    """The client the app gives ``Webhooks`` (and closes after it)."""
    return httpx.AsyncClient(timeout=timeout_s)


Spawn = Callable[[Coroutine[Any, Any, Any]], "asyncio.Task[Any]"]
Sleep = Callable[[float], Awaitable[None]]


class Webhooks(Closing):
    """Sends in background tasks; ``aclose`` (or leaving ``async with``) waits briefly for
    those in flight. ``spawn`` runs each delivery (the app passes its supervisor's
    ``run_once``, so an unexpected failure is logged with its traceback and shown in
    ``/healthz``). The ``client`` belongs to the caller, who closes it."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        spawn: Spawn | None = None,
        *,
        attempts: int = ATTEMPTS,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._client = client
        self._tasks: set[asyncio.Task[Any]] = set()
        self._spawn: Spawn = spawn or asyncio.create_task
        self._attempts = attempts
        self._sleep = sleep

    @property
    def client(self) -> httpx.AsyncClient:
        return self._client

    def send(
        self, url: str, payload: dict[str, Any], headers: dict[str, str], secret: str | None
    ) -> asyncio.Task[Any]:
        """Start delivering ``payload``; the task ends with a ``Sent``."""
        task = self._spawn(self.deliver(url, payload, headers, secret))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def deliver(
        self, url: str, payload: dict[str, Any], headers: dict[str, str], secret: str | None
    ) -> Sent:
        """POST ``payload`` until a non-5xx answer, at most ``attempts`` times."""
        body = json.dumps(payload, separators=(",", ":")).encode()
        sent = {"Content-Type": "application/json", **headers}
        if secret:
            sent[SIGNATURE_HEADER] = sign(secret, body)
        for attempt in range(self._attempts):
            if attempt:
                await self._sleep(pause_before(attempt))
            try:
                response = await self._client.post(url, content=body, headers=sent)
            except httpx.HTTPError as exc:
                log.info("webhook %s failed (%s), attempt %d", url, exc, attempt + 1)
                continue
            if response.status_code < 400:
                return Sent.DELIVERED
            if response.status_code < 500:
                log.warning("webhook %s answered %s; not retried", url, response.status_code)
                return Sent.REFUSED
            log.info("webhook %s answered %s, attempt %d", url, response.status_code, attempt + 1)
        log.error("webhook %s gave up after %d attempts", url, self._attempts)
        return Sent.GAVE_UP

    async def aclose(self) -> None:
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=2)
        for task in self._tasks:
            task.cancel()
