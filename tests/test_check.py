"""`cuewire check`: every problem in rule and template files as file:line:col: message."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cuewire.cli import main
from cuewire.runtime import Runtime
from harness import write

FIXTURES = Path(__file__).parent / "fixtures"
ROOT = Path(__file__).parent.parent

GOOD_RULE = """\
rules:
  - id: exit
    trigger:
      event: {type: exit_intent}
    show: {template: note}
"""


@pytest.fixture
def sources(tmp_path: Path) -> tuple[Path, Path]:
    rules, templates = tmp_path / "rules", tmp_path / "templates"
    shutil.copytree(FIXTURES / "templates", templates)
    write(rules / "good.yaml", GOOD_RULE)
    return rules, templates


def check(
    capsys: pytest.CaptureFixture[str], rules: Path, templates: Path
) -> tuple[int, list[str]]:
    code = main(["check", "--rules", str(rules), "--templates", str(templates)])
    out = capsys.readouterr()
    return code, (out.err or out.out).strip().splitlines()


@pytest.mark.parametrize("rule_set", ["examples", "demo"])
def test_the_shipped_rules_and_templates_pass(
    capsys: pytest.CaptureFixture[str], rule_set: str
) -> None:
    code, lines = check(capsys, ROOT / "rules" / rule_set, ROOT / "templates")
    assert code == 0, lines
    assert lines[0].startswith("ok: ")


BROKEN = [
    (
        "unknown field",
        "rules:\n  - id: a\n    trigger: {event: {type: click}}\n    show: {template: note}\n    colour: red\n",
        "5:5",
        "unknown field `colour`",
    ),
    (
        "wrong type",
        "rules:\n  - id: a\n    priority: high\n    trigger: {event: {type: click}}\n    show: {template: note}\n",
        "3:15",
        "Expected `int`, got `str`",
    ),
    (
        "unknown event type",
        "rules:\n  - id: a\n    trigger:\n      event: {type: clik}\n    show: {template: note}\n",
        "4:14",
        "unknown event type 'clik'",
    ),
    (
        "unknown template",
        "rules:\n  - id: a\n    trigger: {event: {type: click}}\n    show:\n      template: nope\n",
        "5:17",
        "unknown template 'nope' (known: note)",
    ),
    (
        "impossible window",
        "rules:\n  - id: a\n    trigger:\n      absence:\n        after: {type: page_view}\n        missing: {type: click}\n        within: 0ms\n    show: {template: note}\n",
        "5:9",
        "`within` must be at least 100ms",
    ),
    (
        "two operators",
        "rules:\n  - id: a\n    trigger: {event: {type: click}}\n    when: {fact: page.path, glob: '/p/*', equals: x}\n    show: {template: note}\n",
        "4:11",
        "exactly one operator",
    ),
    ("bad yaml", "rules:\n  - id: a\n    trigger: {event: {type: click}\n", "4:1", "invalid YAML"),
]


@pytest.mark.parametrize(
    ("case", "text", "position", "message"), BROKEN, ids=[c[0] for c in BROKEN]
)
def test_a_broken_rule_file_is_reported_at_its_line(
    capsys: pytest.CaptureFixture[str],
    sources: tuple[Path, Path],
    case: str,
    text: str,
    position: str,
    message: str,
) -> None:
    rules, templates = sources
    broken = write(rules / "nested" / "broken.yaml", text)
    code, lines = check(capsys, rules, templates)
    assert code == 1
    assert lines[0].startswith(f"{broken}:{position}: "), lines
    assert message in lines[0]


def test_duplicate_rule_ids_across_files_name_both_places(
    capsys: pytest.CaptureFixture[str], sources: tuple[Path, Path]
) -> None:
    rules, templates = sources
    write(rules / "z.yaml", GOOD_RULE)
    code, lines = check(capsys, rules, templates)
    assert code == 1
    assert (
        lines[0]
        == f"{rules / 'z.yaml'}:2:9: duplicate rule id 'exit' (first defined at {rules / 'good.yaml'}:2)"
    )


def test_every_problem_is_listed_not_just_the_first(
    capsys: pytest.CaptureFixture[str], sources: tuple[Path, Path]
) -> None:
    rules, templates = sources
    write(rules / "a.yaml", BROKEN[0][1])
    write(rules / "b.yaml", BROKEN[2][1])
    code, lines = check(capsys, rules, templates)
    assert code == 1
    assert lines[-1] == "2 problem(s)"


def test_a_template_error_is_reported_at_its_line(
    capsys: pytest.CaptureFixture[str], sources: tuple[Path, Path]
) -> None:
    rules, templates = sources
    source = (templates / "note.html").read_text()
    broken = write(templates / "note.html", source.replace("</h2>", "{% if %}</h2>"))
    code, lines = check(capsys, rules, templates)
    assert code == 1
    line = source[: source.index("</h2>")].count("\n") + 1
    assert lines[0].startswith(f"{broken}:{line}:1: ")


def test_a_template_using_an_unknown_variable_is_an_error(
    capsys: pytest.CaptureFixture[str], sources: tuple[Path, Path]
) -> None:
    rules, templates = sources
    source = (templates / "note.html").read_text()
    write(templates / "note.html", source.replace("</h2>", "{{ basket.total }}</h2>"))
    code, lines = check(capsys, rules, templates)
    assert code == 1
    assert "'basket' is undefined" in lines[0]


async def test_a_broken_edit_keeps_the_last_good_rules_running(sources: tuple[Path, Path]) -> None:
    rules, templates = sources
    runtime = Runtime(rules, templates)
    assert list(runtime.engine().rules.rules) == ["exit"]
    write(rules / "good.yaml", GOOD_RULE.replace("id: exit", "id: exit2").replace("show:", "shw:"))
    assert await runtime.reload_if_changed() is False
    assert list(runtime.engine().rules.rules) == ["exit"]
    assert runtime.last_error and "good.yaml:5:5" in runtime.last_error
    write(rules / "good.yaml", GOOD_RULE.replace("id: exit", "id: exit2"))
    assert await runtime.reload_if_changed() is True
    assert list(runtime.engine().rules.rules) == ["exit2"]
    assert runtime.last_error is None
