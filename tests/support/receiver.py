"""A real webhook receiver: a tiny starlette app under uvicorn on a free loopback port, in the
test's own event loop. It records every POST (headers, body, when it came, what it answered)
and answers with the scripted answers in order (200 once they run out): a status, or a status
with headers (a 429 with its Retry-After). With ``delay_s`` it answers that much later (a
slow receiver: a POST stays in flight)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .servers import free_port
from .waiting import eventually

Answer = int | tuple[int, dict[str, str]]


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]  # lower-case names, as HTTP/1.1 does not care
    body: bytes
    status: int = 200  # what the receiver answered
    at: float = 0.0  # time.monotonic() when it came


class Receiver:
    def __init__(self, answers: Iterable[Answer] = (), delay_s: float = 0.0) -> None:
        self.answers = list(answers)
        self.delay_s = delay_s
        self.got: list[Received] = []
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        app = Starlette(routes=[Route("/hook", self._hook, methods=["POST"])])
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off"
        )
        self.server = uvicorn.Server(config)
        self._task: asyncio.Task[None] | None = None

    async def _hook(self, request: Request) -> Response:
        answer = self.answers.pop(0) if self.answers else 200
        status, headers = answer if isinstance(answer, tuple) else (answer, {})
        got = Received(dict(request.headers), await request.body(), status, time.monotonic())
        self.got.append(got)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        return Response(status_code=status, headers=headers)

    def accepted(self) -> Counter[str]:
        """How many times each ``webhook-id`` was answered 2xx."""
        return Counter(g.headers["webhook-id"] for g in self.got if 200 <= g.status < 300)

    async def __aenter__(self) -> Receiver:
        self._task = asyncio.create_task(self.server.serve())
        await eventually(lambda: self.server.started, what="the receiver listening")
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.should_exit = True
        if self._task is not None:
            await self._task
