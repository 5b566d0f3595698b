"""The websocket transport settings ``cuewire serve`` gives uvicorn (the bench's echo server
uses the same, so its floor stays honest).

One heartbeat per connection, not two: engine.io already pings every socket and drops the ones
that stop answering (``pingInterval`` / ``pingTimeout`` of docs/protocol.md), so uvicorn's own
websocket keepalive is turned off. With it on, each connection also carries a ping timer, a
pong timer and a write every 20 s: at 10,000 idle connections that measured 18% of a core
against 12.5% without it (bench/README.md, "audience").
"""

from __future__ import annotations

from typing import Any


def uvicorn_ws_options(max_payload_bytes: int) -> dict[str, Any]:
    """uvicorn's websocket keyword arguments for one process holding many quiet sockets."""
    return {
        "ws": "websockets-sansio",
        # engine.io's heartbeat is the only one (see the module docstring)
        "ws_ping_interval": None,
        "ws_ping_timeout": None,
        # events are small; deflate doubles the memory per socket (zlib state each way)
        "ws_per_message_deflate": False,
        # refuse larger frames before decoding them
        "ws_max_size": max_payload_bytes,
    }
