"""The transport settings ``cuewire serve`` gives uvicorn and python-socketio (the bench's echo
server uses the same, so its floor stays honest).

One heartbeat per connection, not two: engine.io already pings every socket and drops the ones
that stop answering (``pingInterval`` / ``pingTimeout`` of docs/protocol.md), so uvicorn's own
websocket keepalive is turned off. With it on, each connection also carries a ping timer, a
pong timer and a write every 20 s: at 10,000 idle connections that measured 18% of a core
against 12.5% without it (bench/README.md, "audience").
"""

from __future__ import annotations

from typing import Any

from .http_protocol import HttpProtocol


def uvicorn_options(max_payload_bytes: int) -> dict[str, Any]:
    """uvicorn's protocol keyword arguments for one process holding many quiet sockets."""
    return {
        # a connection accepted just before a graceful stop gets its request answered
        "http": HttpProtocol,
        "ws": "websockets-sansio",
        # engine.io's heartbeat is the only one (see the module docstring)
        "ws_ping_interval": None,
        "ws_ping_timeout": None,
        # events are small; deflate doubles the memory per socket (zlib state each way)
        "ws_per_message_deflate": False,
        # refuse larger frames before decoding them
        "ws_max_size": max_payload_bytes,
    }


def socketio_options() -> dict[str, Any]:
    """python-socketio's keyword arguments for the same sockets.

    A connection's events are handled in turn, in the task that reads its socket, instead of
    one task per event: the gateway serialises a session's batches anyway (one tab sends one
    batch at a time), and the task per event was measured at 20% of the CPU per batch (485
    to 396 us in the ingest scenario) and 5x the p99 at 1,000 sessions (bench/README.md).
    What waits meanwhile is that socket's next packets, its pongs among them: a handler
    must stay well under engine.io's ``pingTimeout`` (20 s; the store's calls are bounded at
    5 s, a connect waits for admission at most ~10 s), and none may wait for its own
    socket's answer (``call()`` is refused in this mode; prompts that need an ack are pushed
    by the timer loop, not from a handler).
    """
    return {"async_handlers": False}
