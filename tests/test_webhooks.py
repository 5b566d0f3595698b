"""Reliable webhooks: a firing's webhook goes through the durable outbox, signed the Standard
Webhooks way with the same ``webhook-id`` on every attempt; 5xx, timeouts and refused
connections are retried, a 429 after its Retry-After, any other 4xx is dead-lettered; a
receiver verifies the signature and the replay window; and a server SIGKILLed mid-retry loses
nothing once restarted.

Every receiver is real (support/receiver.py: uvicorn on loopback); the outbox runs on a real
Redis, the embedded store and a Redis Cluster.
"""

from __future__ import annotations

import asyncio
import json
import textwrap
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from cuewire import webhooks
from cuewire.codes import Undelivered
from cuewire.outbox import Job, Outbox, job_json
from cuewire.settings import Settings
from cuewire.sites import Site, Sites
from cuewire.store import RedisStore, open_store
from cuewire.store.base import Queued
from cuewire.webhooks import CHANNEL, Webhooks, WebhookUnverified, sign, verify
from support.harness import write
from support.paths import FIXTURES, ROOT
from support.processes import ServerProcess
from support.receiver import Receiver
from support.servers import WITH_CLUSTER, LiveServer, free_port
from support.visitor import Visitor
from support.waiting import eventually

BACKENDS = WITH_CLUSTER  # the store tests run on a Redis Cluster too

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # the Standard Webhooks form: base64 key
PAYLOAD = {"site": "test-site", "rule": "exit-hook", "cause": "exit_intent", "at": 1}
PRODUCT = "http://shop.test/product/1"


def data_for(url: str) -> dict[str, object]:
    return {"url": url, "headers": {"X-Team": "growth"}, "site": "test-site", "payload": PAYLOAD}


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    """The webhooks' client with the server's timeout (5 s): with a 1 s one, a loaded machine
    timed out a 429's answer now and then, and the retry came after the backoff instead."""
    async with webhooks.new_client() as client:
        yield client


@asynccontextmanager
async def sending(
    store: RedisStore, http: httpx.AsyncClient, max_attempts: int = 8
) -> AsyncIterator[Outbox]:
    """The webhooks outbox on ``store`` with its loop running (short backoff: 20 ms doubling,
    at most 100 ms)."""
    outbox = Outbox(
        store.client,
        store.keys,
        CHANNEL,
        consumer="test",
        poll_s=0.02,
        base_s=0.02,
        max_s=2.0,
        max_attempts=max_attempts,
    )
    hooks = Webhooks(http, lambda site: SECRET if site == "test-site" else None)
    task = asyncio.create_task(outbox.run(hooks.handle))
    try:
        yield outbox
    finally:
        outbox.stop()
        await asyncio.wait_for(task, 5)


async def settled(outbox: Outbox, step: str) -> None:
    async def counts() -> dict[str, int]:
        return (await outbox.depth()).counts

    await eventually(counts, lambda c: c.get(step, 0) >= 1, what=f"a job settled {step}")


async def test_a_receiver_failing_twice_gets_the_event_once_signed_with_the_same_id(
    store: RedisStore, http: httpx.AsyncClient
) -> None:
    async with Receiver(answers=[503, 503]) as receiver, sending(store, http) as outbox:
        await outbox.put(data_for(receiver.url), job_id="msg_p_once")
        await settled(outbox, "done")
    assert [g.status for g in receiver.got] == [503, 503, 200]
    assert receiver.accepted() == {"msg_p_once": 1}
    for got in receiver.got:  # every attempt verifies: same id, body; its own timestamp
        assert verify(SECRET, got.headers, got.body) == PAYLOAD
        assert got.headers["webhook-id"] == "msg_p_once"
        assert got.headers["x-team"] == "growth"
        assert got.headers["content-type"] == "application/json"
    assert (await outbox.depth()).counts == {"retry": 2, "done": 1}


async def test_a_429_is_retried_after_its_retry_after(
    store: RedisStore, http: httpx.AsyncClient
) -> None:
    async with (
        Receiver(answers=[(429, {"Retry-After": "1"})]) as receiver,
        sending(store, http) as outbox,
    ):
        await outbox.put(data_for(receiver.url))
        await settled(outbox, "done")
    first, second = receiver.got
    assert (first.status, second.status) == (429, 200)
    assert second.at - first.at >= 0.95  # not the 20 ms backoff: the receiver's second


async def test_a_400_is_dead_lettered_at_once_with_its_code(
    store: RedisStore, http: httpx.AsyncClient
) -> None:
    async with Receiver(answers=[400]) as receiver, sending(store, http) as outbox:
        job_id = await outbox.put(data_for(receiver.url))
        await settled(outbox, "dead")
        [letter] = await outbox.dead_letters()
    assert len(receiver.got) == 1
    assert (letter.id, letter.code, letter.detail, letter.attempts) == (
        job_id,
        Undelivered.REFUSED,
        "HTTP 400",
        1,
    )
    assert letter.data["payload"] == PAYLOAD


async def test_a_dead_letter_retried_is_sent_again_with_its_id(
    store: RedisStore, http: httpx.AsyncClient
) -> None:
    async with Receiver(answers=[410]) as receiver, sending(store, http) as outbox:
        job_id = await outbox.put(data_for(receiver.url))
        await settled(outbox, "dead")
        assert await outbox.revive(job_id)
        await settled(outbox, "done")
    assert [g.status for g in receiver.got] == [410, 200]
    assert receiver.accepted() == {job_id: 1}


async def test_nobody_listening_and_a_timeout_are_retried_then_dead_lettered(
    store: RedisStore,
) -> None:
    closed = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens there
    async with (
        webhooks.new_client(timeout_s=0.5) as http,
        Receiver(delay_s=1.5) as slow,
        sending(store, http, max_attempts=2) as outbox,
    ):
        await outbox.put(data_for(closed), job_id="msg_closed")
        await outbox.put(data_for(slow.url), job_id="msg_slow")  # the client waits 0.5 s
        await eventually(
            lambda: outbox.dead_letters(), lambda dead: len(dead) == 2, what="two dead letters"
        )
        letters = {d.id: d for d in await outbox.dead_letters()}
    assert (letters["msg_closed"].code, letters["msg_closed"].attempts) == ("unreachable", 2)
    assert (letters["msg_slow"].code, letters["msg_slow"].attempts) == ("timeout", 2)
    assert len(slow.got) == 2


# ---- what a receiver checks ------------------------------------------------------------


def signed(body: bytes, msg_id: str = "msg_1", at: int | None = None) -> dict[str, str]:
    at = int(time.time()) if at is None else at
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(at),
        "webhook-signature": sign(SECRET, msg_id, at, body),
    }


def test_the_signature_is_standard_webhooks_v1() -> None:
    """The published Standard Webhooks test vector (the spec's reference libraries)."""
    body = b'{"test": 2432232314}'
    got = sign(SECRET, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)
    assert got == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_verify_accepts_a_good_delivery_and_refuses_a_changed_one() -> None:
    body = json.dumps(PAYLOAD).encode()
    assert verify(SECRET, signed(body), body) == PAYLOAD
    with pytest.raises(WebhookUnverified, match="signature"):
        verify(SECRET, signed(body), body.replace(b"exit", b"EXIT"))
    with pytest.raises(WebhookUnverified, match="signature"):
        verify("whsec_" + "A" * 32, signed(body), body)  # another site's secret
    with pytest.raises(WebhookUnverified, match="signature"):
        verify(SECRET, signed(body, "msg_1") | {"webhook-id": "msg_2"}, body)
    with pytest.raises(WebhookUnverified, match="header"):
        verify(SECRET, {"webhook-id": "msg_1"}, body)


def test_verify_refuses_a_timestamp_outside_the_replay_window() -> None:
    body = json.dumps(PAYLOAD).encode()
    now = int(time.time())
    assert verify(SECRET, signed(body, at=now - 299), body, now_s=now) == PAYLOAD
    for at in (now - 301, now + 301):
        with pytest.raises(WebhookUnverified, match="replay"):
            verify(SECRET, signed(body, at=at), body, now_s=now)


async def test_the_verifier_in_the_docs_accepts_what_is_sent(
    store: RedisStore, http: httpx.AsyncClient
) -> None:
    """docs/integrations.md's standalone verifier, run as written, on a real delivery."""
    text = (ROOT / "docs" / "integrations.md").read_text(encoding="utf-8")
    snippet = text.split("```python\n", 1)[1].split("```", 1)[0]
    docs: dict[str, Any] = {}
    exec(snippet, docs)
    async with Receiver() as receiver, sending(store, http) as outbox:
        await outbox.put(data_for(receiver.url))
        await settled(outbox, "done")
    [got] = receiver.got
    assert docs["verify"](SECRET, got.headers, got.body) == PAYLOAD
    with pytest.raises(ValueError, match="signature"):
        docs["verify"](SECRET, got.headers, got.body + b" ")


def test_a_whsec_secret_must_be_base64() -> None:
    with pytest.raises(ValueError, match="base64"):
        Site(origins=["http://shop.test"], webhook_secret="whsec_not base64!")
    assert Site(origins=["http://shop.test"], webhook_secret="plain text works").webhook_secret


# ---- with the audit record ------------------------------------------------------------


async def test_a_firing_recorded_twice_queues_its_webhook_once(store: RedisStore) -> None:
    """A deadline's firing claimed again after a crash is recorded again: its audit record is
    written once (the firing's marker) and its job is queued in that same script, so once too.
    On a cluster the job goes before the record, in its own slot: queued twice, with the same
    webhook-id for the receiver to drop the second."""
    record = {"outcome": "fired", "rule": "exit-hook", "firing": "t_1", "at": "1"}
    job = Queued(CHANNEL, job_json("msg_p_t_1", data_for("http://crm.test/hook")), 0)
    for _ in range(2):
        await store.record("test-site", [], [record], [job])
    outbox = Outbox(store.client, store.keys, CHANNEL, consumer="test")
    jobs: list[Job] = await outbox.take()
    assert len(await store.read_audit("test-site", 10)) == 1
    assert {j.id for j in jobs} == {"msg_p_t_1"}
    assert len(jobs) == (2 if store.keys.cluster else 1)


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
    configured = replace(settings, rules_dir=tmp_path / "rules", outbox_poll_s=0.02)

    def sites(origin: str) -> Sites:
        return Sites({"test-site": Site(origins=[origin], webhook_secret=SECRET)})

    with LiveServer(configured, sites) as server:
        yield server


async def audit(server: LiveServer) -> list[dict[str, str]]:
    return await server.call(server.services.store.read_audit("test-site", 100))


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
    records = await eventually(
        lambda: audit(hooked),
        lambda rs: len([r for r in rs if r.get("rule") == "exit-hook"]) == 4,
        what="the audit of two firings and two capped repeats",
    )
    outcomes = sorted(r["outcome"] for r in records if r.get("rule") == "exit-hook")
    assert outcomes == ["fired", "fired", "suppressed", "suppressed"]
    states = {state.name: state for state in hooked.services.supervisor.states()}
    assert states["outbox:webhooks"].running  # supervised: /healthz shows it
    outbox = hooked.services.outboxes[CHANNEL]
    depth = await eventually(
        lambda: hooked.call(outbox.depth()),
        lambda d: d.counts.get("done") == 2 and (d.queued, d.pending, d.due) == (0, 0, 0),
        what="two webhooks done and nothing left queued, pending or due",
    )
    assert depth.counts.get("done") == 2
    assert len(receiver.got) == 2
    bodies = [verify(SECRET, got.headers, got.body) for got in receiver.got]
    assert sorted(b["session"] for b in bodies) == sorted(sessions)
    assert len(receiver.accepted()) == 2  # two webhook-ids
    for got, body in zip(receiver.got, bodies, strict=True):
        assert got.headers["webhook-id"].startswith("msg_p_")
        assert got.headers["x-team"] == "growth"
        assert body["site"] == "test-site"
        assert body["rule"] == "exit-hook"
        assert body["url"] == PRODUCT
        assert body["visitor"] in {"v_hooked0001", "v_hooked0002"}
        assert set(body) == {"site", "session", "visitor", "rule", "cause", "at", "url", "event"}


# ---- a crash mid-retry ------------------------------------------------------------------

FIRINGS = 12
ADMIN = ("admin", "test-admin-password")


def reclaimed(metrics: str) -> float:
    """The restarted process's count of jobs it took over from the killed one."""
    line = 'cuewire_outbox_jobs_total{channel="webhooks",step="reclaimed"}'
    found = [ln.split()[-1] for ln in metrics.splitlines() if ln.startswith(line)]
    return float(found[0]) if found else 0.0


async def test_a_server_killed_mid_retry_loses_nothing_and_doubles_nothing(
    clean_redis: str, tmp_path: Path
) -> None:
    """A real `cuewire serve` on Redis fires 12 webhooks; the receiver answers the first 24
    posts 503, each 0.2 s late. Once 18 posts came (every firing failed once, some twice: some
    wait for their retry, some are in flight), the server is SIGKILLed, then started again:
    every firing reaches the receiver with a 2xx exactly once (lost 0, doubled 0, by
    webhook-id), the ones the dead process held in flight taken over after its 1 s lease."""
    port = free_port()
    sites = write(
        tmp_path / "sites.yaml",
        "sites:\n  test-site:\n"
        f'    origins: ["http://127.0.0.1:{port}"]\n    webhook_secret: "{SECRET}"\n',
    )
    async with Receiver(answers=[503] * (2 * FIRINGS), delay_s=0.2) as receiver:
        rules = write(tmp_path / "rules" / "hook.yaml", HOOK_RULE.format(url=receiver.url))
        env = {
            "CUEWIRE_OUTBOX_LEASE_S": "1",
            "CUEWIRE_OUTBOX_POLL_S": "0.05",
            "CUEWIRE_OUTBOX_BACKOFF_S": "0.2",
            "CUEWIRE_ADMIN_PASSWORD": ADMIN[1],
        }

        def server() -> ServerProcess:
            return ServerProcess(
                clean_redis, rules.parent, FIXTURES / "templates", sites, port, env=env
            )

        first = server().start()
        try:
            for n in range(FIRINGS):
                async with Visitor(first.url, visitor=f"v_crash{n:07d}") as v:
                    ack = await v.send(v.event("exit_intent", PRODUCT))
                    assert ack["accepted"] == 1  # its firing and webhook job are stored
            await eventually(lambda: len(receiver.got) >= 18, what="retries under way")
            first.kill()
            posted_before_kill = len(receiver.got)
        finally:
            first.kill()
        async with open_store(Settings(redis_url=clean_redis)) as store:
            at_kill = await Outbox(store.client, store.keys, CHANNEL).depth()
        second = server().start()
        try:
            await eventually(
                receiver.accepted,
                lambda ids: len(ids) == FIRINGS,
                timeout=30,
                what="every firing accepted",
            )
            async with open_store(Settings(redis_url=clean_redis)) as store:
                outbox = Outbox(store.client, store.keys, CHANNEL)
                depth = await eventually(
                    outbox.depth,
                    lambda d: (d.queued, d.pending, d.due) == (0, 0, 0),
                    what="the outbox empty",
                )
            async with httpx.AsyncClient(auth=ADMIN) as client:
                metrics = (await client.get(f"{second.url}/metrics")).text
        finally:
            second.stop()
    accepted = receiver.accepted()
    lost = FIRINGS - len(accepted)
    doubled = sum(n - 1 for n in accepted.values())
    print(
        f"\nwebhooks through a SIGKILL: firings={FIRINGS} posts={len(receiver.got)} "
        f"posted_before_kill={posted_before_kill} at_kill: waiting_retry={at_kill.due} "
        f"in_flight={at_kill.pending} taken_over={reclaimed(metrics):.0f} "
        f"lost={lost} doubled={doubled} dead={depth.dead}"
    )
    assert (lost, doubled, depth.dead) == (0, 0, 0)
    assert reclaimed(metrics) == at_kill.pending  # the dead process's jobs, none of the live one's
    assert at_kill.due + at_kill.queued == FIRINGS  # none done before (queued: with pending)
    assert all(verify(SECRET, g.headers, g.body)["rule"] == "exit-hook" for g in receiver.got)


# ---- dead letters in the QA view --------------------------------------------------------


async def test_a_refused_webhook_shows_in_the_qa_dead_letters_and_retry_delivers_it(
    settings: Settings, tmp_path: Path
) -> None:
    async with Receiver(answers=[400]) as receiver:
        write(tmp_path / "rules" / "hook.yaml", HOOK_RULE.format(url=receiver.url))
        configured = replace(
            settings, rules_dir=tmp_path / "rules", outbox_poll_s=0.02, admin_password=ADMIN[1]
        )

        def sites(origin: str) -> Sites:
            return Sites({"test-site": Site(origins=[origin], webhook_secret=SECRET)})

        with LiveServer(configured, sites) as server:
            async with Visitor(server.url, visitor="v_deadletter1") as v:
                await v.send(v.event("exit_intent", PRODUCT))
            async with httpx.AsyncClient(base_url=server.url, auth=ADMIN) as admin:

                async def listing() -> dict[str, Any]:
                    got: dict[str, Any] = (await admin.get("/qa/deadletters.json")).json()
                    return got["channels"][CHANNEL]

                hooks = await eventually(listing, lambda c: c["letters"], what="a dead letter")
                [letter] = hooks["letters"]
                assert (letter["code"], letter["detail"]) == ("refused", "HTTP 400")
                assert letter["data"]["url"] == receiver.url
                assert (await admin.get("/qa/deadletters")).status_code == 200
                form = await admin.post("/qa/deadletters/retry", data={"id": letter["id"]})
                assert form.status_code == 415  # JSON only: no cross-site form
                unknown = {"channel": CHANNEL, "id": "msg_none"}
                assert (await admin.post("/qa/deadletters/retry", json=unknown)).status_code == 404
                again = {"channel": CHANNEL, "id": letter["id"]}
                assert (await admin.post("/qa/deadletters/retry", json=again)).json() == {
                    "retried": True
                }
                await eventually(listing, lambda c: c["depth"]["counts"].get("done") == 1)
                assert (await listing())["letters"] == []
            async with httpx.AsyncClient(base_url=server.url) as anonymous:
                assert (await anonymous.get("/qa/deadletters.json")).status_code == 401
    assert [g.status for g in receiver.got] == [400, 200]
    assert receiver.accepted() == {letter["id"]: 1}
