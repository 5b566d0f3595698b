"""Every per-name field of the session and visitor hashes, in one place (keys.py names the
hashes themselves). A field is a prefix and a name: ``fields.timer("r")`` is ``"t:r"``.

The Lua scripts spell the fields they touch themselves (govern.lua: ``fired:``, ``fired_at:``,
``shown:``, ``optout:``, ``snooze:``, ``dc:``, ``wc:``; govern_all.lua gets ``firing:`` from
here, in each request): keep them in step with this module.
"""

from __future__ import annotations

# Before a rule id in the per-rule fields govern.lua writes (fired:~<rule>, ...): the counts
# of a rule in `mode: shadow`, kept apart so that no live rule's governance reads them
SHADOW = "~"

# Session hash, per rule
TIMER = "t:"  # the token of the rule's pending deadline
FIRED = "fired:"  # times the rule fired in this session (govern.lua)
FIRING = "firing:"  # the last firing (timer token) governance granted
QUEUED = "queued:"  # the rule waits for the prompt on screen to close (epoch ms)
HOLD = "hold:"  # a prompt waits for a tab (epoch ms)
SEQUENCE = "sq:"  # sequence trigger state
WINDOW = "w:"  # count-over-window state, per rule and group

# Session hash, per event name
COUNT = "n:"  # events of a built-in type
CUSTOM = "c:"  # custom events of a name (also on the visitor)
CLICKS = "clk:"  # clicks on an element rules name (also on the visitor)
PROPS = "p:"  # props of the latest custom event of a name (JSON)
DISTINCT = "d:"  # one field per distinct prop value: d:<event>.<prop>:<value>

# Session and visitor hashes
FACT = "x:"  # a fact set by a rule's `set` (JSON)

# Visitor hash
TRAIT = "trait:"  # an identify trait (JSON)
LAST_AT = "at:"  # when a custom event of a name last happened (epoch ms)
FIRED_AT = "fired_at:"  # when a rule last fired for the visitor (govern.lua)
SHOWN = "shown:"  # times a rule's prompt was shown to the visitor (govern.lua)
SNOOZE = "snooze:"  # the visitor snoozed a rule's prompt (epoch ms; govern.lua)
OPTOUT = "optout:"  # the visitor opted out of a rule's prompt (govern.lua)
DAY_COUNT = "dc:"  # firings of a rule on one UTC day: dc:<rule>:<day> (govern.lua)
WEEK_COUNT = "wc:"  # firings of a rule in one week: wc:<rule>:<week> (govern.lua)


def timer(rule: str) -> str:
    return TIMER + rule


def counted_as(rule: str, shadow: bool = False) -> str:
    """The name govern.lua counts a rule's firings under: its id, ``~<id>`` in shadow mode."""
    return SHADOW + rule if shadow else rule


def fired(rule: str, shadow: bool = False) -> str:
    """``fired:<rule>``; a shadow rule's own count: ``fired:~<rule>``."""
    return FIRED + counted_as(rule, shadow)


def queued(rule: str) -> str:
    return QUEUED + rule


def hold(rule: str) -> str:
    return HOLD + rule


def sequence(rule: str) -> str:
    return SEQUENCE + rule


def window(rule: str, group: str) -> str:
    return f"{WINDOW}{rule}:{group}"


def count(kind: str) -> str:
    return COUNT + kind


def custom(name: str) -> str:
    return CUSTOM + name


def clicks(name: str) -> str:
    return CLICKS + name


def props(name: str) -> str:
    return PROPS + name


def distinct_prefix(event_prop: str) -> str:
    """The prefix of every distinct-value field of ``<event>.<prop>``."""
    return f"{DISTINCT}{event_prop}:"


def distinct(name: str, prop: str, value: object) -> str:
    return f"{distinct_prefix(f'{name}.{prop}')}{value}"


def fact(name: str) -> str:
    return FACT + name


def trait(name: str) -> str:
    return TRAIT + name


def last_at(name: str) -> str:
    return LAST_AT + name


def shown(rule: str) -> str:
    return SHOWN + rule


def snooze(rule: str) -> str:
    return SNOOZE + rule


def optout(rule: str) -> str:
    return OPTOUT + rule
