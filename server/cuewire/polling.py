"""HTTP long-polling across the workers of ``cuewire serve --workers N``.

A WebSocket is one connection: the worker that accepts it serves it to the end. Long-polling
(the snippet's fallback where a proxy blocks WebSocket) is a series of HTTP requests, and the
kernel hands each new connection to any worker, while only the worker that holds the engine.io
session can answer its requests (any other says "Invalid session" and the visitor reconnects,
again and again). So each worker:

- issues engine.io session ids that begin with its own tag (``w<index>.``), and
- listens, besides the shared port, on a unix socket of its own, ``<peers>/w<index>.sock``;

and a polling request whose ``sid`` carries another worker's tag is passed to that worker's
socket, its answer passed back (a long-poll GET waits there as long as it would have anyway).
A request for a worker that is gone gets engine.io's own answer for an unknown session (400),
and the client reconnects. Behind a load balancer over several hosts, route by client address
or cookie instead (docs/deploy.md).
"""

from __future__ import annotations

import contextlib
import logging
import socket
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import socketio
import uvicorn
from prometheus_client import Counter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .supervise import Supervisor

log = logging.getLogger(__name__)

PREFIX = "/socket.io"
# A long-poll GET is held by its worker up to engine.io's ping interval (25 s) plus its
# timeout (20 s): the forwarded one may wait as long.
FORWARD_TIMEOUT_S = 60.0
PEER_BACKLOG = 1024
# Hop-by-hop headers (RFC 9110, 7.6.1) are not forwarded in either direction.
HOP_BY_HOP = frozenset(
    {b"connection", b"keep-alive", b"transfer-encoding", b"te", b"trailer", b"upgrade"}
)


def tag(worker: int) -> str:
    return f"w{worker}."


def owner_of(query_string: bytes) -> str | None:
    """The worker tag of the engine.io session a polling request names, if any."""
    values = parse_qs(query_string.decode("latin-1")).get("sid")
    if not values:
        return None
    sid = values[0]
    head, dot, _ = sid.partition(".")
    return head + dot if dot and head.startswith("w") and head[1:].isdigit() else None


class PeerRouting:
    """One worker's part: its session ids, its unix socket (served by the supervised task
    ``peer-socket``, in /healthz) and the passing on of other workers' polling requests."""

    def __init__(
        self, worker: int, peers: Path, forwarded: Counter, supervisor: Supervisor
    ) -> None:
        self.tag = tag(worker)
        self.peers = peers
        self.socket_path = peers / f"{self.tag}sock"
        self._forwarded = forwarded
        self._supervisor = supervisor
        self._clients: dict[str, httpx.AsyncClient] = {}
        self._server: _Quiet | None = None
        self._bound: socket.socket | None = None
        self._started = False

    def issue_ids(self, sio: socketio.AsyncServer) -> None:
        """Make engine.io's session ids begin with this worker's tag."""
        plain = sio.eio.generate_id
        sio.eio.generate_id = lambda: self.tag + plain()

    def wrap(self, app: ASGIApp) -> ASGIApp:
        """``app`` with other workers' polling requests passed on. Its own socket listens
        from the first request on (before this worker can have issued a session id)."""

        async def routed(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "lifespan":
                await app(scope, self._closing_with(receive), send)
                return
            if not self._started:
                self._start(app)
            if scope["type"] == "http" and scope["path"].startswith(PREFIX):
                owner = owner_of(scope.get("query_string", b""))
                if owner is not None and owner != self.tag:
                    await self._forward(owner, scope, receive, send)
                    return
            await app(scope, receive, send)

        return routed

    def _start(self, app: ASGIApp) -> None:
        """Bind the socket now, so requests wait in its backlog from now on whenever uvicorn
        gets round to accepting them, and serve it under the supervisor."""
        self._started = True
        self._bound = self._bind()
        self._supervisor.spawn("peer-socket", lambda: self._serve(app), stop=self._stop_serving)

    def _bind(self) -> socket.socket:
        self.socket_path.unlink(missing_ok=True)  # left by the worker this one replaces
        listening = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listening.bind(str(self.socket_path))
        listening.listen(PEER_BACKLOG)
        return listening

    async def _serve(self, app: ASGIApp) -> None:
        listening, self._bound = self._bound or self._bind(), None  # bound again on a restart
        config = uvicorn.Config(
            app, lifespan="off", log_level="warning", timeout_graceful_shutdown=1
        )
        server = self._server = _Quiet(config)
        try:
            await server.serve([listening])
        finally:
            listening.close()
            self.socket_path.unlink(missing_ok=True)

    def _stop_serving(self) -> None:
        if self._server is not None:
            self._server.should_exit = True

    def _closing_with(self, receive: Receive) -> Receive:
        async def receiving() -> Message:
            message = await receive()
            if message["type"] == "lifespan.shutdown":
                for client in self._clients.values():
                    await client.aclose()
            return message

        return receiving

    async def _forward(self, owner: str, scope: Scope, receive: Receive, send: Send) -> None:
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        headers = [(k, v) for k, v in scope["headers"] if k.lower() not in HOP_BY_HOP]
        url = f"http://worker{scope['path']}?{scope.get('query_string', b'').decode('latin-1')}"
        try:
            answer = await self._client(owner).request(
                scope["method"], url, headers=headers, content=body
            )
        except httpx.HTTPError as exc:  # that worker is gone: as engine.io answers an unknown sid
            log.debug("polling request for worker %s not passed on: %s", owner, exc)
            await _respond(send, 400, b'"Invalid session"', [(b"content-type", b"text/plain")])
            return
        self._forwarded.inc()
        passed = [
            (k.encode("latin-1"), v.encode("latin-1"))
            for k, v in answer.headers.multi_items()
            if k.lower().encode("latin-1") not in HOP_BY_HOP | {b"content-length"}
        ]
        await _respond(send, answer.status_code, answer.content, passed)

    def _client(self, owner: str) -> httpx.AsyncClient:
        client = self._clients.get(owner)
        if client is None:
            transport = httpx.AsyncHTTPTransport(uds=str(self.peers / f"{owner}sock"))
            client = httpx.AsyncClient(transport=transport, timeout=FORWARD_TIMEOUT_S)
            self._clients[owner] = client
        return client


async def _respond(send: Send, status: int, body: bytes, headers: list[Any]) -> None:
    headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class _Quiet(uvicorn.Server):
    """A uvicorn server inside a worker that already runs one: the signals stay the main
    server's (it stops this one through ``should_exit``)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Any:
        yield
