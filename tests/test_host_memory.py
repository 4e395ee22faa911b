"""reuse_freed_host_memory: large blocks come from the malloc heap, so freed ones are reused (glibc, Linux)."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

# Prints whether a fresh 64 MB tensor lies inside the process's [heap] (brk) region. glibc's default
# serves blocks that large with a new mmap each time (outside [heap]); page faults follow every step.
PROBE = """
import sys
import torch
if sys.argv[1] == "reuse":
    from ssl_shared.host_memory import reuse_freed_host_memory
    assert reuse_freed_host_memory()
t = torch.empty(16 * 1024**2)
heap = [line.split()[0] for line in open("/proc/self/maps") if line.rstrip().endswith("[heap]")]
lo, hi = (int(x, 16) for x in heap[0].split("-"))
print(lo <= t.data_ptr() < hi)
"""

glibc_only = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="the setting is glibc's"
)


def in_heap(mode: str) -> bool:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True)
    return out.stdout.strip() == "True"


@glibc_only
def test_large_blocks_come_from_the_heap():
    assert not in_heap("default")  # glibc maps a block this large anew (and unmaps it on free)
    assert in_heap("reuse")


def test_no_op_off_glibc(monkeypatch):
    from ssl_shared import host_memory

    monkeypatch.setattr(host_memory.platform, "libc_ver", lambda: ("musl", "1.2"))
    assert host_memory.reuse_freed_host_memory() is False
