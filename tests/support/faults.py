"""Support for the fault suite: tabs that send batches and resend what was not acked as the
snippet does, and the count of stored events by ``seq`` per session. (The Redis of a test's
own, stopped and restarted on the same port, is ``support.servers.RedisServer``.)"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
import socketio

from .paths import FIXTURES
from .processes import ServerProcess, sites_file
from .servers import free_port

RETRYABLE = {"store_unavailable", "rate_limited"}


@contextmanager
def server_keeping_every_batch(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ServerProcess]:
    """A real `cuewire serve` on ``redis_url`` whose live stream keeps every accepted batch,
    so a fault test can count each acked event in the store."""
    monkeypatch.setenv("CUEWIRE_LIVE_STREAM_MAX", "1000000")
    port = free_port()
    sites = sites_file(tmp_path / "sites.yaml", port)
    process = ServerProcess(redis_url, FIXTURES / "rules", FIXTURES / "templates", sites, port)
    process.start()
    try:
        yield process
    finally:
        process.stop()


def retryable(ack: dict[str, Any]) -> bool:
    """The whole batch is to be resent (docs/protocol.md: codes ``store_unavailable`` and
    ``rate_limited``)."""
    return any(r.get("code") in RETRYABLE for r in ack.get("rejected", []))


@dataclass
class Tally:
    """What the tabs saw."""

    acked: dict[str, set[int]] = field(default_factory=dict)  # session -> acked seqs
    resends: int = 0
    reconnects: int = 0
    timeouts: int = 0
    refused: int = 0
    retry_answers: int = 0


class Tab:
    """One tab of one visitor: connects (keeping its session over reconnects), sends batches
    of ``size`` events one at a time, and resends a batch with the same seqs until an ack
    accepts it, as the snippet does. With ``prompts``, it keeps each prompt pushed to it there
    and acks it, as the snippet does."""

    def __init__(
        self,
        url: str,
        visitor: str,
        tally: Tally,
        size: int = 3,
        prompts: list[dict[str, Any]] | None = None,
    ) -> None:
        self.url = url
        self.visitor = visitor
        self.tally = tally
        self.size = size
        self.session: str | None = None
        self.seq = 0
        self.sio: socketio.AsyncClient | None = None
        self._session = asyncio.Event()
        self.prompts = prompts
        self.prompted_at: list[float] = []  # when each prompt came (monotonic)

    async def connect(self, attempts: int = 200) -> None:
        for _ in range(attempts):
            sio = socketio.AsyncClient(serializer="msgpack", reconnection=False)
            self._session = asyncio.Event()
            sio.on("session", self._on_session)
            if self.prompts is not None:
                sio.on("prompt", self._on_prompt)
            auth = {"site": "test-site", "visitor": self.visitor, "tab": "tab1"}
            if self.session:
                auth["session"] = self.session
            try:
                await sio.connect(
                    self.url,
                    headers={"Origin": self.url},
                    auth=auth,
                    transports=["websocket"],
                    wait_timeout=10,
                )
                await asyncio.wait_for(self._session.wait(), 10)
                self.sio = sio
                return
            except (socketio.exceptions.ConnectionError, TimeoutError):
                self.tally.refused += 1
                await sio.disconnect()
                await asyncio.sleep(0.2)
        raise AssertionError(f"tab {self.visitor} could not connect")

    async def _on_session(self, data: dict[str, Any]) -> None:
        self.session = data["session"]
        self.tally.acked.setdefault(data["session"], set())
        self._session.set()

    async def _on_prompt(self, data: dict[str, Any]) -> bool:
        assert self.prompts is not None
        self.prompts.append(data)
        self.prompted_at.append(time.monotonic())
        return True  # the ack

    def next_batch(self) -> list[dict[str, Any]]:
        batch = []
        for _ in range(self.size):
            batch.append(
                {
                    "type": "custom",
                    "name": "tick",
                    "ts": int(time.time() * 1000),
                    "seq": self.seq,
                    "url": "http://shop.test/",
                }
            )
            self.seq += 1
        return batch

    async def deliver(self, batch: list[dict[str, Any]], timeout: float = 5) -> None:
        """Send ``batch`` until it is acked, resending on a retry answer, a lost ack or a
        dropped connection."""
        first = True
        pause = 0.25
        while True:
            if not first:
                self.tally.resends += 1
            first = False
            if self.sio is None or not self.sio.connected:
                self.tally.reconnects += 1
                await self.connect()
            assert self.sio is not None
            try:
                ack = await self.sio.call("events", batch, timeout=timeout)
            except socketio.exceptions.TimeoutError:
                self.tally.timeouts += 1
                continue
            except socketio.exceptions.BadNamespaceError:  # dropped under us
                self.sio = None
                continue
            if retryable(ack):  # back off as the snippet does: capped, with jitter
                self.tally.retry_answers += 1
                wait = max(pause, ack.get("retry_ms", 0) / 1000)
                await asyncio.sleep(wait * random.uniform(0.5, 1.0))
                pause = min(pause * 2, 2.0)
                continue
            assert ack["accepted"] == len(batch), ack
            assert self.session is not None
            self.tally.acked[self.session].update(e["seq"] for e in batch)
            return

    async def close(self) -> None:
        if self.sio is not None:
            await self.sio.disconnect()


def stored_seqs(
    client: redis.Redis, site: str = "test-site", prefix: str = "cw"
) -> dict[str, Counter[int]]:
    """Every accepted event in the live stream (it holds every accepted batch), as a count of
    each ``seq`` per session."""
    found: dict[str, Counter[int]] = {}
    last = "-"
    while True:
        entries = client.xrange(f"{prefix}:live:{site}", min=last, count=5000)
        if last != "-":
            entries = entries[1:]
        if not entries:
            return found
        for _, fields in entries:
            counts = found.setdefault(fields["session"], Counter())
            counts.update(int(event["seq"]) for event in json.loads(fields["events"]))
        last = entries[-1][0]


def seen_seqs(
    client: redis.Redis, session: str, site: str = "test-site", prefix: str = "cw"
) -> set[int]:
    """The seqs the store marked seen for the session's tab (the de-duplication set)."""
    return {int(m) for m in client.zrange(f"{prefix}:q:{{{site}:{session}}}:tab1", 0, -1)}


@dataclass(frozen=True)
class Count:
    acked: int
    lost: int
    twice: int


def count(tally: Tally, stored: dict[str, Counter[int]]) -> Count:
    acked = lost = twice = 0
    for session, seqs in tally.acked.items():
        here = stored.get(session, Counter())
        acked += len(seqs)
        lost += len(seqs - set(here))
        twice += sum(1 for n in here.values() if n > 1)
    return Count(acked, lost, twice)
