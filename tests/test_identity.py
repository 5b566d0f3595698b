"""Identity verification (cuewire.identity): a browser cannot take over another user's id.

The attack: a visitor identifies as the victim's user id, so that the site's backend events by
``user_id`` (a purchase) reach the attacker and the victim's abandonment deadline is never
cancelled. With a site's ``identity_secret`` only a signed identify links a user id; an
unsigned one (where the site allows it) is unverified and never replaces a verified link.
Both store backends, real sockets, the real HTTP endpoint.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from cuewire.explain import explain
from cuewire.identity import sign
from cuewire.settings import Settings
from cuewire.sites import Site, Sites
from support.harness import write
from support.servers import WITH_CLUSTER, LiveServer
from support.visitor import Visitor

BACKENDS = WITH_CLUSTER  # the store tests run on a Redis Cluster too

SECRET = "identity-secret-of-the-test-site"
USER = "user-42"
CART = """
rules:
  - id: abandoned
    trigger:
      absence:
        after: {type: custom, name: add_to_cart}
        missing: {type: custom, name: purchase}
        within: 10m
    show: {template: note}
"""
PURCHASE = {"type": "custom", "name": "purchase", "ts": 1, "seq": 1, "url": "backend:"}
ServerOf = Callable[..., LiveServer]


@pytest.fixture
def serve(settings: Settings, tmp_path: Path) -> Iterator[ServerOf]:
    """Starts a server whose ``test-site`` has the given identity options."""
    write(tmp_path / "rules" / "cart.yaml", textwrap.dedent(CART))
    configured = replace(settings, rules_dir=tmp_path / "rules")
    started: list[LiveServer] = []

    def start(**identity: Any) -> LiveServer:
        def sites(origin: str) -> Sites:
            return Sites({"test-site": Site(origins=[origin], api_key="backend-key", **identity)})

        started.append(LiveServer(configured, sites).__enter__())
        return started[-1]

    yield start
    for server in started:
        server.__exit__(None, None, None)


async def purchase_by_user(server: LiveServer, user_id: str = USER) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.post(
            server.url + "/v1/events",
            json={"site": "test-site", "user_id": user_id, "events": [PURCHASE]},
            headers={"Authorization": "Bearer backend-key"},
        )


async def visitor_facts(server: LiveServer, visitor: str) -> dict[str, str]:
    return dict(await server.call(server.services.store.visitor_facts("test-site", visitor)))


async def session_facts(server: LiveServer, session: str) -> dict[str, str]:
    return dict(await server.call(server.services.store.session_facts("test-site", session)))


async def deadline_pending(server: LiveServer, v: Visitor) -> bool:
    """Whether the session's cart-abandonment deadline is still pending (as the QA view says)."""
    services = server.services
    states = await server.call(
        explain(
            services.store,
            services.runtime.engine(),
            "test-site",
            session_of(v),
            services.clock.now_ms(),
        )
    )
    return {s.rule: s.state for s in states}["abandoned"] == "pending"


def identify(v: Visitor, user_id: str = USER, **fields: Any) -> dict[str, Any]:
    return v.event("identify", user_id=user_id, **fields)


def session_of(v: Visitor) -> str:
    assert v.info
    return str(v.info["session"])


async def test_an_attacker_cannot_take_the_victims_backend_events(serve: ServerOf) -> None:
    server = serve(identity_secret=SECRET)
    async with (
        Visitor(server.url, visitor="v_victim0001") as victim,
        Visitor(server.url, visitor="v_attacker01") as attacker,
    ):
        signed = identify(victim, signature=sign(SECRET, USER))
        ack = await victim.send(signed, victim.event("custom", name="add_to_cart"))
        assert ack == {"accepted": 2, "rejected": []}
        assert await deadline_pending(server, victim)

        # the attacker says the victim's user id last: unsigned, then with a forged signature
        forged = sign("a-guessed-secret-of-some-length", USER)
        ack = await attacker.send(
            identify(attacker),
            identify(attacker, signature=forged),
            attacker.event("custom", name="add_to_cart"),
        )
        assert ack["accepted"] == 1
        assert [(r["index"], r["code"]) for r in ack["rejected"]] == [
            (0, "identity_unverified"),
            (1, "identity_unverified"),
        ]
        assert "requires a signature" in ack["rejected"][0]["reason"]
        assert "does not match" in ack["rejected"][1]["reason"]

        response = await purchase_by_user(server)
        assert response.status_code == 200
        assert response.json()["session"] == session_of(victim)
        assert not await deadline_pending(server, victim)  # the purchase cancelled it
        assert await deadline_pending(server, attacker)  # and never reached the attacker
        assert "c:purchase" not in await session_facts(server, session_of(attacker))
        assert (await session_facts(server, session_of(victim)))["c:purchase"] == "1"
        assert "user_id" not in await visitor_facts(server, "v_attacker01")


async def test_a_signed_identify_is_verified_and_its_signature_never_stored(
    serve: ServerOf,
) -> None:
    server = serve(identity_secret=SECRET)
    async with Visitor(server.url, visitor="v_signed0001") as v:
        signature = sign(SECRET, USER).upper()  # hex is hex, whatever its case
        ack = await v.send(identify(v, traits={"plan": "pro"}, signature=signature))
        assert ack == {"accepted": 1, "rejected": []}
        facts = await visitor_facts(server, "v_signed0001")
        assert (facts["user_id"], facts["user_verified"], facts["trait:plan"]) == (
            USER,
            "1",
            '"pro"',
        )
        stored = await server.call(
            server.services.store.recent_events("test-site", session_of(v), 10)
        )
        assert stored[0]["type"] == "identify" and stored[0]["verified"] is True
        assert "signature" not in stored[0]
        live = await server.call(server.services.store.read_live("test-site", 10))
        assert signature.lower() not in str(live) and signature not in str(live)


async def test_an_unsigned_identify_where_allowed_is_unverified_and_cannot_take_a_link(
    serve: ServerOf,
) -> None:
    server = serve(identity_secret=SECRET, allow_unsigned_identify=True)
    async with (
        Visitor(server.url, visitor="v_victim0001") as victim,
        Visitor(server.url, visitor="v_attacker01") as attacker,
    ):
        await victim.send(
            identify(victim, signature=sign(SECRET, USER)),
            victim.event("custom", name="add_to_cart"),
        )
        ack = await attacker.send(identify(attacker), attacker.event("custom", name="add_to_cart"))
        assert ack == {"accepted": 2, "rejected": []}
        attacker_facts = await visitor_facts(server, "v_attacker01")
        assert (attacker_facts["user_id"], attacker_facts["user_verified"]) == (USER, "0")
        assert (await visitor_facts(server, "v_victim0001"))["user_verified"] == "1"

        response = await purchase_by_user(server)
        assert response.json()["session"] == session_of(victim)
        assert not await deadline_pending(server, victim)
        assert await deadline_pending(server, attacker)


async def test_an_unsigned_identify_never_downgrades_a_verified_visitor(serve: ServerOf) -> None:
    """A verified visitor stays verified, with its user id, after an unsigned identify: in a
    later batch or in the same one."""
    server = serve(identity_secret=SECRET, allow_unsigned_identify=True)
    async with Visitor(server.url) as v:
        ack = await v.send(identify(v, signature=sign(SECRET, USER)))
        assert ack == {"accepted": 1, "rejected": []}
        ack = await v.send(identify(v, "someone-else", traits={"plan": "free"}))
        assert ack == {"accepted": 1, "rejected": []}
        facts = await visitor_facts(server, "v_visitor01")
        assert (facts["user_id"], facts["user_verified"]) == (USER, "1")
        assert facts["trait:plan"] == '"free"'  # its traits are still taken
    async with Visitor(server.url, visitor="v_visitor02") as w:
        await w.send(identify(w, signature=sign(SECRET, USER)), identify(w, "someone-else"))
        facts = await visitor_facts(server, "v_visitor02")
        assert (facts["user_id"], facts["user_verified"]) == (USER, "1")


async def test_a_wrong_signature_is_rejected_even_where_unsigned_is_allowed(
    serve: ServerOf,
) -> None:
    server = serve(identity_secret=SECRET, allow_unsigned_identify=True)
    async with Visitor(server.url) as v:
        ack = await v.send(identify(v, signature="00" * 32), v.event("page_view"))
        assert ack["accepted"] == 1
        assert [(r["index"], r["code"]) for r in ack["rejected"]] == [(0, "identity_unverified")]
        assert "user_id" not in await visitor_facts(server, "v_visitor01")


async def test_backend_events_by_user_id_need_a_verified_link(serve: ServerOf) -> None:
    server = serve()  # no identity_secret: unsigned identify is accepted, unverified
    async with Visitor(server.url) as v:
        ack = await v.send(
            identify(v, signature=sign(SECRET, USER)),  # nothing to check it by
            identify(v, verified=True),  # a client cannot say so itself
        )
        assert ack == {"accepted": 2, "rejected": []}
        assert (await visitor_facts(server, "v_visitor01"))["user_verified"] == "0"
        response = await purchase_by_user(server)
        assert response.status_code == 404
        assert response.json()["code"] == "unknown_visitor"
        assert "c:purchase" not in await session_facts(server, session_of(v))


async def test_the_backend_itself_may_link_a_user_id(serve: ServerOf) -> None:
    """An identify the backend sends (with its API key) is verified: it links the user id."""
    server = serve(identity_secret=SECRET)
    async with Visitor(server.url, visitor="v_linked0001") as v:
        await v.send(v.event("custom", name="add_to_cart"))
        link = {"type": "identify", "user_id": USER, "ts": 1, "seq": 5, "url": "backend:"}
        async with httpx.AsyncClient() as client:
            response = await client.post(
                server.url + "/v1/events",
                json={"site": "test-site", "visitor": "v_linked0001", "events": [link]},
                headers={"Authorization": "Bearer backend-key"},
            )
        assert response.json()["accepted"] == 1
        assert (await visitor_facts(server, "v_linked0001"))["user_verified"] == "1"
        assert await deadline_pending(server, v)
        assert (await purchase_by_user(server)).json()["session"] == session_of(v)
        assert not await deadline_pending(server, v)


def test_the_default_policy_follows_the_secret() -> None:
    origins = ["https://shop.example"]
    assert Site(origins=origins).unsigned_identify_allowed
    assert not Site(origins=origins, identity_secret=SECRET).unsigned_identify_allowed
    assert Site(
        origins=origins, identity_secret=SECRET, allow_unsigned_identify=True
    ).unsigned_identify_allowed
    assert not Site(origins=origins, allow_unsigned_identify=False).unsigned_identify_allowed


async def test_a_hundred_hijack_attempts_route_nothing_to_the_attacker(serve: ServerOf) -> None:
    """The figure for docs/reliability.md: 100 identifies as the victim's user id (50 unsigned,
    50 with forged signatures) from 10 attacker tabs, then 20 backend events by user_id."""
    server = serve(identity_secret=SECRET, allow_unsigned_identify=True)
    async with Visitor(server.url, visitor="v_victim0001") as victim:
        await victim.send(identify(victim, signature=sign(SECRET, USER)))
        attackers = [Visitor(server.url, visitor=f"v_attacker{i:02d}") for i in range(10)]
        rejected = accepted = 0
        for n, attacker in enumerate(attackers):
            await attacker.connect()
            forged = [identify(attacker, signature=f"{n:02d}{k:02d}" * 16) for k in range(5)]
            unsigned = [identify(attacker) for _ in range(5)]
            ack = await attacker.send(*forged, *unsigned)
            accepted += ack["accepted"]
            rejected += sum(r["code"] == "identity_unverified" for r in ack["rejected"])
        assert (accepted, rejected) == (50, 50)  # unsigned: allowed but unverified; forged: never
        async with httpx.AsyncClient() as client:
            for seq in range(20):
                response = await client.post(
                    server.url + "/v1/events",
                    json={
                        "site": "test-site",
                        "user_id": USER,
                        "events": [{**PURCHASE, "seq": 100 + seq}],
                    },
                    headers={"Authorization": "Bearer backend-key"},
                )
                assert response.json()["session"] == session_of(victim)
        assert (await session_facts(server, session_of(victim)))["c:purchase"] == "20"
        for attacker in attackers:
            assert "c:purchase" not in await session_facts(server, session_of(attacker))
            assert (await visitor_facts(server, attacker.auth["visitor"]))["user_verified"] == "0"
            await attacker.sio.disconnect()
