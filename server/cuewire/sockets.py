"""The sockets of this process, and the address that names a socket across processes.

A session's socket record in the store (the ``sid`` fact) is a socket *address*:
``<Socket.IO sid>@<process id>``. Each server process draws its id when it starts, so the
address says which process holds the socket, and a prompt fired anywhere goes to that one
process (inbox.py) instead of to all of them. An address without ``@`` (a record written by
an earlier version) names no process: only a local socket of that sid is reached.
"""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import socketio

from .delivery import PROMPT_ACK_TIMEOUT_S
from .ids import new_id
from .protocol import Push, push_event
from .waiting import wait_set

SEPARATOR = "@"  # never in a Socket.IO sid nor in a process id (both URL-safe base64)


def new_process_id() -> str:
    """A fresh id for a server process: unique across restarts, so a socket address never
    names a later process that happens to reuse a port or a pid."""
    return new_id(nbytes=6)


def socket_address(process: str, sid: str) -> str:
    return f"{sid}{SEPARATOR}{process}"


def parse_address(address: str) -> tuple[str, str]:
    """``(process, sid)`` of a socket address; the process is "" when it names none."""
    sid, _, process = address.partition(SEPARATOR)
    return process, sid


def forget_callback(manager: Any, sid: str, callback: Any) -> None:
    """Drop the ack callback of an emit that timed out. python-socketio keeps it in
    ``manager.callbacks[sid]`` until the ack comes or the socket disconnects, which for a
    socket that never answers is never. (The sid's ack-id counter stays, so a late ack can
    never be taken for the ack of a later prompt.)"""
    pending = manager.callbacks.get(sid) or {}
    for key in [k for k, v in pending.items() if v is callback]:
        del pending[key]


class LocalSockets:
    """Push prompts (and resets) to the Socket.IO sockets this process (``process``) holds."""

    def __init__(self, sio: socketio.AsyncServer, process: str) -> None:
        self._sio = sio
        self.process = process

    def address(self, sid: str) -> str:
        """The address of this process's socket ``sid``, for the store's socket record."""
        return socket_address(self.process, sid)

    def local_sid(self, address: str) -> str | None:
        """The sid of ``address`` when it names a socket of this process (or no process),
        else None: another process holds it."""
        process, sid = parse_address(address)
        return sid if process in ("", self.process) else None

    async def emit(self, address: str, push: Push, confirm: bool) -> bool:
        """The ``Emit`` of delivery.py for a single process (the embedded store): a socket
        of another process is never reached (False)."""
        sid = self.local_sid(address)
        if sid is None:
            return False
        return await self.push(sid, push, confirm, PROMPT_ACK_TIMEOUT_S)

    def holds(self, sid: str) -> bool:
        return bool(sid) and bool(self._sio.manager.is_connected(sid, "/"))

    async def push(self, sid: str, push: Push, confirm: bool, timeout_s: float) -> bool:
        """Emit ``push`` (a prompt or a reset) to the local socket ``sid``. With ``confirm``,
        wait up to ``timeout_s`` for the tab's ack. False when this process does not hold
        ``sid`` or, with ``confirm``, when no ack came in time."""
        if not self.holds(sid):
            return False
        event, data = push_event(push), msgspec.to_builtins(push)
        if not confirm:
            await self._sio.emit(event, data, to=sid)
            return True
        acked = asyncio.Event()

        def ack(*_args: Any) -> None:
            acked.set()

        await self._sio.emit(event, data, to=sid, callback=ack)
        if await wait_set(acked, timeout_s):
            return True
        forget_callback(self._sio.manager, sid, ack)
        return False
