"""Reads of the heatmap hashes (the counting and the fields: cuewire/heatmaps.py), for the QA
view's heatmap page. One HGETALL per day, pipelined: each its own key, so it works on a
cluster too; a Redis failure is a StoreError."""

from __future__ import annotations

from typing import Any

from ..heatmaps import Heatmap, page_path
from ..keys import Keys
from .shared import Client, guard, pairs_of


async def read_heatmap(client: Client, k: Keys, site: str, path: str, days: list[str]) -> Heatmap:
    """A page's counts over ``days``, summed."""
    page = page_path(path)
    heatmap = Heatmap(page, days)
    for fields in await _hashes(client, [k.heatmap(site, day, page) for day in days]):
        heatmap.add(fields)
    return heatmap


async def read_pages(client: Client, k: Keys, site: str, days: list[str]) -> list[dict[str, Any]]:
    """The pages with counts over ``days``, most events first."""
    pages: dict[str, int] = {}
    for fields in await _hashes(client, [k.heatmap_pages(site, day) for day in days]):
        for name, n in fields.items():
            if name.startswith("/"):
                pages[name] = pages.get(name, 0) + int(n)
    ranked = sorted(pages.items(), key=lambda kv: (-kv[1], kv[0]))
    return [{"path": p, "events": n} for p, n in ranked]


async def _hashes(client: Client, keys: list[str]) -> list[dict[str, str]]:
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.hgetall(key)
    async with guard("read heatmaps"):
        replies = await pipe.execute()
    return [pairs_of(reply) for reply in replies]
