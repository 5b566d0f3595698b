"""A prompt rendered again from the same inputs is the text rendered before (render_cache.py):
the inputs are the context values its template reads; a change to any of them renders anew,
a change to anything else does not, and a template that reads the clock is always rendered."""

from __future__ import annotations

import copy
import random
from pathlib import Path
from typing import Any

import pytest

from cuewire import render_cache
from cuewire.render import CONTEXT_NAMES, Catalog, full_context, make_environment
from cuewire.render_cache import inputs_of
from support.paths import ROOT

GREETING = """{#---
kind: toast
---#}
{%- set name = visitor.traits.get("name") -%}
<p>{{ params.get("title", "Hi") }}{% if name %}, {{ name }}{% endif %} ({{ params.get("n", 0) }})</p>
"""


def catalog_of(tmp_path: Path, **sources: str) -> Catalog:
    for name, source in sources.items():
        (tmp_path / f"{name}.html").write_text(source)
    return Catalog.load(tmp_path)


def context(**overrides: Any) -> dict[str, Any]:
    return full_context(overrides)


def test_the_same_inputs_render_once(tmp_path: Path) -> None:
    catalog = catalog_of(tmp_path, greeting=GREETING)
    first = context(params={"title": "Hello"}, visitor={"traits": {"name": "Ada"}})
    assert catalog.render("greeting", first) == "<p>Hello, Ada (0)</p>"
    # what the template does not read: another page, another event, another prompt id
    elsewhere = context(
        params={"title": "Hello"},
        visitor={"traits": {"name": "Ada", "plan": "pro"}},
        session={"url": "http://shop.test/cart", "pages": 9},
        event={"type": "exit_intent"},
        prompt={"id": "p_other"},
    )
    assert catalog.render("greeting", elsewhere) == "<p>Hello, Ada (0)</p>"
    assert len(catalog.rendered) == 1
    renamed = context(params={"title": "Hello"}, visitor={"traits": {"name": "Bo"}})
    assert catalog.render("greeting", renamed) == "<p>Hello, Bo (0)</p>"
    assert len(catalog.rendered) == 2


def test_values_equal_in_python_but_rendered_apart_are_kept_apart(tmp_path: Path) -> None:
    catalog = catalog_of(tmp_path, greeting=GREETING)
    texts = [catalog.render("greeting", context(params={"n": n})) for n in (1, 1.0, True)]
    assert texts == ["<p>Hi (1)</p>", "<p>Hi (1.0)</p>", "<p>Hi (True)</p>"]


def test_untrusted_text_is_escaped_from_the_cache_too(tmp_path: Path) -> None:
    catalog = catalog_of(tmp_path, greeting=GREETING)
    evil = context(visitor={"traits": {"name": "<img src=x onerror=alert(1)>"}})
    for _ in range(2):
        assert "&lt;img src=x onerror=alert(1)&gt;" in catalog.render("greeting", evil)


CLOCK = """{#---
kind: banner
sample:
  params: {ends: 1}
---#}
<p>{{ params.get("ends", 0) | seconds_until }}s</p>
"""

DRAW = """{#---
kind: banner
---#}
<p>{{ ["a", "b", "c"] | random }}</p>
"""


def test_a_template_drawing_words_at_random_has_no_inputs() -> None:
    assert inputs_of(make_environment().parse("{{ lipsum(1) }}"), CONTEXT_NAMES) is None


def test_a_template_reading_the_clock_or_drawing_at_random_is_rendered_every_time(
    tmp_path: Path,
) -> None:
    catalog = catalog_of(tmp_path, clock=CLOCK, draw=DRAW)
    assert catalog.get("clock").inputs is None and catalog.get("draw").inputs is None
    for name in ("clock", "draw"):
        catalog.render(name, context())
    assert len(catalog.rendered) == 0


def test_large_values_are_rendered_but_not_kept(tmp_path: Path) -> None:
    catalog = catalog_of(tmp_path, greeting=GREETING)
    name = "A" * (render_cache.MAX_KEY_CHARS + 1)
    assert name in catalog.render("greeting", context(visitor={"traits": {"name": name}}))
    assert len(catalog.rendered) == 0


def test_the_cache_keeps_the_latest_texts_within_its_bound(tmp_path: Path) -> None:
    catalog = catalog_of(tmp_path, greeting=GREETING)
    for n in range(render_cache.MAX_ENTRIES + 10):
        catalog.render("greeting", context(params={"n": n}))
    assert len(catalog.rendered) == render_cache.MAX_ENTRIES
    assert catalog.render("greeting", context(params={"n": 3})) == "<p>Hi (3)</p>"


@pytest.mark.parametrize(
    ("source", "inputs"),
    [
        ('{{ params.get("title", "x") }}', [("params", "title")]),
        ('{{ visitor["traits"].name }}', [("visitor", "traits", "name")]),
        ("{% for k, v in session.last.items() %}{{ k }}{% endfor %}", [("session", "last")]),
        ("{{ visitor | tojson }}", [("visitor",)]),
        ("{{ params[event.type] }}", [("event", "type"), ("params",)]),
        ("{% set p = params %}{{ p.title }}", [("params",)]),
        ("{% for x in range(2) %}{{ loop.index }}{% endfor %}", []),
    ],
)
def test_a_template_reads_each_context_name_as_far_as_constant_keys_go(
    source: str, inputs: list[tuple[str, ...]]
) -> None:
    assert inputs_of(make_environment().parse(source), CONTEXT_NAMES) == tuple(sorted(inputs))


# ---------------------------------------------------------------- every shipped template

SHIPPED = Catalog.load(ROOT / "templates")
VALUES: list[Any] = [None, "", "x", "<b>bold</b>", 0, 1, 1.0, True, False, 25, [], ["a"], {}]


def leaves(value: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every path into ``value``'s dicts, the dicts themselves included."""
    out = [path]
    if isinstance(value, dict):
        for key, inner in value.items():
            out += leaves(inner, (*path, key))
    return out


def changed(ctx: dict[str, Any], rng: random.Random, reads: list[tuple[str, ...]]) -> None:
    """One value of ``ctx`` set anew: mostly one the template reads (or a key beside)."""
    paths = [p for p in leaves(ctx) if p] + reads
    path = rng.choice(paths)
    target: Any = ctx
    for key in path[:-1]:
        if not isinstance(target.get(key), dict):
            target[key] = {}
        target = target[key]
    target[path[-1]] = copy.deepcopy(rng.choice(VALUES))


@pytest.mark.parametrize("name", SHIPPED.names)
def test_a_cached_render_equals_a_fresh_one_for_every_shipped_template(name: str) -> None:
    """Hundreds of contexts, each one change away from the one before: whatever the cache
    answers is what rendering that context anew gives (or both fail)."""
    template = SHIPPED.get(name)
    reads = [p for p in template.inputs or () if len(p) > 1]
    rng = random.Random(name)
    cached = Catalog({name: template})
    for sample in template.samples.values():
        ctx = copy.deepcopy(sample)
        for _ in range(150):
            changed(ctx, rng, reads)
            try:
                fresh = template.render(copy.deepcopy(ctx))
            except Exception as exc:  # a value of a type the template cannot take
                with pytest.raises(type(exc)):
                    cached.render(name, ctx)
                continue
            assert cached.render(name, ctx) == fresh
    assert template.inputs is None or len(cached.rendered) > 0
