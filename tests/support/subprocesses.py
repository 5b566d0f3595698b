"""What every test helper that runs a server as a subprocess shares: stopping it."""

from __future__ import annotations

import subprocess


class Stoppable:
    """A helper holding ``self.proc``: ``kill`` (SIGKILL, as a crash or a lost host would) and
    ``stop`` (SIGTERM, killed after 10 s)."""

    proc: subprocess.Popen[bytes] | None

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
