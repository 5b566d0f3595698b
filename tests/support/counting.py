"""The real Redis store, counting the calls a batch makes of it (one round trip each)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cuewire.origin import Origin
from cuewire.store import RedisStore
from cuewire.store.base import Action, Commit, FiringRequest, Put, Queued, Resolved


class CountingStore(RedisStore):
    """The real store, counting the calls that reach Redis per batch, and whether each
    ingest applied the batch decided ahead (``applied``)."""

    def __init__(self, store: RedisStore) -> None:
        super().__init__(store.client, store.settings)
        self.calls: list[str] = []
        self.applied: list[bool] = []

    async def ingest(self, *args: Any, **kwargs: Any) -> Any:
        self.calls.append("ingest")
        ingested = await super().ingest(*args, **kwargs)
        self.applied.append(ingested.applied)
        return ingested

    async def commit(self, origin: Origin, seqs: list[int], actions: list[Action]) -> bool:
        self.calls.append("commit")
        return await super().commit(origin, seqs, actions)

    async def resolve(
        self, requests: list[FiringRequest], commit: Commit | None = None
    ) -> Resolved | None:
        self.calls.append("resolve")
        return await super().resolve(requests, commit)

    async def record(
        self,
        site: str,
        puts: list[Put],
        records: list[dict[str, str]],
        jobs: Sequence[Queued] = (),
    ) -> None:
        self.calls.append("record")
        await super().record(site, puts, records, jobs)

    def took(self) -> list[str]:
        """The calls since the last time this was asked."""
        calls, self.calls = self.calls, []
        return calls
