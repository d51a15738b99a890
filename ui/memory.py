"""Keeping the chat server's memory flat under load (glibc malloc arenas).

Measured (docs/RELIABILITY.md): the Python heap does not grow across answers
(tracemalloc shows a few KB), but RSS did, by ~10 MB an answer, and stayed.
Each answer's embedding work runs in some worker thread; glibc gives threads
their own malloc arenas (up to 8 per core) and keeps what torch and the
tokenizer freed there as fragmented, unreturned heap. With two arenas and a
`malloc_trim` after each answer the growth falls to ~1 MB an answer at first,
then levels off. Elsewhere (no glibc) both calls are no-ops.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_ARENA_MAX = -8  # mallopt parameter number (malloc.h)


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "malloc_trim") else None


LIBC = _libc()


def limit_arenas(count: int) -> bool:
    """Cap glibc's malloc arenas (threads share them instead of each hoarding one)."""
    return bool(LIBC and count > 0 and LIBC.mallopt(M_ARENA_MAX, count))


def trim() -> None:
    """Hand memory freed by the last answer back to the operating system."""
    if LIBC:
        LIBC.malloc_trim(0)
