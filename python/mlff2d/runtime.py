"""Process-level settings for fast model evaluation on CPU.

With glibc's default malloc, the large tensor buffers of a model evaluation are returned to
the OS after each call and page-faulted back in on the next, which makes the cost per atom
grow with system size. :func:`keep_allocator_memory` raises the mmap and trim thresholds
so that memory is kept between evaluations. Our code calls it wherever models are
evaluated (ASE calculator helper, phonons, training); the LAMMPS plugin does the same in C++.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

logger = logging.getLogger(__name__)

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_MMAP_MAX = -4
_DONE = False


def keep_allocator_memory(threshold_bytes: int = 1 << 30) -> bool:
    """Keep freed heap memory in the process (glibc ``mallopt``); idempotent.

    Parameters
    ----------
    threshold_bytes
        Free memory at the top of the heap up to this size (bytes) is kept, not trimmed.

    Returns
    -------
    bool
        True if the setting was applied (glibc), False otherwise (other libc: no-op).
    """
    global _DONE
    if _DONE:
        return True
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    # glibc caps M_MMAP_THRESHOLD at 32 MiB on 64-bit, and edge tensors of large cells are
    # bigger than that: serve every allocation from the heap instead (M_MMAP_MAX = 0) and
    # never trim it below ``threshold_bytes``.
    ok = bool(mallopt(_M_MMAP_MAX, 0))
    ok &= bool(mallopt(_M_TRIM_THRESHOLD, threshold_bytes))
    _DONE = ok
    logger.debug("mallopt thresholds set: %s", ok)
    return ok
