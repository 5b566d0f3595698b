"""The websocket transport options of ``cuewire serve``: one heartbeat per connection (engine.io's),
no per-socket compression state, frames bounded by the payload limit. Pinned here because the
audience bench (10,000 quiet connections) depends on them and a timing test cannot say so."""

from __future__ import annotations

import asyncio

import uvicorn
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from uvicorn.server import ServerState

from cuewire.settings import Limits, Settings
from cuewire.transport import uvicorn_options
from support.servers import LiveServer, site_for


async def _noop_app(scope: object, receive: object, send: object) -> None:
    return None


def _protocol(**options: object) -> WebSocketsSansIOProtocol:
    config = uvicorn.Config(_noop_app, **options)  # type: ignore[arg-type]
    config.load()
    loop = asyncio.new_event_loop()
    try:
        return WebSocketsSansIOProtocol(config, ServerState(), config.lifespan, _loop=loop)
    finally:
        loop.close()


def test_uvicorn_keeps_no_keepalive_timer_per_connection() -> None:
    protocol = _protocol(**uvicorn_options(Limits().max_payload_bytes))
    assert protocol.ping_interval is None
    assert protocol.ping_timeout is None


def test_uvicorn_alone_would_ping_every_connection() -> None:
    """The default the options override: without them each socket gets a second heartbeat."""
    protocol = _protocol(ws="websockets-sansio")
    assert protocol.ping_interval is not None


def test_sockets_carry_no_compression_state() -> None:
    protocol = _protocol(**uvicorn_options(Limits().max_payload_bytes))
    assert protocol.conn.available_extensions == []


def test_frames_are_bounded_by_the_payload_limit() -> None:
    protocol = _protocol(**uvicorn_options(4096))
    assert protocol.conn.max_message_size == 4096


def test_a_connections_events_are_handled_in_turn_without_a_task_each(settings: Settings) -> None:
    """python-socketio runs each event in the task that reads its socket (socketio_options):
    no task per event, and a tab's batches are handled one after the other."""
    with LiveServer(settings, site_for) as live:
        assert live.services.sio.async_handlers is False
