"""Rule evaluation in process: Cuewire's engine with 10, 100 and 1,000 rules, and the seed
scenarios (hesitation, cart abandonment) in Cuewire and in durable_rules on one event stream.

Run by ``python -m bench`` in its own process (durable_rules keeps global state):
``python -m bench.rulescale --events 20000 --counts 10,100,1000`` prints one JSON object. Each
figure is the fastest of ``--rounds`` interleaved rounds, the same for both engines.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import msgspec
import yaml

from cuewire.facts import changes_for
from cuewire.prediction import Reads, after_actions, after_batch
from cuewire.rules.engine import Engine
from cuewire.rules.index import RuleSet
from cuewire.rules.model import Rule
from cuewire.store.base import Schedule

from .context import RULES

T0 = 1_764_000_000_000
SITE = "bench"
ORIGIN = "http://shop.bench.test"
SEED = ("hesitation-product", "cart-abandonment")
SPACE = 1000  # synthetic ids the stream refers to


def seed_rules(ids: tuple[str, ...] | None = None) -> list[Rule]:
    doc = yaml.safe_load((RULES / "seed.yaml").read_text(encoding="utf-8"))
    rules = [msgspec.convert(r, Rule) for r in doc["rules"] if r["id"] != "bench-timer"]
    return [r for r in rules if ids is None or r.id in ids]


def synthetic_rule(i: int) -> Rule:
    """Rule ``i`` of a large deployment: each targets its own pages, names or elements."""
    show = {"template": "toast", "params": {"message": f"rule {i}"}}
    kind = i % 5
    if kind == 0:
        trigger: dict[str, Any] = {"event": {"type": "custom", "name": f"promo_{i}"}}
        when: dict[str, Any] | None = {"fact": "page.path", "glob": f"/category/{i}/*"}
    elif kind == 1:
        where = {"fact": "selector", "equals": f"#cta-{i}"}
        trigger, when = {"event": {"type": "click", "where": where}}, None
    elif kind == 2:
        absence = {
            "after": {"type": "page_view"},
            "missing": {"type": "custom", "name": "add_to_cart"},
            "within": "45s",
            "scope": "page",
        }
        trigger, when = {"absence": absence}, {"fact": "page.path", "glob": f"/product/{i}-*"}
    elif kind == 3:
        trigger = {"event": {"type": "exit_intent"}}
        when = {
            "all": [
                {"fact": "page.path", "glob": f"/landing/{i}/*"},
                {"fact": "session.pages", "gte": 2},
            ]
        }
    else:
        facts = {
            "all": [
                {"fact": "page.path", "glob": f"/landing/{i}/*"},
                {"fact": "page.scroll", "gte": 75},
            ]
        }
        trigger, when = {"facts": facts}, None
    raw = {"id": f"syn-{i}", "trigger": trigger, "show": show}
    if when is not None:
        raw["when"] = when
    return msgspec.convert(raw, Rule)


def rule_set(n: int) -> list[Rule]:
    seeds = seed_rules()
    return seeds + [synthetic_rule(i) for i in range(n - len(seeds))]


def _visit(rng: random.Random) -> Iterator[dict[str, Any]]:
    """The events of one visitor, page after page, forever."""
    while True:
        k = rng.randrange(SPACE)
        pick = rng.random()
        if pick < 0.6:
            path = f"/product/{k}-item"
        elif pick < 0.8:
            path = f"/category/{k}/shoes"
        elif pick < 0.9:
            path = f"/landing/{k}/spring"
        else:
            path = "/cart"
        url = ORIGIN + path
        yield {"type": "page_view", "url": url, "referrer": "", "title": "page", "spa": False}
        for _ in range(rng.randint(3, 9)):
            r = rng.random()
            if r < 0.3:
                yield {"type": "scroll", "url": url, "depth": rng.choice((25, 50, 75, 90))}
            elif r < 0.45:
                yield {"type": "hover", "url": url, "element": "price", "ms": 600}
            elif r < 0.6:
                sel = f"#cta-{rng.randrange(SPACE)}" if rng.random() < 0.5 else "#size-m"
                yield {"type": "click", "url": url, "selector": sel, "text": None, "track": None}
            elif r < 0.7:
                props = {"product_id": str(k)}
                yield {"type": "custom", "url": url, "name": "product_view", "props": props}
            elif r < 0.8:
                name = f"promo_{rng.randrange(SPACE)}"
                yield {"type": "custom", "url": url, "name": name, "props": {}}
            elif r < 0.9:
                yield {"type": "visibility", "url": url, "state": "visible", "dwell_ms": 900}
            else:
                yield {"type": "element_visible", "url": url, "element": "reviews", "ratio": 0.5}
        if path.startswith("/product/") and rng.random() < 0.25:
            yield {"type": "custom", "url": url, "name": "add_to_cart", "props": {}}
        if rng.random() < 0.1:
            yield {"type": "custom", "url": url, "name": "checkout", "props": {}}
        if rng.random() < 0.1:
            yield {"type": "exit_intent", "url": url}


def event_stream(n: int, sessions: int = 200, seed: int = 7) -> list[tuple[int, dict[str, Any]]]:
    """``n`` events of ``sessions`` interleaved visitors: (session index, event)."""
    rng = random.Random(seed)
    visits = [_visit(random.Random(rng.random())) for _ in range(sessions)]
    seqs = [0] * sessions
    out = []
    for i in range(n):
        s = rng.randrange(sessions)
        event = next(visits[s])
        event.update(ts=T0 + i * 10, seq=seqs[s])
        seqs[s] += 1
        out.append((s, event))
    return out


class Facts:
    """One session's facts as the server process keeps them (prediction.py): the fields the
    rules read, changed by a batch and by its actions as pipeline.py changes them when it
    decides a batch before the store call."""

    def __init__(self, index: int, reads: Reads) -> None:
        self.reads = reads
        self.session_id = f"s_{index}"  # the server has its ids as strings already
        self.visitor_id = f"v_{index}"
        self.session: dict[str, str] = {"visitor": self.visitor_id, "started": str(T0)}
        self.visitor: dict[str, str] = {"sessions": "1"}

    def ingest(self, event: dict[str, Any], now: int, rules: RuleSet) -> None:
        ch = changes_for(event, now, rules.distinct, rules.clicks)  # as pipeline.py
        self.session, self.visitor = after_batch(
            self.session, self.visitor, self.reads, [ch], now, "", self.visitor_id
        )

    def apply(self, actions: list[Any]) -> None:
        self.session, self.visitor = after_actions(self.session, self.visitor, self.reads, actions)


def run_cuewire(
    rules: list[Rule], stream: list[tuple[int, dict[str, Any]]], budget_s: float = 1e9
) -> dict[str, Any]:
    """Feed ``stream`` (or its prefix that fits ``budget_s``) one event per batch."""
    ruleset = RuleSet(rules)
    engine = Engine(ruleset)
    reads = Reads(ruleset.fields)
    facts: dict[int, Facts] = {}
    engine_ns = facts_ns = 0
    candidates = 0
    armed: Counter[str] = Counter()
    by_type_ns: Counter[str] = Counter()
    by_type_n: Counter[str] = Counter()
    clock = time.perf_counter_ns
    budget_ns = budget_s * 1e9
    n = 0
    for i, (s, event) in enumerate(stream):
        if engine_ns + facts_ns > budget_ns:
            break
        n += 1
        now = T0 + i * 10
        f = facts.get(s) or facts.setdefault(s, Facts(s, reads))
        t0 = clock()
        f.ingest(event, now, ruleset)
        t1 = clock()
        decision = engine.on_events(
            SITE, f.session_id, f.visitor_id, [event], f.session, f.visitor, now
        )
        t2 = clock()
        f.apply(decision.actions)
        t3 = clock()
        engine_ns += t2 - t1
        facts_ns += (t1 - t0) + (t3 - t2)
        by_type_ns[event["type"]] += t2 - t1
        by_type_n[event["type"]] += 1
        candidates += len(decision.candidates)
        for a in decision.actions:
            if isinstance(a, Schedule):
                armed[a.timer.rule] += 1
    return {
        "rules": len(rules),
        "events": n,
        "engine_us_per_event": round(engine_ns / n / 1000, 3),
        "facts_us_per_event": round(facts_ns / n / 1000, 3),
        "engine_events_per_s": round(n / (engine_ns / 1e9)),
        "engine_and_facts_events_per_s": round(n / ((engine_ns + facts_ns) / 1e9)),
        "candidates": candidates,
        "timers_armed_per_1000_events": round(1000 * sum(armed.values()) / n, 1),
        "seed_timers_armed": {k: armed[k] for k in SEED},
        "engine_us_by_type": {
            k: round(by_type_ns[k] / by_type_n[k] / 1000, 3) for k in sorted(by_type_n)
        },
    }


def run_cuewire_whole(rules: list[Rule], stream: list[tuple[int, dict[str, Any]]]) -> float:
    """Events per second through the facts and the engine, the stream timed whole, as
    :func:`run_durable` times durable_rules (:func:`run_cuewire` clocks each part of each
    event: its breakdown, and four clock calls an event)."""
    ruleset = RuleSet(rules)
    engine = Engine(ruleset)
    reads = Reads(ruleset.fields)
    facts: dict[int, Facts] = {}
    t0 = time.perf_counter_ns()
    for i, (s, event) in enumerate(stream):
        now = T0 + i * 10
        f = facts.get(s) or facts.setdefault(s, Facts(s, reads))
        f.ingest(event, now, ruleset)
        sid, vid = f.session_id, f.visitor_id
        f.apply(engine.on_events(SITE, sid, vid, [event], f.session, f.visitor, now).actions)
    return len(stream) / ((time.perf_counter_ns() - t0) / 1e9)


_DURABLE: dict[str, Counter[str]] = {}


def _durable_ruleset() -> Counter[str]:
    """Declare the two seed scenarios as a durable_rules ruleset (once per process: durable
    keeps global state); returns the counter of the timers its rules arm."""
    if "armed" in _DURABLE:
        return _DURABLE["armed"]
    from durable.lang import m, ruleset, timeout, when_all

    armed: Counter[str] = Counter()
    fired: Counter[str] = Counter()

    with ruleset("cw_seed"):

        @when_all(m.type == "page_view")
        def page_view(c: Any) -> None:
            # hesitation is page-scoped: a new page cancels it, a product page starts it
            c.cancel_timer("hesitation")
            if "/product/" in c.m.url:
                c.start_timer("hesitation", 30)
                armed["hesitation-product"] += 1

        @when_all((m.type == "custom") & (m.name == "add_to_cart"))
        def add_to_cart(c: Any) -> None:
            c.cancel_timer("hesitation")
            c.cancel_timer("cart")
            c.start_timer("cart", 600)
            armed["cart-abandonment"] += 1

        @when_all((m.type == "custom") & (m.name == "checkout"))
        def checkout(c: Any) -> None:
            c.cancel_timer("cart")

        @when_all(timeout("hesitation"))
        def hesitation(c: Any) -> None:
            fired["hesitation-product"] += 1

        @when_all(timeout("cart"))
        def cart(c: Any) -> None:
            fired["cart-abandonment"] += 1

    _DURABLE["armed"] = armed
    return armed


def run_durable(stream: list[tuple[int, dict[str, Any]]], tag: str = "") -> dict[str, Any]:
    """The two seed scenarios in durable_rules; timers as in Cuewire's rules. ``tag`` names
    the sessions of this run apart from an earlier run's (durable_rules keeps them)."""
    from durable.engine import MessageNotHandledException
    from durable.lang import post

    armed = _durable_ruleset()
    armed.clear()
    wanted = {"page_view", "add_to_cart", "checkout"}
    unhandled = 0
    clock = time.perf_counter_ns
    t0 = clock()
    for s, event in stream:
        key = event["name"] if event["type"] == "custom" else event["type"]
        if key not in wanted:  # filtered here, in Python: durable_rules raises on them
            continue
        message = {"sid": f"{tag}s_{s}", "type": event["type"], "url": event["url"]}
        if "name" in event:
            message["name"] = event["name"]
        try:
            post("cw_seed", message)
        except MessageNotHandledException:
            unhandled += 1
    elapsed = clock() - t0
    n = len(stream)
    return {
        "events": n,
        "us_per_event": round(elapsed / n / 1000, 3),
        "events_per_s": round(n / (elapsed / 1e9)),
        "timers_armed": dict(armed),
        "unhandled": unhandled,
    }


def growth(first: dict[str, Any], last: dict[str, Any]) -> dict[str, Any]:
    """How the engine's cost per event grows from ``first``'s rule count to ``last``'s, in
    all and per event type."""
    by_type = {
        kind: round(last["engine_us_by_type"][kind] / us, 2)
        for kind, us in first["engine_us_by_type"].items()
        if us and kind in last["engine_us_by_type"]
    }
    return {
        "rules": [first["rules"], last["rules"]],
        "engine": round(last["engine_us_per_event"] / first["engine_us_per_event"], 2),
        "by_type": by_type,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--counts", default="10,100,1000")
    parser.add_argument("--budget", type=float, default=3.0, help="seconds per rule count")
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="rounds, interleaved; each figure is its fastest round (a shared machine's"
        " other work only ever slows a round down)",
    )
    args = parser.parse_args()
    stream = event_stream(args.events)
    counts = [int(c) for c in args.counts.split(",")]
    sets = {count: rule_set(count) for count in counts}
    seeds = seed_rules(SEED)
    for rules in [*sets.values(), seeds]:
        run_cuewire(rules, stream, budget_s=0.3)  # warm-up
    best: dict[int, dict[str, Any]] = {}
    cuewire: dict[str, Any] | None = None
    durable: dict[str, Any] | None = None
    for round_ in range(max(1, args.rounds)):
        for count, rules in sets.items():
            run = run_cuewire(rules, stream, budget_s=args.budget / max(1, args.rounds))
            if count not in best or run["engine_us_per_event"] < best[count]["engine_us_per_event"]:
                best[count] = run
        run = run_cuewire(seeds, stream)
        run["whole_events_per_s"] = round(run_cuewire_whole(seeds, stream))
        if cuewire is None or run["whole_events_per_s"] > cuewire["whole_events_per_s"]:
            cuewire = run
        run = run_durable(stream, tag=f"r{round_}_")
        if durable is None or run["events_per_s"] > durable["events_per_s"]:
            durable = run
    scaling = [best[count] for count in counts]
    types = Counter(e["type"] for _, e in stream)
    print(
        json.dumps(
            {
                "scaling": scaling,
                "growth": growth(scaling[0], scaling[-1]),
                "rounds": max(1, args.rounds),
                "seed": {"cuewire": cuewire, "durable_rules": durable},
                "stream": {"events": len(stream), "types": dict(types)},
            }
        )
    )


if __name__ == "__main__":
    main()
