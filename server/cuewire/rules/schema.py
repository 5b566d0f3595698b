"""The JSON Schema of rule files, published as docs/rules.schema.json for editors.

Regenerate with ``python -m cuewire.rules.schema > docs/rules.schema.json``; a test fails
when the published file is stale.

Descriptions come from our docstrings, but msgspec's handling of docstring indentation has
changed between releases (0.19 kept the indent of continuation lines, 0.23 dedents them), and
so has the order of ``anyOf`` alternatives. So every description is folded to one line with
single spaces and every ``anyOf`` sorted: the schema is then the same whichever msgspec is
installed (tested with 0.19 and 0.23), and only a change of ours makes it stale.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec

from .model import RuleFile

SCHEMA_ID = "https://cuewire.dev/schemas/rules.schema.json"


def rule_schema() -> dict[str, Any]:
    schema: dict[str, Any] = msgspec.json.schema(RuleFile)
    published: dict[str, Any] = normalised(
        {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": SCHEMA_ID,
            "title": "Cuewire rule file",
            **schema,
        }
    )
    return published


def normalised(node: Any) -> Any:
    """``node`` with every ``description`` string folded to one line of single spaces, and
    the alternatives of every ``anyOf`` in one order (their order means nothing, and msgspec
    0.19 lists ``null`` first where 0.23 lists it last)."""
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key == "description" and isinstance(value, str):
                out[key] = " ".join(value.split())
            elif key == "anyOf" and isinstance(value, list):
                out[key] = sorted(
                    (normalised(v) for v in value), key=lambda v: json.dumps(v, sort_keys=True)
                )
            else:
                out[key] = normalised(value)
        return out
    if isinstance(node, list):
        return [normalised(item) for item in node]
    return node


def main() -> None:
    print(json.dumps(rule_schema(), indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
