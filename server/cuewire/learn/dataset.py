"""Training rows from recorded sessions: each session's batches run through the real ingest path
(Pipeline and a store: embedded, or Redis with ``--store``) and its feature vector read from the
facts the store then holds, so training sees exactly the vector the server computes. A
session opens with the device class its batches carry (``Batch.device``), as the server
opened it; the landing page and the referrer come with its first ``page_view``.

A session converts when it holds a goal event (a custom event named ``goal``, ``purchase`` by
default). Its row holds the features of the moment before the first one (the moment a rule
would act on the score); the goal event is stored, its later events are not.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from ..delivery import Delivery
from ..origin import Origin
from ..pipeline import Pipeline
from ..protocol import Prompt
from ..render import Catalog
from ..replay import Recording, SimClock, described
from ..rules.engine import Engine
from ..rules.index import RuleSet
from ..settings import Settings
from ..store import open_store
from .features import PURCHASE, features


@dataclass(frozen=True)
class Row:
    """One session: its feature vector, and whether it reached the goal."""

    site: str
    session: str  # the recorded session id
    visitor: str
    x: tuple[float, ...]
    converted: bool


async def rows(
    recording: Recording, store_url: str | None = None, goal: str = PURCHASE
) -> list[Row]:
    """One row per recorded session, in the order they started."""
    settings = Settings(
        redis_url=store_url,
        key_prefix=f"cwlearn{secrets.token_hex(4)}",  # never mixes with a live site's keys
        live_stream_max=0,
        rules_dir=Path("-"),
    )
    engine = Engine(RuleSet([]))  # no rules: the facts are the events' own
    clock = SimClock(recording.batches[0].at if recording.batches else 0)

    async def emit(sid: str, prompt: Prompt, confirm: bool) -> bool:
        return False

    opened: dict[tuple[str, str], Origin] = {}
    devices: dict[tuple[str, str], str] = {}
    converted: set[tuple[str, str]] = set()
    found: dict[tuple[str, str], Row] = {}
    last = {(b.site, b.session): i for i, b in enumerate(recording.batches)}
    async with open_store(settings) as store:
        delivery = Delivery(store, lambda: engine, lambda: Catalog({}), emit, clock)
        pipeline = Pipeline(store, lambda: engine, delivery)
        for index, batch in enumerate(recording.batches):
            key = (batch.site, batch.session)
            if key in converted:
                continue
            clock.now = max(clock.now, batch.at)
            origin = opened.get(key)
            if origin is None:
                session = await store.open_session(
                    batch.site, batch.visitor, None, clock.now, described(batch)
                )
                origin = Origin(batch.site, batch.visitor, session.session, f"t{index}", "")
                opened[key] = origin
            elif batch.device and batch.device != devices.get(key, ""):
                # another tab connected on another device: the server set it on the session
                # (the latest wins), so the session resumes with it here too
                await store.open_session(
                    batch.site, batch.visitor, origin.session, clock.now, described(batch)
                )
            devices[key] = batch.device or devices.get(key, "")
            events, reached = batch.events, None
            for at, event in enumerate(batch.events):
                if event["type"] == "custom" and event.get("name") == goal:
                    events, reached = batch.events[:at], event
                    break
            if events:
                await pipeline.process(origin, events, clock.now)
            if reached is None and index != last[key]:
                continue  # the facts are read once, after the session's last batch
            s = await store.session_facts(batch.site, origin.session, batch.visitor)
            v = await store.visitor_facts(batch.site, batch.visitor)
            x = features(s, v)
            found[key] = Row(batch.site, batch.session, batch.visitor, x, reached is not None)
            if reached is not None:  # stored, so the visitor's later sessions count it
                converted.add(key)
                await pipeline.process(origin, [reached], clock.now)
    return list(found.values())
