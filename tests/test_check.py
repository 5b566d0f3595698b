"""`cuewire check`: every problem in rule and template files as file:line:col: message."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from cuewire.cli import main
from cuewire.runtime import Runtime
from support.harness import write
from support.servers import free_port, wait_healthy

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
    assert lines[-1] == "2 problems"


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


def test_one_rule_is_not_ok_1_rules(
    capsys: pytest.CaptureFixture[str], sources: tuple[Path, Path]
) -> None:
    rules, templates = sources
    code, lines = check(capsys, rules, templates)
    assert code == 0
    assert lines == [f"ok: 1 rule in {rules}, 1 template in {templates}"]


def test_check_at_the_repository_root_checks_each_rule_set_on_its_own(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # rules/demo and rules/examples each set a policy: loaded as one set they conflict.
    monkeypatch.chdir(ROOT)
    assert main(["check"]) == 0, capsys.readouterr().err
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "rules holds 2 rule sets (demo, examples): checked one by one"
    assert [line.split(" in ")[1].split(",")[0] for line in lines[1:]] == [
        "rules/demo",
        "rules/examples",
    ]


def test_check_takes_several_rule_set_folders(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["check", str(ROOT / "rules/demo"), str(ROOT / "rules/examples")])
    assert code == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.startswith("ok: ") for line in lines] == [True, True]


def test_one_set_split_across_folders_is_still_one_set(
    capsys: pytest.CaptureFixture[str], sources: tuple[Path, Path]
) -> None:
    # Only a folder that fails as one set but passes as separate sets is taken for several:
    # a rule in one subfolder may use a segment defined in another.
    rules, templates = sources
    (rules / "good.yaml").unlink()
    write(rules / "a" / "rule.yaml", GOOD_RULE.replace("show:", "when: {segment: s}\n    show:"))
    write(rules / "b" / "segments.yaml", "segments:\n  s: {fact: page.path, glob: '/p/*'}\n")
    code, lines = check(capsys, rules, templates)
    assert code == 0, lines
    assert lines == [f"ok: 1 rule in {rules}, 1 template in {templates}"]


def test_outside_the_repository_check_uses_the_shipped_templates(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CUEWIRE_TEMPLATES_DIR", raising=False)
    write(tmp_path / "mine" / "r.yaml", GOOD_RULE.replace("note", "toast"))
    assert main(["check", "mine"]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    shipped = len(list((ROOT / "templates").glob("*.html")))
    assert out.startswith(f"ok: 1 rule in mine, {shipped} templates in ")
    assert "(shipped with cuewire: there is no ./templates)" in out


def test_serve_outside_the_repository_loads_the_shipped_templates(tmp_path: Path) -> None:
    port = free_port()
    sites = write(
        tmp_path / "sites.yaml", f'sites:\n  s:\n    origins: ["http://127.0.0.1:{port}"]\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("CUEWIRE_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "cuewire.cli", "serve", "--port", str(port), "--sites", str(sites)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, 20, lambda: proc.poll() is None)
        health = httpx.get(url + "/healthz").json()
        assert health["templates"]["loaded"] == len(list((ROOT / "templates").glob("*.html")))
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
    assert out.splitlines()[0] == (
        f"Cuewire: rules from rules (missing), templates from {ROOT / 'templates'} "
        f"(shipped with cuewire: there is no ./templates), sites from {sites}"
    )


SITES = """\
sites:
  shop:
    origins: ["https://shop.example", "shop.example", "https://shop.example/home"]
  other:
    origins: ["http://localhost:8000"]
    honour_dnt: true
"""


def test_check_sites_reports_each_problem_at_its_line(
    capsys: pytest.CaptureFixture[str], sources: tuple[Path, Path], tmp_path: Path
) -> None:
    rules, templates = sources
    sites = write(tmp_path / "sites.yaml", SITES)
    code = main(["check", str(rules), "--templates", str(templates), "--sites", str(sites)])
    err = capsys.readouterr().err.splitlines()
    assert code == 1
    assert err[0] == f"{sites}:6:5: sites.other: Object contains unknown field `honour_dnt`"
    write(sites, SITES.replace("    honour_dnt: true\n", ""))
    code = main(["check", str(rules), "--templates", str(templates), "--sites", str(sites)])
    err = capsys.readouterr().err.splitlines()
    assert code == 1
    assert err[0].startswith(f"{sites}:3:39: origin 'shop.example' can never match: ")
    assert err[1].startswith(f"{sites}:3:55: origin 'https://shop.example/home' can never")
    assert err[2] == "2 problems"


def test_check_sites_passes_a_good_sites_file(
    capsys: pytest.CaptureFixture[str], sources: tuple[Path, Path], tmp_path: Path
) -> None:
    rules, templates = sources
    sites = write(tmp_path / "sites.yaml", 'sites:\n  shop: {origins: ["https://shop.example"]}\n')
    code = main(["check", str(rules), "--templates", str(templates), "--sites", str(sites)])
    assert code == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"ok: sites file {sites}"


def test_a_colon_in_a_template_description_says_to_quote_it(
    capsys: pytest.CaptureFixture[str], sources: tuple[Path, Path]
) -> None:
    rules, templates = sources
    source = (templates / "note.html").read_text()
    text = "A plain note for tests; shows the triggering page and a visitor trait."
    broken = write(templates / "note.html", source.replace(text, "Note: " + text))
    code, lines = check(capsys, rules, templates)
    assert code == 1
    assert lines[0] == (
        f'{broken}:3:14: invalid metadata YAML: the value of `description` contains ": ", '
        f'which YAML reads as another key; quote the value: description: "Note: {text}"'
    )
    write(templates / "note.html", source.replace(text, f'"Note: {text}"'))  # as it says
    assert check(capsys, rules, templates)[0] == 0


def test_a_colon_in_a_rule_description_says_to_quote_it(
    capsys: pytest.CaptureFixture[str], sources: tuple[Path, Path]
) -> None:
    rules, templates = sources
    text = GOOD_RULE.replace(
        "  - id: exit\n", "  - id: exit\n    description: Exit: offer a code\n"
    )
    broken = write(rules / "good.yaml", text)
    code, lines = check(capsys, rules, templates)
    assert code == 1
    assert lines[0].startswith(f"{broken}:3:18: invalid YAML: the value of `description`")
    assert lines[0].endswith('quote the value: description: "Exit: offer a code"')


def test_other_yaml_errors_in_front_matter_point_at_their_column(
    capsys: pytest.CaptureFixture[str], sources: tuple[Path, Path]
) -> None:
    rules, templates = sources
    source = (templates / "note.html").read_text()
    broken = write(
        templates / "note.html",
        source.replace("params: {headline: Hello}", "params: {headline: Hello"),
    )
    code, lines = check(capsys, rules, templates)
    assert code == 1
    # the flow mapping is still open where the front matter ends: line 9, after "Hello"
    assert lines[0].startswith(f"{broken}:9:27: invalid metadata YAML: "), lines


def test_a_templates_folder_from_the_environment_is_not_called_shipped(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    shutil.copytree(FIXTURES / "templates", tmp_path / "mine-t")
    monkeypatch.setenv("CUEWIRE_TEMPLATES_DIR", str(tmp_path / "mine-t"))
    write(tmp_path / "mine" / "r.yaml", GOOD_RULE)
    assert main(["check", "mine"]) == 0, capsys.readouterr().err
    assert capsys.readouterr().out == f"ok: 1 rule in mine, 1 template in {tmp_path / 'mine-t'}\n"
