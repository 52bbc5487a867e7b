"""Two real facesets for the training tests, built once with the real ``faceplate extract``.

A = the woman (``WolfgangLanger_Pexels.mp4``, every 4th frame: ~118 faces, head turns),
B = the man (``single_face.mp4``, all 72 frames), both 128 px "face" centering with the default
masks (``components``, ``extended``). Built in-process through ``faceplate.cli.main.main`` and
kept in ``$FACEPLATE_CACHE/test_facesets/<CACHE_VERSION>`` (default ``~/.cache/faceplate``), so a
second test session reuses them instantly. The cache is valid only when its stamp file (written
last, after both folders are complete) matches the files present; otherwise it is rebuilt. A file
lock serialises concurrent builders (parallel pytest sessions).

Usage in a test module (this module is pytest-agnostic; wrap it in your own fixture)::

    from tests.train_facesets import facesets

    @pytest.fixture(scope="session")
    def train_sets(tmp_path_factory):
        return facesets(tmp_path_factory)     # (folder_a, folder_b); read-only: copy to change

Treat the returned folders as read-only (they are shared between sessions).
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from faceplate.core.records import RECORD_VERSION
from faceplate.io.store import AlignmentsStore

#: Bump when the recipe below changes (invalidates every cached copy). The record and store
#: versions are part of it: the cache is shared by every checkout on the machine, and a store
#: written by another schema cannot be read (older) or opened (newer) by this code.
CACHE_VERSION = f"v1-r{RECORD_VERSION}-s{AlignmentsStore.SCHEMA_VERSION}"
#: Face size of the test facesets.
SIZE = 128
#: (side, sample name, extra extract arguments).
RECIPES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("a", "WolfgangLanger_Pexels.mp4", ("--every-n", "4")),
    ("b", "single_face.mp4", ()),
)
_STAMP = "stamp.json"
_MEMO: dict[str, tuple[Path, Path]] = {}


def cache_root() -> Path:
    """``$FACEPLATE_CACHE/test_facesets/<CACHE_VERSION>`` (default under ``~/.cache/faceplate``)."""
    root = os.environ.get("FACEPLATE_CACHE") or os.path.join(Path.home(), ".cache", "faceplate")
    return Path(root) / "test_facesets" / CACHE_VERSION


def _listing(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in sorted(folder.glob("*.png"))}


def _valid(root: Path) -> bool:
    stamp = root / _STAMP
    try:
        doc = json.loads(stamp.read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(doc, dict) or doc.get("version") != CACHE_VERSION:
        return False
    for side, _name, _args in RECIPES:
        folder = root / side
        if not folder.is_dir() or doc.get(side) != _listing(folder) or not doc.get(side):
            return False
    return True


def start_build(root: Path) -> Path:
    """Remove a stale cache folder ``root`` and any half-built one; return a fresh, empty
    folder beside it to build in (call under :func:`_lock`; ``os.replace`` it onto ``root``
    when complete, so a crash never leaves a partial cache)."""
    if root.exists():
        shutil.rmtree(root)
    work = root.parent / f".{root.name}.building"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    return work


@contextlib.contextmanager
def _lock(root: Path) -> Iterator[None]:
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent / f".{root.name}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _extract(video: Path, out: Path, store: Path, extra: tuple[str, ...]) -> None:
    from faceplate.cli.main import main

    argv = ["extract", str(video), "-o", str(out), "--size", str(SIZE),
            "--alignments", str(store), *extra]
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        code = main(argv)
    if code != 0:
        raise RuntimeError(f"faceplate {' '.join(argv)} exited {code}:\n{sink.getvalue()[-4000:]}")


def build_facesets(root: Path) -> tuple[Path, Path]:
    """Build (or reuse) the two facesets under ``root``; returns ``(root/"a", root/"b")``.

    Reuses what is there when the stamp file matches; otherwise wipes ``root`` and extracts
    both clips again (~15-25 s on 2 cores). Safe against concurrent callers (file lock).
    """
    from faceplate.io import samples

    root = Path(root)
    with _lock(root):
        if not _valid(root):
            work = start_build(root)
            stamp: dict[str, Any] = {"version": CACHE_VERSION}
            for side, name, extra in RECIPES:
                _extract(samples.path(name), work / side, work / f"{side}.fpstore", extra)
                stamp[side] = _listing(work / side)
            (work / _STAMP).write_text(json.dumps(stamp))  # written last
            os.replace(work, root)
    return root / "a", root / "b"


def facesets(tmp_path_factory: Any = None) -> tuple[Path, Path]:
    """The shared (A, B) facesets, memoised per process.

    Uses :func:`cache_root` when it is writable, else a pytest session temp dir from
    ``tmp_path_factory``. Read-only: copy a folder (``shutil.copytree``) before changing it.
    """
    key = "default"
    if key not in _MEMO:
        root = cache_root()
        try:
            root.parent.mkdir(parents=True, exist_ok=True)
            usable = os.access(root.parent, os.W_OK)
        except OSError:
            usable = False
        if not usable:
            if tmp_path_factory is None:
                raise RuntimeError(f"{root.parent} is not writable and no tmp_path_factory given")
            root = Path(tmp_path_factory.mktemp("train_facesets")) / CACHE_VERSION
        _MEMO[key] = build_facesets(root)
    return _MEMO[key]
