"""The JSON Schema of rule files, published as docs/rules.schema.json for editors.

Regenerate with ``python -m cuewire.rules.schema > docs/rules.schema.json``; a test fails
when the published file is stale.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec

from .model import RuleFile

SCHEMA_ID = "https://cuewire.dev/schemas/rules.schema.json"


def rule_schema() -> dict[str, Any]:
    schema: dict[str, Any] = msgspec.json.schema(RuleFile)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "Cuewire rule file",
        **schema,
    }


def main() -> None:
    print(json.dumps(rule_schema(), indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
