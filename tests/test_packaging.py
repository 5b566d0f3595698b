"""pip users need no Node: the wheel carries the built snippet and admin bundles, the Lua
scripts and the demo."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).parent.parent


def test_the_wheel_ships_the_snippet_scripts_and_demo(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
    )
    [wheel] = tmp_path.glob("cuewire-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        # every bundle client-js/scripts/build.mjs writes, exactly as committed
        for built in ("static/cw.js", "admin/qa_static/adminio.js", "admin/studio/studio.js"):
            shipped = z.read(f"cuewire/{built}")
            assert shipped == (ROOT / "server" / "cuewire" / built).read_bytes(), built
    for script in (ROOT / "server" / "cuewire" / "store" / "lua").glob("*.lua"):
        assert f"cuewire/store/lua/{script.name}" in names
    for bundled in ("demo-site/index.html", "rules/demo/shop.yaml", "templates/toast.html"):
        assert f"cuewire/_bundled/{bundled}" in names


def test_the_version_is_written_once() -> None:
    # pyproject reads it from __init__ (hatch's dynamic version), the snippet's build too
    import tomllib

    from cuewire import __version__

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "version" not in project and project["dynamic"] == ["version"]
    assert "version" not in json.loads((ROOT / "client-js" / "package.json").read_text())
    snippet = (ROOT / "server" / "cuewire" / "static" / "cw.js").read_text()
    assert snippet.startswith(f"/*! Cuewire cw.js {__version__} |")
    assert f'version:"{__version__}"' in snippet
    assert metadata.version("cuewire") == __version__


def test_the_bench_extra_provides_what_the_bench_checks_for() -> None:
    import importlib.util
    import tomllib

    spec = importlib.util.spec_from_file_location("bench_cli", ROOT / "bench" / "cli.py")
    assert spec and spec.loader
    bench_cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench_cli)
    BENCH_EXTRA = bench_cli.BENCH_EXTRA
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    names = {re.split(r"[<>=\[ ]", spec)[0] for spec in extra["bench"]}
    assert names == set(BENCH_EXTRA.values())
    assert not (ROOT / "bench" / "requirements.txt").exists()  # no install at run time
    assert "pip install" not in (ROOT / "bench" / "cli.py").read_text().replace(
        "-m pip install -e '.[bench]'", ""
    )
