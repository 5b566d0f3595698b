"""The demo shop's rules (rules/demo/) copied with one rule's window shortened (an `absence`
rule's `within`, a `dwell` rule's `for`), so a browser test sees its prompt or email in
seconds instead of the demo's timing. The demo's own timing is covered on a fake clock
(tests/test_qa.py: the demo rule set on the harness)."""

from __future__ import annotations

from pathlib import Path

import yaml

from support.harness import write
from support.paths import ROOT

DEMO_RULES = ROOT / "rules" / "demo"
WINDOWS = {"absence": "within", "dwell": "for"}  # the trigger kinds with a window, and its key


def demo_rules_with_window(folder: Path, rule_id: str, within: str = "2s") -> Path:
    """Copy rules/demo/*.yaml into ``folder`` with ``rule_id``'s window (absence ``within``,
    dwell ``for``) set to ``within``; fails when no demo rule has that id or its trigger has
    no window (the test is out of date)."""
    changed = 0
    for path in sorted(DEMO_RULES.glob("*.yaml")):
        text = path.read_text(encoding="utf-8")
        config = yaml.safe_load(text)
        for rule in config.get("rules", []):
            if rule["id"] == rule_id:
                (kind,) = set(rule["trigger"]) & set(WINDOWS)
                rule["trigger"][kind][WINDOWS[kind]] = within
                text = yaml.safe_dump(config, sort_keys=False)
                changed += 1
        write(folder / path.name, text)
    assert changed == 1, f"no rule {rule_id} in {DEMO_RULES}: update this test"
    return folder
