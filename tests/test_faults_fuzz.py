"""Generated malformed payloads through the socket and the HTTP API: the server never crashes,
answers every batch (a message over the size limit is closed, as docs/protocol.md says), and
still accepts a valid batch afterwards.

One real `cuewire serve` process takes all examples: hypothesis drives one long-lived
connection (reconnecting only when the server closes it). Counts: ``CUEWIRE_FUZZ_SOCKET``
(default 600 batches), ``CUEWIRE_FUZZ_HTTP`` (500 requests), ``CUEWIRE_FUZZ_AUTH`` (200
connects with generated auth); the 10,000 figure in docs/reliability.md is
``CUEWIRE_FUZZ_SOCKET=5000 CUEWIRE_FUZZ_HTTP=4000 CUEWIRE_FUZZ_AUTH=1000``.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import msgpack
import pytest
import socketio
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from support.paths import FIXTURES
from support.processes import ServerProcess
from support.servers import free_port, wait_healthy

T = TypeVar("T")
SOCKET_EXAMPLES = int(os.environ.get("CUEWIRE_FUZZ_SOCKET", "600"))
HTTP_EXAMPLES = int(os.environ.get("CUEWIRE_FUZZ_HTTP", "500"))
AUTH_EXAMPLES = int(os.environ.get("CUEWIRE_FUZZ_AUTH", "200"))
MAX_MESSAGE = 64 * 1024  # Limits.max_payload_bytes
API_KEY = "k-test"
FUZZ = settings(
    deadline=None,
    database=None,
    derandomize=False,
    suppress_health_check=list(HealthCheck),
    print_blob=True,
    phases=[Phase.explicit, Phase.generate],  # no shrinking: each step is a round trip
)

# ---------------------------------------------------------------- strategies

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.binary(max_size=12),
)
anything = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=8,
)
TYPES = [
    "page_view", "click", "scroll", "visibility", "element_visible", "hover", "idle", "active",
    "exit_intent", "form", "custom", "identify", "prompt_shown", "prompt_click",
    "prompt_dismiss", "prompt_snooze", "prompt_optout",
]  # fmt: skip
FIELDS = [
    "ts", "seq", "url", "name", "props", "user_id", "traits", "selector", "depth", "state",
    "element", "ratio", "action", "prompt", "rule", "extra",
]  # fmt: skip
event_like = st.fixed_dictionaries(
    {"type": st.one_of(st.sampled_from(TYPES), scalars)},
    optional={name: st.one_of(scalars, anything) for name in FIELDS},
)
oversize = st.one_of(  # near or over the message limit, or over a count limit
    st.integers(min_value=1_000, max_value=120_000).map(
        lambda n: [{"type": "custom", "name": "big", "ts": 1, "seq": 1, "url": "x" * n}]
    ),
    st.integers(min_value=100, max_value=20_000).map(lambda n: [None] * n),
    st.integers(min_value=0, max_value=3_000).map(
        lambda n: [{"type": "custom", "name": "n", "ts": 1, "seq": 1, "url": "u",
                    "props": {f"k{i}": i for i in range(n)}}]
    ),
)  # fmt: skip
batches = st.one_of(
    anything,
    st.lists(st.one_of(event_like, anything), max_size=8),
    st.lists(event_like, min_size=1, max_size=8),
    oversize,
)


# ---------------------------------------------------------------- the server and a wire to it


class LoggedServer(ServerProcess):
    """`cuewire serve` whose log goes to a file the test reads."""

    def __init__(self, *args: Any, log: Path, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.log = log

    def start(self) -> LoggedServer:
        env = {**os.environ, "CUEWIRE_TIMER_POLL_S": "0.02"}
        with self.log.open("wb") as out:
            proc = self.proc = subprocess.Popen(
                self.args, env=env, stdout=out, stderr=subprocess.STDOUT
            )
        wait_healthy(self.url, 60, lambda: proc.poll() is None)  # a loaded CI machine is slow
        return self


@pytest.fixture
def server(clean_redis: str, tmp_path: Path) -> Iterator[LoggedServer]:
    port = free_port()
    sites = tmp_path / "sites.yaml"
    sites.write_text(
        f'sites:\n  test-site:\n    origins: ["http://127.0.0.1:{port}"]\n    api_key: {API_KEY}\n'
    )
    process = LoggedServer(
        clean_redis, FIXTURES / "rules", FIXTURES / "templates", sites, port, log=tmp_path / "log"
    )
    process.start()
    yield process
    process.stop()


def assert_no_crash(server: LoggedServer) -> None:
    assert server.proc is not None and server.proc.poll() is None, "the server process died"
    log = server.log.read_text(errors="replace")
    assert "Traceback" not in log, log[-4000:]


class Wire:
    """An asyncio loop in a thread holding one visitor connection, for sync hypothesis tests."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.sio: socketio.AsyncClient | None = None
        self.gone = asyncio.Event()
        self.visitors = 0
        self.closed_by_server = 0

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def connect(self, auth: Any = None) -> socketio.AsyncClient:
        sio = socketio.AsyncClient(serializer="msgpack", reconnection=False)
        self.visitors += 1
        auth = (
            auth
            if auth is not None
            else {"site": "test-site", "visitor": f"v_fuzz{self.visitors:06d}"}
        )
        await sio.connect(
            self.url,
            headers={"Origin": self.url},
            auth=auth,
            transports=["websocket"],
            wait_timeout=10,
        )
        return sio

    async def send(self, payload: Any) -> dict[str, Any] | None:
        """The ack, or None when the server closed the connection instead of answering."""
        if self.sio is None or not self.sio.connected:
            self.sio = await self.connect()
            self.gone = asyncio.Event()
            self.sio.on("disconnect", self.gone.set)
        call = asyncio.ensure_future(self.sio.call("events", payload, timeout=10))
        gone = asyncio.ensure_future(self.gone.wait())
        await asyncio.wait([call, gone], return_when=asyncio.FIRST_COMPLETED)
        gone.cancel()
        if call.done():
            ack: dict[str, Any] = call.result()  # a TimeoutError here: a batch got no answer
            return ack
        call.cancel()
        self.closed_by_server += 1
        await self.sio.disconnect()
        self.sio = None
        return None

    def close(self) -> None:
        if self.sio is not None:
            self.run(self.sio.disconnect())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def wire(server: LoggedServer) -> Iterator[Wire]:
    w = Wire(server.url)
    yield w
    w.close()


def valid_event(seq: int = 1) -> dict[str, Any]:
    return {"type": "page_view", "ts": 1_764_000_000_000, "seq": seq, "url": "http://shop.test/"}


def packet_size(payload: Any) -> int | None:
    try:
        return len(msgpack.packb(["events", payload], use_bin_type=True))
    except (OverflowError, TypeError, ValueError):
        return None


# ---------------------------------------------------------------- the tests


@pytest.mark.timeout(60 + SOCKET_EXAMPLES * 0.25)
def test_generated_batches_through_the_socket_are_all_answered(
    server: LoggedServer, wire: Wire
) -> None:
    answered = closed = 0

    @settings(FUZZ, max_examples=SOCKET_EXAMPLES)
    @given(payload=batches)
    def check(payload: Any) -> None:
        nonlocal answered, closed
        size = packet_size(payload)
        if size is None:
            return  # the client cannot encode it either (an integer too large for msgpack)
        ack = wire.run(wire.send(payload))
        if ack is None:
            assert size > MAX_MESSAGE - 1024, f"closed for a {size}-byte message"
            closed += 1
            return
        answered += 1
        assert isinstance(ack["accepted"], int) and ack["accepted"] >= 0
        assert isinstance(ack["rejected"], list)
        if isinstance(payload, list):
            assert ack["accepted"] <= len(payload)
            assert len(ack["rejected"]) <= len(payload) + 1
        else:
            assert ack["accepted"] == 0 and ack["rejected"][0]["index"] == -1

    check()
    fresh = wire.run(wire.connect())
    ack = wire.run(fresh.call("events", [valid_event()], timeout=10))
    wire.run(fresh.disconnect())
    assert ack == {"accepted": 1, "rejected": []} or ack["accepted"] == 1, ack
    assert_no_crash(server)
    print(
        f"\n[fault] socket fuzz: {SOCKET_EXAMPLES} generated batches, {answered} acked, "
        f"{closed} over the message limit closed by the server, 0 unanswered, 0 crashes; "
        "a valid batch accepted afterwards"
    )


@pytest.mark.timeout(60 + AUTH_EXAMPLES * 0.25)
def test_generated_auth_is_refused_or_admitted_never_a_crash(
    server: LoggedServer, wire: Wire
) -> None:
    refused = admitted = 0

    @settings(FUZZ, max_examples=AUTH_EXAMPLES)
    @given(
        auth=st.one_of(
            anything,
            st.fixed_dictionaries(
                {},
                optional={
                    k: st.one_of(anything, st.just("test-site"), st.just("v_fuzzauth01"))
                    for k in ["site", "visitor", "session", "tab", "dnt", "tz"]
                },
            ),
        )
    )
    def check(auth: Any) -> None:
        nonlocal refused, admitted
        if packet_size(auth) is None or auth is None:
            return

        async def attempt() -> bool:
            try:
                sio = await wire.connect(auth)
            except socketio.exceptions.ConnectionError:
                return False
            await sio.disconnect()
            return True

        if wire.run(attempt()):
            admitted += 1
        else:
            refused += 1

    check()
    assert_no_crash(server)
    print(
        f"\n[fault] connect fuzz: {AUTH_EXAMPLES} generated auth maps, {refused} refused, "
        f"{admitted} admitted, 0 crashes"
    )


backend_bodies = st.one_of(
    st.binary(max_size=200),
    anything.map(lambda v: json.dumps(v, default=repr).encode()),
    st.fixed_dictionaries(
        {"events": batches},
        optional={
            "site": st.one_of(st.just("test-site"), anything),
            "visitor": st.one_of(st.just("v_fuzzhttp01"), anything),
            "user_id": anything,
            "extra": anything,
        },
    ).map(lambda v: json.dumps(v, default=repr).encode()),
)


@pytest.mark.timeout(60 + HTTP_EXAMPLES * 0.25)
def test_generated_bodies_through_the_http_api_never_give_a_server_error(
    server: LoggedServer,
) -> None:
    statuses: dict[int, int] = {}
    with httpx.Client(base_url=server.url, timeout=10) as client:
        # a visitor the backend may address
        first = client.post(
            "/v1/events",
            json={"site": "test-site", "visitor": "v_fuzzhttp01", "events": [valid_event()]},
            headers={"Authorization": f"Bearer {API_KEY}"},
        )
        assert first.status_code == 200, first.text

        @settings(FUZZ, max_examples=HTTP_EXAMPLES)
        @given(body=backend_bodies, key=st.sampled_from([API_KEY, "wrong", "x"]))
        def check(body: bytes, key: str) -> None:
            response = client.post(
                "/v1/events",
                content=body,
                headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
            )
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            assert response.status_code < 500, response.text
            assert isinstance(response.json(), dict)

        check()
        after = client.post(
            "/v1/events",
            json={"site": "test-site", "visitor": "v_fuzzhttp01", "events": [valid_event(2)]},
            headers={"Authorization": f"Bearer {API_KEY}"},
        )
        assert after.status_code == 200 and after.json()["accepted"] == 1, after.text
    assert_no_crash(server)
    print(
        f"\n[fault] HTTP fuzz: {HTTP_EXAMPLES} generated bodies to POST /v1/events, statuses "
        f"{dict(sorted(statuses.items()))}, 0 server errors, 0 crashes; a valid batch accepted "
        "afterwards"
    )


@pytest.mark.timeout(120)
def test_generated_credentials_on_the_http_api_give_401_not_a_server_error(
    server: LoggedServer,
) -> None:
    body = {"site": "test-site", "visitor": "v_fuzzhttp01", "events": [valid_event()]}
    with httpx.Client(base_url=server.url, timeout=10) as client:
        # A header value holds no control characters and does not end in white space (RFC
        # 9110, 5.5): the client itself refuses to send those, so they never reach the server.
        sendable = st.characters(codec="utf-8", exclude_categories=["Cc"])
        keys = st.text(sendable, min_size=1, max_size=20).filter(
            lambda k: k == k.rstrip(" ") and k.strip() != API_KEY
        )

        @settings(FUZZ, max_examples=200)
        @given(key=keys)
        def check(key: str) -> None:
            header = ("Bearer " + key).encode("utf-8")
            response = client.post("/v1/events", json=body, headers={"Authorization": header})
            assert response.status_code == 401, (key, response.status_code, response.text)

        check()
    assert_no_crash(server)
