"""Targeted delivery across processes: one inbox stream per server process in Redis.

A prompt for a socket this process holds is emitted to it directly. A prompt for a socket of
another process (its address names the process, sockets.py) is appended to that process's
inbox, ``<prefix>:inbox:{<process id>}``: a Redis stream under its own hash tag, so every call
touches one key (one slot on a cluster). Only the holder reads it; no other process sees the
message (python-socketio's Redis manager published every emit to every process).

    sender                                   holder of the socket
    emit(address, prompt, confirm) ──XADD──▶ inbox:{holder} ──XREAD BLOCK──▶ run()
                                                                  │ local emit, tab acks
    the firing's wait ends     ◀──XADD── inbox:{sender} ◀──── ack (ok / not held)

A reset (the QA view forgot the visitor: the tab starts afresh, protocol.Reset) crosses the
same way, as a message of kind ``reset``.

A prompt pushed with ``confirm`` (a deadline's, delivery.py) carries a ``ref``; the holder
answers it in the sender's inbox, "1" when the tab acked and "0" when it does not hold the
socket or the tab did not ack, a little before the sender stops waiting. No answer in time
(the holder died, Redis is down) is a missing ack, as before: the firing is held and resent
under the same token (timers.py) until the tab reconnects to a live process.

A process refreshes its inbox's expiry while it runs and deletes the inbox when it stops; a
message to a process whose inbox is gone is refused at once (inbox_send.lua) and counts as not
delivered. Each inbox is capped (MAXLEN) and trimmed up to what its reader has handled (in
rounds, and whenever it goes idle).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, cast
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import msgspec
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from .delivery import PROMPT_ACK_TIMEOUT_S
from .ids import new_id
from .keys import Keys
from .lifecycle import Closing
from .metrics import Metrics
from .protocol import Prompt, Push, Reset
from .sockets import LocalSockets, parse_address
from .store.scripts import lua
from .store.sentinel import is_sentinel_url, sentinel_client
from .waiting import wait_set

log = logging.getLogger(__name__)

MAXLEN = 10_000  # messages an inbox keeps when its reader falls behind (approximate)
TTL_S = 30  # an inbox outlives its process by at most this long
REFRESH_S = TTL_S / 3
BLOCK_MS = 2_000  # one XREAD waits at most this long (the expiry is refreshed in between)
READ_COUNT = 256
# Handled messages are trimmed (XTRIM MINID) once this many pile up, or when the inbox is idle.
TRIM_EVERY = 64
# The holder answers this much before the sender stops waiting, so the answer arrives in time.
ANSWER_MARGIN_S = 0.5
ERROR_PAUSE_S = 1.0  # the reader's pause after a Redis error before it reads again
CONNECT_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Connected:
    redis: aioredis.Redis | RedisCluster
    send: AsyncScript  # inbox_send.lua
    open: AsyncScript  # inbox_open.lua


def _without(url: str, *options: str) -> str:
    """``url`` without the query options ``options``."""
    parts = urlsplit(url)
    kept = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in options]
    return urlunsplit(parts._replace(query=urlencode(kept)))


class InboxClient:
    """The inbox's own Redis client, made when first used (the store is open by then): a
    cluster client when the store found a Redis Cluster behind ``url`` (``clustered``: the
    store answers, it asked when it opened), the primary that the Sentinels name for a
    ``redis+sentinel://`` URL (store/sentinel.py), else one Redis's. Its reader blocks in
    XREAD, so its calls may take up to BLOCK_MS longer than the store's (store/connection.py
    bounds those)."""

    def __init__(self, url: str, clustered: Callable[[], bool]) -> None:
        self._url = url
        self._clustered = clustered
        self._connected: Connected | None = None

    async def get(self) -> Connected:
        """The client and its scripts."""
        if self._connected is None:  # no await in between: made once
            client = self._choose()
            send, open_ = (client.register_script(lua(f"inbox_{s}.lua")) for s in ("send", "open"))
            self._connected = Connected(client, send, open_)
        return self._connected

    def _choose(self) -> aioredis.Redis | RedisCluster:
        read_s = BLOCK_MS / 1000 + CONNECT_TIMEOUT_S
        bounds = {"socket_timeout": read_s, "socket_connect_timeout": CONNECT_TIMEOUT_S}
        if is_sentinel_url(self._url):  # the primary the Sentinels name: never a cluster
            named = sentinel_client(self._url, decode_responses=True)
            named.connection_pool.connection_kwargs.update(bounds)  # as below
            return named
        if self._clustered():
            # RedisCluster takes the URL's options over its arguments, and builds each node's
            # connections from them: the URL goes without the two bounds set here
            url = _without(self._url, *bounds)
            return RedisCluster.from_url(url, decode_responses=True, **bounds)
        plain = aioredis.Redis.from_url(self._url, decode_responses=True)
        # these bounds win over the URL's (a URL's options win over from_url's arguments): a
        # socket_timeout shorter than BLOCK_MS would cut every idle XREAD
        plain.connection_pool.connection_kwargs.update(bounds)
        return plain

    async def aclose(self) -> None:
        if self._connected is not None:
            await self._connected.redis.aclose()


class Kind(StrEnum):
    """What an inbox message is (its ``k`` field); the metrics' ``kind`` label."""

    START = "start"  # written by the reader when it opens its inbox (creates the stream)
    PROMPT = "prompt"  # a prompt for a socket of the inbox's process
    RESET = "reset"  # a reset (the QA view forgot the visitor) for a socket of the process
    ANSWER = "answer"  # whether the tab acked a prompt sent with a ref


Read = list[tuple[str, list[tuple[str, dict[str, str]]]]]  # XREAD's reply, decoded
Spawn = Callable[[Coroutine[Any, Any, None]], object]


class Inbox(Closing):
    """This process's inbox (read by :meth:`run`) and the sender to the other processes'.

    :meth:`emit` is the ``Emit`` of delivery.py: it takes a socket address."""

    def __init__(
        self,
        client: InboxClient,
        keys: Keys,
        local: LocalSockets,
        metrics: Metrics,
        spawn: Spawn,
    ) -> None:
        self.process = process = local.process
        self._client = client
        self._keys = keys
        self._key = keys.inbox(process)
        self._local = local
        self._metrics = metrics
        self._spawn = spawn
        self._waiting: dict[str, asyncio.Future[bool]] = {}
        self._stopping = asyncio.Event()
        self._last: str | None = None  # the id of the last message handled

    async def emit(self, address: str, push: Push, confirm: bool) -> bool:
        """Push ``push`` (a prompt or a reset) to the socket at ``address``; with
        ``confirm``, wait for the tab's ack (at most PROMPT_ACK_TIMEOUT_S). False when it was
        not delivered or not acked."""
        sid = self._local.local_sid(address)
        if sid is not None:
            return await self._local.push(sid, push, confirm, PROMPT_ACK_TIMEOUT_S)
        process, sid = parse_address(address)
        body = msgspec.json.encode(push).decode()
        kind = Kind.RESET if isinstance(push, Reset) else Kind.PROMPT
        message = {"k": kind, "sid": sid, "prompt": body, "from": self.process}
        if not confirm:
            return await self._send(process, message)
        ref = new_id(nbytes=9)
        answer: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting[ref] = answer
        try:
            if not await self._send(process, {**message, "ref": ref}):
                return False
            async with asyncio.timeout(PROMPT_ACK_TIMEOUT_S):  # (wait_for can lose a cancel)
                return await answer
        except TimeoutError:
            return False
        finally:
            self._waiting.pop(ref, None)

    async def _send(self, process: str, message: dict[str, str]) -> bool:
        """Append ``message`` to ``process``'s inbox: False when the inbox is gone (its process
        stopped or died long enough ago) or Redis cannot be reached."""
        flat = [part for pair in message.items() for part in pair]
        try:
            connected = await self._client.get()
            added = await connected.send(keys=[self._keys.inbox(process)], args=[MAXLEN, *flat])
        except RedisError:
            # not logged: the store's own calls log an outage once; the metric counts these
            self._metrics.store_errors.labels("inbox").inc()
            return False
        if added is None:
            self._metrics.inbox_unreachable.inc()
            return False
        self._metrics.inbox_sent.labels(message["k"]).inc()
        return True

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        """Read this process's inbox until :meth:`stop`: deliver each prompt to its local
        socket, settle each answer's waiting firing. Supervised (supervise.py): an unexpected
        failure is a crash and a restart, which reads on after the last message handled; a
        Redis error is retried here."""
        self._stopping.clear()
        loop = asyncio.get_running_loop()
        refreshed = loop.time()
        untrimmed = 0  # messages handled and still in the stream
        failing = False  # Redis errors since the last good read
        while not self._stopping.is_set():
            try:
                if self._last is None:
                    self._last = await self._open()
                    refreshed = loop.time()
                elif loop.time() - refreshed >= REFRESH_S:
                    await self._refresh()
                    refreshed = loop.time()
                client = (await self._client.get()).redis
                reply = await client.xread({self._key: self._last}, READ_COUNT, BLOCK_MS)
                read = cast(Read, reply)
            except RedisError as exc:
                self._metrics.store_errors.labels("inbox").inc()
                if not failing:  # once per outage (STYLE.md 10c); the metric counts them
                    log.error("cannot read inbox %s (%s); retrying", self._key, exc)
                failing = True
                await self._pause()
                continue
            if failing:
                log.warning("inbox %s readable again", self._key)
                failing = False
            for _stream, entries in read or []:
                for entry_id, fields in entries:
                    self._last = entry_id
                    self._handle(fields)
                untrimmed += len(entries)
            if untrimmed >= TRIM_EVERY or (untrimmed and not read):
                with contextlib.suppress(RedisError):  # else a later round trims it
                    await client.xtrim(self._key, minid=self._last, approximate=False)
                    untrimmed = 0

    async def _pause(self) -> None:
        await wait_set(self._stopping, ERROR_PAUSE_S)

    async def _open(self) -> str:
        """Create the inbox: the id of its START mark, to read after."""
        connected = await self._client.get()
        started = await connected.open(keys=[self._key], args=[MAXLEN, TTL_S, Kind.START])
        return str(started)

    async def _refresh(self) -> None:
        client = (await self._client.get()).redis
        if not await client.expire(self._key, TTL_S):  # gone (Redis restarted, flushed)
            await self._open()

    def _handle(self, fields: dict[str, str]) -> None:
        kind = fields.get("k", "")
        if kind in (Kind.PROMPT, Kind.RESET):
            self._metrics.inbox_received.labels(kind).inc()
            self._spawn(self._deliver(fields))
        elif kind == Kind.ANSWER:
            self._metrics.inbox_received.labels(kind).inc()
            waiting = self._waiting.get(fields.get("ref", ""))
            if waiting is not None and not waiting.done():
                waiting.set_result(fields.get("ok") == "1")
        elif kind != Kind.START:
            log.warning("inbox %s: message of unknown kind %r ignored", self._key, kind[:40])

    async def _deliver(self, fields: dict[str, str]) -> None:
        """Emit a prompt (or a reset) from another process to its local socket; answer when
        asked."""
        ref, sender, kind = fields.get("ref", ""), fields.get("from", ""), fields.get("k")
        shape: type[Push] = Reset if kind == Kind.RESET else Prompt
        push: Push | None
        try:
            push = msgspec.json.decode(fields.get("prompt", ""), type=shape)
        except msgspec.DecodeError:
            log.warning("inbox %s: a %s that does not decode was ignored", self._key, kind)
            push = None
        wait_s = PROMPT_ACK_TIMEOUT_S - ANSWER_MARGIN_S
        sid = fields.get("sid", "")
        ok = push is not None and await self._local.push(sid, push, bool(ref), wait_s)
        if ref and sender:
            await self._send(sender, {"k": Kind.ANSWER, "ref": ref, "ok": "1" if ok else "0"})

    async def aclose(self) -> None:
        """Delete the inbox (senders learn at once that this process is gone), then close."""
        self.stop()
        for waiting in self._waiting.values():
            if not waiting.done():
                waiting.set_result(False)
        with contextlib.suppress(RedisError):
            await (await self._client.get()).redis.delete(self._key)
        with contextlib.suppress(RedisError):
            await self._client.aclose()
