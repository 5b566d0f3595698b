"""Validation at the edge (validation.py, protocol.py): the fast path accepts, rejects and
reshapes events exactly as the plain definition does.

The plain definition is the one docs/protocol.md states: convert the event to the union of
the wire models, turn it back into a map, measure that map JSON-encoded, check identify
against the site. ``validate_batch`` takes shortcuts (the class the tag names instead of the
union, the struct encoded instead of the map); hypothesis checks on generated valid and invalid
events that the answers are the same, reasons included.
"""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cuewire.codes import Reject
from cuewire.errors import IdentityUnverified
from cuewire.identity import sign, verify
from cuewire.protocol import (
    EVENT_CLASSES,
    EVENT_TYPES,
    AnyEvent,
    Rejection,
    event_reason,
    parse_event,
    parse_struct,
)
from cuewire.settings import Limits
from cuewire.sites import Site
from cuewire.validation import validate_batch

SECRET = "s3cret-identity-key"
SITES = [
    None,
    Site(origins=["http://shop.test"]),
    Site(origins=["http://shop.test"], identity_secret=SECRET),
]


def reference(
    batch: Any, limits: Limits, site: Site | None
) -> tuple[list[tuple[int, dict[str, Any]]], list[Rejection]]:
    """validate_batch as the protocol defines it, without any shortcut."""
    if not isinstance(batch, list):
        return [], [Rejection(-1, Reject.INVALID_BATCH, "events must be a list of event maps")]
    if len(batch) > limits.max_batch_events:
        reason = (
            f"batch too large: {len(batch)} events, at most {limits.max_batch_events} per batch"
        )
        return [], [Rejection(-1, Reject.BATCH_TOO_LARGE, reason)]
    valid: list[tuple[int, dict[str, Any]]] = []
    rejected: list[Rejection] = []
    for index, raw in enumerate(batch):
        try:
            if not isinstance(raw, dict):
                raise msgspec.ValidationError("an event must be a map")
            event: dict[str, Any] = msgspec.to_builtins(msgspec.convert(raw, AnyEvent))
            event["type"] = raw["type"]
        except msgspec.ValidationError as exc:
            rejected.append(Rejection(index, Reject.INVALID_EVENT, event_reason(raw, exc)))
            continue
        size = len(msgspec.json.encode(event))
        if size > limits.max_event_bytes:
            reason = (
                f"{event['type']}: event too large: {size} bytes encoded, "
                f"at most {limits.max_event_bytes}"
            )
            rejected.append(Rejection(index, Reject.EVENT_TOO_LARGE, reason))
            continue
        if site is not None and event["type"] == "identify":
            try:
                event = verify(site, event)
            except IdentityUnverified as exc:
                rejected.append(Rejection(index, Reject.IDENTITY_UNVERIFIED, str(exc)))
                continue
        valid.append((index, event))
    return valid, rejected


def assert_same(got: Any, want: Any) -> None:
    """Equal answers, each event map with its keys in the same order."""
    assert got == want
    for (_, event), (_, expected) in zip(got[0], want[0], strict=True):
        assert list(event) == list(expected)


# ---------------------------------------------------------------- generated events

# Text that is costly to encode: quotes, controls (\u00XX), non-ASCII and astral characters.
chars = st.characters(codec="utf-8")


def repeated(piece: str, length: int) -> str:
    """``piece`` repeated to ``length`` characters."""
    return (piece * (length // len(piece) + 1))[:length]


# A long text straddles the 2,048-character limit (MAX_STRING): a drawn piece of such
# characters repeated to 2,040..2,060 of them. Its length and the mix of what it holds (so its
# size encoded) vary as when each character was drawn, which took most of these tests' time.
long_text = st.builds(repeated, st.text(chars, min_size=1, max_size=24), st.integers(2040, 2060))
text = st.one_of(st.text(chars, max_size=24), long_text)
short = st.text(chars, max_size=24)
millis = st.integers(min_value=0, max_value=2**63 - 1)
scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False),
    short,
)
props = st.dictionaries(st.text(chars, max_size=130), scalar, max_size=52)
VALID: dict[str, st.SearchStrategy[Any]] = {
    "ts": millis,
    "seq": millis,
    "dwell_ms": millis,
    "active_ms": millis,
    "reading": st.booleans(),
    "cause": st.none() | st.sampled_from(["mouse_leave", "scroll_up", "back", "hidden"]),
    "ms": millis,
    "url": text,
    "referrer": st.none() | text,
    "title": st.none() | text,
    "text": st.none() | text,
    "track": st.none() | text,
    "selector": text,
    "element": text,
    "form": text,
    "field": st.none() | text,
    "spa": st.booleans(),
    "depth": st.integers(min_value=0, max_value=100),
    "count": st.integers(min_value=3, max_value=1000),
    "x": st.none() | st.integers(min_value=0, max_value=1000),
    "y": st.none() | st.integers(min_value=0, max_value=1000),
    "w": st.none() | st.integers(min_value=1, max_value=100_000),
    "fields_touched": st.integers(min_value=1, max_value=10000),
    "chars": st.integers(min_value=1, max_value=2**63 - 1),
    "field_ms": st.dictionaries(st.text(chars, max_size=130), millis, max_size=52),
    # an int where a float is expected comes back as a float
    "ratio": st.none() | st.floats(min_value=0, max_value=1) | st.sampled_from([0, 1]),
    "state": st.sampled_from(["hidden", "visible"]),
    "name": st.text(chars, min_size=1, max_size=130),
    "props": props,
    "traits": props,
    "user_id": st.text(chars, min_size=1, max_size=260),
    "signature": st.none() | short,
    "prompt": st.text(chars, max_size=130),
    "rule": st.text(chars, max_size=130),
    "action": st.none() | text,
}
ACTIONS = {
    "form": st.sampled_from(["focus", "abandon", "submit"]),
    "copy": st.sampled_from(["copy", "select"]),
}
anything = st.recursive(
    scalar | st.binary(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(short, inner, max_size=3),
    max_leaves=6,
)


@st.composite
def valid_events(draw: st.DrawFn) -> dict[str, Any]:
    """An event of any type, each field drawn near its limits, optional fields at random."""
    kind = draw(st.sampled_from(EVENT_TYPES))
    event: dict[str, Any] = {"type": kind}
    for field in msgspec.inspect.type_info(EVENT_CLASSES[kind]).fields:  # type: ignore[attr-defined]
        if not field.required and draw(st.booleans()):
            continue
        values = ACTIONS.get(kind, VALID["action"]) if field.name == "action" else VALID[field.name]
        event[field.name] = draw(values)
    if kind == "identify" and isinstance(event.get("user_id"), str) and draw(st.booleans()):
        event["signature"] = sign(SECRET, event["user_id"])
    keys = draw(st.permutations(list(event)))
    return {key: event[key] for key in keys}


@st.composite
def mutated_events(draw: st.DrawFn) -> Any:
    """A valid event with one thing wrong (or harmless: an unknown field, which is dropped)."""
    event = draw(valid_events())
    how = draw(st.sampled_from(["drop", "retype", "extra", "tag", "not a map"]))
    key = draw(st.sampled_from(sorted(event)))
    if how == "drop":
        del event[key]
    elif how == "retype":
        event[key] = draw(anything)
    elif how == "extra":
        event[draw(short)] = draw(anything)
    elif how == "tag":
        event["type"] = draw(scalar | st.sampled_from(["Click", "teleport", "prompt_feedback"]))
    else:
        return draw(anything)
    return event


events = st.one_of(valid_events(), mutated_events())
batches = st.one_of(st.lists(events, max_size=6), anything)
limits = st.builds(
    Limits,
    max_batch_events=st.sampled_from([4, 100]),
    max_event_bytes=st.sampled_from([120, 400, 4096, 16 * 1024]),
)


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches, limits, st.sampled_from(SITES))
def test_validate_batch_answers_as_the_plain_definition(
    batch: Any, limits: Limits, site: Site | None
) -> None:
    assert_same(validate_batch(batch, limits, site), reference(batch, limits, site))


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events)
def test_parse_event_answers_as_the_union_of_the_wire_models(raw: Any) -> None:
    try:
        if not isinstance(raw, dict):
            raise msgspec.ValidationError("an event must be a map")
        expected: Any = msgspec.to_builtins(msgspec.convert(raw, AnyEvent))
    except msgspec.ValidationError as exc:
        expected = exc
    try:
        got: Any = parse_event(raw)
    except msgspec.ValidationError as exc:
        got = exc
    if isinstance(expected, Exception):
        assert isinstance(got, msgspec.ValidationError)
        assert str(got) == str(expected)
    else:
        assert got == expected and list(got) == list(expected)


# ---------------------------------------------------------------- cases stated plainly

URL = "http://shop.test/p/1"


def test_an_event_comes_back_with_its_type_first_every_field_and_no_unknown_one() -> None:
    raw = {"url": URL, "selector": "#buy", "seq": 2, "ts": 1, "type": "click", "color": "red"}
    event = parse_event(raw)
    assert list(event.items()) == [
        ("type", "click"),
        ("selector", "#buy"),
        ("text", None),
        ("track", None),
        ("x", None),
        ("y", None),
        ("w", None),
        ("ts", 1),
        ("seq", 2),
        ("url", URL),
    ]


def test_a_whole_number_ratio_comes_back_as_a_float() -> None:
    event = parse_event(
        {"type": "element_visible", "element": "#a", "ratio": 1, "ts": 1, "seq": 1, "url": URL}
    )
    assert event["ratio"] == 1.0 and isinstance(event["ratio"], float)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ({"ts": 1, "seq": 1, "url": URL}, "Object missing required field `type`"),
        ({"type": "teleport", "ts": 1}, "type: Invalid value 'teleport'"),
        ({"type": 7}, "type: Expected `str`, got `int`"),
        (
            {"type": "scroll", "depth": 101, "ts": 1, "seq": 1, "url": URL},
            "scroll.depth: Expected `int` <= 100",
        ),
        (
            {"type": "rage_click", "selector": "b", "count": 2, "ts": 1, "seq": 1, "url": URL},
            "rage_click.count: Expected `int` >= 3",
        ),
        (
            {"type": "hesitation", "selector": "b", "ts": 1, "seq": 1, "url": URL},
            "hesitation: Object missing required field `ms`",
        ),
        (
            {
                "type": "form_abandon",
                "form": "f",
                "fields_touched": 0,
                "ts": 1,
                "seq": 1,
                "url": URL,
            },
            "form_abandon.fields_touched: Expected `int` >= 1",
        ),
        (
            {"type": "form", "action": "submit", "form": "f", "field_ms": {"email": -1}}
            | {"ts": 1, "seq": 1, "url": URL},
            "form.field_ms[...]: Expected `int` >= 0",
        ),
        (
            {"type": "copy", "element": "price", "chars": 3, "action": "paste"}
            | {"ts": 1, "seq": 1, "url": URL},
            "copy.action: Invalid enum value 'paste'",
        ),
        (
            {"type": "x - at `$.event.depth`", "ts": 1},
            "type: Invalid value 'x - at `$.event.depth`'",
        ),
    ],
)
def test_invalid_events_get_the_reason_of_the_failed_field(raw: Any, reason: str) -> None:
    valid, rejected = validate_batch([raw], Limits())
    assert valid == []
    assert rejected == [Rejection(0, Reject.INVALID_EVENT, reason)]


def test_the_size_limit_counts_the_map_with_its_defaults_filled_in() -> None:
    raw = {"type": "page_view", "ts": 1, "seq": 1, "url": URL}
    size = len(msgspec.json.encode(parse_event(raw)))
    assert size > len(msgspec.json.encode(raw))  # referrer, title and spa are counted
    assert validate_batch([raw], Limits(max_event_bytes=size))[0] != []
    _, rejected = validate_batch([raw], Limits(max_event_bytes=size - 1))
    assert [r.code for r in rejected] == [Reject.EVENT_TOO_LARGE]


def test_every_event_type_has_its_class() -> None:
    assert set(EVENT_CLASSES) == set(EVENT_TYPES)
    for kind, cls in EVENT_CLASSES.items():
        assert type(parse_struct({"type": kind, **REQUIRED[kind]})) is cls


REQUIRED: dict[str, dict[str, Any]] = {
    kind: {"ts": 1, "seq": 1, "url": URL}
    | {
        "click": {"selector": "a"},
        "scroll": {"depth": 1},
        "visibility": {"state": "hidden", "dwell_ms": 1},
        "element_visible": {"element": "a"},
        "hover": {"element": "a", "ms": 1},
        "hesitation": {"selector": "button", "ms": 1500},
        "rage_click": {"selector": "button", "count": 3},
        "dead_click": {"selector": "button"},
        "idle": {"ms": 1},
        "attention": {"active_ms": 1},
        "form": {"action": "focus", "form": "f"},
        "form_hesitation": {"form": "f", "field": "email", "ms": 5000},
        "field_retyped": {"form": "f", "field": "email"},
        "form_abandon": {"form": "f", "fields_touched": 1},
        "copy": {"element": "coupon", "chars": 8},
        "custom": {"name": "n"},
        "identify": {"user_id": "u"},
    }.get(kind, {})
    | ({"prompt": "p", "rule": "r"} if kind.startswith("prompt_") else {})
    for kind in EVENT_TYPES
}
