"""The Lua scripts of the store, composed from their parts, and their arguments encoded.

ingest.lua also calls ``heatmap`` (heatmap.lua: :func:`ingest_script`). A script may call what
another defines: ``apply_ops`` (ops.lua), ``read`` (read.lua),
``commit`` (commit.lua as a function), ``governance`` (govern.lua as a function),
``govern_all`` (govern_all.lua), ``write_record`` (write_record.lua) and ``fold_all``
(fold.lua), and the measurement counters' ``bump``, ``counted``, ``mark_exposure`` and
``tally_events`` (counters.lua); :func:`composed` prepends them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

import msgspec

from .. import fields
from ..facts import NewName
from ..keys import Keys
from .base import Action, Cancel, FiringRequest, Gate, Put, Schedule, Timer, Verdict


def lua(name: str) -> str:
    return resources.files(__package__).joinpath("lua", name).read_text(encoding="utf-8")


def _function(name: str, script: str) -> str:
    """A script as a Lua function of (KEYS, ARGV), for a composed script to call."""
    return f"local function {name}(KEYS, ARGV)\n{lua(script)}\nend\n"


def composed(script: str, *parts: str) -> str:
    """``script`` with what it calls: apply_ops (ops.lua), the counters (counters.lua), read
    (read.lua), commit (commit.lua), governance (govern.lua) and govern_all
    (govern_all.lua), then ``parts`` (more Lua files, in order)."""
    return (
        lua("ops.lua")
        + lua("counters.lua")
        + lua("read.lua")
        + _function("commit", "commit.lua")
        + _function("governance", "govern.lua")
        + lua("govern_all.lua")
        + "".join(lua(part) for part in parts)
        + lua(script)
    )


def ingest_script() -> str:
    """ingest.lua, composed, with its heatmap part (heatmap.lua) and the writes of the
    firings decided ahead (fold.lua, write_record.lua)."""
    return lua("heatmap.lua") + composed("ingest.lua", "write_record.lua", "fold.lua")


def record_script() -> str:
    """record.lua with what it calls: apply_ops (ops.lua), the counters (counters.lua) and
    write_record (write_record.lua)."""
    return lua("ops.lua") + lua("counters.lua") + lua("write_record.lua") + lua("record.lua")


def heatmap_script() -> str:
    """heatmap.lua alone, for a cluster's call beside the batch (ARGV[1]: the spec, for new
    events only)."""
    return lua("heatmap.lua") + "heatmap(KEYS, cjson.decode(ARGV[1]), nil)\nreturn 1\n"


def governance_args(c: FiringRequest) -> list[str]:
    """govern.lua's ARGV for ``c``."""
    values = [
        c.rule,
        c.now_ms,
        int(c.shows),
        c.prompt_id,
        c.per_session,
        c.per_day,
        c.per_week,
        c.cooldown_ms,
        c.max_prompts,
        int(c.one_at_a_time),
        c.snooze_ms,
        c.dismiss_count,
        c.dismiss_pause_ms,
        c.priority,
        int(c.mode == "shadow"),
    ]
    return [str(v) for v in values]


_encoder = msgspec.json.Encoder()


def to_json(value: Any) -> str:
    """Compact JSON for script arguments (Lua's cjson reads it); msgspec is several times
    faster than the json module on the hot path."""
    return _encoder.encode(value).decode()


def asks_arg(
    requests: list[FiringRequest], outcomes: list[dict[str, Any] | None] | None = None
) -> str:
    """govern_all.lua's ``asks`` for ``requests``; with ``outcomes``, each request's
    writes as fold.lua's ``p`` (store/fold.py; None: none)."""
    asks: list[dict[str, Any]] = [
        {
            "a": governance_args(r),
            "f": r.firing,
            "m": fields.FIRING + fields.counted_as(r.rule, r.mode == "shadow"),
            "s": r.shows,
            "w": r.whole_facts,
            "x": "" if r.mode == "live" else r.mode,
        }
        for r in requests
    ]
    for ask, p in zip(asks, outcomes or (), strict=False):
        if p is not None:
            ask["p"] = p
    return to_json(asks)


def gate_arg(gate: Gate, names: list[list[NewName]], asked: tuple[int, int] | None = None) -> str:
    """ingest.lua's ARGV[11]: the gate's limits and the names of each event; with
    ``asked``, the per-address limit's answer instead of the limit (a cluster)."""
    spec: dict[str, Any] = {
        "vi": gate.visitor_rate.interval_ms(),
        "vb": gate.visitor_rate.burst,
        "ai": gate.address_rate.interval_ms(),
        "ab": gate.address_rate.burst,
        "caps": dict(gate.caps),
        "names": names,
    }
    if asked is not None:
        spec["ai"], spec["ag"], spec["ar"] = 0, asked[0], asked[1]
    return to_json(spec)


def verdict(raw: Any) -> Verdict:
    """govern.lua's answer, ``[code, replaced prompt, replaced rule]``."""
    code, replaces, rule = (str(x) for x in raw)
    return Verdict(code, replaces, rule)


def slot_in(keys: list[str]) -> Callable[[str], int]:
    """A function that gives a key's index in ``keys`` (Lua's KEYS, 1-based), adding it
    once when it is not there yet."""
    slots = {key: i + 1 for i, key in enumerate(keys)}

    def slot(key: str) -> int:
        if key not in slots:
            keys.append(key)
            slots[key] = len(keys)
        return slots[key]

    return slot


@dataclass(frozen=True)
class TimerOp:
    """A change to a deadline shard that a cluster makes outside the script of the session
    (another slot): add ``member`` due at ``due_ms``, or remove it (``due_ms`` None)."""

    key: str
    member: str
    due_ms: int | None = None


def ops_arg(
    k: Keys,
    seqs: list[int],
    actions: list[Action],
    keys: list[str],
    timer_ops: list[TimerOp] | None = None,
) -> str:
    """commit.lua's ARGV[1] for ``actions``; the keys they write are added to ``keys``. On a
    cluster the deadline-set changes go to ``timer_ops`` instead (see :func:`ops_of`)."""
    ops = ops_of(k, actions, keys, timer_ops)
    return to_json({"seqs": [str(seq) for seq in seqs], "ops": ops})


def ops_of(
    k: Keys, actions: list[Action], keys: list[str], timer_ops: list[TimerOp] | None = None
) -> list[list[Any]]:
    """ops.lua's ops for ``actions``; the keys they write are added to ``keys``. On a cluster
    (``k.cluster``) the deadline shards are in other slots than the session: their changes
    are appended to ``timer_ops``, for the store to send beside the script."""
    slot = slot_in(keys)
    if k.cluster and timer_ops is None:
        raise ValueError("on a cluster, deadline changes need a list to go to")

    def timer_op(t: Timer, due_ms: int | None) -> None:
        shard = k.timer_shard(t.site, t.visitor)
        if timer_ops is not None and k.cluster:
            timer_ops.append(TimerOp(k.timers(shard), t.member(), due_ms))
        elif due_ms is None:
            ops.append(["zrem", slot(k.timers(shard)), t.member()])
        else:
            ops.append(["zadd", slot(k.timers(shard)), due_ms, t.member()])

    ops: list[list[Any]] = []
    for action in actions:
        if isinstance(action, Schedule):
            t = action.timer
            session_key = slot(k.session(t.site, t.session, t.visitor))
            ops.append(["hset", session_key, fields.timer(t.rule), t.token])
            timer_op(t, action.due_ms)
        elif isinstance(action, Cancel):
            t = action.timer
            key = k.session(t.site, t.session, t.visitor)
            ops.append(["hdel", slot(key), fields.timer(t.rule)])
            timer_op(t, None)
        elif isinstance(action, Put):
            key = (
                k.visitor(action.site, action.visitor)
                if action.on_visitor
                else k.session(action.site, action.session, action.visitor)
            )
            if action.value is None:
                ops.append(["hdel", slot(key), action.field])
            else:
                ops.append(["hset", slot(key), action.field, action.value])
        else:
            raise TypeError("a commit applies no FiringRequest: resolve() asks governance")
    return ops
