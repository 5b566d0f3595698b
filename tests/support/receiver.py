"""A real webhook receiver: a tiny starlette app under uvicorn on a free loopback port, in the
test's own event loop. It records every POST and answers with the scripted statuses in order
(200 once they run out)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .servers import free_port
from .waiting import eventually


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]  # lower-case names, as HTTP/1.1 does not care
    body: bytes


class Receiver:
    def __init__(self, answers: Iterable[int] = ()) -> None:
        self.answers = list(answers)
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
        self.got.append(Received(dict(request.headers), await request.body()))
        return Response(status_code=self.answers.pop(0) if self.answers else 200)

    async def __aenter__(self) -> Receiver:
        self._task = asyncio.create_task(self.server.serve())
        await eventually(lambda: self.server.started, what="the receiver listening")
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.should_exit = True
        if self._task is not None:
            await self._task
