"""Heatmaps are counted as batches arrive, in the call that stores them (docs/qa.md,
"Heatmaps"): per page and day, per normalised selector and per position cell, for clicks,
rage clicks, dead clicks and hesitation; resends count once, the caps count their overflow,
and the counts expire. On one Redis, the embedded store and a Redis Cluster."""

from __future__ import annotations

from typing import Any

import pytest

from cuewire import heatmaps
from cuewire.clock import DAY_MS, day_of
from cuewire.codes import Reject
from cuewire.facts import FactChanges
from cuewire.heatmaps import (
    KEEP_DAYS,
    cell_of,
    days_back,
    layout_of,
    normalise_selector,
    page_path,
    render_width,
    width_counted,
)
from cuewire.origin import Origin
from cuewire.settings import Limits, Settings
from cuewire.sites import Site
from cuewire.store import RedisStore
from cuewire.store.heatmaps import read_heatmap, read_pages
from cuewire.validation import validate_batch
from support.harness import T0, Harness
from support.servers import WITH_CLUSTER

BACKENDS = WITH_CLUSTER

SITE = "test-site"
SHOP = "http://shop.test"
PRODUCT = f"{SHOP}/product/boots?ref=mail#top"


def test_selectors_lose_positions_and_generated_names() -> None:
    assert normalise_selector("div.card:nth-child(3) > button#buy") == "div.card > button#buy"
    assert normalise_selector("ul > li:nth-of-type(2)  >  a.link:first-child") == "ul > li > a.link"
    assert normalise_selector("#item-12345 > button.css-1x2y3z.primary") == "button.primary"
    assert normalise_selector("div.sc-bdVaJa > span") == "div > span"
    assert normalise_selector("#add\\:cart") == "#add\\:cart"
    assert normalise_selector("a" * 300) == "a" * heatmaps.MAX_SELECTOR


def test_pages_are_paths_and_cells_a_grid() -> None:
    assert page_path(PRODUCT) == "/product/boots"
    assert page_path(f"{SHOP}/product/boots/") == "/product/boots"
    assert page_path(SHOP) == "/"
    assert cell_of(0, 0) == "0:0"
    assert cell_of(49, 51) == "0:1"
    assert cell_of(1000, 999) == "19:19"
    assert cell_of(None, 10) == ""


def test_a_position_is_two_whole_thousandths_and_a_bad_one_is_rejected_alone() -> None:
    good = ev(1, "click", selector="#buy", x=0, y=1000)
    bad = ev(2, "rage_click", selector="#buy", count=3, x=1001, y=5)
    valid, rejected = validate_batch([good, bad], Limits())
    assert [i for i, _ in valid] == [0]
    [rejection] = rejected
    assert (rejection.index, rejection.code) == (1, Reject.INVALID_EVENT)
    assert rejection.reason == "rage_click.x: Expected `int` <= 1000"


def test_a_viewport_width_falls_in_one_layout_class() -> None:
    assert [layout_of(w) for w in (1, 390, 767)] == ["mobile"] * 3
    assert [layout_of(w) for w in (768, 820, 1024, 1279)] == ["tablet"] * 4
    assert [layout_of(w) for w in (1280, 1920, 5000)] == ["desktop"] * 3
    assert [layout_of(w) for w in (None, 0, -5, "390", 390.0, True)] == [""] * 6


def test_a_class_is_drawn_at_its_most_common_width_or_a_typical_one() -> None:
    assert [width_counted(w) for w in (1, 393, 395, 1437, 9000, None)] == [
        10,
        390,
        400,
        1440,
        3840,
        0,
    ]
    assert render_width("desktop", {1440: 3, 1920: 3, 1280: 1}) == 1440
    assert render_width("mobile", {}) == 390
    assert render_width("tablet") == 820
    assert render_width("all", {1440: 3}) == render_width("unknown") == 1024


def test_a_width_is_whole_css_pixels_and_a_bad_one_is_rejected_alone() -> None:
    good = ev(1, "click", selector="#buy", x=10, y=10, w=390)
    bad = ev(2, "dead_click", selector="#buy", x=10, y=10, w=0)
    valid, rejected = validate_batch([good, bad], Limits())
    assert [i for i, _ in valid] == [0]
    [rejection] = rejected
    assert (rejection.index, rejection.code) == (1, Reject.INVALID_EVENT)
    assert rejection.reason == "dead_click.w: Expected `int` >= 1"


async def send(store: RedisStore, origin: Origin, events: list[dict[str, Any]]) -> list[bool]:
    ingested = await store.ingest(origin, events, [FactChanges() for _ in events], T0)
    await store.deferred()  # a cluster counts them beside the batch
    return ingested.fresh


def ev(seq: int, type: str, url: str = PRODUCT, **fields: Any) -> dict[str, Any]:
    return {"type": type, "seq": seq, "ts": T0, "url": url, **fields}


async def a_visit(store: RedisStore, visitor: str = "v_heatmap01") -> Origin:
    opened = await store.open_session(SITE, visitor, None, T0)
    return Origin(SITE, visitor, opened.session, "tab1", "sid-" + visitor)


async def test_known_clicks_give_exact_counts_per_selector_and_cell(store: RedisStore) -> None:
    origin = await a_visit(store)
    buy = "main > button#buy"
    await send(
        store,
        origin,
        [
            ev(1, "click", selector=buy, x=510, y=120),
            ev(2, "click", selector="li:nth-child(2) > button#buy", x=530, y=140),
            ev(3, "rage_click", selector=buy, count=4, x=520, y=130),
            ev(4, "dead_click", selector="span.price", x=100, y=980),
            ev(5, "hesitation", selector=buy, ms=1500, x=500, y=100),
            ev(6, "click", selector="a.home"),  # no position: its selector only
            ev(7, "scroll", depth=50),  # not a heatmap kind
        ],
    )
    # a resend of the same seqs adds nothing; another visitor's click adds one
    await send(store, origin, [ev(1, "click", selector=buy, x=510, y=120)])
    other = await a_visit(store, "v_heatmap02")
    await send(store, other, [ev(1, "click", selector=buy, x=990, y=1000)])

    got = await read_heatmap(store.client, store.keys, SITE, "/product/boots", [day_of(T0)])
    assert got.totals == {"click": 4, "rage_click": 1, "dead_click": 1, "hesitation": 1}
    assert got.selectors == {
        buy: {"click": 2, "rage_click": 1, "hesitation": 1},
        "li > button#buy": {"click": 1},
        "span.price": {"dead_click": 1},
        "a.home": {"click": 1},
    }
    assert got.cells == {
        "10:2": {"click": 2, "rage_click": 1, "hesitation": 1},
        "2:19": {"dead_click": 1},
        "19:19": {"click": 1},
    }
    pages = await read_pages(store.client, store.keys, SITE, [day_of(T0)])
    assert pages == [{"path": "/product/boots", "events": 7}]


async def test_each_page_and_day_has_its_own_counts(store: RedisStore) -> None:
    origin = await a_visit(store)
    await send(
        store,
        origin,
        [ev(1, "click", selector="#a"), ev(2, "click", url=f"{SHOP}/cart", selector="#b")],
    )
    day = day_of(T0)
    cart = await read_heatmap(store.client, store.keys, SITE, "/cart", [day])
    assert cart.selectors == {"#b": {"click": 1}}
    before = await read_heatmap(store.client, store.keys, SITE, "/cart", [day_of(T0 - DAY_MS)])
    assert before.totals == {}
    assert days_back(T0, 3) == [day, day_of(T0 - DAY_MS), day_of(T0 - 2 * DAY_MS)]


async def test_selectors_past_the_cap_are_counted_as_overflow(
    store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(heatmaps, "SELECTOR_CAP", 3)
    origin = await a_visit(store)
    events = [ev(i, "click", selector=f"button.b{i}") for i in range(1, 6)]
    events.append(ev(6, "click", selector="button.b1"))  # counted: already a field
    await send(store, origin, events)
    got = await read_heatmap(store.client, store.keys, SITE, "/product/boots", [day_of(T0)])
    assert got.selectors == {f"button.b{i}": {"click": 1 + (i == 1)} for i in (1, 2, 3)}
    assert got.over_cap == {"click": 2}
    assert got.totals == {"click": 6}


async def test_pages_past_the_cap_count_nothing_but_their_overflow(
    store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(heatmaps, "PAGE_CAP", 2)
    origin = await a_visit(store)
    await send(
        store, origin, [ev(i, "click", url=f"{SHOP}/p{i}", selector="#x") for i in range(1, 5)]
    )
    day = day_of(T0)
    pages = await read_pages(store.client, store.keys, SITE, [day])
    assert [p["path"] for p in pages] == ["/p1", "/p2"]
    index = await store.client.hgetall(store.keys.heatmap_pages(SITE, day))
    assert index["#o"] == "2"
    p3 = await read_heatmap(store.client, store.keys, SITE, "/p3", [day])
    assert p3.totals == {}


async def test_the_counts_expire_after_the_days_kept(store: RedisStore) -> None:
    origin = await a_visit(store)
    await send(store, origin, [ev(1, "click", selector="#a", x=1, y=1)])
    day = day_of(T0)
    # until KEEP_DAYS after the end of the day (the clock's, T0)
    ttl = (T0 // DAY_MS * DAY_MS + DAY_MS * (1 + KEEP_DAYS) - T0) // 1000
    assert KEEP_DAYS * 86_400 < ttl <= (KEEP_DAYS + 1) * 86_400
    for key in (
        store.keys.heatmap(SITE, day, "/product/boots"),
        store.keys.heatmap_pages(SITE, day),
    ):
        assert ttl - 5 <= await store.client.ttl(key) <= ttl


async def test_a_pipeline_batch_counts_once_per_event(
    store: RedisStore, settings: Settings
) -> None:
    """Through the pipeline (the path of a browser's batch), decided ahead or not."""
    h = Harness(store, settings)
    v = await h.visit(site=SITE)
    for _ in range(3):
        await v.send("click", PRODUCT, selector="#buy", x=10, y=10)
    await store.deferred()
    got = await read_heatmap(
        store.client, store.keys, SITE, "/product/boots", [day_of(h.clock.now)]
    )
    assert got.selectors == {"#buy": {"click": 3}}
    assert got.cells == {"0:0": {"click": 3}}


def test_the_opaque_origin_of_a_sandboxed_frame_is_never_allowed() -> None:
    """The heatmap's rendering with the page's scripts frames it in an opaque origin: its
    snippet connects with Origin "null", refused even by patterns that glob everything."""
    site = Site(origins=["*", "*://*", "https://shop.example"])
    assert site.allows("https://shop.example")
    assert site.allows("https://other.example")
    for origin in ("null", "NULL", " null", None, ""):
        assert not site.allows(origin), origin


async def test_cells_are_counted_apart_per_layout_class_and_summed_for_all(
    store: RedisStore,
) -> None:
    """The same button, where a phone, a tablet and a desktop lay it out: each class has its
    own grid; "all" is every event in one grid, as it was before the classes."""
    phone, tablet, desktop = [await a_visit(store, f"v_layout{i:03}") for i in range(3)]
    buy = "button#buy"
    await send(
        store,
        phone,
        [
            ev(1, "click", selector=buy, x=500, y=800, w=390),
            ev(2, "rage_click", selector=buy, count=3, x=500, y=800, w=390),
        ],
    )
    await send(store, phone, [ev(2, "rage_click", selector=buy, count=3, x=500, y=800, w=390)])
    await send(store, tablet, [ev(1, "click", selector=buy, x=700, y=300, w=820)])
    await send(
        store,
        desktop,
        [
            ev(1, "click", selector=buy, x=850, y=100, w=1440),
            ev(2, "hesitation", selector=buy, ms=1500, x=850, y=100, w=1437),
            ev(4, "click", selector=buy, x=850, y=100, w=1920),
            ev(3, "click", selector=buy, x=50, y=50),  # no width: "unknown"
        ],
    )

    got = await read_heatmap(store.client, store.keys, SITE, "/product/boots", [day_of(T0)])
    assert got.totals == {"click": 5, "rage_click": 1, "hesitation": 1}
    assert got.selectors == {buy: {"click": 5, "rage_click": 1, "hesitation": 1}}

    def cells(layout: str) -> dict[str, dict[str, int]]:
        body = got.to_json(layout=layout)
        return {f"{c['col']}:{c['row']}": c["counts"] for c in body["cells"]}

    assert cells("mobile") == {"10:16": {"click": 1, "rage_click": 1}}
    assert cells("tablet") == {"14:6": {"click": 1}}
    assert cells("desktop") == {"17:2": {"click": 2, "hesitation": 1}}
    assert cells("unknown") == {"1:1": {"click": 1}}
    assert cells("all") == {
        "10:16": {"click": 1, "rage_click": 1},
        "14:6": {"click": 1},
        "17:2": {"click": 2, "hesitation": 1},
        "1:1": {"click": 1},
    }
    assert got.to_json() == got.to_json(layout="all")  # callers that name no class

    mobile = got.to_json(layout="mobile")
    assert (mobile["layout"], mobile["width"]) == ("mobile", 390)
    assert mobile["totals"] == {"click": 1, "rage_click": 1}
    assert mobile["all_totals"] == got.totals
    # each class is drawn at its most common viewport width (in steps of 10px)
    assert got.layout_widths == {
        "mobile": {390: 2},
        "tablet": {820: 1},
        "desktop": {1440: 2, 1920: 1},
    }
    assert {v["layout"]: (v["width"], v["totals"]) for v in mobile["layouts"]} == {
        "all": (1024, {"click": 5, "rage_click": 1, "hesitation": 1}),
        "mobile": (390, {"click": 1, "rage_click": 1}),
        "tablet": (820, {"click": 1}),
        "desktop": (1440, {"click": 2, "hesitation": 1}),
        "unknown": (1024, {"click": 1}),
    }


async def test_counts_from_before_the_classes_read_as_unknown(store: RedisStore) -> None:
    """A day's hash written before the layout classes (cells as "c:<kind>:<cell>" only)
    reads as it did, its cells in "all" and "unknown"."""
    day = day_of(T0)
    key = store.keys.heatmap(SITE, day, "/old")
    await store.client.hset(key, mapping={"n:click": 2, "c:click:3:4": 2, "s:click:#a": 2})
    got = await read_heatmap(store.client, store.keys, SITE, "/old", [day])
    for layout in ("all", "unknown"):
        body = got.to_json(layout=layout)
        assert body["cells"] == [{"col": 3, "row": 4, "counts": {"click": 2}}]
        assert body["totals"] == {"click": 2}
    assert got.to_json(layout="desktop")["cells"] == []
