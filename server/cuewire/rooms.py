"""Socket.IO client managers whose disconnect costs the same at any number of connections.

python-socketio's managers keep ``rooms[namespace][room] -> {sid: eio_sid}`` and nothing
from a socket to its rooms, so a disconnect copies the namespace's room table and tests every
room for the socket. Every socket has a room of its own, so that is O(connections) per
disconnect: 51 us at 1,000 connections, 672 us at 10,000 (python-socketio 5.18). On a site
where 10,000 visitors each load a page every 30 s (a disconnect and a connect each), that is a
fifth of a core spent in the scan; a reconnect storm of N tabs costs O(N^2).

:class:`IndexedRooms` keeps the reverse map (socket -> the rooms it is in, in entry order)
beside the manager's own table, so a disconnect leaves exactly its rooms.
"""

from __future__ import annotations

from typing import Any

import socketio

# A room: a name, or None (python-socketio's room of every connected socket).
Room = Any


class IndexedRooms:
    """Mixin for a python-socketio manager (before it in the bases): the reverse room index."""

    rooms: dict[str, dict[Room, Any]]
    callbacks: dict[str, Any]
    pending_connect: dict[str, list[str]]
    pending_disconnect: dict[str, list[str]]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._rooms_of: dict[tuple[str, str], dict[Room, None]] = {}

    def basic_enter_room(
        self, sid: str, namespace: str, room: Room, eio_sid: str | None = None
    ) -> None:
        super().basic_enter_room(sid, namespace, room, eio_sid=eio_sid)  # type: ignore[misc]
        self._rooms_of.setdefault((namespace, sid), {})[room] = None

    def basic_leave_room(self, sid: str, namespace: str, room: Room) -> None:
        super().basic_leave_room(sid, namespace, room)  # type: ignore[misc]
        entered = self._rooms_of.get((namespace, sid))
        if entered is not None:
            entered.pop(room, None)
            if not entered:
                del self._rooms_of[(namespace, sid)]

    def basic_disconnect(self, sid: str, namespace: str, **kwargs: Any) -> None:
        """What ``BaseManager.basic_disconnect`` does, without its scan of every room."""
        if namespace not in self.rooms:
            return
        for room in list(self._rooms_of.get((namespace, sid), ())):
            self.basic_leave_room(sid, namespace, room)
        self.callbacks.pop(sid, None)
        for pending in (self.pending_connect, self.pending_disconnect):
            waiting = pending.get(namespace)
            if waiting is not None and sid in waiting:
                waiting.remove(sid)
                if not waiting:
                    del pending[namespace]

    def get_rooms(self, sid: str, namespace: str) -> list[Room]:
        """The rooms a socket is in, in the order it entered them."""
        return [room for room in self._rooms_of.get((namespace, sid), ()) if room is not None]


class LocalManager(IndexedRooms, socketio.AsyncManager):  # type: ignore[misc]
    """Each process's manager: python-socketio's own, indexed. It knows the process's own
    sockets only; a prompt for another process's socket goes through its inbox (inbox.py)."""
