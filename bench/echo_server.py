"""The transport floor: a bare python-socketio server with Cuewire's transport settings.

Same stack as ``cuewire serve`` (ASGI python-socketio, msgpack, uvicorn on uvloop with the
websockets-sansio implementation and the websocket options of ``cuewire.transport``: no
permessage-deflate, no second heartbeat, the same frame limit; one process) and the same
work at the edge: every event of
a batch is validated with the wire models of docs/protocol.md and the batch is acknowledged.
No Redis, no rules, no state. ``python -m bench.echo_server --port P``.
"""

from __future__ import annotations

import argparse
import importlib.util
from typing import Any

import msgspec
import socketio
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from cuewire.codes import Reject
from cuewire.protocol import Ack, Rejection, event_reason, parse_event
from cuewire.settings import Limits
from cuewire.transport import uvicorn_ws_options

MAX_PAYLOAD = Limits().max_payload_bytes


def build() -> socketio.ASGIApp:
    sio = socketio.AsyncServer(
        async_mode="asgi",
        serializer="msgpack",
        cors_allowed_origins="*",
        max_http_buffer_size=MAX_PAYLOAD,
        transports=["websocket", "polling"],
    )
    count = 0

    @sio.on("connect")
    async def connect(sid: str, environ: dict[str, Any], auth: Any) -> None:
        nonlocal count
        count += 1
        info = {"session": f"s_echo{count:08d}", "visitor": "v_echo", "returning": False}
        await sio.emit("session", info, to=sid)

    @sio.on("events")
    async def events(sid: str, batch: Any = None) -> dict[str, Any]:
        if not isinstance(batch, list):
            bad = Rejection(-1, Reject.INVALID_BATCH, "not a list")
            return {"accepted": 0, "rejected": [msgspec.to_builtins(bad)]}
        accepted = 0
        rejected: list[Rejection] = []
        for index, raw in enumerate(batch):
            try:
                parse_event(raw)
                accepted += 1
            except msgspec.ValidationError as exc:
                rejected.append(Rejection(index, Reject.INVALID_EVENT, event_reason(raw, exc)))
        result: dict[str, Any] = msgspec.to_builtins(Ack(accepted, rejected))
        return result

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    web = Starlette(routes=[Route("/healthz", healthz)])
    return socketio.ASGIApp(sio, other_asgi_app=web, socketio_path="socket.io")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ws", default="websockets-sansio", help="uvicorn's websocket protocol")
    args = parser.parse_args()
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    options = {**uvicorn_ws_options(MAX_PAYLOAD), "ws": args.ws}
    uvicorn.run(build(), host="127.0.0.1", port=args.port, loop=loop, lifespan="on", **options)


if __name__ == "__main__":
    main()
