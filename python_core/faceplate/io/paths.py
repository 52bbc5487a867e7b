"""Small file-system helpers shared by every command that writes or checks files."""

from __future__ import annotations

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
