"""Generated shoppers with known intents, as `cuewire record` would have recorded them.

Four intents, each a different way through a shop, with noise so they overlap a little:

- ``bouncer``: one page (sometimes two), seconds long, barely scrolls, often leaves by an exit
  intent; often from a search engine
- ``browser``: reads: several category and blog pages, long attention, deep scrolls, a product
  or two, never a cart
- ``comparer``: many products, hesitations and the odd rage click, sometimes a cart, rarely buys
- ``buyer``: a few products, adds to the cart, starts the checkout, buys four times in five;
  comes back (several sessions) and from campaigns

:func:`recording` returns the JSON lines and each session's intent; the events are the wire
events the snippet sends (protocol.py), so they run through the real ingest path.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

SHOP = "https://shop.test"
T0 = 1_764_000_000_000
DAY_MS = 86_400_000
INTENTS = ("bouncer", "browser", "comparer", "buyer")


@dataclass
class _Session:
    """Events of one session on a clock, grouped into batches as the snippet sends them."""

    rng: random.Random
    now: int
    mobile: bool = False
    url: str = SHOP + "/"
    seq: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)

    def wait(self, low: float, high: float) -> None:
        self.now += round(self.rng.uniform(low, high) * 1000)

    def send(self, type: str, **fields: Any) -> None:
        self.events.append(
            {"type": type, "ts": self.now, "seq": self.seq, "url": self.url, **fields}
        )
        self.seq += 1

    def page(self, path: str, referrer: str | None = None) -> None:
        self.url = SHOP + path
        self.send("page_view", referrer=referrer)

    def read(self, low: float, high: float, depth: int) -> None:
        """Stay on the page, scroll to ``depth`` (by the snippet's milestones), pay attention."""
        for milestone in (25, 50, 75, 100):
            if milestone <= depth:
                self.wait(low / 4, high / 4)
                self.send("scroll", depth=milestone)
        self.send("attention", active_ms=round(self.rng.uniform(low, high) * 1000))

    def product(self, price: float) -> None:
        pid = f"p{self.rng.randrange(1, 60)}"
        self.page(f"/product/{pid}.html")
        self.send("custom", name="product_view", props={"product_id": pid, "price": price})

    def custom(self, name: str, **props: Any) -> None:
        self.send("custom", name=name, props=props)

    def batches(self) -> list[list[dict[str, Any]]]:
        out: list[list[dict[str, Any]]] = []
        i = 0
        while i < len(self.events):
            size = self.rng.randint(2, 8)
            out.append(self.events[i : i + size])
            i += size
        return out


def _referrer(rng: random.Random, search: float) -> str | None:
    if rng.random() < search:
        return rng.choice(["https://www.google.com/", "https://www.bing.com/search?q=shoes"])
    return rng.choice([None, None, "https://news.example/article"])


def _bouncer(s: _Session, rng: random.Random) -> None:
    s.page(rng.choice(["/", "/category/shoes.html", "/blog/care.html"]), _referrer(rng, 0.6))
    s.read(2, 12, rng.choice([0, 0, 25]))
    if rng.random() < 0.25:
        s.wait(2, 10)
        s.page(rng.choice(["/", "/category/bags.html"]))
        s.read(1, 6, 0)
    if rng.random() < 0.6:
        s.send("exit_intent", cause="mouse_leave")


def _browser(s: _Session, rng: random.Random) -> None:
    s.page("/", _referrer(rng, 0.3))
    for _ in range(rng.randint(3, 8)):
        s.wait(10, 40)
        s.page(rng.choice(["/category/shoes.html", "/category/bags.html", "/blog/care.html"]))
        s.read(30, 120, rng.choice([75, 100, 100]))
    for _ in range(rng.choice([0, 0, 1, 2])):
        s.wait(5, 20)
        s.product(rng.uniform(20, 120))
        s.read(20, 60, 75)


def _comparer(s: _Session, rng: random.Random) -> None:
    s.page("/category/shoes.html", _referrer(rng, 0.4))
    for _ in range(rng.randint(5, 14)):
        s.wait(5, 25)
        s.product(rng.uniform(40, 200))
        s.read(5, 30, rng.choice([25, 50, 75]))
        if rng.random() < 0.45:
            s.send("hesitation", selector="button.add", ms=3000)
        if rng.random() < 0.08:
            s.send("rage_click", selector="img.zoom", count=4)
    if rng.random() < 0.3:
        s.custom("add_to_cart", price=round(rng.uniform(40, 200), 2))
        if rng.random() < 0.25:
            s.custom("purchase", total=100)
            return
    if rng.random() < 0.5:
        s.send("exit_intent", cause="scroll_up")


def _buyer(s: _Session, rng: random.Random) -> None:
    s.page("/?utm_source=mail&utm_campaign=spring" if rng.random() < 0.5 else "/")
    for _ in range(rng.randint(1, 4)):
        s.wait(5, 30)
        s.product(rng.uniform(30, 150))
        s.read(10, 40, rng.choice([50, 75]))
    for _ in range(rng.randint(1, 3)):
        s.custom("add_to_cart", price=round(rng.uniform(30, 150), 2))
        s.wait(2, 10)
    s.page("/cart.html")
    s.read(5, 20, 50)
    s.page("/checkout.html")
    s.custom("checkout_started")
    s.wait(20, 90)
    if rng.random() < (0.25 if s.mobile else 0.8):  # paying on a phone is a chore
        s.custom("purchase", total=120)
        s.page("/thanks.html")


WALKS: dict[str, Callable[[_Session, random.Random], None]] = {
    "bouncer": _bouncer,
    "browser": _browser,
    "comparer": _comparer,
    "buyer": _buyer,
}
# sessions per visitor (a visitor keeps one intent)
VISITS = {"bouncer": (1, 1), "browser": (1, 2), "comparer": (1, 3), "buyer": (2, 4)}


@dataclass
class Shoppers:
    lines: list[str]  # the recording, one JSON line per batch
    intents: dict[str, str]  # recorded session id -> intent


def recording(visitors: int, seed: int = 1, site: str = "shop", mobile: float = 0.0) -> Shoppers:
    """``visitors`` shoppers (intents in equal shares), each with one or more sessions.

    With ``mobile`` > 0 each visitor is on a phone with that probability (drawn apart, so the
    walks are those of ``mobile=0``): their batches carry the device class as ``cuewire
    record`` copies it (``"device"``), and a buyer on a phone buys less often."""
    rng = random.Random(seed)
    phones = random.Random(f"{seed}/devices")
    lines: list[str] = []
    out = Shoppers([], {})
    for n in range(visitors):
        intent = INTENTS[n % len(INTENTS)]
        visitor = f"v_{seed:04d}{n:08d}"
        visits = rng.randint(*VISITS[intent])
        start = T0 + rng.randrange(0, 3600_000)
        on_phone = mobile > 0 and phones.random() < mobile
        for k in range(visits):
            session = f"s_{seed:04d}{n:08d}_{k}"
            s = _Session(rng, start + k * rng.randint(1, 9) * DAY_MS, mobile=on_phone)
            WALKS[intent](s, rng)
            out.intents[session] = intent
            for i, events in enumerate(s.batches()):
                batch = {"kind": "batch", "site": site, "id": f"{events[-1]['ts']}-{n}{k}{i}"}
                batch.update(at=events[-1]["ts"], session=session, visitor=visitor, events=events)
                if mobile > 0:
                    batch["device"] = "mobile" if on_phone else "desktop"
                lines.append(json.dumps(batch, separators=(",", ":")))
    out.lines = lines
    return out


if __name__ == "__main__":  # the demo's model: docs/learning.md, "The demo's model"
    import argparse

    parser = argparse.ArgumentParser(description="write generated shoppers as a recording")
    parser.add_argument("--visitors", type=int, default=400)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--site", default="demo")
    args = parser.parse_args()
    print("\n".join(recording(args.visitors, args.seed, args.site).lines))
