"""Freed memory stays with the process: no page faults for the next step's tensors.

PyTorch's CPU allocator hands every tensor to ``malloc`` and back. glibc serves a
block above its mmap threshold (128 KiB, growing to at most 32 MiB) with a fresh
``mmap`` and unmaps it when freed, so each step's feature maps arrive as new,
zero-filled pages: at batch 4, 256x256, a bf16 step took ~110,000 page faults,
300 ms of kernel time a step (benchmarks/RESULTS.md, "The matrix engine"). With
the threshold above any tensor a step makes and the heap's top never trimmed,
a step reuses the memory the last one freed: no faults, the same arithmetic. The
process keeps its peak memory for its life (what training holds anyway).

Set once per computing command (as ``process.ompenv`` is): ``mallopt`` for this
process, the environment variables glibc reads at start for its children
(torchrun ranks, sweep slots). A variable the user set wins; elsewhere than glibc
nothing changes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

# Above any one tensor of a step (a batch-16, 256x256, 96-channel fp32 map is 400 MiB).
MMAP_THRESHOLD = 1 << 30
TRIM_THRESHOLD = 1 << 31
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's malloc.h
ENV = {"MALLOC_MMAP_THRESHOLD_": MMAP_THRESHOLD, "MALLOC_TRIM_THRESHOLD_": TRIM_THRESHOLD}


def _glibc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "gnu_get_libc_version") else None
    except OSError:
        return None


def keep_freed_memory() -> dict[str, str]:
    """Apply to this process and its children; the variables set (none where the user set
    them or where the C library is not glibc)."""
    if any(k in os.environ for k in ENV):
        return {}
    libc = _glibc()
    if libc is None:
        return {}
    if not (
        libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
        and libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    ):
        return {}
    add = {k: str(v) for k, v in ENV.items()}
    os.environ.update(add)
    return add
