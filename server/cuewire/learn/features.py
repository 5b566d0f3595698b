"""The feature vector of one session and its visitor, from the facts the store keeps.

Pure and fast (a few microseconds): the server computes it whenever a rule tests a learned fact
(``visitor.segment``, ``session.propensity.purchase``), and training computes the very same
vector from the facts of recorded sessions replayed through the store (dataset.py). Counts
and durations are ``log1p``-compressed so a few long sessions do not dominate the distances.

The names and their order are versioned: a model file names the version it was trained on, and
the server refuses a model of another version (models.py). Change a feature: bump VERSION.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Final

from .. import fields
from ..clock import DAY_MS

VERSION: Final = 1

SEARCH_ENGINES = ("google.", "bing.", "duckduckgo.", "yahoo.", "ecosia.", "baidu.", "yandex.")

# (name, what it measures, how it is read): docs/learning.md shows this table.
FEATURES: Final = (
    ("pages", "page views in the session", "log1p(pages)"),
    ("duration", "seconds from the session's start to its last event", "log1p(seconds)"),
    ("active", "attentive seconds on the current page (attention events)", "log1p(seconds)"),
    ("scroll", "deepest scroll milestone of the current page", "depth / 100"),
    ("products", "products viewed (custom event product_view)", "log1p(count)"),
    ("cart_adds", "additions to the cart (custom event add_to_cart)", "log1p(count)"),
    ("cart_value", "price of the latest addition to the cart", "log1p(price)"),
    ("checkout", "checkout started (custom event checkout_started)", "1 or 0"),
    ("hesitations", "hesitation and form_hesitation events", "log1p(count)"),
    ("rage_clicks", "rage_click events", "log1p(count)"),
    ("exit_intents", "exit_intent events", "log1p(count)"),
    ("sessions", "the visitor's sessions so far (frequency)", "log1p(sessions)"),
    ("recency", "days since the visitor's previous session, 0 on a first visit", "log1p(days)"),
    ("past_purchases", "purchases in the visitor's earlier sessions", "log1p(count)"),
    ("mobile", "on a phone or a tablet", "1 or 0"),
    ("search", "came from a search engine", "1 or 0"),
    ("campaign", "landed with utm_ parameters", "1 or 0"),
)
NAMES: Final = tuple(name for name, _, _ in FEATURES)

PRODUCT_VIEW, ADD_TO_CART, CHECKOUT = "product_view", "add_to_cart", "checkout_started"
PURCHASE = "purchase"

# The hash fields the vector reads (rules/reads.py asks the store for them when a rule tests a
# learned fact).
SESSION_FIELDS: Final = (
    *("pages", "started", "last", "active_ms", "scroll", "device", "referrer", "landing"),
    *("returning", "prev_seen"),
    fields.custom(PURCHASE),
    fields.custom(PRODUCT_VIEW),
    fields.custom(ADD_TO_CART),
    fields.custom(CHECKOUT),
    fields.props(ADD_TO_CART),
    *(fields.count(kind) for kind in ("hesitation", "form_hesitation", "rage_click")),
    fields.count("exit_intent"),
)
VISITOR_FIELDS: Final = ("sessions", fields.custom(PURCHASE))


def _num(raw: str | None) -> float:
    if not raw:
        return 0.0
    try:
        value = float(raw)
    except ValueError:
        return 0.0
    return value if value > 0 and math.isfinite(value) else 0.0


def _log(raw: str | None) -> float:
    return math.log1p(_num(raw))


def _price(raw: str | None) -> float:
    """The ``price`` prop of the latest add_to_cart (JSON), 0 when absent or not a number."""
    if not raw:
        return 0.0
    try:
        props = json.loads(raw)
    except ValueError:
        return 0.0
    price = props.get("price") if isinstance(props, dict) else None
    if isinstance(price, bool) or not isinstance(price, int | float):
        return 0.0
    return math.log1p(price) if price > 0 and math.isfinite(price) else 0.0


def from_search(referrer: str) -> bool:
    host = referrer.partition("//")[2].partition("/")[0]
    return any(engine in host for engine in SEARCH_ENGINES)


def features(session: Mapping[str, str], visitor: Mapping[str, str]) -> tuple[float, ...]:
    """The vector of :data:`NAMES` for one session's facts and its visitor's."""
    s = session.get
    started = _num(s("started"))
    duration = max(0.0, _num(s("last")) - started) / 1000 if started else 0.0
    prev = _num(s("prev_seen"))
    recency = max(0.0, started - prev) / DAY_MS if prev and started else 0.0
    hesitations = _num(s(fields.count("hesitation"))) + _num(s(fields.count("form_hesitation")))
    sessions = _num(visitor.get("sessions")) or 1.0
    purchases = _num(visitor.get(fields.custom(PURCHASE))) - _num(s(fields.custom(PURCHASE)))
    return (
        _log(s("pages")),
        math.log1p(duration),
        math.log1p(_num(s("active_ms")) / 1000),
        min(_num(s("scroll")), 100.0) / 100,
        _log(s(fields.custom(PRODUCT_VIEW))),
        _log(s(fields.custom(ADD_TO_CART))),
        _price(s(fields.props(ADD_TO_CART))),
        1.0 if _num(s(fields.custom(CHECKOUT))) else 0.0,
        math.log1p(hesitations),
        _log(s(fields.count("rage_click"))),
        _log(s(fields.count("exit_intent"))),
        math.log1p(sessions),
        math.log1p(recency),
        math.log1p(max(0.0, purchases)),
        1.0 if s("device") in ("mobile", "tablet") else 0.0,
        1.0 if from_search(s("referrer") or "") else 0.0,
        1.0 if "utm_" in (s("landing") or "") else 0.0,
    )
