"""The Redis store's one call per event batch: ingest.lua (with fold.lua, the gate and
governance), its keys and arguments made from the batch, and what its answer says
(base.Ingested). On a cluster, what cannot share the visitor's slot goes beside the call
(the module doc of redis.py): the per-address limit asked first when no sync loop runs, and
the live entries, counters and heatmap hits written after it, gathered per site and day."""

from __future__ import annotations

from typing import Any

from ..clock import day_of
from ..counters import Mark
from ..errors import StoreError
from ..facts import FactChanges, NewName
from ..heatmaps import Hit, hits_of, spec_arg
from ..keys import Keys
from ..origin import Origin
from ..settings import Settings
from . import tally
from .addresses import SharedAddressLimit
from .base import Admitted, Decided, Gate, Ingested, Resolved
from .beside import Beside
from .coalesce import Coalescer
from .fold import outcomes_arg
from .live import LiveEntries
from .scripts import (
    TimerOp,
    asks_arg,
    gate_arg,
    heatmap_script,
    ingest_script,
    lua,
    ops_arg,
    slot_in,
    to_json,
    verdict,
)
from .shared import FAILURES, Client, guard, pairs


class Batches:
    """A batch's store call on ``client``, through ``calls`` (the store's coalescer) and
    ``beside`` (what a cluster writes in other slots)."""

    def __init__(
        self,
        client: Client,
        keys: Keys,
        settings: Settings,
        calls: Coalescer,
        beside: Beside,
        addresses: SharedAddressLimit,
        live: LiveEntries,
    ) -> None:
        self._k = keys
        self._s = settings
        self._calls = calls
        self._beside = beside
        self._addresses = addresses
        self._live = live
        self._ingest = client.register_script(ingest_script())
        self._heatmap = client.register_script(heatmap_script())
        self._address = client.register_script(lua("address_rate.lua"))
        # on a cluster: written after the batches, gathered per site and day
        self._hits = beside.gathered(self._heatmap_apart)
        self._counted = beside.gathered(self._count_apart)

    async def ingest(
        self,
        origin: Origin,
        events: list[dict[str, Any]],
        changes: list[FactChanges],
        now_ms: int,
        fields: str = "",
        gate: Gate | None = None,
        names: list[list[NewName]] | None = None,
        decided: Decided | None = None,
        marks: list[Mark] | None = None,
    ) -> Ingested:
        """Admit a batch through ``gate`` (``names``: the names each event would add, for the
        caps), store what it admits; return its flags and the facts after it: the fields
        ``fields`` names (``RuleSet.fields_json``: what the engine reads), or all of both
        hashes. With ``decided``, its actions are applied with the batch when its facts are
        what the store holds and every event is new (``Ingested.applied``), and the writes
        of its firings' outcomes made ahead (``Decided.outcomes``) with governance's answer
        (``Resolved.written``: one Redis only, store/fold.py). ``marks``: what
        the events count (counters.py), counted in the same script. One round trip (on a
        cluster, see the module's doc)."""
        k = self._k
        site, session, visitor, tab = origin.site, origin.session, origin.visitor, origin.tab
        socket_id = origin.sid
        encoded = [to_json(event) for event in events]
        session_key = k.session(site, session, visitor)
        live_max = 0 if k.cluster else self._s.live_stream_max  # a cluster writes it after
        args: list[Any] = [
            now_ms,
            self._s.session_ttl_s,
            self._s.visitor_ttl_s,
            self._s.recent_events,
            socket_id,
            visitor,
            live_max,
            session,
        ]
        # the events' JSON go apart, after the fourteen (ARGV[15...]): not escaped into the batch
        batch = [
            change.encoded(event["seq"], "") for event, change in zip(events, changes, strict=True)
        ]
        args.append(to_json(batch))
        args.append(fields)
        address = gate.address if gate else ""
        asked: tuple[int, int] | None = None
        taken = 0  # events the address gave a token here (addresses.py), to give back
        if gate and k.cluster and gate.address_rate.interval_ms() > 0:
            asked = self._addresses.take(address, gate.address_rate, len(events), now_ms)
            if asked is None:  # no sync loop runs, or the map is full: the shared key decides
                async with guard("admit events"):
                    asked = await self._ask_address(gate, len(events), now_ms)
            else:
                taken = asked[0]
        args.append(gate_arg(gate, names or [[] for _ in events], asked) if gate else "")
        keys = [
            session_key,
            k.recent(site, session, visitor),
            k.seen(site, session, tab, visitor),
            k.visitor(site, visitor),
            session_key if k.cluster else k.live(site),  # (not in the slot: a placeholder)
            k.pending(site, session, tab, visitor),
            k.visitor_rate(site, visitor),
            session_key if k.cluster else k.address_rate(address),
            k.names(site, session, visitor),
            k.visitor_names(site, visitor),
            k.visitor_sessions(site, visitor),
        ]
        timer_ops: list[TimerOp] = []
        if decided is None:
            args += ["", "", ""]
        else:
            facts = {"s": decided.session, "v": decided.visitor}
            args.append(to_json(facts))
            args.append(ops_arg(k, decided.seqs, decided.actions, keys, timer_ops))
            outcomes = outcomes_arg(k, site, decided.outcomes, keys)
            args.append(asks_arg(decided.requests, outcomes) if decided.requests else "")
        funnel_ttl = self._s.visitor_ttl_s
        args.append(tally.ingest_arg(k, site, visitor, marks, keys, now_ms, funnel_ttl))
        args += encoded
        hits = hits_of(events)
        if hits and not k.cluster:  # after the events (a cluster counts them beside the call)
            args.append(to_json(spec_arg(k, site, now_ms, hits, slot_in(keys))))
        try:
            (
                flags,
                sess,
                vis,
                (granted, retry_ms, capped),
                applied,
                verdicts,
                tallied,
                written,
            ) = await self._beside.call(self._ingest, keys, args, timer_ops, lambda r: bool(r[4]))
        except FAILURES as exc:
            self._addresses.give_back(address, taken)
            raise StoreError(f"cannot store events: {exc}") from exc
        self._addresses.give_back(address, taken - int(granted))  # the visitor's own limit
        fresh = [int(f) == 1 for f in flags]
        session_facts, visitor_facts = pairs(sess), pairs(vis)
        if k.cluster and self._s.live_stream_max > 0 and any(fresh):
            accepted = [text for text, new in zip(encoded, fresh, strict=True) if new]
            # the facts the call returned, or those of the caller's copy it found the store
            # holding (then it returns none): the session's device class is among them
            known = decided.session if applied and decided is not None else session_facts
            self._live.add(origin, now_ms, accepted, known)
        if tallied:  # a cluster: the site's counters are in another slot
            self._counted.add((site, day_of(now_ms)), tallied)
        if k.cluster and hits:
            counted = [(now_ms, h) for h in hits if fresh[h.index - 1]]
            if counted:
                self._hits.add((site, day_of(now_ms)), counted)
        todo = [int(f) != 0 for f in flags]
        admitted = Admitted(int(granted), int(retry_ms), [str(c) for c in capped or []])
        if not applied:
            return Ingested(fresh, todo, session_facts, visitor_facts, admitted)
        resolved = Resolved(
            [verdict(v) for v in verdicts],
            session_facts,
            visitor_facts,
            [int(w) == 1 for w in written],
        )
        return Ingested(fresh, todo, {}, {}, admitted, True, resolved)

    async def _ask_address(self, gate: Gate, events: int, now_ms: int) -> tuple[int, int]:
        """On a cluster: the per-address limit's answer for a batch, before the batch."""
        rate = gate.address_rate
        keys = [self._k.address_rate(gate.address)]
        args = [now_ms, events, rate.interval_ms(), rate.burst]
        granted, retry_ms = await self._calls.call(self._address, keys, args)
        return int(granted), int(retry_ms)

    async def _heatmap_apart(self, site_day: tuple[str, str], hits: list[tuple[int, Hit]]) -> None:
        """On a cluster: the new heatmap hits of the batches of one site and day, gathered,
        in their site's heatmap slot."""
        keys: list[str] = []
        now_ms = max(at for at, _ in hits)  # the day's time to live from the latest
        spec = spec_arg(self._k, site_day[0], now_ms, [h for _, h in hits], slot_in(keys), True)
        await self._calls.call(self._heatmap, keys, [to_json(spec)])

    async def _count_apart(self, site_day: tuple[str, str], fields: list[Any]) -> None:
        """On a cluster: the counters the batches of one site and day counted, gathered."""
        await tally.count_beside(self._calls, self._k, *site_day, fields)
