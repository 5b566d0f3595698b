"""Random, URL-safe identifiers.

The random bytes come from the operating system (``os.urandom``, as ``secrets`` takes them),
read a few kilobytes at a time instead of one system call per identifier: the engine makes a
deadline token for most page views. A child process forgets the bytes it inherited, so two
workers forked from one parent never hand out the same identifiers.
"""

from __future__ import annotations

import binascii
import os

POOL_BYTES = 4096  # read from the OS at a time

# base64's alphabet made URL-safe, as secrets.token_urlsafe gives it
_URL_SAFE = bytes.maketrans(b"+/", b"-_")


class _Entropy:
    __slots__ = ("at", "pool")

    def __init__(self) -> None:
        self.pool = b""
        self.at = 0

    def take(self, n: int) -> bytes:
        at = self.at
        if at + n > len(self.pool):
            self.pool, at = os.urandom(max(POOL_BYTES, n)), 0
        self.at = at + n
        return self.pool[at : at + n]

    def forget(self) -> None:
        self.pool, self.at = b"", 0


_entropy = _Entropy()
os.register_at_fork(after_in_child=_entropy.forget)


def new_id(prefix: str = "", nbytes: int = 12) -> str:
    """``prefix`` and ``nbytes`` random bytes in URL-safe base64 without padding (the text of
    ``secrets.token_urlsafe(nbytes)``)."""
    raw = binascii.b2a_base64(_entropy.take(nbytes), newline=False)
    return prefix + raw.translate(_URL_SAFE).rstrip(b"=").decode("ascii")
