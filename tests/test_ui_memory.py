"""The chat server's native-memory policy is applied (glibc) and harmless elsewhere."""

from __future__ import annotations

import pytest

from ui import memory


@pytest.mark.skipif(memory.LIBC is None, reason="not glibc")
def test_arena_cap_is_accepted_and_trim_runs():
    assert memory.limit_arenas(2)
    memory.trim()


def test_zero_arenas_means_glibc_default():
    assert not memory.limit_arenas(0)
