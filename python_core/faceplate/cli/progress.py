"""Progress bars with ETA and the end-of-run summary line every long command prints."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Any

from tqdm import tqdm


def bar(total: int | None, desc: str, unit: str = "frame", **kw: Any) -> tqdm:
    """A tqdm bar on stderr with rate and ETA (disabled when stderr is not a terminal and
    ``FACEPLATE_PROGRESS`` is unset, so logs stay readable)."""
    import os

    disable = not sys.stderr.isatty() and not os.environ.get("FACEPLATE_PROGRESS")
    return tqdm(total=total, desc=desc, unit=unit, dynamic_ncols=True, file=sys.stderr,
                disable=disable, mininterval=0.5, **kw)


@dataclass
class Summary:
    """Counters for the closing summary: frames, faces, skipped, seconds, fps."""

    title: str
    frames: int = 0
    faces: int = 0
    skipped: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    start: float = field(default_factory=time.perf_counter)

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.start

    def line(self) -> str:
        secs = self.seconds
        fps = self.frames / secs if secs > 0 else 0.0
        parts = [f"{self.title}: {self.frames} frames", f"{self.faces} faces",
                 f"{self.skipped} skipped", f"{secs:.1f} s", f"{fps:.1f} fps"]
        parts += [f"{k} {v}" for k, v in self.extra.items()]
        return ", ".join(parts)

    def print(self) -> None:
        print(self.line(), flush=True)
