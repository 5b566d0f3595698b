"""The team's injection vectors (shared/testdata/xss-vectors.txt beside the clone).

Each one that executes sets ``window.__cw_xss``. A copy in tests/fixtures keeps the suite
runnable where shared/ is not beside the clone; the shared file wins when present.
"""

from __future__ import annotations

from .paths import FIXTURES, ROOT

SHARED = ROOT.parent / "shared" / "testdata" / "xss-vectors.txt"
VECTORS_FILE = SHARED if SHARED.is_file() else FIXTURES / "xss-vectors.txt"
XSS_VECTORS = [line for line in VECTORS_FILE.read_text(encoding="utf-8").splitlines() if line]
