"""The QA live view with several processes (#11): `cuewire serve --workers 2` on one real
Redis, and two separate `cuewire serve` processes on it. Admin sockets land on every process,
visitors on every process; each admin feed, whichever process serves it, shows every
visitor's events and the firing, and a token from one process admits on the others.

Which process holds a socket is read from /healthz: a visitor socket counts in
``connections``, an admin socket's feed is the task ``qa-feed:<sid>``.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
import socketio

from cuewire.admin.qa_feed import FEED_TASK
from support.paths import FIXTURES
from support.processes import ServerProcess, sites_file, start_all
from support.servers import free_port
from support.visitor import Visitor
from support.waiting import eventually

PASSWORD = "qa-multi-secret"
BASIC = "Basic " + base64.b64encode(f"admin:{PASSWORD}".encode()).decode()
PRODUCT = "http://shop.test/product/boots"
TRIES = 24  # sockets opened at most until every process holds one (the kernel picks)


class Admin:
    """An admin client of the /admin namespace that keeps its batches and audit records."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.sio = socketio.AsyncClient(serializer="msgpack", reconnection=False)
        self.hello: list[Any] = []
        self.events: dict[str, list[str]] = {}  # session: event types, in order
        self.records: list[dict[str, str]] = []
        self.sio.on("hello", self.hello.append, namespace="/admin")
        self.sio.on("batches", self._on_batches, namespace="/admin")
        self.sio.on("audit", self._on_audit, namespace="/admin")

    def _on_batches(self, data: dict[str, Any]) -> None:
        for batch in data["batches"]:
            self.events.setdefault(batch["session"], []).extend(e["type"] for e in batch["events"])

    def _on_audit(self, data: dict[str, Any]) -> None:
        self.records.extend(data["records"])

    async def connect(self, token: str) -> Admin:
        await self.sio.connect(
            self.url,
            namespaces=["/admin"],
            auth={"token": token, "site": "test-site"},
            headers={"Origin": self.url},
            transports=["websocket"],
            wait_timeout=5,
        )
        await self.sio.emit("hello", {"site": "test-site"}, namespace="/admin")
        await eventually(lambda: self.hello, what="the feed's hello")  # its task is running
        return self

    @property
    def feed(self) -> str:
        return FEED_TASK + str(self.sio.get_sid("/admin"))


def mint(url: str) -> str:
    reply = httpx.get(url + "/qa/api/token", headers={"Authorization": BASIC})
    assert reply.status_code == 200
    return str(reply.json()["token"])


async def census(urls: list[str], processes: int) -> dict[int, dict[str, Any]]:
    """A /healthz answer from each of ``processes`` processes (by pid) serving ``urls``, each
    asked after this call began, over a connection of its own (so the kernel may hand it to
    any worker of a port)."""
    seen: dict[int, dict[str, Any]] = {}

    async def ask() -> int:
        for url in urls:
            async with httpx.AsyncClient(timeout=2) as client:
                body = (await client.get(url + "/healthz")).json()
            seen[body["worker"]["pid"]] = body
        return len(seen)

    await eventually(
        ask,
        lambda n: n >= processes,
        timeout=20,
        interval=0.01,
        what=f"{processes} processes answering /healthz",
        ignoring=(httpx.HTTPError,),
    )
    return seen


async def spread(
    stack: AsyncExitStack, urls: list[str], processes: int, token: str
) -> tuple[list[Admin], list[Visitor]]:
    """Admin sockets, then visitor sockets, opened round the ``urls`` until every one of the
    ``processes`` holds at least one of each; each visitor sends a page view."""
    admins: list[Admin] = []
    for n in range(TRIES):
        admin = await Admin(urls[n % len(urls)]).connect(token)
        stack.push_async_callback(admin.sio.disconnect)
        admins.append(admin)
        tasks = [set(body["tasks"]) for body in (await census(urls, processes)).values()]
        if all(any(a.feed in names for a in admins) for names in tasks):
            break
    else:
        pytest.fail(f"no admin socket reached every process in {TRIES} tries")
    visitors: list[Visitor] = []
    for n in range(TRIES):
        tab = Visitor(urls[n % len(urls)], visitor=f"v_multi{n:04d}")
        await stack.enter_async_context(tab)
        visitors.append(tab)
        ack = await tab.send(tab.event("page_view", "http://shop.test/"))
        assert ack["accepted"] == 1
        held = [body["connections"] for body in (await census(urls, processes)).values()]
        assert sum(held) == len(visitors)
        if all(held):
            break
    else:
        pytest.fail(f"no visitor socket reached every process in {TRIES} tries")
    return admins, visitors


async def every_feed_shows_everything(admins: list[Admin], visitors: list[Visitor]) -> None:
    """One visitor views a product and its 1 s hesitation deadline fires (on whichever
    process claims it); every admin feed shows every visitor's events and that firing."""
    shopper = visitors[-1]
    assert (await shopper.send(shopper.event("page_view", PRODUCT)))["accepted"] == 1
    prompt = await shopper.wait_prompt(timeout=10)
    assert prompt["rule"] == "hesitate-product"
    sessions = {v.info["session"]: v for v in visitors if v.info}
    assert len(sessions) == len(visitors)
    wanted = {s: ["page_view"] for s in sessions}
    wanted[prompt_session(shopper)] = ["page_view", "page_view"]

    def fired(admin: Admin) -> list[tuple[str, str, str]]:
        return [
            (r["session"], r["rule"], r.get("prompt", ""))
            for r in admin.records
            if r.get("outcome") == "fired"
        ]

    firing = [(prompt_session(shopper), "hesitate-product", prompt["id"])]
    for admin in admins:
        await eventually(
            lambda: {s: admin.events.get(s) for s in sessions},  # noqa: B023 (awaited here)
            lambda got: got == wanted,
            timeout=5,
            what="every visitor's events in the admin feed",
        )
        await eventually(
            lambda: fired(admin),  # noqa: B023 (awaited here)
            lambda got: got == firing,
            timeout=5,
            what="the firing in the admin feed",
        )
    await shopper.barrier()
    assert [p["id"] for p in shopper.prompts] == [prompt["id"]]  # fired once, across processes


def prompt_session(visitor: Visitor) -> str:
    assert visitor.info is not None
    return str(visitor.info["session"])


@pytest.fixture
def admin_env() -> dict[str, str]:
    return {"CUEWIRE_ADMIN_PASSWORD": PASSWORD}


@pytest.fixture
def pool(clean_redis: str, tmp_path: Path, admin_env: dict[str, str]) -> Iterator[ServerProcess]:
    """`cuewire serve --workers 2` with an admin password and no CUEWIRE_SECRET: the parent
    draws one secret for both workers."""
    port = free_port()
    sites = sites_file(tmp_path / "sites.yaml", port)
    env = admin_env  # no CUEWIRE_SECRET
    server = ServerProcess(
        clean_redis, FIXTURES / "rules", FIXTURES / "templates", sites, port, env, workers=2
    ).start()
    yield server
    server.stop()


async def test_the_qa_feed_of_either_worker_shows_every_visitor_and_the_firing(
    pool: ServerProcess,
) -> None:
    token = mint(pool.url)  # minted by one worker; the admin sockets below land on both
    async with AsyncExitStack() as stack:
        admins, visitors = await spread(stack, [pool.url], 2, token)
        await every_feed_shows_everything(admins, visitors)


@pytest.fixture
def pair(
    clean_redis: str, tmp_path: Path, admin_env: dict[str, str]
) -> Iterator[list[ServerProcess]]:
    """Two separate `cuewire serve` processes (one worker each) on one Redis, with the same
    CUEWIRE_SECRET, as two hosts would be."""
    ports = [free_port(), free_port()]
    sites = sites_file(tmp_path / "sites.yaml", *ports)
    env = {**admin_env, "CUEWIRE_SECRET": "one-secret-for-every-process"}
    servers = [
        ServerProcess(clean_redis, FIXTURES / "rules", FIXTURES / "templates", sites, port, env)
        for port in ports
    ]
    try:
        start_all(*servers)
        yield servers
    finally:
        for server in servers:
            server.stop()


async def test_the_qa_feed_of_either_process_shows_every_visitor_and_the_firing(
    pair: list[ServerProcess],
) -> None:
    token = mint(pair[0].url)  # good on the other process too: the same secret
    async with AsyncExitStack() as stack:
        admins, visitors = await spread(stack, [s.url for s in pair], 2, token)
        assert {a.url for a in admins} == {s.url for s in pair}
        await every_feed_shows_everything(admins, visitors)


async def test_without_a_shared_secret_a_token_of_one_process_is_refused_by_another(
    clean_redis: str, tmp_path: Path, admin_env: dict[str, str]
) -> None:
    """The counterpart of the pool's shared secret: two separate processes with no
    CUEWIRE_SECRET each sign with a key of their own."""
    ports = [free_port(), free_port()]
    sites = sites_file(tmp_path / "sites.yaml", *ports)
    env = admin_env  # no CUEWIRE_SECRET
    servers = [
        ServerProcess(clean_redis, FIXTURES / "rules", FIXTURES / "templates", sites, port, env)
        for port in ports
    ]
    try:
        start_all(*servers)
        token = mint(servers[0].url)
        admin = await Admin(servers[1].url).connect(mint(servers[1].url))
        await admin.sio.disconnect()
        stranger = Admin(servers[1].url)
        with pytest.raises(socketio.exceptions.ConnectionError):
            await stranger.connect(token)
    finally:
        for server in servers:
            server.stop()
