"""Outbound webhooks: the signed payload, retries with backoff on 5xx and connection errors,
none on 4xx, giving up after the attempts, and one POST per firing of a rule with a
``webhook`` action through the real pipeline.

The sender gets its HTTP client from outside: here a real receiver on loopback, or an
``httpx.MockTransport`` where a failure must be scripted per attempt. The pauses between
attempts go to a recorder instead of the event loop's sleep: they are counted, not waited.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import textwrap
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from cuewire.settings import Settings
from cuewire.sites import Site, Sites
from cuewire.webhooks import SIGNATURE_HEADER, Sent, Webhooks
from support.harness import write
from support.receiver import Receiver
from support.servers import WITH_CLUSTER, LiveServer, free_port
from support.visitor import Visitor
from support.waiting import eventually

BACKENDS = WITH_CLUSTER  # the store tests run on a Redis Cluster too

SECRET = "webhook-secret-of-the-test-site"
PAYLOAD = {"site": "test-site", "rule": "exit-hook", "cause": "exit_intent", "at": 1}
PRODUCT = "http://shop.test/product/1"


class Pauses(list[float]):
    """Stands in for ``asyncio.sleep`` between attempts: records each pause, waits none."""

    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


def expected_signature(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5) as http:
        yield http


async def test_the_payload_is_posted_as_json_signed_with_the_site_secret(
    client: httpx.AsyncClient,
) -> None:
    async with Receiver() as receiver:
        hooks = Webhooks(client, sleep=Pauses())
        sent = await hooks.deliver(receiver.url, PAYLOAD, {"X-Team": "growth"}, SECRET)
    assert sent is Sent.DELIVERED
    [got] = receiver.got
    assert json.loads(got.body) == PAYLOAD
    assert got.headers["content-type"] == "application/json"
    assert got.headers["x-team"] == "growth"
    assert got.headers[SIGNATURE_HEADER.lower()] == expected_signature(got.body)


async def test_without_a_secret_nothing_is_signed(client: httpx.AsyncClient) -> None:
    async with Receiver() as receiver:
        sent = await Webhooks(client, sleep=Pauses()).deliver(receiver.url, PAYLOAD, {}, None)
    assert sent is Sent.DELIVERED
    [got] = receiver.got
    assert SIGNATURE_HEADER.lower() not in got.headers


async def test_a_5xx_is_retried_with_growing_pauses_until_it_is_taken(
    client: httpx.AsyncClient,
) -> None:
    pauses = Pauses()
    async with Receiver(answers=[500, 503, 200]) as receiver:
        sent = await Webhooks(client, sleep=pauses).deliver(receiver.url, PAYLOAD, {}, SECRET)
    assert sent is Sent.DELIVERED
    assert len(receiver.got) == 3
    assert len({got.body for got in receiver.got}) == 1  # the same body each time
    assert all(
        got.headers[SIGNATURE_HEADER.lower()] == expected_signature(got.body)
        for got in receiver.got
    )
    assert pauses == [0.5, 1.0]


async def test_a_4xx_is_not_retried(client: httpx.AsyncClient) -> None:
    pauses = Pauses()
    async with Receiver(answers=[404]) as receiver:
        sent = await Webhooks(client, sleep=pauses).deliver(receiver.url, PAYLOAD, {}, SECRET)
    assert sent is Sent.REFUSED
    assert len(receiver.got) == 1
    assert pauses == []


async def test_it_gives_up_after_the_attempts_without_a_last_useless_pause(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    pauses = Pauses()
    async with Receiver(answers=[502] * 10) as receiver:
        sent = await Webhooks(client, sleep=pauses).deliver(receiver.url, PAYLOAD, {}, SECRET)
    assert sent is Sent.GAVE_UP
    assert len(receiver.got) == 4
    assert pauses == [0.5, 1.0, 2.0]  # no pause after the last attempt
    assert any(r.levelname == "ERROR" and "gave up" in r.getMessage() for r in caplog.records)


async def test_nobody_listening_is_retried_then_given_up(client: httpx.AsyncClient) -> None:
    pauses = Pauses()
    closed = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens there
    sent = await Webhooks(client, sleep=pauses).deliver(closed, PAYLOAD, {}, SECRET)
    assert sent is Sent.GAVE_UP
    assert pauses == [0.5, 1.0, 2.0]


async def test_a_connection_error_is_retried_and_the_next_attempt_delivers() -> None:
    attempts: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        attempts.append(request)
        if len(attempts) == 1:
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(204)

    pauses = Pauses()
    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
        sent = await Webhooks(http, sleep=pauses).deliver(
            "http://crm.test/hook", PAYLOAD, {}, SECRET
        )
    assert sent is Sent.DELIVERED
    assert len(attempts) == 2
    assert attempts[0].content == attempts[1].content
    assert pauses == [0.5]


async def test_leaving_waits_for_a_delivery_in_flight(client: httpx.AsyncClient) -> None:
    async with Receiver(answers=[503]) as receiver:
        async with Webhooks(client, sleep=Pauses()) as hooks:
            task = hooks.send(receiver.url, PAYLOAD, {}, SECRET)
        assert task.done()
        assert task.result() is Sent.DELIVERED
        assert len(receiver.got) == 2


# ---- through the real pipeline ------------------------------------------------------------

HOOK_RULE = """
rules:
  - id: exit-hook
    trigger:
      event: {{type: exit_intent}}
    webhook:
      url: {url}
      headers: {{X-Team: growth}}
"""


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with Receiver() as running:
        yield running


@pytest.fixture
def hooked(settings: Settings, tmp_path: Path, receiver: Receiver) -> Iterator[LiveServer]:
    write(tmp_path / "rules" / "hook.yaml", textwrap.dedent(HOOK_RULE.format(url=receiver.url)))
    configured = replace(settings, rules_dir=tmp_path / "rules")

    def sites(origin: str) -> Sites:
        return Sites({"test-site": Site(origins=[origin], webhook_secret=SECRET)})

    with LiveServer(configured, sites) as server:
        yield server


async def audit(server: LiveServer) -> list[dict[str, str]]:
    return await server.call(server.services.store.read_audit("test-site", 100))


def webhooks_in_flight(server: LiveServer) -> int:
    states = {s.name: s for s in server.services.supervisor.states()}
    return states["webhooks"].in_flight if "webhooks" in states else 0


async def test_a_rule_with_a_webhook_posts_once_per_firing(
    hooked: LiveServer, receiver: Receiver
) -> None:
    sessions: list[str] = []
    for name in ("v_hooked0001", "v_hooked0002"):
        async with Visitor(hooked.url, visitor=name) as v:
            assert v.info is not None
            sessions.append(v.info["session"])
            first = await v.send(v.event("page_view", PRODUCT), v.event("exit_intent", PRODUCT))
            again = await v.send(v.event("exit_intent", PRODUCT))  # once per session
            assert (first["accepted"], again["accepted"]) == (2, 1)
    # the positive signal: both firings and both refusals are audited, no delivery is running
    records = await eventually(
        lambda: audit(hooked),
        lambda rs: len([r for r in rs if r.get("rule") == "exit-hook"]) == 4,
        what="the audit of two firings and two capped repeats",
    )
    outcomes = sorted(r["outcome"] for r in records if r.get("rule") == "exit-hook")
    assert outcomes == ["fired", "fired", "suppressed", "suppressed"]
    await eventually(lambda: len(receiver.got) == 2, what="two webhook posts")
    await eventually(lambda: webhooks_in_flight(hooked) == 0, what="no delivery in flight")
    assert len(receiver.got) == 2
    bodies = [json.loads(got.body) for got in receiver.got]
    assert sorted(b["session"] for b in bodies) == sorted(sessions)
    for got, body in zip(receiver.got, bodies, strict=True):
        assert got.headers[SIGNATURE_HEADER.lower()] == expected_signature(got.body)
        assert got.headers["x-team"] == "growth"
        assert body["site"] == "test-site"
        assert body["rule"] == "exit-hook"
        assert body["url"] == PRODUCT
        assert body["visitor"] in {"v_hooked0001", "v_hooked0002"}
        assert set(body) == {"site", "session", "visitor", "rule", "cause", "at", "url", "event"}
