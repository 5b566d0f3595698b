"""The embedded store's server (``memory://``): fakeredis, whose scripts compile once, as
Redis's do.

fakeredis compiles a script's source again at every EVAL and EVALSHA (its Lua runtime's
``execute``). The store's scripts are composed (scripts.py): ingest.lua is 38 kB, more than
a millisecond of compiling per batch, a third of the embedded store's time per batch (a
2,000-visitor replay spent ~5 ms per visitor, ~2 ms of it compiling). Redis compiles a script
once, keeps the function under its SHA-1 and calls it after; this server does the same. A
chunk run again is what its source run again would be: its top level runs anew (its locals
and functions are made afresh), KEYS and ARGV are globals the chunk reads when it runs, and
fakeredis still checks the globals after each script.
"""

from __future__ import annotations

from typing import Any

import fakeredis

# A cap on the chunks kept: the store has some thirty scripts; a client that sends ever-new
# sources (EVAL of generated code) only loses the cache, never grows memory without bound.
MAX_CHUNKS = 256


class CompiledOnce:
    """A fakeredis Lua runtime whose ``execute`` keeps each source's compiled chunk; every
    other attribute is the runtime's own."""

    def __init__(self, runtime: Any) -> None:
        self._runtime = runtime
        self._chunks: dict[bytes | str, Any] = {}

    def execute(self, source: bytes | str, *args: Any) -> Any:
        chunk = self._chunks.get(source)
        if chunk is None:
            try:
                chunk = self._runtime.compile(source)
            except Exception:
                # a source that does not compile: the runtime's own error, worded as before
                return self._runtime.execute(source, *args)
            if len(self._chunks) >= MAX_CHUNKS:
                self._chunks.clear()
            self._chunks[source] = chunk
        return chunk(*args)

    @property
    def chunks(self) -> int:
        """How many compiled chunks are kept (one per distinct source run)."""
        return len(self._chunks)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._runtime, name)


class EmbeddedServer(fakeredis.FakeServer):
    """fakeredis's server, its Lua runtime (made on the first script, ``_lua_runtime``)
    wrapped in :class:`CompiledOnce`."""

    @property
    def _lua_runtime(self) -> CompiledOnce:
        try:
            return self.__dict__["_compiled_once"]  # type: ignore[no-any-return]
        except KeyError:
            raise AttributeError("_lua_runtime") from None  # not made yet: fakeredis makes it

    @_lua_runtime.setter
    def _lua_runtime(self, runtime: Any) -> None:
        self.__dict__["_compiled_once"] = CompiledOnce(runtime)


def embedded_client() -> Any:
    """A client of a new embedded server of its own (``decode_responses``, as the Redis
    store's clients are)."""
    return fakeredis.FakeAsyncRedis(server=EmbeddedServer(), decode_responses=True)
