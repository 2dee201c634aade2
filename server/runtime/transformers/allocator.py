"""glibc's malloc, told to give large blocks back (issue 14: memory flat over sessions).

glibc serves a block of at least ``M_MMAP_THRESHOLD`` bytes with its own ``mmap`` and
returns it to the system on free. The threshold is dynamic: each time such a block is
freed it rises to that block's size (up to 32 MiB). On CPU, a session's KV buffers
(4 MiB a layer with the tiny model) and a frame's vision activations (sizes vary with
the frame) then come from the heap instead, where freed ones fragment it and the
process keeps them: measured with the tiny Qwen3-VL, 670 → 696 MB over nine
10-second sessions. Setting the threshold fixes it (and turns the dynamic rise off):
flat at 582 MB (benchmarks/soak.py). The cost is an ``mmap`` and page faults per
large tensor, small beside a model step.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

__all__ = ["MMAP_THRESHOLD_BYTES", "pin_mmap_threshold"]

log = logging.getLogger(__name__)

MMAP_THRESHOLD_BYTES = 1 << 20
_M_MMAP_THRESHOLD = -3  # malloc.h


def pin_mmap_threshold(nbytes: int = MMAP_THRESHOLD_BYTES) -> bool:
    """Process-wide; True when set. Not glibc (musl, macOS): nothing to do, False."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    ok = bool(mallopt(_M_MMAP_THRESHOLD, nbytes))
    if not ok:
        log.debug("mallopt(M_MMAP_THRESHOLD) refused")
    return ok
