"""What a prompt template reads of the visitor's traits and the latest custom events' props
(template_reads.py): named reads add those fields alone to what a store call returns; any
other use reads them all, so a prompt rendered ahead never misses a fact (fold.py)."""

from __future__ import annotations

import msgspec
import pytest

from cuewire import fields
from cuewire.render import make_environment
from cuewire.rules.model import Rule
from cuewire.rules.reads import fields_of
from cuewire.template_reads import ALL, TemplateReads, reads_of

NAMED = (
    '{{ visitor.traits.name }} {{ visitor["traits"]["plan"] }} {{ visitor.returning }}'
    ' {{ session.last.get("add_to_cart", {}).name }} {{ session.last["viewed"] }}'
)


def reads(source: str) -> TemplateReads:
    return reads_of(make_environment().parse(source))


def test_named_traits_and_events_are_read_alone() -> None:
    assert reads(NAMED) == TemplateReads(
        frozenset({"name", "plan"}), frozenset({"add_to_cart", "viewed"})
    )


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{% for k, v in visitor.traits.items() %}{{ v }}{% endfor %}", TemplateReads(None)),
        ("{{ session.last.values() | list }}", TemplateReads(last=None)),
        ("{% set last = session.last %}{{ last.viewed }}", TemplateReads(last=None)),
        ("{{ visitor | tojson }}", TemplateReads(None)),
        ('{{ visitor.traits.get(params.get("trait", "name")) }}', TemplateReads(None)),
        ("{{ session.url }} {{ session.pages }} {{ visitor.sessions }}", TemplateReads()),
    ],
)
def test_any_other_use_reads_them_all(source: str, expected: TemplateReads) -> None:
    assert reads(source) == expected


def rule(mode: str) -> Rule:
    raw = {"id": "r", "trigger": {"event": {"type": "exit_intent"}}, "show": {"template": "t"}}
    return msgspec.convert({**raw, "mode": mode}, Rule)


def test_a_rule_set_with_live_shows_reads_what_its_templates_read() -> None:
    live = [rule("live")]
    named = fields_of(live, {}, frozenset(), reads(NAMED))
    assert {fields.trait("name"), fields.trait("plan")} <= set(named.visitor)
    assert {fields.props("add_to_cart"), fields.props("viewed")} <= set(named.session)
    assert fields.TRAIT not in named.visitor_prefixes
    assert fields.PROPS not in named.session_prefixes
    every = fields_of(live, {}, frozenset(), ALL)
    assert fields.TRAIT in every.visitor_prefixes and fields.PROPS in every.session_prefixes
    # a shadow rule's show never renders: nothing more to read
    shadow = fields_of([rule("shadow")], {}, frozenset(), ALL)
    assert shadow.visitor_prefixes == (fields.SHOWN,)
    assert fields.PROPS not in shadow.session_prefixes
