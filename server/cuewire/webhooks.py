"""Outbound webhooks: JSON POSTs, signed per site, retried with capped backoff, off the hot path."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any, Self

import httpx

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Cuewire-Signature"
ATTEMPTS = 4


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


Spawn = Callable[[Coroutine[Any, Any, None]], "asyncio.Task[None]"]


class Webhooks:
    """Sends in background tasks; ``aclose`` (or leaving ``async with``) waits briefly for
    those in flight. ``spawn`` runs each delivery (the app passes its supervisor's
    ``run_once``, so an unexpected failure is logged with its traceback and shown in
    ``/healthz``)."""

    def __init__(self, timeout_s: float = 5.0, spawn: Spawn | None = None) -> None:
        self._client = httpx.AsyncClient(timeout=timeout_s)
        self._tasks: set[asyncio.Task[None]] = set()
        self._spawn: Spawn = spawn or asyncio.create_task

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def send(
        self, url: str, payload: dict[str, Any], headers: dict[str, str], secret: str | None
    ) -> None:
        task = self._spawn(self._deliver(url, payload, headers, secret))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(
        self, url: str, payload: dict[str, Any], headers: dict[str, str], secret: str | None
    ) -> None:
        body = json.dumps(payload, separators=(",", ":")).encode()
        sent = {"Content-Type": "application/json", **headers}
        if secret:
            sent[SIGNATURE_HEADER] = sign(secret, body)
        for attempt in range(ATTEMPTS):
            try:
                response = await self._client.post(url, content=body, headers=sent)
                if response.status_code < 500:
                    if response.status_code >= 400:
                        log.warning(
                            "webhook %s answered %s; not retried", url, response.status_code
                        )
                    return
            except httpx.HTTPError as exc:
                log.info("webhook %s failed (%s), attempt %d", url, exc, attempt + 1)
            await asyncio.sleep(min(0.5 * 2**attempt, 8))
        log.error("webhook %s gave up after %d attempts", url, ATTEMPTS)

    async def aclose(self) -> None:
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=2)
        for task in self._tasks:
            task.cancel()
        await self._client.aclose()
