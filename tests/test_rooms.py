"""The indexed client manager (rooms.py) keeps exactly python-socketio's room table.

It replaces python-socketio's scan of every room on each disconnect with a reverse index; the
spec is that any sequence of connects, room entries and exits, room closes and disconnects
leaves it in the same state as python-socketio's own manager, and that it answers
``get_rooms`` the same way.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import socketio
from hypothesis import given, settings
from hypothesis import strategies as st

from cuewire.rooms import LocalManager

NAMESPACES = ["/", "/qa"]
SOCKETS = [f"e{i}" for i in range(6)]  # engine.io sids
ROOMS = ["site-a", "site-b", "qa"]

op = st.one_of(
    st.tuples(st.just("connect"), st.sampled_from(SOCKETS), st.sampled_from(NAMESPACES)),
    st.tuples(
        st.just("enter"),
        st.integers(0, 30),
        st.sampled_from(NAMESPACES),
        st.sampled_from(ROOMS),
    ),
    st.tuples(
        st.just("leave"),
        st.integers(0, 30),
        st.sampled_from(NAMESPACES),
        st.sampled_from(ROOMS),
    ),
    st.tuples(st.just("close"), st.sampled_from(ROOMS), st.sampled_from(NAMESPACES)),
    st.tuples(st.just("disconnect"), st.integers(0, 30), st.sampled_from(NAMESPACES)),
    st.tuples(st.just("callback"), st.integers(0, 30)),
)


def server(manager: socketio.AsyncManager) -> socketio.AsyncManager:
    """``manager`` attached to a real AsyncServer whose socket ids are 0, 1, 2..."""
    sio = socketio.AsyncServer(async_mode="asgi", client_manager=manager)
    ids = itertools.count()
    sio.eio.generate_id = lambda: str(next(ids))
    return manager


async def run(manager: Any, ops: list[tuple[Any, ...]]) -> list[Any]:
    """Apply ``ops`` (socket numbers index the sids connected so far); what get_rooms said."""
    sids: list[str] = []
    answers: list[Any] = []
    for kind, *a in ops:
        if kind == "connect":
            sid = await manager.pre_connect(a[0], a[1])
            if sid is not None:
                sids.append(sid)
            continue
        if kind == "close":
            manager.basic_close_room(a[0], a[1])
            continue
        if not sids:
            continue
        sid = sids[a[0] % len(sids)]
        if kind == "enter":
            try:
                manager.basic_enter_room(sid, a[1], a[2])
            except (ValueError, KeyError) as exc:
                answers.append(type(exc).__name__)
        elif kind == "leave":
            manager.basic_leave_room(sid, a[1], a[2])
        elif kind == "disconnect":
            await manager.disconnect(sid, a[1])
        elif kind == "callback":
            manager._generate_ack_id(sid, print)
        for ns in NAMESPACES:
            answers.append(sorted(manager.get_rooms(sid, ns)))
    return answers


def table(manager: Any) -> dict[str, Any]:
    rooms = {ns: {room: dict(m) for room, m in t.items()} for ns, t in manager.rooms.items()}
    return {
        "rooms": rooms,
        "callbacks": sorted(manager.callbacks),
        "pending_connect": manager.pending_connect,
        "pending_disconnect": manager.pending_disconnect,
    }


@settings(max_examples=300, deadline=None)
@given(st.lists(op, max_size=40))
def test_any_sequence_leaves_the_same_rooms_as_python_socketio(ops: list[tuple[Any, ...]]) -> None:
    ours, theirs = server(LocalManager()), server(socketio.AsyncManager())
    assert asyncio.run(run(ours, ops)) == asyncio.run(run(theirs, ops))
    assert table(ours) == table(theirs)


async def test_a_disconnect_leaves_only_its_own_rooms() -> None:
    manager = server(LocalManager())
    a = await manager.pre_connect("ea", "/")
    b = await manager.pre_connect("eb", "/")
    await manager.enter_room(a, "/", "site-a")
    await manager.enter_room(b, "/", "site-a")
    await manager.disconnect(a, "/")
    assert manager.get_rooms(a, "/") == []
    assert manager.get_rooms(b, "/") == [b, "site-a"]
    assert dict(manager.rooms["/"]["site-a"]) == {b: "eb"}
    assert a not in manager.rooms["/"][None]
    assert manager._rooms_of.keys() == {("/", b)}  # nothing left behind for a
