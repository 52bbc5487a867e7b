"""How many CPU cores this process may run on (shared by the converter's jobs and the trainer's
data workers), and the thread counts of the BLAS that NumPy calls and of OpenCV's own pool."""

from __future__ import annotations

import ctypes
import os
import sys
from typing import Any

#: (get, set) symbol pairs of OpenBLAS builds: NumPy's and SciPy's wheels (``scipy_openblas``,
#: 64-bit integers) and a plain system OpenBLAS.
_OPENBLAS_SYMBOLS: tuple[tuple[str, str], ...] = (
    ("scipy_openblas_get_num_threads64_", "scipy_openblas_set_num_threads64_"),
    ("scipy_openblas_get_num_threads", "scipy_openblas_set_num_threads"),
    ("openblas_get_num_threads64_", "openblas_set_num_threads64_"),
    ("openblas_get_num_threads", "openblas_set_num_threads"),
)


def usable_cores() -> int:
    """Cores in this process's affinity mask (the whole machine where the OS has no such mask);
    at least 1."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def _openblas() -> list[tuple[Any, Any]]:
    """(get, set) functions of every OpenBLAS already loaded in this process (never loads one):
    the shared objects named ``*openblas*`` in ``/proc/self/maps``; empty where there is none
    or no ``/proc``."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            paths = {line.split()[-1] for line in maps
                     if "openblas" in line.rsplit("/", 1)[-1].lower() and ".so" in line}
    except OSError:
        return []
    found = []
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path, mode=os.RTLD_NOLOAD | os.RTLD_LAZY)
        except OSError:
            continue
        for get_name, set_name in _OPENBLAS_SYMBOLS:
            get, put = getattr(lib, get_name, None), getattr(lib, set_name, None)
            if get is not None and put is not None:
                get.restype, get.argtypes = ctypes.c_int, []
                put.restype, put.argtypes = None, [ctypes.c_int]
                found.append((get, put))
                break
    return found


def blas_threads(threads: int | None = None) -> int | None:
    """The thread count of the OpenBLAS that NumPy (and SciPy) loaded; with ``threads``, set it
    and return the count it had.

    OpenBLAS's worker threads spin for a while after each call, so on a process whose cores
    are already busy (convert's parallel swap jobs) the many small matrix products of the
    colour transfer and the watermark cost CPU that the other jobs need; ``run_convert`` sets
    1 for its run and puts the count back after.

    Returns:
        The count before any change (the first library's), or None when no OpenBLAS is loaded
        (nothing is changed then).
    """
    libs = _openblas()
    if not libs:
        return None
    before = int(libs[0][0]())
    if threads is not None:
        for _, put in libs:
            put(max(1, int(threads)))
    return before


def opencv_threads(threads: int | None = None) -> int:
    """The thread count of OpenCV's parallel loops (``cv2.getNumThreads``); with ``threads``,
    set it (at least 1) and return the count it had.

    Convert's swap jobs already run one frame per core: splitting each job's warps and blurs
    over OpenCV's pool as well only adds hand-offs and waiting between threads that compete
    for the same cores, so ``run_convert`` gives OpenCV each job's share of the cores for its
    run and puts the count back after.
    """
    import cv2

    before = int(cv2.getNumThreads())
    if threads is not None:
        cv2.setNumThreads(max(1, int(threads)))
    return before


#: glibc ``mallopt`` parameters (``<malloc.h>``) and what :func:`keep_freed_memory` sets them
#: to: blocks up to 32 MiB (glibc's largest mmap threshold) come from the heap, which is trimmed
#: only past 1 GiB free at its top and grows 256 MiB (address space, touched as used) at a time.
_MALLOPT = ((-3, 32 << 20), (-1, 1 << 30), (-2, 256 << 20))  # M_MMAP_THRESHOLD, M_TRIM_, M_TOP_PAD


def keep_freed_memory() -> bool:
    """Make glibc's malloc keep the memory a step frees for the next step.

    By default glibc gives every block over its (adaptive) mmap threshold back to the kernel
    when it is freed, so each CPU training step faults in its activations and gradients afresh
    (about 170 000 page faults, ~650 MiB zeroed by the kernel, a step for ``original`` 64 px),
    and each converted frame its frame copies, float boxes and inference buffers (about 4 000
    faults a 1080p frame). Setting the thresholds above keeps that memory in the process (its
    peak is held anyway); results are bit-identical. Process-wide and lasting; called by
    :meth:`faceplate.train.trainer.Trainer.setup` on the CPU and by
    :func:`faceplate.convert.run.run_convert`.

    Returns:
        Whether the settings were applied (False off Linux or without glibc's ``mallopt``).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return all(mallopt(param, value) == 1 for param, value in _MALLOPT)
