"""Small file-system helpers shared by every command that writes or checks files."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import threading
from pathlib import Path

from faceplate.core.errors import OutputError


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def ensure_output_dir(folder: str | os.PathLike[str], *, probe: bool = False) -> Path:
    """Create ``folder`` (and parents) for output; with ``probe``, also prove it is writable by
    creating and removing a file (catches read-only mounts before any work is done).

    Raises:
        OutputError: naming the folder, when it cannot be created or written.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if probe:
            test = folder / f".faceplate-write-test-{os.getpid()}-{threading.get_ident()}"
            test.write_bytes(b"")
            test.unlink()
    except OSError as err:
        raise OutputError(f"cannot write the output folder ({err.strerror or err})",
                          folder) from None
    return folder


def fsync_dir(folder: str | os.PathLike[str]) -> None:
    """Flush a folder's entries (a rename into it) to disk, where the OS allows it."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes, *,
                       durable: bool = False) -> Path:
    """Write ``data`` to ``path`` through a hidden temporary file in the same folder and
    ``os.replace``: readers see the old file or the new one, never a partial one.

    Args:
        path: The destination.
        data: The bytes.
        durable: Also ``fsync`` the file and the folder before returning (checkpoints,
            manifests); off for high-rate outputs such as face PNGs and frame sequences.

    Raises:
        OutputError: naming ``path``; the temporary file is removed and an existing file at
            ``path`` is left as it was.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
        if durable:
            fsync_dir(path.parent)
    except OSError as err:
        with contextlib.suppress(OSError):
            tmp.unlink()
        why = "the disk is full" if err.errno == errno.ENOSPC else (err.strerror or str(err))
        raise OutputError(f"cannot write ({why}); an existing file is left intact",
                          path) from None
    return path
