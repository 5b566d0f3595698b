"""Keyed asyncio locks that exist only while someone holds or awaits them."""

from __future__ import annotations

import asyncio
from types import TracebackType


class KeyedLocks:
    def __init__(self) -> None:
        self._entries: dict[str, tuple[asyncio.Lock, list[int]]] = {}

    def hold(self, key: str) -> _Hold:
        """``async with locks.hold(key):`` the lock of ``key``, made on first use and dropped
        when its last holder or waiter is done. (A class, not an asynccontextmanager: this is
        on every batch's path, and the generator machinery cost 2.1 us a use.)"""
        return _Hold(self._entries, key)

    def __len__(self) -> int:
        return len(self._entries)


class _Hold:
    __slots__ = ("_entries", "_entry", "_key")

    def __init__(self, entries: dict[str, tuple[asyncio.Lock, list[int]]], key: str) -> None:
        self._entries = entries
        self._key = key

    async def __aenter__(self) -> None:
        self._entry = self._entries.setdefault(self._key, (asyncio.Lock(), [0]))
        lock, users = self._entry
        users[0] += 1
        try:
            await lock.acquire()
        except BaseException:
            self._leave()
            raise

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._entry[0].release()
        self._leave()

    def _leave(self) -> None:
        users = self._entry[1]
        users[0] -= 1
        if users[0] == 0:
            del self._entries[self._key]
