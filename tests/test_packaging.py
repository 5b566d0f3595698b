"""pip users need no Node: the wheel carries the built snippet, the Lua scripts and the demo."""

from __future__ import annotations

import subprocess
import sys
import zipfile
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
        shipped = z.read("cuewire/static/cw.js")
    assert shipped == (ROOT / "server" / "cuewire" / "static" / "cw.js").read_bytes()
    for script in (ROOT / "server" / "cuewire" / "store" / "lua").glob("*.lua"):
        assert f"cuewire/store/lua/{script.name}" in names
    for bundled in ("demo-site/index.html", "rules/demo/shop.yaml", "templates/toast.html"):
        assert f"cuewire/_bundled/{bundled}" in names
