"""HTTP endpoints: health, metrics behind the admin login, and events from a site's backend."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from cuewire.identity import sign
from cuewire.settings import Settings
from cuewire.sites import Site, Sites
from support.harness import write
from support.servers import WITH_CLUSTER, LiveServer, deadlines_settled
from support.visitor import Visitor

BACKENDS = WITH_CLUSTER  # the store tests run on a Redis Cluster too

CART = """
rules:
  - id: abandoned
    trigger:
      absence:
        after: {type: custom, name: add_to_cart}
        missing: {type: custom, name: purchase}
        within: 1s
    show: {template: note}
"""


IDENTITY_SECRET = "identity-secret-of-the-test-site"


@pytest.fixture
def server(settings: Settings, tmp_path: Path) -> Iterator[LiveServer]:
    write(tmp_path / "rules" / "cart.yaml", textwrap.dedent(CART))
    configured = replace(settings, rules_dir=tmp_path / "rules", admin_password="s3cret")

    def sites(origin: str) -> Sites:
        site = Site(origins=[origin], api_key="backend-key", identity_secret=IDENTITY_SECRET)
        return Sites({"test-site": site})

    with LiveServer(configured, sites) as running:
        yield running


def test_healthz_reports_store_rules_templates_and_version(server: LiveServer) -> None:
    body = httpx.get(server.url + "/healthz").json()
    assert body["ok"] is True
    assert body["store"]["reachable"] is True
    assert body["rules"] == {"loaded": 1, "error": None}
    assert body["templates"]["loaded"] == 1
    assert body["version"]


def test_metrics_need_the_admin_login(server: LiveServer) -> None:
    assert httpx.get(server.url + "/metrics").status_code == 401
    assert httpx.get(server.url + "/metrics", auth=("admin", "wrong")).status_code == 401
    ok = httpx.get(server.url + "/metrics", auth=("admin", "s3cret"))
    assert ok.status_code == 200
    assert "cuewire_timer_lateness_seconds_bucket" in ok.text


def test_admin_views_are_off_without_a_password(settings: Settings) -> None:
    with LiveServer(settings, lambda o: Sites({"test-site": Site(origins=[o])})) as plain:
        response = httpx.get(plain.url + "/metrics", auth=("admin", ""))
        assert response.status_code == 503
        assert "CUEWIRE_ADMIN_PASSWORD" in response.text


async def backend(server: LiveServer, key: str, body: dict[str, object]) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.post(
            server.url + "/v1/events", json=body, headers={"Authorization": f"Bearer {key}"}
        )


async def test_a_purchase_from_the_backend_cancels_the_abandonment_prompt(
    server: LiveServer,
) -> None:
    async with Visitor(server.url) as v:
        signed = v.event("identify", user_id="user-42", signature=sign(IDENTITY_SECRET, "user-42"))
        await v.send(signed, v.event("custom", name="add_to_cart"))
        purchase = {"type": "custom", "name": "purchase", "ts": 1, "seq": 1, "url": "backend:"}
        response = await backend(
            server, "backend-key", {"site": "test-site", "user_id": "user-42", "events": [purchase]}
        )
        assert response.status_code == 200
        assert v.info
        assert response.json() == {"accepted": 1, "rejected": [], "session": v.info["session"]}
        await deadlines_settled(server)
        await v.barrier()
        assert v.prompts == []


async def test_without_the_backend_purchase_the_prompt_comes(server: LiveServer) -> None:
    async with Visitor(server.url) as v:
        await v.send(v.event("custom", name="add_to_cart"))
        prompt = await v.wait_prompt()
        assert prompt["rule"] == "abandoned"


async def test_a_wrong_backend_key_gets_401_and_stores_nothing(server: LiveServer) -> None:
    async with Visitor(server.url) as v:
        assert v.info
        event = {"type": "custom", "name": "purchase", "ts": 1, "seq": 1, "url": "backend:"}
        body = {"site": "test-site", "visitor": "v_visitor01", "events": [event]}
        response = await backend(server, "guess", body)
        assert response.status_code == 401
        assert response.json()["code"] == "unauthorized"
        facts = await server.call(
            server.services.store.session_facts("test-site", v.info["session"])
        )
        assert "c:purchase" not in facts


async def test_a_body_nested_too_deeply_is_refused_with_a_code_not_a_server_error(
    server: LiveServer,
) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.post(
            server.url + "/v1/events",
            content=b'{"site": "test-site", "events": [' + b"[" * 3000 + b"]" * 3000 + b"]}",
            headers={"Authorization": "Bearer backend-key"},
        )
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_batch"


async def test_backend_batches_get_per_event_reasons(server: LiveServer) -> None:
    async with Visitor(server.url):
        good = {"type": "custom", "name": "purchase", "ts": 1, "seq": 7, "url": "backend:"}
        bad = {"type": "custom", "ts": 1, "seq": 8, "url": "backend:"}
        response = await backend(
            server,
            "backend-key",
            {"site": "test-site", "visitor": "v_visitor01", "events": [good, bad]},
        )
        assert response.json()["accepted"] == 1
        assert response.json()["rejected"] == [
            {
                "index": 1,
                "code": "invalid_event",
                "reason": "custom: Object missing required field `name`",
            }
        ]
