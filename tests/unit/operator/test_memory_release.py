"""Freed memory goes back to the system once the operator is idle after a burst."""

from __future__ import annotations

import os
import pathlib

from mlsteward.operator import memory


def _rss_mib() -> float:
    for line in pathlib.Path(f"/proc/{os.getpid()}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def test_a_burst_freed_in_the_middle_of_the_heap_is_returned_by_release() -> None:
    burst = [bytearray(4096) for _ in range(40_000)]  # ~160 MiB from malloc, pages touched
    for block in burst:
        block[::512] = b"x" * 8
    survivors = burst[::400]  # a few live blocks keep the heap from shrinking by itself
    del burst
    held = _rss_mib()
    memory.release()
    after = _rss_mib()
    assert len(survivors) == 100
    assert held - after > 100, f"RSS {held:.0f} MiB -> {after:.0f} MiB: the freed pages stayed"
