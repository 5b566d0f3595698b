"""Heatmaps (docs/qa.md, "Heatmaps"): clicks, rage clicks, dead clicks and hesitation per page,
counted as batches arrive, per normalised selector and per position cell.

The ingest script counts them (store/lua/heatmap.lua, in the same call that stores the batch;
on a Redis Cluster in a call beside it): per site, page path and UTC day, one hash

    n:<kind>                 events of the kind
    s:<kind>:<selector>      events per normalised selector (:data:`SELECTOR_CAP` distinct
                             selector fields per hash, the rest counted in o:<kind>)
    c:<kind>:<col>:<row>     events per cell of a :data:`GRID` x :data:`GRID` grid, of events
                             without a viewport width (older snippets, server posts)
    c@<layout>:<kind>:<col>:<row>   the same, of events whose viewport was of the layout class
    n@<layout>:<kind>        events of the kind and layout class (also in n:<kind>)
    w@<layout>:<width>       events of the layout class per viewport width, in steps of
                             :data:`WIDTH_STEP` px up to :data:`MAX_WIDTH`
    #s                       distinct selector fields

and per site and day one index hash, ``<path>`` -> events (:data:`PAGE_CAP` paths; events on
more pages are counted in ``#o``, the paths in ``#p``). Both expire :data:`KEEP_DAYS` after
their day ends. The QA view reads them through store/heatmaps.py (admin/heatmaps.py).

Position: the snippet sends ``x``, thousandths of the viewport's width, and ``y``, thousandths
of the document's height; a cell is ``x * GRID // 1000`` by ``y * GRID // 1000`` (1000 falls in
the last cell). An event without them counts for its selector only.

Layout: a responsive page lays out differently per viewport width, so a cell means the same
element only among visitors whose viewport was of one layout class. The snippet sends ``w``,
the viewport's width in CSS pixels, with the position; :data:`LAYOUTS` buckets it by the usual
breakpoints (mobile < 768 <= tablet < 1280 <= desktop) and the cells are counted per class, in
the same hash (so in the same slot and the same script call). The QA view draws a class over
a frame as wide as the class's most common viewport width (counted too), so the cells line up
exactly for the largest group of its visitors; elements placed in pixels drift for the others
by their difference in width (a desktop layout at 1920px against one drawn at 1440px).
The class is the width's, not the session's device class (device.py, from the User-Agent):
what places the elements is the width (a narrow desktop window gets the phone layout, a tablet
in landscape or an iPad sending a desktop User-Agent gets the desktop one), at the cost of a
few bytes per positioned event.
Selectors and ``n:<kind>`` stay summed over all classes: a selector names the same element in
every layout.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Final
from urllib.parse import urlsplit

import msgspec

from .clock import DAY_MS, day_of
from .keys import Keys

KINDS: Final = ("click", "rage_click", "dead_click", "hesitation")
GRID: Final = 20  # cells per side
SELECTOR_CAP: Final = 300  # distinct (kind, selector) fields per page and day
PAGE_CAP: Final = 1000  # pages per site and day
KEEP_DAYS: Final = 31  # days a day's counts are kept after it ends
MAX_PATH: Final = 512
MAX_SELECTOR: Final = 200
MAX_DAYS: Final = KEEP_DAYS  # the longest period read


@dataclass(frozen=True)
class Layout:
    """A layout class: viewports from ``min_width`` (CSS px) up to the next class's, drawn
    in a frame ``render_width`` wide (a typical viewport of the class)."""

    name: str
    min_width: int
    render_width: int  # drawn at this width until a width of the class is counted
    label: str


LAYOUTS: Final = (
    Layout("mobile", 0, 390, "phones, viewport under 768px"),
    Layout("tablet", 768, 820, "tablets, viewport 768 to 1279px"),
    Layout("desktop", 1280, 1280, "desktops, viewport 1280px and wider"),
)
ALL: Final = "all"  # every event, whatever its layout: the cells as one grid
UNKNOWN: Final = "unknown"  # events sent without a viewport width
ALL_WIDTH: Final = 1024  # the frame's width for ALL and UNKNOWN
VIEWS: Final = (ALL, *(layout.name for layout in LAYOUTS), UNKNOWN)  # what QA can pick
WIDTH_STEP: Final = 10  # viewport widths are counted in steps of this many px
MAX_WIDTH: Final = 3840  # and wider ones as this: at most MAX_WIDTH / WIDTH_STEP fields


def layout_of(width: Any) -> str:
    """The layout class of a viewport ``width`` (CSS px), or "" without one."""
    if not isinstance(width, int) or isinstance(width, bool) or width <= 0:
        return ""
    name = ""
    for layout in LAYOUTS:
        if width >= layout.min_width:
            name = layout.name
    return name


def width_counted(width: Any) -> int:
    """The width a viewport ``width`` is counted as (:data:`WIDTH_STEP`, :data:`MAX_WIDTH`),
    0 without one."""
    if not isinstance(width, int) or not layout_of(width):
        return 0
    step = (width + WIDTH_STEP // 2) // WIDTH_STEP * WIDTH_STEP  # the nearest, halves up
    return max(WIDTH_STEP, min(MAX_WIDTH, step))


def render_width(view: str, widths: dict[int, int] | None = None) -> int:
    """The width a view (:data:`VIEWS`) is drawn at: its class's most common viewport width
    in ``widths`` (width -> events; the narrower of a tie), else the class's ``render_width``
    (:data:`ALL_WIDTH` for ALL and UNKNOWN)."""
    for layout in LAYOUTS:
        if layout.name == view:
            if widths:
                return min(widths.items(), key=lambda kv: (-kv[1], kv[0]))[0]
            return layout.render_width
    return ALL_WIDTH


_POSITIONAL = re.compile(r":nth-(?:last-)?(?:child|of-type)\([^)]*\)|:(?:first|last|only)-child")
# an #id or .class token of a compound selector (CSS escapes included)
_TOKEN = re.compile(r"([#.])((?:\\.|[\w-])+)")
# generated names: a run of 3+ digits, or a CSS-in-JS prefix
_NOISE = re.compile(r"\d{3,}|^(?:css|sc|jsx|svelte|emotion|styled)-", re.IGNORECASE)


@lru_cache(maxsize=4096)  # a page's few selectors, clicked again and again
def normalise_selector(selector: str) -> str:
    """The selector counted for a click: positional pseudo-classes (``:nth-child(3)``,
    ``:first-child``, ...) dropped, ids and classes that look generated (3+ digits in a row, or
    ``css-``/``sc-``/``jsx-``/``svelte-``/``emotion-``/``styled-`` prefixes) dropped, spaces
    around ``>`` made one, at most :data:`MAX_SELECTOR` characters. The snippet already leaves
    most of that out (clicks.ts); events from the backend API or other snippets may not."""
    s = _POSITIONAL.sub("", selector)

    def keep(m: re.Match[str]) -> str:
        return "" if _NOISE.search(m.group(2)) else m.group(0)

    parts = []
    for part in re.split(r"\s*>\s*", s.strip()):
        compound = _TOKEN.sub(keep, part.strip())
        compound = " ".join(compound.split())
        if compound:
            parts.append(compound)
    return " > ".join(parts)[:MAX_SELECTOR]


@lru_cache(maxsize=4096)
def page_path(url: str) -> str:
    """The page an event counts for: the URL's path (no query, no fragment), without a
    trailing slash (but ``/``), at most :data:`MAX_PATH` characters."""
    try:
        path = urlsplit(url).path
    except ValueError:
        path = ""
    path = path.rstrip("/") or "/"
    if not path.startswith("/"):
        path = "/" + path
    return path[:MAX_PATH]


def cell_of(x: Any, y: Any) -> str:
    """``"<col>:<row>"`` of a position in thousandths, or "" without one."""
    if not isinstance(x, int) or not isinstance(y, int):
        return ""
    col = min(GRID - 1, max(0, x) * GRID // 1000)
    row = min(GRID - 1, max(0, y) * GRID // 1000)
    return f"{col}:{row}"


class Hit(msgspec.Struct, frozen=True):
    """What one event adds to a heatmap: its index in the batch (1-based, as Lua counts)."""

    index: int
    path: str
    kind: str
    selector: str
    cell: str
    layout: str = ""  # the layout class of its viewport (layout_of), "" without a width
    width: int = 0  # its viewport's width as counted (width_counted), 0 without one


def hits_of(events: list[dict[str, Any]]) -> list[Hit]:
    """The heatmap hits of a batch's events (the kinds of :data:`KINDS`)."""
    out = []
    for i, event in enumerate(events, start=1):
        kind = event.get("type")
        if kind not in KINDS:
            continue
        selector = normalise_selector(str(event.get("selector") or ""))
        cell = cell_of(event.get("x"), event.get("y"))
        w = event.get("w")
        path = page_path(str(event.get("url") or ""))
        out.append(Hit(i, path, kind, selector, cell, layout_of(w), width_counted(w)))
    return out


def spec_arg(
    k: Keys, site: str, now_ms: int, hits: list[Hit], slot: Any, renumber: bool = False
) -> dict[str, Any]:
    """heatmap.lua's spec for ``hits``; ``slot(key)`` gives a key's index in the script's
    KEYS (scripts.slot_in). ``renumber``: the hits' events are the first ones in order (a
    cluster's call after the batch, for new events only)."""
    day = day_of(now_ms)
    pages: dict[str, int] = {}
    page_list: list[list[Any]] = []
    index_key = slot(k.heatmap_pages(site, day))
    entries = []
    for n, m in enumerate(hits, start=1):
        if m.path not in pages:
            page_list.append([slot(k.heatmap(site, day, m.path)), index_key, m.path])
            pages[m.path] = len(page_list)
        entries.append(
            [n if renumber else m.index, pages[m.path], m.kind, m.selector, m.cell]
            + ([m.layout, m.width] if m.layout else [])
        )
    return {"x": ttl_s(now_ms), "cs": SELECTOR_CAP, "cp": PAGE_CAP, "p": page_list, "e": entries}


def ttl_s(now_ms: int) -> int:
    """Seconds from ``now_ms`` until a day's counts expire: :data:`KEEP_DAYS` after the day
    ends (a time to live, not a date: the server's clock may not be the caller's)."""
    day_start = now_ms // DAY_MS * DAY_MS
    return (day_start + DAY_MS * (1 + KEEP_DAYS) - now_ms) // 1000


@dataclass
class Heatmap:
    """The counts of one page over some days, summed."""

    path: str
    days: list[str]
    totals: dict[str, int] = field(default_factory=dict)  # kind -> events
    selectors: dict[str, dict[str, int]] = field(default_factory=dict)  # selector -> kind -> n
    cells: dict[str, dict[str, int]] = field(default_factory=dict)  # "col:row" -> kind -> n
    over_cap: dict[str, int] = field(default_factory=dict)  # kind -> events past the cap
    # per layout class (UNKNOWN: without a width): kind -> events, and its cells
    layout_totals: dict[str, dict[str, int]] = field(default_factory=dict)
    layout_cells: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)
    layout_widths: dict[str, dict[int, int]] = field(default_factory=dict)  # width -> events

    def add(self, fields: dict[str, str]) -> None:
        """Add one day's hash."""
        for name, raw in fields.items():
            n = int(raw)
            head, _, rest = name.partition(":")
            head, _, layout = head.partition("@")
            if head == "n":
                if layout:
                    _bump(self.layout_totals.setdefault(layout, {}), rest, n)
                else:
                    _bump(self.totals, rest, n)
            elif head == "w" and layout and rest.isdigit():
                widths = self.layout_widths.setdefault(layout, {})
                widths[int(rest)] = widths.get(int(rest), 0) + n
            elif head == "o":
                _bump(self.over_cap, rest, n)
            elif head == "s":
                kind, _, selector = rest.partition(":")
                _bump(self.selectors.setdefault(selector, {}), kind, n)
            elif head == "c":
                kind, _, cell = rest.partition(":")
                _bump(self.cells.setdefault(cell, {}), kind, n)
                cells = self.layout_cells.setdefault(layout or UNKNOWN, {})
                _bump(cells.setdefault(cell, {}), kind, n)

    def per_layout(self) -> dict[str, dict[str, int]]:
        """Events per view (:data:`VIEWS`) and kind; UNKNOWN's are those without a width."""
        out = {ALL: dict(self.totals)}
        unknown = dict(self.totals)
        for layout in LAYOUTS:
            counts = self.layout_totals.get(layout.name, {})
            out[layout.name] = dict(counts)
            for kind, n in counts.items():
                unknown[kind] = unknown.get(kind, 0) - n
        out[UNKNOWN] = {kind: n for kind, n in unknown.items() if n > 0}
        return out

    def to_json(self, top: int = 100, layout: str = ALL) -> dict[str, Any]:
        """The counts, the cells those of ``layout`` (a view of :data:`VIEWS`)."""
        ranked = sorted(self.selectors.items(), key=lambda kv: (-sum(kv[1].values()), kv[0]))
        per_layout = self.per_layout()
        cells = self.cells if layout == ALL else self.layout_cells.get(layout, {})
        return {
            "path": self.path,
            "days": self.days,
            "grid": GRID,
            "layout": layout,
            "width": render_width(layout, self.layout_widths.get(layout)),
            "layouts": [
                {
                    "layout": view,
                    "width": render_width(view, self.layout_widths.get(view)),
                    "label": _label(view),
                    "totals": per_layout.get(view, {}),
                }
                for view in VIEWS
            ],
            "totals": per_layout.get(layout, {}),
            "all_totals": self.totals,
            "over_cap": self.over_cap,
            "selectors": [
                {"selector": s, "counts": c, "total": sum(c.values())} for s, c in ranked[:top]
            ],
            "selectors_total": len(ranked),
            "cells": [
                {"col": int(c.split(":")[0]), "row": int(c.split(":")[1]), "counts": counts}
                for c, counts in sorted(cells.items())
            ],
        }


def _label(view: str) -> str:
    for layout in LAYOUTS:
        if layout.name == view:
            return layout.label
    if view == UNKNOWN:
        return "viewport width not sent (older snippets, server posts)"
    return "every viewport width, in one grid"


def _bump(counts: dict[str, int], key: str, n: int) -> None:
    counts[key] = counts.get(key, 0) + n


def days_back(now_ms: int, days: int) -> list[str]:
    """The last ``days`` UTC days up to today, newest first."""
    return [day_of(now_ms - i * DAY_MS) for i in range(max(1, min(days, MAX_DAYS)))]
