"""Turn candidates into at most one shown prompt: claim, render, emit, audit."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import jinja2

from .clock import Clock
from .ids import new_id
from .protocol import Prompt
from .rules.engine import Candidate
from .store.base import Claim, Store

log = logging.getLogger(__name__)

Emit = Callable[[str, Prompt], Awaitable[None]]


class Delivery:
    """Governance for now: a rule fires at most once per session, highest priority first."""

    def __init__(
        self,
        store: Store,
        catalog: Callable[[], Any],
        emit: Emit,
        clock: Clock,
        once_ttl_s: int,
    ) -> None:
        self._store = store
        self._catalog = catalog
        self._emit = emit
        self._clock = clock
        self._once_ttl_s = once_ttl_s

    async def resolve(
        self, site: str, session: str, visitor: str, sid: str, candidates: list[Candidate]
    ) -> Prompt | None:
        shown: Prompt | None = None
        for cand in sorted(candidates, key=lambda c: -c.rule.priority):
            if shown is not None:
                await self._record(
                    site, session, visitor, cand, "suppressed", f"lower priority than {shown.rule}"
                )
                continue
            [won] = await self._store.apply([Claim(site, session, cand.rule.id, self._once_ttl_s)])
            if not won:
                await self._record(
                    site, session, visitor, cand, "suppressed", "already fired in this session"
                )
                continue
            prompt = self._render(cand)
            if prompt is None:
                await self._record(site, session, visitor, cand, "suppressed", "render failed")
                continue
            await self._emit(sid, prompt)
            await self._record(site, session, visitor, cand, "fired", "", prompt)
            shown = prompt
        return shown

    def _render(self, cand: Candidate) -> Prompt | None:
        catalog = self._catalog()
        name = cand.rule.show.template
        context = cand.view.template_context()
        prompt_id = new_id("p_")
        context["prompt"] = {"id": prompt_id, "rule": cand.rule.id, "variant": None}
        context["params"] = dict(cand.rule.show.params)
        try:
            html = catalog.render(name, context)
            kind = catalog.get(name).meta.kind
        except (KeyError, jinja2.TemplateError):
            log.exception("rule %s: cannot render template %s", cand.rule.id, name)
            return None
        return Prompt(
            id=prompt_id, rule=cand.rule.id, template=name, variant=None, kind=kind, html=html
        )

    async def _record(
        self,
        site: str,
        session: str,
        visitor: str,
        cand: Candidate,
        outcome: str,
        reason: str,
        prompt: Prompt | None = None,
    ) -> None:
        now = self._clock.now_ms()
        record = {
            "outcome": outcome,
            "reason": reason,
            "rule": cand.rule.id,
            "session": session,
            "visitor": visitor,
            "cause": cand.cause,
            "prompt": prompt.id if prompt else "",
            "template": cand.rule.show.template,
            "variant": "",
            "url": cand.view.url,
            "latency_ms": str(max(0, now - cand.since_ms)),
            "at": str(now),
            "event": json.dumps(cand.view.event or {}, separators=(",", ":")),
        }
        await self._store.audit(site, record)
