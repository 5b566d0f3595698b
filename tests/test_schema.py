"""The published JSON Schema of rule files is current and accepts every shipped rule file."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from cuewire.rules.loader import rule_files
from cuewire.rules.schema import normalised, rule_schema

ROOT = Path(__file__).parent.parent
PUBLISHED = ROOT / "docs" / "rules.schema.json"


def test_the_published_schema_is_current() -> None:
    assert normalised(json.loads(PUBLISHED.read_text())) == rule_schema(), (
        "docs/rules.schema.json is stale: python -m cuewire.rules.schema > docs/rules.schema.json"
    )


def _descriptions(node: object) -> list[str]:
    if isinstance(node, dict):
        own = [node["description"]] if isinstance(node.get("description"), str) else []
        return own + [d for value in node.values() for d in _descriptions(value)]
    if isinstance(node, list):
        return [d for item in node for d in _descriptions(item)]
    return []


def test_descriptions_do_not_depend_on_how_msgspec_dedents_docstrings() -> None:
    # msgspec 0.19 kept the indent of a docstring's continuation lines, 0.23 dedents them: a
    # fresh install then found the published schema stale. Descriptions are folded to one line.
    found = _descriptions(rule_schema())
    assert any("group_by" in d for d in found)  # a multi-line docstring is among them
    assert all("\n" not in d and "  " not in d for d in found), found
    kept = {"description": "At least one,\n    counted per group."}
    dedented = {"description": "At least one,\ncounted per group."}
    assert (
        normalised(kept)
        == normalised(dedented)
        == {"description": "At least one, counted per group."}
    )


@pytest.mark.parametrize("path", rule_files(ROOT / "rules"), ids=lambda p: p.name)
def test_every_shipped_rule_file_validates(path: Path) -> None:
    jsonschema.validate(yaml.safe_load(path.read_text()), rule_schema())


def test_the_schema_rejects_what_cuewire_check_rejects() -> None:
    bad = {"rules": [{"id": "x", "trigger": {"event": {"type": "click"}}, "colour": "red"}]}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, rule_schema())


def test_the_order_of_anyof_alternatives_does_not_make_the_schema_stale() -> None:
    # msgspec 0.19 lists `null` first in an optional field's anyOf, 0.23 last
    old = {"properties": {"show": {"anyOf": [{"type": "null"}, {"$ref": "#/$defs/Show"}]}}}
    new = {"properties": {"show": {"anyOf": [{"$ref": "#/$defs/Show"}, {"type": "null"}]}}}
    assert normalised(old) == normalised(new)
    published = json.loads(PUBLISHED.read_text())
    assert normalised(published) == published  # written in that one order
