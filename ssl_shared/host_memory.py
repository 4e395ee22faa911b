"""Keep freed host memory for reuse, so CPU training does not page-fault its activations every step.

With glibc's default malloc, every block larger than the mmap threshold (which adapts up to 32 MB) is
fresh memory mapped from the kernel, and freed heap memory above the trim threshold goes back to it. A
training loop that allocates the same large activations every iteration then pays for page faults and
for zeroing new pages each time (the minor faults per iteration in ``benchmarks/results/`` show it: the
official code's workers with and without this setting, given through the environment).

:func:`reuse_freed_host_memory` sets, through ``mallopt``, ``M_MMAP_MAX = 0`` (large blocks come from
the heap too) and ``M_TRIM_THRESHOLD`` to 2 GiB, the largest value it takes (freed memory stays in the
process). It changes no numbers, only where memory comes from, and the process keeps its peak memory
until it exits. It is process-wide, so only entry points (training commands, benchmarks) call it, never
library code on import. On other C libraries it does nothing and returns ``False``. The same effect is available without
code through the environment: ``MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=2147483647``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

M_TRIM_THRESHOLD = -1  # glibc malloc.h
M_MMAP_MAX = -4
TRIM_THRESHOLD_BYTES = 2**31 - 1  # mallopt's value is a C int


def reuse_freed_host_memory() -> bool:
    """Make glibc keep freed memory and serve large blocks from the heap; ``True`` when applied."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    libc = ctypes.CDLL(name)
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    libc.mallopt.restype = ctypes.c_int
    mmap_ok = libc.mallopt(M_MMAP_MAX, 0) == 1
    trim_ok = libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES) == 1
    return mmap_ok and trim_ok
