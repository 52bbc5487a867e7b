"""How many CPU cores this process may run on (shared by the converter's jobs and the trainer's
data workers)."""

from __future__ import annotations

import os


def usable_cores() -> int:
    """Cores in this process's affinity mask (the whole machine where the OS has no such mask);
    at least 1."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)
