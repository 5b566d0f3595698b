"""The demo shop's rules (rules/demo/) copied with one rule's `absence` window shortened, so a
browser test sees its prompt or email in seconds instead of the demo's timing."""

from __future__ import annotations

from pathlib import Path

import yaml

from support.harness import write
from support.paths import ROOT

DEMO_RULES = ROOT / "rules" / "demo"


def demo_rules_with_window(folder: Path, rule_id: str, within: str = "2s") -> Path:
    """Copy rules/demo/*.yaml into ``folder`` with ``rule_id``'s absence window set to
    ``within``; fails when no demo rule has that id (the test is out of date)."""
    changed = 0
    for path in sorted(DEMO_RULES.glob("*.yaml")):
        text = path.read_text(encoding="utf-8")
        config = yaml.safe_load(text)
        for rule in config.get("rules", []):
            if rule["id"] == rule_id:
                rule["trigger"]["absence"]["within"] = within
                text = yaml.safe_dump(config, sort_keys=False)
                changed += 1
        write(folder / path.name, text)
    assert changed == 1, f"no rule {rule_id} in {DEMO_RULES}: update this test"
    return folder
