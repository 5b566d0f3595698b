"""A granted show's prompt: its template rendered for the candidate (the variant's template
and params over the rule's), and what it must not cover on the page (``avoid``)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import jinja2

from .protocol import Prompt
from .render import Catalog
from .rules.engine import Candidate

log = logging.getLogger(__name__)

MAX_AVOID = 8
CLICK_EVENTS = ("click", "rage_click", "dead_click")  # selector, and a tracked ancestor's track
TRACKED_EVENTS = (*CLICK_EVENTS, "hover", "element_visible", "hesitation")
MAX_SELECTOR = 256


def avoid(selectors: Sequence[str], event: Mapping[str, Any] | None) -> tuple[str, ...]:
    """What the prompt must not cover: the rule's ``show.avoid``, and the element of the event
    that made it fire (the selector of a click, rage or dead click or hesitation; the tracked
    element of a hover, element_visible or hesitation, or a click's tracked ancestor)."""
    out = list(selectors)
    event = event or {}
    kind = event.get("type")
    if kind in (*CLICK_EVENTS, "hesitation") and isinstance(event.get("selector"), str):
        out.append(event["selector"])
    tracked = event.get("track") if kind in CLICK_EVENTS else event.get("element")
    # a tracked element, as a CSS attribute selector (its string cannot hold a raw newline)
    if kind in TRACKED_EVENTS and isinstance(tracked, str) and tracked.isprintable():
        value = tracked.replace("\\", "\\\\").replace('"', '\\"')
        out.append(f'[data-cw-track="{value}"]')
    kept = [s for s in dict.fromkeys(out) if s and len(s) <= MAX_SELECTOR]
    return tuple(kept[:MAX_AVOID])


def render_prompt(
    catalog: Catalog, cand: Candidate, prompt_id: str, variant: str | None, replaces: str | None
) -> Prompt | None:
    """The prompt of ``cand``'s show in ``variant``; None when the rule shows nothing or its
    template does not render (logged)."""
    show = cand.rule.show
    if show is None:
        return None
    chosen = next((v for v in show.variants if v.id == variant), None)
    name = chosen.template if chosen and chosen.template else show.template
    context = cand.view.template_context()
    context["prompt"] = {"id": prompt_id, "rule": cand.rule.id, "variant": variant}
    context["params"] = {**show.params, **(chosen.params if chosen else {})}
    try:
        html = catalog.render(name, context)
        meta = catalog.get(name).meta
    except (KeyError, jinja2.TemplateError):
        log.exception("rule %s: cannot render template %s", cand.rule.id, name)
        return None
    return Prompt(
        id=prompt_id,
        rule=cand.rule.id,
        template=name,
        variant=variant,
        kind=meta.kind,
        html=html,
        dismiss_after_ms=meta.dismiss_after_ms,
        avoid=avoid(show.avoid, cand.view.event),
        replaces=replaces,
    )
