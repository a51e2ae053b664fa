"""Giving memory back to the system after a burst of work.

After a burst (thousands of objects listed or created at once), CPython frees the objects but
glibc's allocator keeps the freed pages, so the resident size at rest stays at the burst's
peak. A full collection followed by ``malloc_trim(0)``, run once the work queue is idle,
returns them; it costs a few milliseconds and runs only after work was done.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
from collections.abc import Callable


def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim: Callable[[int], int] = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc (musl has no malloc_trim)
        return None
    return trim


_TRIM = _malloc_trim()


def release() -> None:
    """Collect garbage and hand freed heap pages back to the system (where glibc allows)."""
    gc.collect()
    if _TRIM is not None:
        _TRIM(0)
