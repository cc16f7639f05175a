"""glibc malloc settings for the ``soundnet`` process (Linux with glibc only).

glibc serves large blocks (from 128 KiB, a threshold it raises as it sees big frees) with fresh
``mmap`` calls and returns freed memory at the top of the heap to the system once more than 128 KiB
is free. A run of the network allocates and frees blocks of megabytes for every batch (activations,
decoded audio), so by default much of each block's cost is page faults and ``munmap``/``brk``
system calls. Blocks up to 32 MiB are kept in the heap and up to 256 MiB of free heap is kept,
which cuts that system time (measured on ``soundnet extract`` over ESC-50:
``benchmarks/RESULTS.md``).

Fixing both values also stops glibc from adjusting them, so memory that was freed stays reusable
instead of being returned and faulted in again; the cost is that up to ``trim`` bytes of freed
memory stay in the process.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

#: ``mallopt`` parameter numbers (glibc's malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
#: Blocks up to this size come from the heap (the largest value older glibc versions accept on
#: 64-bit systems).
MMAP_THRESHOLD = 32 << 20
#: Free memory at the top of the heap kept for reuse before it is returned to the system.
TRIM_THRESHOLD = 256 << 20

#: Environment variables through which a user already tunes glibc's malloc; any of them set means
#: the user's choice stands and :func:`tune_malloc` does nothing.
USER_SETTINGS = ("GLIBC_TUNABLES", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_",
                 "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_", "LD_PRELOAD")


def tune_malloc(mmap_threshold: int = MMAP_THRESHOLD, trim_threshold: int = TRIM_THRESHOLD) -> bool:
    """Set glibc's ``M_MMAP_THRESHOLD`` and ``M_TRIM_THRESHOLD`` for this process (and processes
    it forks later). Returns whether both were set: ``False`` off Linux, without glibc, when the
    user tunes malloc through the environment (see :data:`USER_SETTINGS`; ``LD_PRELOAD`` may
    bring another allocator such as jemalloc), or when ``SOUNDNET_NO_MALLOC_TUNING`` is set."""
    if not sys.platform.startswith("linux") or os.environ.get("SOUNDNET_NO_MALLOC_TUNING"):
        return False
    if any(os.environ.get(name) for name in USER_SETTINGS):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and other C libraries have no mallopt
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    ok = mallopt(M_MMAP_THRESHOLD, int(mmap_threshold)) == 1
    return mallopt(M_TRIM_THRESHOLD, int(trim_threshold)) == 1 and ok
