"""Wire protocol v1 as docs/protocol.md states it, spoken by a python-socketio client."""

from __future__ import annotations

import pytest
import socketio

from support.servers import LiveServer, deadlines_settled
from support.visitor import Visitor

PRODUCT = "http://shop.test/product/boots"


async def test_connect_gets_a_new_session(live: LiveServer) -> None:
    async with Visitor(live.url) as v:
        assert v.info is not None
        assert v.info["session"].startswith("s_")
        assert v.info["visitor"] == "v_visitor01"
        assert v.info["returning"] is False


async def test_a_live_session_is_resumed_and_a_second_session_is_returning(
    live: LiveServer,
) -> None:
    async with Visitor(live.url) as first:
        assert first.info
        await first.send(first.event("page_view"))
        sid = first.info["session"]
    async with Visitor(live.url, session=sid) as again:
        assert again.info == {"session": sid, "visitor": "v_visitor01", "returning": False}
    async with Visitor(live.url, session="s_expiredXXXX") as later:
        assert later.info
        assert later.info["session"] != sid
        assert later.info["returning"] is True


async def test_mixed_batch_keeps_valid_events_and_names_the_invalid(live: LiveServer) -> None:
    async with Visitor(live.url) as v:
        ack = await v.send(
            v.event("page_view", PRODUCT),
            v.event("scroll", PRODUCT, depth="lots"),
            {"type": "teleport", "ts": 1, "seq": 99, "url": PRODUCT},
            "not a map",
            v.event("custom", PRODUCT, name="add_to_cart", props={"sku": "B1", "price": 120}),
            v.event("click", PRODUCT),
        )
        assert ack["accepted"] == 2
        reasons = {r["index"]: r["reason"] for r in ack["rejected"]}
        assert {r["code"] for r in ack["rejected"]} == {"invalid_event"}
        assert reasons[1] == "scroll.depth: Expected `int`, got `str`"
        assert "type" in reasons[2] and "teleport" in reasons[2]
        assert reasons[3] == "an event must be a map"
        assert reasons[5] == "click: Object missing required field `selector`"


async def test_resent_events_are_not_counted_twice(live: LiveServer) -> None:
    async with Visitor(live.url) as v:
        batch = [v.event("page_view", PRODUCT), v.event("click", PRODUCT, selector="#buy")]
        assert (await v.send(*batch))["accepted"] == 2
        assert (await v.send(*batch))["accepted"] == 2
        assert v.info
        facts = await live_facts(live, v.info["session"])
        assert facts["events"] == "2"
        assert facts["n:click"] == "1"


async def live_facts(live: LiveServer, session: str) -> dict[str, str]:
    return await live.call(live.services.store.session_facts("test-site", session))


async def test_an_oversized_batch_gets_one_rejection_for_the_whole_batch(
    live: LiveServer,
) -> None:
    async with Visitor(live.url) as v:
        ack = await v.send(*[v.event("click", PRODUCT, selector="a") for _ in range(103)])
        assert ack == {
            "accepted": 0,
            "rejected": [
                {
                    "index": -1,
                    "code": "batch_too_large",
                    "reason": "batch too large: 103 events, at most 100 per batch",
                }
            ],
        }


async def test_a_batch_that_is_not_a_list_is_rejected_whole(live: LiveServer) -> None:
    async with Visitor(live.url) as v:
        ack = await v.sio.call("events", {"type": "click"}, timeout=5)
        assert ack == {
            "accepted": 0,
            "rejected": [
                {
                    "index": -1,
                    "code": "invalid_batch",
                    "reason": "events must be a list of event maps",
                }
            ],
        }


async def test_rate_limit_rejects_the_excess_with_a_reason(live: LiveServer) -> None:
    async with Visitor(live.url) as v:
        first = await v.send(*[v.event("click", PRODUCT, selector="a") for _ in range(100)])
        second = await v.send(*[v.event("click", PRODUCT, selector="a") for _ in range(100)])
        third = await v.send(*[v.event("click", PRODUCT, selector="a") for _ in range(100)])
        assert first["accepted"] == 100 and second["accepted"] == 100
        assert third["accepted"] < 100
        assert third["rejected"][0]["reason"].startswith("rate limit:")
        assert {r["code"] for r in third["rejected"]} == {"rate_limited"}
        assert third["retry_ms"] > 0


@pytest.mark.parametrize(
    ("kwargs", "code", "reason"),
    [
        ({"site": "nope"}, "unknown_site", "unknown site key"),
        (
            {"origin": "https://evil.example"},
            "origin_not_allowed",
            "origin not allowed for this site",
        ),
        ({"visitor": "x"}, "invalid_auth", "invalid auth: visitor: Expected `str` of length >= 8"),
    ],
)
async def test_bad_connects_are_refused_with_a_code_and_a_reason(
    live: LiveServer, kwargs: dict[str, str], code: str, reason: str
) -> None:
    v = Visitor(live.url, **kwargs)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await v.connect()
    await v.sio.eio.disconnect()
    assert v.refused == reason
    assert v.refused_data == {"code": code, "reason": reason, "retry_ms": None}


async def test_event_rule_pushes_a_rendered_prompt(live: LiveServer) -> None:
    async with Visitor(live.url) as v:
        await v.send(v.event("page_view", PRODUCT), v.event("exit_intent", PRODUCT))
        prompt = await v.wait_prompt()
        assert prompt["rule"] == "exit-product"
        assert prompt["template"] == "note"
        assert prompt["kind"] == "modal"
        assert prompt["variant"] is None
        assert prompt["id"].startswith("p_")
        assert "Leaving so soon?" in prompt["html"]


async def test_a_client_that_asks_takes_its_batch_s_prompt_in_the_ack(live: LiveServer) -> None:
    """Connected with ``prompt_in_ack``, the prompt a batch causes comes in that batch's ack
    (one frame instead of two), as the push would carry it, and is not pushed."""
    async with Visitor(live.url, visitor="v_pushed01") as pushed:
        await pushed.send(pushed.event("page_view", PRODUCT), pushed.event("exit_intent", PRODUCT))
        push = await pushed.wait_prompt()
    async with Visitor(live.url, visitor="v_inack001", prompt_in_ack=True) as v:
        ack = await v.send(v.event("page_view", PRODUCT), v.event("exit_intent", PRODUCT))
        [prompt] = ack["prompts"]
        await v.barrier()
        assert v.prompts == []
    assert (prompt["rule"], prompt["kind"], prompt["template"]) == ("exit-product", "modal", "note")
    assert "Leaving so soon?" in prompt["html"]
    assert prompt.keys() == push.keys()
    assert {k: v for k, v in prompt.items() if k != "id"} == {
        k: v for k, v in push.items() if k != "id"
    }


async def test_a_deadline_s_prompt_is_pushed_to_a_client_that_takes_prompts_in_acks(
    live: LiveServer,
) -> None:
    """No batch is waiting for an ack when a deadline fires: its prompt is pushed."""
    async with Visitor(live.url, prompt_in_ack=True) as v:
        ack = await v.send(v.event("page_view", PRODUCT))
        assert "prompts" not in ack
        prompt = await v.wait_prompt(timeout=5)
        assert prompt["rule"] == "hesitate-product"


async def test_event_rule_respects_its_page_targeting(live: LiveServer) -> None:
    async with Visitor(live.url) as v:
        ack = await v.send(
            v.event("page_view", "http://shop.test/blog/x"),
            v.event("exit_intent", "http://shop.test/blog/x"),
        )
        # the ack comes after the rules ran; a prompt would have been pushed before it
        assert ack["accepted"] == 2
        assert v.prompts == []


async def test_timer_rule_fires_after_its_deadline(live: LiveServer) -> None:
    async with Visitor(live.url) as v:
        await v.send(v.event("page_view", PRODUCT))
        prompt = await v.wait_prompt(timeout=5)
        assert prompt["rule"] == "hesitate-product"
        assert "Need help?" in prompt["html"]


async def test_timer_rule_is_cancelled_by_the_awaited_event(live: LiveServer) -> None:
    async with Visitor(live.url) as v:
        await v.send(v.event("page_view", PRODUCT))
        await v.send(v.event("custom", PRODUCT, name="add_to_cart"))
        await deadlines_settled(live)
        await v.barrier()
        assert v.prompts == []


async def test_timer_rule_is_cancelled_by_leaving_the_page(live: LiveServer) -> None:
    async with Visitor(live.url) as v:
        await v.send(v.event("page_view", PRODUCT))
        await v.send(v.event("page_view", "http://shop.test/cart", spa=True))
        await deadlines_settled(live)
        await v.barrier()
        assert v.prompts == []


async def test_a_rule_fires_once_per_session(live: LiveServer) -> None:
    async with Visitor(live.url) as v:
        await v.send(v.event("page_view", PRODUCT), v.event("exit_intent", PRODUCT))
        await v.wait_prompt()
        again = await v.send(v.event("exit_intent", PRODUCT))
        assert again["accepted"] == 1  # acked after the rules ran: a prompt would be here
        assert [p["rule"] for p in v.prompts] == ["exit-product"]
        audit = await live.call(live.services.store.read_audit("test-site", 100))
        assert sorted(r["outcome"] for r in audit if r["rule"] == "exit-product") == [
            "fired",
            "suppressed",
        ]


async def test_an_overlong_field_is_rejected_with_its_limit(live: LiveServer) -> None:
    async with Visitor(live.url) as v:
        ack = await v.send(v.event("click", PRODUCT, selector="a" * 5000))
        assert ack["accepted"] == 0
        assert ack["rejected"][0]["reason"] == "click.selector: Expected `str` of length <= 2048"
        assert ack["rejected"][0]["code"] == "invalid_event"


async def test_a_message_past_the_payload_limit_drops_only_that_connection(
    live: LiveServer,
) -> None:
    v = await Visitor(live.url).connect()
    huge = [v.event("custom", PRODUCT, name="x", props={f"k{i}": "y" * 2000 for i in range(40)})]
    with pytest.raises(socketio.exceptions.SocketIOError):
        await v.send(*huge, timeout=1)
    await v.sio.disconnect()
    async with Visitor(live.url, visitor="v_another01") as other:
        assert (await other.send(other.event("page_view", PRODUCT)))["accepted"] == 1
