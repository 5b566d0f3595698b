"""The embedded store's server (store/embedded.py): each script compiled once, as Redis does,
and run as before: a chunk's top level runs anew on every call, KEYS and ARGV are the
call's own, a script that sets a global or does not compile fails as it did."""

from __future__ import annotations

import pytest
import redis.exceptions

from cuewire.settings import Settings
from cuewire.store import open_store
from cuewire.store.embedded import CompiledOnce, embedded_client

COUNTER = """
local seen = 0  -- a local of the chunk: made afresh on every call
seen = seen + 1
return {seen, KEYS[1], ARGV[1], redis.call('INCR', KEYS[1])}
"""


def runtime_of(client: object) -> CompiledOnce:
    server = client.connection_pool.connection_kwargs["server"]  # type: ignore[attr-defined]
    runtime = server._lua_runtime
    assert isinstance(runtime, CompiledOnce)
    return runtime


async def test_a_script_is_compiled_once_and_runs_anew_with_each_calls_keys_and_args() -> None:
    client = embedded_client()
    script = client.register_script(COUNTER)
    assert await script(keys=["a"], args=["x"]) == [1, "a", "x", 1]
    assert await script(keys=["b"], args=["y"]) == [1, "b", "y", 1]
    assert await script(keys=["a"], args=["z"]) == [1, "a", "z", 2]
    assert await client.eval(COUNTER, 1, "a", "w") == [1, "a", "w", 3]  # EVAL: the same chunk
    assert runtime_of(client).chunks == 2  # COUNTER, and fakeredis's collectgarbage()
    await client.aclose()


async def test_a_script_that_sets_a_global_or_does_not_compile_fails_as_before() -> None:
    client = embedded_client()
    for _ in range(2):  # the second time from the kept chunk
        with pytest.raises(redis.exceptions.ResponseError, match="global"):
            await client.eval("leaked = 1\nreturn 1", 0)
    with pytest.raises(redis.exceptions.ResponseError, match="unexpected symbol"):
        await client.eval("return (", 0)
    assert await client.eval("return 7", 0) == 7  # the server is well after both
    await client.aclose()


async def test_the_stores_scripts_on_the_embedded_store_are_compiled_once() -> None:
    """Many sessions' batches: the chunks kept are the few scripts run, not one per call."""
    async with open_store(Settings(redis_url=None, key_prefix="cwemb")) as store:
        for i in range(20):
            await store.open_session("test-site", f"v_emb{i:05d}", None, 1_764_000_000_000)
        kept = runtime_of(store.client).chunks
        assert 1 <= kept <= 4
        await store.open_session("test-site", "v_emb99999", None, 1_764_000_000_000)
        assert runtime_of(store.client).chunks == kept
