"""The transport floor: a bare python-socketio server with Cuewire's transport settings.

Same stack as ``cuewire serve`` (ASGI python-socketio, msgpack, uvicorn on uvloop with the
websockets-sansio implementation and the websocket options of ``cuewire.transport``: no
permessage-deflate, no second heartbeat, the same frame limit; one process) and the same
work at the edge: every batch goes through Cuewire's own ``validate_batch`` (the wire models
of docs/protocol.md and the size limits, default limits) and is acknowledged; an
``exit_intent`` is answered with a prompt of the size Cuewire's exit offer renders to (the
``latency`` scenario measures both servers' event -> prompt the same way), in the batch's
ack when the client connected with ``prompt_in_ack``, as Cuewire does. No Redis, no rules,
no state beyond that flag. ``python -m bench.echo_server --port P``.
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

from cuewire.protocol import Ack
from cuewire.settings import Limits
from cuewire.transport import socketio_options

try:
    from cuewire.transport import uvicorn_options
except ImportError:  # `--ref` to a commit before 5661690 named it for websockets alone
    from cuewire.transport import (  # type: ignore[attr-defined,no-redef]
        uvicorn_ws_options as uvicorn_options,
    )
from cuewire.validation import validate_batch

try:
    from cuewire.engine_socket import SocketServer
except ImportError:  # `--ref` to a commit before engine_socket.py: the library's own server
    SocketServer = socketio.AsyncServer

MAX_PAYLOAD = Limits().max_payload_bytes
PROMPT_RULE = "exit-intent-product"  # the rule of bench/rules/seed.yaml the scenario waits for
PROMPT_HTML = "<div class='offer'>" + "x" * 2000 + "</div>"  # about a rendered exit offer


def build() -> socketio.ASGIApp:
    sio = SocketServer(
        async_mode="asgi",
        serializer="msgpack",
        cors_allowed_origins="*",
        max_http_buffer_size=MAX_PAYLOAD,
        transports=["websocket", "polling"],
        **socketio_options(),
    )
    count = 0
    limits = Limits()
    in_ack: set[str] = set()  # the sids whose batches' prompts go in their acks

    @sio.on("connect")
    async def connect(sid: str, environ: dict[str, Any], auth: Any) -> None:
        nonlocal count
        count += 1
        if isinstance(auth, dict) and auth.get("prompt_in_ack") is True:
            in_ack.add(sid)
        info = {"session": f"s_echo{count:08d}", "visitor": "v_echo", "returning": False}
        await sio.emit("session", info, to=sid)

    @sio.on("events")
    async def events(sid: str, batch: Any = None) -> dict[str, Any]:
        valid, rejected = validate_batch(batch, limits)
        prompts = []
        for _, event in valid:
            if event["type"] == "exit_intent":
                prompt = {"id": f"p_{sid}", "rule": PROMPT_RULE, "html": PROMPT_HTML}
                if sid in in_ack:
                    prompts.append(prompt)
                else:
                    await sio.emit("prompt", prompt, to=sid)
        result: dict[str, Any] = msgspec.to_builtins(Ack(len(valid), rejected))
        if prompts:
            result["prompts"] = prompts
        return result

    @sio.on("disconnect")
    async def disconnect(sid: str, reason: Any = None) -> None:
        in_ack.discard(sid)

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
    options = {**uvicorn_options(MAX_PAYLOAD), "ws": args.ws}
    uvicorn.run(build(), host="127.0.0.1", port=args.port, loop=loop, lifespan="on", **options)


if __name__ == "__main__":
    main()
