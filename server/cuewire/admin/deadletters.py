"""The outboxes' dead letters in the QA view (outbox.py): what could not be delivered, with
its code, and a "retry" that queues it again.

- ``GET /qa/deadletters``: the page (qa_static/deadletters.html, its script deadletters.js).
- ``GET /qa/deadletters.json``: per channel, the outbox's depth and its newest dead letters
  (``?count=`` at most 500, 100 by default).
- ``POST /qa/deadletters/retry`` with a JSON body ``{"channel": ..., "id": ...}``: queue that
  dead letter again (attempts reset, same id). JSON only: a cross-site form cannot send it
  without the browser asking first (the admin's Basic credentials are sent with any request).

Every route is wrapped in ``admin`` (app.py's AdminAuth).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route, request_response
from starlette.types import ASGIApp

from ..outbox import Outbox
from .pages import NO_STORE

STATIC = Path(__file__).parent / "qa_static"
MAX_COUNT = 500


def deadletter_routes(
    outboxes: Mapping[str, Outbox], admin: Callable[[ASGIApp], ASGIApp]
) -> list[Route]:
    """The routes above; ``outboxes``: the app's, by channel (filled once the store is open)."""

    async def page(request: Request) -> Response:
        return FileResponse(STATIC / "deadletters.html", headers=NO_STORE)

    async def listing(request: Request) -> Response:
        try:
            count = min(MAX_COUNT, max(1, int(request.query_params.get("count", "100"))))
        except ValueError:
            return JSONResponse({"error": "count must be a number"}, status_code=400)
        channels: dict[str, Any] = {}
        for channel, outbox in sorted(outboxes.items()):
            channels[channel] = {
                "depth": (await outbox.depth()).as_json(),
                "letters": [d.as_json() for d in await outbox.dead_letters(count)],
            }
        return JSONResponse({"channels": channels}, headers=NO_STORE)

    async def retry(request: Request) -> Response:
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return JSONResponse({"error": "send JSON {channel, id}"}, status_code=415)
        try:
            body = await request.json()
            channel, job_id = str(body["channel"]), str(body["id"])
        except (ValueError, KeyError, TypeError):
            return JSONResponse({"error": "send JSON {channel, id}"}, status_code=400)
        outbox = outboxes.get(channel)
        if outbox is None or not await outbox.revive(job_id):
            return JSONResponse({"error": "no such dead letter", "retried": False}, 404)
        return JSONResponse({"retried": True}, headers=NO_STORE)

    def route(path: str, endpoint: Callable[[Request], Any], methods: list[str]) -> Route:
        return Route(path, admin(request_response(endpoint)), methods=methods)

    return [
        route("/qa/deadletters", page, ["GET"]),
        route("/qa/deadletters.json", listing, ["GET"]),
        route("/qa/deadletters/retry", retry, ["POST"]),
    ]
