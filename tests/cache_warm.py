"""Build the test suite's cross-session caches in the background, on CPU time nothing else uses.

A run of the whole suite on a machine with an empty ``$FACEPLATE_CACHE`` has to train two small
models before the tests that need them can run: the occlusion mask's test recipe
(``tests.occlusion_model``, several minutes) and the briefly trained swap model
(``tests.convert_model.trained_model``), both on the shared facesets
(``tests.train_facesets``). Built in line, the first test that needs one waits for all of it while
the second core is mostly idle. ``tests/conftest.py`` therefore starts this module in a child
process at the start of a whole-suite session; the child runs under Linux's ``SCHED_IDLE``
policy (every thread it starts inherits it, and OpenMP's threads sleep rather than spin while
they wait), so it only ever gets CPU time the tests leave unused, and the tests' own timings and
thread pools are not disturbed. conftest also runs the test modules that use the models after
all the others (the occlusion model's last), so the training overlaps the tests that need none.

Correctness does not depend on the child: every builder takes the cache's file lock, builds
in a side folder and renames it into place, and checks the cache's stamp under the lock. A test
that needs a cache the child is still building waits on the lock (the child then gets the idle
CPU), then finds it valid; a test that gets there first builds it itself and the child finds
it done. The child is stopped at the end of the session (a half-built folder is discarded by
the next build).

Run by hand (``python -m tests.cache_warm``) it builds the caches in the foreground.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


class _TmpFactory:
    """The part of pytest's ``tmp_path_factory`` the cache builders use (``mktemp``), in a
    private temporary folder removed by :meth:`cleanup`."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="faceplate-cache-warm-"))

    def mktemp(self, name: str, numbered: bool = True) -> Path:
        return Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self.root))

    def cleanup(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def _facesets(f: Any) -> None:
    from tests.train_facesets import facesets

    facesets(f)


def _trained_model(f: Any) -> None:
    from tests.convert_model import trained_model

    trained_model(f)


def _occlusion_model(f: Any) -> None:
    from tests.occlusion_model import trained_mask_model

    trained_mask_model(f)


#: The caches, in the order the suite first needs them (each builder is a no-op when its cache
#: is valid). The facesets come first: both models train on them.
BUILDERS: tuple[tuple[str, Callable[[Any], None]], ...] = (
    ("facesets", _facesets),
    ("trained swap model", _trained_model),
    ("occlusion test model", _occlusion_model),
)


def warm(log: Callable[[str], None] = lambda _s: None) -> None:
    """Build every cache in :data:`BUILDERS` that is missing or stale (foreground)."""
    factory = _TmpFactory()
    try:
        for name, build in BUILDERS:
            log(f"cache: {name}")
            build(factory)
    finally:
        factory.cleanup()


def idle_priority() -> None:
    """Put this process under ``SCHED_IDLE`` (threads started afterwards inherit it)."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):  # not Linux, or refused: the lowest nice level instead
        os.nice(19)


if __name__ == "__main__":
    if "--idle" in sys.argv[1:]:
        idle_priority()
    warm(lambda s: print(s, flush=True))
