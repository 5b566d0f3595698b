"""Live segment sizes: the visitors the server assigned to each learned segment, per UTC day.

When a rule tests ``visitor.segment`` the engine assigns the visitor the segment of the nearest
centroid (rules/facts_view.py), and the store counts the visitor in the site's measurement
counters of the day (``#s|model|segment``, counters.py) once per visitor, segment and day
(counters.lua ``count_segment``). A batch decided before its store call (pipeline.py, most
batches) is counted in that same call, when its decision stands; one decided after it is
counted by a small call of its own. This process remembers what it last counted per visitor
(bounded), so a visitor's every event does not ask again: that call is made when a visitor's
segment or the day changes, never per event.
``/qa/segments`` shows the counts beside the sizes at training (admin/segments_view.py).
"""

from __future__ import annotations

import logging
from collections import OrderedDict

from ..clock import day_of
from ..errors import StoreError
from ..store.base import Store

log = logging.getLogger(__name__)

REMEMBERED = 100_000  # visitors whose last count this process keeps in mind


class Assigned:
    def __init__(self, store: Store, remembered: int = REMEMBERED) -> None:
        self._store = store
        self._remembered = remembered
        self._counted: OrderedDict[tuple[str, str], tuple[str, str, str]] = OrderedDict()

    def known(self, site: str, visitor: str, model: str, segment: str, now_ms: int) -> bool:
        """Whether this process already counted ``visitor`` in ``segment`` that day."""
        key = (site, visitor)
        if self._counted.get(key) != (model, segment, day_of(now_ms)):
            return False
        self._counted.move_to_end(key)
        return True

    def remember(self, site: str, visitor: str, model: str, segment: str, now_ms: int) -> None:
        """``visitor`` is counted in ``segment`` that day (the batch's own call did it)."""
        key = (site, visitor)
        self._counted[key] = (model, segment, day_of(now_ms))
        self._counted.move_to_end(key)
        if len(self._counted) > self._remembered:
            self._counted.popitem(last=False)

    async def note(self, site: str, visitor: str, model: str, segment: str, now_ms: int) -> None:
        """Count ``visitor`` in ``segment`` of the segments model ``model`` apart from its
        batch (a batch decided after its store call), unless known to be counted already."""
        if self.known(site, visitor, model, segment, now_ms):
            return
        try:
            await self._store.assign_segment(site, visitor, model, segment, now_ms)
        except StoreError as exc:  # the batch is stored: a missed count must not fail it
            log.warning("a segment assignment on %s was not counted: %s", site, exc)
            return
        self.remember(site, visitor, model, segment, now_ms)
