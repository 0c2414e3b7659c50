"""The number of CPU threads `spade.prune` runs with: torch's setting, capped by the cores other jobs leave free."""
from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator

import torch


def free_cores() -> float:
    """CPU cores not used by other runnable processes (cores minus the 1-minute load average)."""
    try:
        load = os.getloadavg()[0]
    except OSError:  # not available on this platform: assume an idle machine
        load = 0.0
    return (os.cpu_count() or 1) - load


def sound_thread_count(requested: int | None = None) -> int:
    """At most `requested` (default: torch's current setting) threads, and no more than the free cores.

    Every op of a prune (a GEMM per band, a rank-1 update per column) is an OpenMP parallel region
    ending in a barrier; when the cores are taken by other jobs a thread that is descheduled stalls
    the others at every barrier. On the shared 2-core machine 1 thread was 1.9x faster than 2
    (issue 14's measurement), so threads beyond the free cores are never used.
    """
    requested = int(requested or torch.get_num_threads())
    return max(1, min(requested, int(free_cores() + 0.5)))


@contextmanager
def cpu_threads(n: int) -> Iterator[int]:
    """Run the block with `n` torch intra-op threads, restoring the previous setting afterwards."""
    before = torch.get_num_threads()
    if n != before:
        torch.set_num_threads(n)
    try:
        yield n
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)
