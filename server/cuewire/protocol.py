"""Typed wire models (docs/protocol.md): the connect auth, events, acks and prompts.

Validation happens here, at the edge; everything past this module works on valid data.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from .codes import Reject

MAX_STRING = 2048
MAX_MAP_KEYS = 50

Str = Annotated[str, Meta(max_length=MAX_STRING)]
Id = Annotated[str, Meta(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
Scalar = str | int | float | bool | None
Props = Annotated[dict[Annotated[str, Meta(max_length=128)], Scalar], Meta(max_length=MAX_MAP_KEYS)]
Millis = Annotated[int, Meta(ge=0)]
# a position in thousandths: x of the viewport's width, y of the document's height (heatmaps)
Permille = Annotated[int, Meta(ge=0, le=1000)]
# the viewport's width in CSS pixels, sent with a position: its layout class (heatmaps)
Width = Annotated[int, Meta(ge=1, le=100_000)]
# field name -> milliseconds it had the focus (forms: never a value)
FieldMs = Annotated[
    dict[Annotated[str, Meta(max_length=128)], Millis], Meta(max_length=MAX_MAP_KEYS)
]


class Auth(msgspec.Struct, frozen=True, forbid_unknown_fields=False):
    """The ``auth`` object of the Socket.IO CONNECT packet."""

    site: Annotated[str, Meta(min_length=1, max_length=128)]
    visitor: Id
    session: Id | None = None
    tab: Annotated[str, Meta(min_length=1, max_length=64)] | None = None
    dnt: bool = False
    tz: Annotated[int, Meta(ge=-900, le=900)] | None = None  # JS getTimezoneOffset(), minutes
    prompt_in_ack: bool = False  # the prompts a batch causes come in its ack (Ack.prompts)


class Event(msgspec.Struct, kw_only=True, tag_field="type"):
    """Fields every event carries; the ``type`` tag selects the subclass."""

    ts: Millis
    seq: Millis
    url: Str


class PageView(Event, tag="page_view"):
    referrer: Str | None = None
    title: Str | None = None
    spa: bool = False


class Click(Event, tag="click"):
    selector: Str
    text: Str | None = None
    track: Str | None = None
    x: Permille | None = None
    y: Permille | None = None
    w: Width | None = None


class Scroll(Event, tag="scroll"):
    depth: Annotated[int, Meta(ge=0, le=100)]


class Visibility(Event, tag="visibility"):
    """``dwell_ms``: the page's visible time so far; ``active_ms``: its attentive time (as
    ``attention`` reports it; None from snippets before it was added)."""

    state: Literal["hidden", "visible"]
    dwell_ms: Millis
    active_ms: Millis | None = None


class ElementVisible(Event, tag="element_visible"):
    element: Str
    ratio: Annotated[float, Meta(ge=0, le=1)] | None = None


class Hover(Event, tag="hover"):
    element: Str
    ms: Millis


class Hesitation(Event, tag="hesitation"):
    """The pointer (or a finger held) is still on a tracked element or a call to action after
    ``ms``, one of the snippet's dwell thresholds: sent while the visitor hesitates."""

    selector: Str
    ms: Millis
    element: Str | None = None  # the data-cw-track value of it or its nearest tracked ancestor
    x: Permille | None = None
    y: Permille | None = None
    w: Width | None = None


class RageClick(Event, tag="rage_click"):
    """``count`` (3 or more) fast clicks in one small spot; the fields of the first click."""

    selector: Str
    count: Annotated[int, Meta(ge=3, le=1000)]
    text: Str | None = None
    track: Str | None = None
    x: Permille | None = None
    y: Permille | None = None
    w: Width | None = None


class DeadClick(Event, tag="dead_click"):
    """A click on something that looks clickable that changed nothing within a second."""

    selector: Str
    text: Str | None = None
    track: Str | None = None
    x: Permille | None = None
    y: Permille | None = None
    w: Width | None = None


class Idle(Event, tag="idle"):
    ms: Millis


class Active(Event, tag="active"):
    pass


class Attention(Event, tag="attention"):
    """Every 5 s while the visitor does something (and when the tab is hidden): ``active_ms``
    is the page's attentive time so far; ``reading`` when only scrolling or pointer movement."""

    active_ms: Millis
    reading: bool = False


class ExitIntent(Event, tag="exit_intent"):
    # None from snippets before 0.x and server-side posts
    cause: Literal["mouse_leave", "scroll_up", "back", "hidden"] | None = None


class Form(Event, tag="form"):
    action: Literal["focus", "abandon", "submit"]
    form: Str
    field: Str | None = None
    field_ms: FieldMs = {}  # with ``submit``: how long each field had the focus


class FormHesitation(Event, tag="form_hesitation"):
    """A focused field got no input for ``ms`` (the snippet's form hesitation delay)."""

    form: Str
    field: Str
    ms: Millis


class FieldRetyped(Event, tag="field_retyped"):
    """A field was emptied and typed into again."""

    form: Str
    field: Str


class FormAbandon(Event, tag="form_abandon"):
    """The page was left or hidden after input into a form that was not submitted."""

    form: Str
    fields_touched: Annotated[int, Meta(ge=1, le=10000)]
    field_ms: FieldMs = {}


class Copy(Event, tag="copy"):
    """Text inside a tracked element was copied or selected: its length, never the text."""

    element: Str
    chars: Annotated[int, Meta(ge=1)]
    action: Literal["copy", "select"] = "copy"


class Custom(Event, tag="custom"):
    name: Annotated[str, Meta(min_length=1, max_length=128)]
    props: Props = {}


class Identify(Event, tag="identify"):
    user_id: Annotated[str, Meta(min_length=1, max_length=256)]
    traits: Props = {}
    # hex HMAC-SHA256 of user_id with the site's identity_secret (identity.py); checked and
    # dropped by the server, never stored
    signature: Annotated[str, Meta(max_length=128)] | None = None


class PromptFeedback(Event, kw_only=True):
    prompt: Annotated[str, Meta(max_length=128)]
    rule: Annotated[str, Meta(max_length=128)]


class PromptShown(PromptFeedback, tag="prompt_shown"):
    pass


class PromptClick(PromptFeedback, tag="prompt_click"):
    action: Str | None = None


class PromptDismiss(PromptFeedback, tag="prompt_dismiss"):
    pass


class PromptSnooze(PromptFeedback, tag="prompt_snooze"):
    pass


class PromptOptout(PromptFeedback, tag="prompt_optout"):
    pass


class PromptExpired(PromptFeedback, tag="prompt_expired"):
    """The prompt closed by itself after its ``dismiss_after_ms``: not the visitor acting."""


AnyEvent = (
    PageView
    | Click
    | Scroll
    | Visibility
    | ElementVisible
    | Hover
    | Hesitation
    | RageClick
    | DeadClick
    | Idle
    | Active
    | Attention
    | ExitIntent
    | Form
    | FormHesitation
    | FieldRetyped
    | FormAbandon
    | Copy
    | Custom
    | Identify
    | PromptShown
    | PromptClick
    | PromptDismiss
    | PromptSnooze
    | PromptOptout
    | PromptExpired
)
EVENT_TYPES: tuple[str, ...] = tuple(str(cls.__struct_config__.tag) for cls in AnyEvent.__args__)
# The event class each ``type`` names. msgspec keeps a struct class's validation plan on the
# class but builds a union's anew on every ``convert`` of it (~15 us for AnyEvent, against
# ~0.5 us for one class), so parse_struct converts to the class the tag names.
EVENT_CLASSES: dict[str, type[Event]] = {
    str(cls.__struct_config__.tag): cls for cls in AnyEvent.__args__
}


class _Tagged(msgspec.Struct):
    """AnyEvent inside a struct, where msgspec keeps its plan: what parse_struct converts an
    event with a missing, unknown or mistyped tag through, for the union's own error."""

    event: AnyEvent


_HELD_AT = " - at `$.event"


class Rejection(msgspec.Struct, frozen=True):
    """One event not accepted (``index`` -1: the whole batch). Branch on ``code``, a
    :class:`~cuewire.codes.Reject`; ``reason`` is for people."""

    index: int
    code: Reject
    reason: str


class Ack(msgspec.Struct, frozen=True, omit_defaults=True):
    """The answer to ``events``; ``retry_ms`` tells when to resend retryable rejections;
    ``prompts``, to a client that connected with ``prompt_in_ack``, the prompts the batch
    caused (instead of a ``prompt`` push each: one frame, not two)."""

    accepted: int
    rejected: list[Rejection]
    retry_ms: int | None = None
    prompts: list[Prompt] | None = None


class SessionStarted(msgspec.Struct, frozen=True):
    """The ``session`` push after a connect (docs/protocol.md, "Connecting")."""

    session: str
    visitor: str
    returning: bool


Kind = Literal["modal", "toast", "banner", "slidein", "chat"]


class Prompt(msgspec.Struct, frozen=True):
    """The ``prompt`` push (docs/protocol.md, "Prompts")."""

    id: str
    rule: str
    template: str
    variant: str | None
    kind: Kind
    html: str
    # Not modal: close by itself after this long unattended, reported as prompt_expired
    # (0: stays until the visitor closes it).
    dismiss_after_ms: int = 0
    # CSS selectors of page elements the prompt must not cover.
    avoid: tuple[str, ...] = ()
    # The id of a lower-priority prompt on screen that this one takes the place of.
    replaces: str | None = None


class Reset(msgspec.Struct, frozen=True):
    """The ``reset`` push (docs/protocol.md, "Reset"): the tab drops its session id and
    reconnects, so its next events open a fresh session. ``code`` says why (codes.Restart)."""

    code: str


# What the server pushes to one tab: its event name is ``push_event``'s.
Push = Prompt | Reset


def push_event(push: Push) -> str:
    """The Socket.IO event that carries ``push``."""
    return "reset" if isinstance(push, Reset) else "prompt"


_PATH = re.compile(r" - at `\$\.?([^`]*)`$")


def error_reason(exc: msgspec.ValidationError, prefix: str = "") -> str:
    """Turn msgspec's ``Expected int, got str - at `$.depth``` into ``depth: Expected ...``."""
    message = str(exc)
    match = _PATH.search(message)
    if not match:
        return f"{prefix}: {message}" if prefix else message
    path = match.group(1)
    where = f"{prefix}.{path}" if prefix and path else (prefix or path)
    return f"{where}: {message[: match.start()]}"


def parse_auth(raw: Any) -> Auth:
    """Validate the connect auth; raise ``msgspec.ValidationError`` with a path on failure."""
    return msgspec.convert(raw, Auth)


def parse_event(raw: Any) -> dict[str, Any]:
    """Validate one event and return it as a plain map (with ``type``) for the engine."""
    return event_map(parse_struct(raw))


def parse_struct(raw: Any) -> Event:
    """Validate one event into its typed model; raise ``msgspec.ValidationError`` on failure,
    the very error ``msgspec.convert(raw, AnyEvent)`` raises."""
    if not isinstance(raw, dict):
        raise msgspec.ValidationError("an event must be a map")
    kind = raw.get("type")
    cls = EVENT_CLASSES.get(kind) if type(kind) is str else None
    if cls is not None:
        return msgspec.convert(raw, cls)
    try:
        return msgspec.convert({"event": raw}, _Tagged).event
    except msgspec.ValidationError as exc:
        # the path is the message's tail and never holds the payload's text: drop `.event`
        head, at, path = str(exc).rpartition(_HELD_AT)
        if not at:
            raise
        message = head + (f" - at `${path}" if path != "`" else "")
        raise msgspec.ValidationError(message) from None


def event_map(event: Event) -> dict[str, Any]:
    """A valid event as the plain map the engine works on: every field, defaults included,
    and ``type`` first."""
    out: dict[str, Any] = msgspec.to_builtins(event)
    return out


def event_reason(raw: Any, exc: msgspec.ValidationError) -> str:
    kind = raw.get("type") if isinstance(raw, dict) else None
    prefix = kind if isinstance(kind, str) and kind in EVENT_TYPES else ""
    return error_reason(exc, prefix)
