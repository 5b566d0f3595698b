"""The published JSON Schema of rule files is current and accepts every shipped rule file."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from cuewire.rules.loader import rule_files
from cuewire.rules.schema import rule_schema

ROOT = Path(__file__).parent.parent
PUBLISHED = ROOT / "docs" / "rules.schema.json"


def test_the_published_schema_is_current() -> None:
    assert json.loads(PUBLISHED.read_text()) == rule_schema(), (
        "docs/rules.schema.json is stale: python -m cuewire.rules.schema > docs/rules.schema.json"
    )


@pytest.mark.parametrize("path", rule_files(ROOT / "rules"), ids=lambda p: p.name)
def test_every_shipped_rule_file_validates(path: Path) -> None:
    jsonschema.validate(yaml.safe_load(path.read_text()), rule_schema())


def test_the_schema_rejects_what_cuewire_check_rejects() -> None:
    bad = {"rules": [{"id": "x", "trigger": {"event": {"type": "click"}}, "colour": "red"}]}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, rule_schema())
