"""Identifiers: URL-safe, as long as secrets.token_urlsafe's, never repeated, and never the
same in two processes forked from one parent (the workers of `cuewire serve --workers`)."""

from __future__ import annotations

import os
import re
import secrets

from cuewire.ids import POOL_BYTES, new_id

URL_SAFE = re.compile(r"^[A-Za-z0-9_-]+$")


def test_an_id_has_the_shape_of_token_urlsafe_of_as_many_bytes() -> None:
    for nbytes in (1, 6, 12, 16, 32, POOL_BYTES + 1):
        made = new_id("p_", nbytes)
        assert made.startswith("p_")
        assert URL_SAFE.match(made[2:])
        assert len(made) - 2 == len(secrets.token_urlsafe(nbytes))


def test_ids_do_not_repeat_across_many_refills_of_the_pool() -> None:
    made = [new_id(nbytes=6) for _ in range(3 * POOL_BYTES)]  # 18 KB: four reads from the OS
    assert len(set(made)) == len(made)


def test_a_forked_child_does_not_hand_out_its_parents_next_ids() -> None:
    new_id(nbytes=6)  # the parent holds a pool with bytes left
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ids, to the parent
        os.close(read)
        os.write(write, " ".join(new_id(nbytes=6) for _ in range(50)).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child = set(pipe.read().split())
    os.waitpid(pid, 0)
    parent = {new_id(nbytes=6) for _ in range(50)}
    assert len(child) == 50 and not child & parent
