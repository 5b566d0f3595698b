"""Redis named by its Sentinels: the primary is asked of them, and asked again after a failover.

URL form (the ``redis+sentinel`` form of other Redis clients)::

    redis+sentinel://[[USER]:PASSWORD@]HOST[:PORT][,HOST[:PORT]...]/SERVICE[/DB][?OPTIONS]

HOST:PORT are the Sentinels (port 26379 when left out), SERVICE the name they monitor the
primary under (``sentinel monitor SERVICE ...``), DB the database number (0 by default, or
``?db=``). USER and PASSWORD are the data nodes' (the primary's and the replicas'); OPTIONS are
redis-py's URL options for them (``socket_timeout``, ``socket_connect_timeout``, ...), plus
``sentinel_username`` and ``sentinel_password`` for Sentinels that require a password of their
own.

redis-py's Sentinel support (``redis.asyncio.sentinel``) does the rest: a connection asks the
Sentinels for the primary's address each time it connects, the pool drops its idle connections
when that address changes, and a connection that finds itself on a demoted primary (a
``READONLY`` answer) disconnects and fails with ``ConnectionError``. Calls in flight while the
primary is gone fail with a ``ConnectionError`` or ``TimeoutError`` (the store answers
``StoreError``), and the first connection after the promotion goes to the new primary.

The store's pool keeps what ``connection.py`` gives one Redis: a blocking pool that waits only
when it must, and connections that bound their calls with the deadline watch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

import redis.asyncio as aioredis
from redis.asyncio.connection import parse_url
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.backoff import NoBackoff

from ..errors import ConfigError
from .connection import QuickPool, WatchedSentinelConnection

SCHEME = "redis+sentinel"
DEFAULT_PORT = 26379
# The Sentinels answer at once or not at all: one that does not within this long is skipped
# for the next, without retrying it (redis-py's client would retry 10 times, ~4 s, before).
SENTINEL_TIMEOUT_S = 1.0
_SENTINEL_OPTIONS = ("sentinel_username", "sentinel_password")


class SentinelPool(SentinelConnectionPool):
    """redis-py's Sentinel pool that also closes its Sentinel clients when it closes."""

    sentinel_manager: Sentinel

    async def aclose(self) -> None:
        try:
            await super().aclose()
        finally:
            await self.sentinel_manager.aclose()


class QuickSentinelPool(SentinelPool, QuickPool):
    """The Sentinel pool, blocking as :class:`QuickPool` does (waits only when it must)."""


def is_sentinel_url(url: str) -> bool:
    return urlsplit(url).scheme == SCHEME


def _shown(url: str) -> str:
    """``url`` for an error message: without its password (nor the Sentinels')."""
    parts = urlsplit(url)
    userinfo, at, hosts = parts.netloc.rpartition("@")
    netloc = f"{userinfo.partition(':')[0]}:***@{hosts}" if at else hosts
    query = "&".join(
        f"{name}=***" if name == "sentinel_password" else f"{name}={value}"
        for name, value in parse_qsl(parts.query)
    )
    return parts._replace(netloc=netloc, query=query).geturl()


def _address(part: str, url: str) -> tuple[str, int]:
    host, port = part, ""
    if part.startswith("["):  # [IPv6]:PORT
        host, _, rest = part[1:].partition("]")
        port = rest.removeprefix(":")
    elif ":" in part:
        host, _, port = part.rpartition(":")
    if not host:
        raise ConfigError(f"a Sentinel without a host in {_shown(url)!r}")
    try:
        return host, int(port) if port else DEFAULT_PORT
    except ValueError:
        raise ConfigError(f"not a port: {port!r} in {_shown(url)!r}") from None


@dataclass(frozen=True)
class SentinelURL:
    """What a ``redis+sentinel://`` URL says."""

    sentinels: list[tuple[str, int]]  # their addresses
    service: str  # the name they know the primary by
    options: dict[str, Any]  # redis-py's connection options for the data nodes
    sentinel_options: dict[str, Any]  # and for the Sentinels


def parse_sentinel_url(url: str) -> SentinelURL:
    """Read a ``redis+sentinel://`` URL; ConfigError when it is not one."""
    parts = urlsplit(url)
    if parts.scheme != SCHEME:
        raise ConfigError(f"not a {SCHEME}:// URL: {_shown(url)!r}")
    userinfo, _, hosts = parts.netloc.rpartition("@")
    sentinels = [_address(part, url) for part in hosts.split(",") if part]
    path = [unquote(p) for p in parts.path.split("/") if p]
    if not sentinels or not 1 <= len(path) <= 2:
        raise ConfigError(
            f"a Sentinel URL names its Sentinels and the service: {SCHEME}://HOST:PORT"
            f"[,HOST:PORT...]/SERVICE[/DB], not {_shown(url)!r}"
        )
    query = parse_qsl(parts.query)
    own = {name: value for name, value in query if name in _SENTINEL_OPTIONS}
    rest = urlencode([(name, value) for name, value in query if name not in _SENTINEL_OPTIONS])
    # the data nodes' options, parsed by redis-py as for a redis:// URL (host and port aside)
    at = f"{userinfo}@" if userinfo else ""
    db = f"/{path[1]}" if len(path) == 2 else ""
    try:
        options: dict[str, Any] = dict(parse_url(f"redis://{at}sentinel{db}?{rest}"))
    except ValueError as exc:
        raise ConfigError(f"invalid option in {_shown(url)!r}: {exc}") from None
    options.pop("host", None)
    sentinel_options: dict[str, Any] = {
        "socket_timeout": SENTINEL_TIMEOUT_S,
        "socket_connect_timeout": SENTINEL_TIMEOUT_S,
        "retry": Retry(NoBackoff(), 0),
    }
    if "sentinel_username" in own:
        sentinel_options["username"] = own["sentinel_username"]
    if "sentinel_password" in own:
        sentinel_options["password"] = own["sentinel_password"]
    return SentinelURL(sentinels, path[0], options, sentinel_options)


P = TypeVar("P", bound=SentinelPool)


def _pool(url: str, pool_class: type[P], kwargs: dict[str, Any]) -> P:
    parsed = parse_sentinel_url(url)
    # (typed since redis 8.2: the ignore is for 8.1)
    manager = Sentinel(parsed.sentinels, sentinel_kwargs=parsed.sentinel_options)  # type: ignore[no-untyped-call,unused-ignore]
    # the URL's options win, as in redis-py's from_url
    return pool_class(parsed.service, manager, **{**kwargs, **parsed.options})


def watched_sentinel_pool(url: str, **kwargs: Any) -> QuickSentinelPool:
    """The store's pool on the primary that the Sentinels of ``url`` name: blocking (``timeout``
    and ``max_connections`` as for :func:`connection.watched_pool`), each call bounded by the
    deadline watch."""
    return _pool(url, QuickSentinelPool, {**kwargs, "connection_class": WatchedSentinelConnection})


def sentinel_client(url: str, **kwargs: Any) -> aioredis.Redis:
    """A plain client (redis-py's own timeouts) on the primary that the Sentinels of ``url``
    name; closing it closes its pool and its Sentinel clients."""
    client: aioredis.Redis = aioredis.Redis.from_pool(_pool(url, SentinelPool, kwargs))
    return client
