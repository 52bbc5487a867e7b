"""The writer contract: :class:`FrameWriter`, the :data:`WRITERS` registry and shared helpers.

A writer is created from its frozen config (``WRITERS.create(name, cfg)``), opened once on an
output path with the frame geometry, fed frames in increasing index order, and closed::

    with WRITERS.create("images", ImagesConfig(format="exr-half")) as w:
        w.open(out_dir, width=1920, height=1080, fps=None, frame_count_hint=120, source=plate)
        for frame in frames:
            w.write(frame.info.index, pixels, frame.info)

Pixels given to :meth:`FrameWriter.write`: ``float32`` (other float/integer dtypes are converted;
``uint8``/``uint16`` are scaled to [0, 1]) H×W×3 RGB or H×W×4 RGBA with straight alpha, top-left
origin (mask writers take H×W or H×W×1). The writer's config field ``input_space`` says whether
the colour channels are display sRGB (``"srgb"``, values nominally in [0, 1]) or scene-linear
(``"linear"``, any value). 8- and 16-bit outputs encode display sRGB: linear input is converted
with :func:`faceplate.core.colorspace.linear_to_srgb`, then values are clipped to [0, 1] and
rounded to the nearest code (NaN → 0, +Inf → full scale). Float outputs (EXR, float TIFF) store the
float values as given. The caller's array is never modified.

Crash safety: every image file is written to a hidden temporary file in the destination folder
and moved into place with ``os.replace``, so a file with a final name is always complete, even
if the process is killed. What the video writer leaves behind is documented in
:mod:`faceplate.convert.writers.video`.

Errors: an output that cannot be created or written is an
:class:`~faceplate.core.errors.OutputError` naming the path; an option this build cannot honour
(a missing encoder, an odd size for 4:2:0) a :class:`~faceplate.core.errors.ConfigError`; a frame
whose size or channel count does not match what was opened a ``ValueError``.
"""

from __future__ import annotations

import contextlib
import os
import re
import string
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

import cv2
import numpy as np

from faceplate.core.colorspace import linear_to_srgb
from faceplate.core.config import Config, option
from faceplate.core.errors import ConfigError, OutputError
from faceplate.core.registry import Registry
from faceplate.core.types import FrameInfo
from faceplate.io.paths import write_bytes_atomic

InputSpace = Literal["srgb", "linear"]

_PATTERN_FIELDS = frozenset({"stem", "frame", "face"})


# --------------------------------------------------------------------------------------------
# Pixel helpers


def as_float32(frame: np.ndarray) -> np.ndarray:
    """Any numeric array → float32 (uint8 / uint16 scaled to [0, 1]); float32 is returned as is."""
    if frame.dtype == np.float32:
        return frame
    if frame.dtype == np.uint8:
        return frame.astype(np.float32) * np.float32(1.0 / 255.0)
    if frame.dtype == np.uint16:
        return frame.astype(np.float32) * np.float32(1.0 / 65535.0)
    if np.issubdtype(frame.dtype, np.floating) or np.issubdtype(frame.dtype, np.integer) \
            or frame.dtype == np.bool_:
        return frame.astype(np.float32)
    raise ValueError(f"frame: unsupported dtype {frame.dtype}")


def to_display(rgb: np.ndarray, space: InputSpace) -> np.ndarray:
    """Colour channels (… ×3 or any shape) → display sRGB float32; alpha must be split off first.

    ``"srgb"`` input is returned unchanged (no copy); ``"linear"`` goes through
    :func:`~faceplate.core.colorspace.linear_to_srgb`.
    """
    return linear_to_srgb(rgb) if space == "linear" else rgb


def quantize(values: np.ndarray, bits: Literal[8, 16]) -> np.ndarray:
    """Float values (nominal [0, 1], any shape) → ``uint8`` / ``uint16`` codes.

    Clipped to [0, 1] and rounded to the nearest code (OpenCV's saturating round; ties to even),
    so the error is at most half a code. NaN → 0, +Inf → full scale, −Inf → 0.
    """
    v = np.ascontiguousarray(values, dtype=np.float32)
    ok, _ = cv2.checkRange(v)
    if not ok:
        v = np.nan_to_num(v, nan=0.0, posinf=1.0, neginf=0.0)
    flat = v.reshape(v.shape[0], -1) if v.ndim >= 2 else v.reshape(1, -1)
    scale, depth = (255.0, cv2.CV_8U) if bits == 8 else (65535.0, cv2.CV_16U)
    # A single-channel 2-D view so the scalar applies to every sample (cv2 treats a Python
    # scalar as Scalar(s, 0, 0, 0): per channel, first channel only).
    out = cv2.multiply(flat, scale, dtype=depth)  # type: ignore[call-overload]
    return np.asarray(out).reshape(v.shape)


def dequantize(codes: np.ndarray) -> np.ndarray:
    """``uint8`` / ``uint16`` codes → float32 in [0, 1] (inverse of :func:`quantize`)."""
    return as_float32(codes)


# --------------------------------------------------------------------------------------------
# Files


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a hidden temporary file and ``os.replace``.

    Raises:
        OutputError: the folder is not writable or the disk is full (no partial file is left).
    """
    write_bytes_atomic(path, data)


def atomic_write_with(path: Path, writer: Callable[[Path], None]) -> None:
    """Let ``writer(tmp_path)`` create a file (e.g. OpenImageIO, which needs a path with the right
    extension), then move it onto ``path``. ``writer`` raises :class:`OutputError` on failure."""
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        writer(tmp)
        os.replace(tmp, path)
    except OSError as err:
        raise OutputError(f"cannot write file ({err.strerror or err})", path) from None
    finally:
        with contextlib.suppress(OSError):
            if tmp.exists():
                tmp.unlink()


def prepare_folder(folder: Path) -> Path:
    """Create ``folder`` (and parents) and check it can take new files.

    Raises:
        OutputError: it cannot be created (a file in the way, no permission) or written.
    """
    folder = Path(folder).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError(f"cannot create the output folder ({err.strerror or err})",
                          folder) from None
    if not folder.is_dir():
        raise OutputError("output is not a folder", folder)
    try:
        fd, probe = tempfile.mkstemp(prefix=".faceplate-write-test.", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise OutputError(f"output folder is not writable ({err.strerror or err})",
                          folder) from None
    return folder


# --------------------------------------------------------------------------------------------
# Configs shared by the sequence writers


def _pattern_fields(pattern: str) -> set[str]:
    try:
        parsed = list(string.Formatter().parse(pattern))
    except ValueError as err:
        raise ConfigError(f"pattern: {pattern!r} is not a valid name pattern ({err})") from None
    fields = set()
    for _, name, spec, conv in parsed:
        if name is None:
            continue
        if name not in _PATTERN_FIELDS or spec or conv:
            raise ConfigError(f"pattern: unknown field {{{name}}} in {pattern!r}; use {{stem}}, "
                              "{frame} (and {face} for patches) without format specs")
        fields.add(name)
    return fields


@dataclass(frozen=True)
class SequenceConfig(Config):
    """Naming and colour options shared by every writer of numbered files."""

    pattern: str = option(
        "{stem}_{frame}",
        "File name without extension: {stem} is the stem, {frame} the zero-padded frame number "
        "(the last number in the name, so the sequence re-reads with the same numbers).")
    padding: int = option(6, "Digits of the frame number (zero-padded).", minimum=1, maximum=12)
    offset: int = option(0, "Added to each frame number in file names.",
                         minimum=-1_000_000_000, maximum=1_000_000_000)
    stem: str = option("", "Stem for file names; empty: the source's file stem, else 'frame'.")
    input_space: InputSpace = option(
        "srgb", "Colour space of the frames given: display 'srgb' in [0, 1] or scene 'linear'.")

    def __post_init__(self) -> None:
        super().__post_init__()
        fields = _pattern_fields(self.pattern)
        if "frame" not in fields:
            raise ConfigError(f"pattern: {self.pattern!r} has no {{frame}} field")
        if "/" in self.pattern or "\\" in self.pattern or "/" in self.stem or "\\" in self.stem:
            raise ConfigError("pattern/stem: must be a file name, not a path")


def resolve_stem(cfg_stem: str, source: Path | None) -> str:
    """The stem for file names: the configured one, else the source's stem, else ``"frame"``."""
    if cfg_stem:
        return cfg_stem
    if source is not None:
        src = Path(source)
        stem = src.stem if src.suffix else src.name
        # A pattern source (shot_####.exr): drop the placeholder and its separator.
        stem = re.sub(r"[._-]?(#+|@+|%0?\d*d)$", "", stem)
        if stem:
            return stem
    return "frame"


def file_name(cfg: SequenceConfig, stem: str, frame_number: int, ext: str,
              face: int | None = None) -> str:
    """``cfg.pattern`` filled in, plus ``ext`` (with the dot).

    Raises:
        ValueError: the frame number (after ``cfg.offset``) is negative.
    """
    number = frame_number + cfg.offset
    if number < 0:
        raise ValueError(f"frame number {frame_number} + offset {cfg.offset} is negative")
    values: dict[str, Any] = {"stem": stem, "frame": f"{number:0{cfg.padding}d}"}
    if face is not None:
        values["face"] = str(face)
    return cfg.pattern.format(**values) + ext


# --------------------------------------------------------------------------------------------
# The writer base class


class FrameWriter(ABC):
    """Base of every output writer (see the module docstring for the pixel contract).

    Subclasses implement :meth:`_open`, :meth:`_write` and :meth:`_close`; the base class checks
    the state, the index order and the frame's shape and dtype.

    Attributes:
        cfg: The frozen config.
        path: The output path given to :meth:`open` (a file for video, a folder otherwise).
        width: Frame width in pixels (from :meth:`open`).
        height: Frame height in pixels.
        fps: Frame rate given to :meth:`open` (may be ``None`` for sequences).
        source: The input the frames came from (names, rate and audio), or ``None``.
        written: Every file completed so far, in order (video: the final file after close).
        frames_written: Number of :meth:`write` calls that succeeded.
    """

    registry_name: str = ""
    #: Accepted channel counts of a frame; 1 means H×W or H×W×1.
    channels: tuple[int, ...] = (3, 4)
    #: Frame indices must increase strictly (video) or only be unique (sequences: any order).
    strictly_increasing: bool = False
    #: Whether ``_write`` also takes ``uint8`` display-sRGB codes as they are (8-bit input
    #: footage written to an 8-bit output: no float round trip of the whole frame).
    takes_uint8: bool = False

    def __init__(self, cfg: Any) -> None:
        self.cfg = cfg
        self.path: Path | None = None
        self.width = 0
        self.height = 0
        self.fps: float | None = None
        self.frame_count_hint: int | None = None
        self.source: Path | None = None
        self.written: list[Path] = []
        self.frames_written = 0
        self._state: Literal["new", "open", "closed"] = "new"
        self._last_index = -1

    # -- public API --------------------------------------------------------------------------

    def open(self, out: str | os.PathLike[str], *, width: int, height: int,
             fps: float | None = None, frame_count_hint: int | None = None,
             source: str | os.PathLike[str] | None = None) -> Self:
        """Prepare the output.

        Args:
            out: Output path: a video file for ``video``, a folder for the sequence writers.
            width: Frame width in pixels (≥ 1).
            height: Frame height in pixels (≥ 1).
            fps: Frame rate (video without a source video; recorded otherwise).
            frame_count_hint: Expected number of frames (informative).
            source: The input the frames come from: names the files (its stem) and, for video,
                gives the exact rate, timestamps and the audio to copy.

        Returns:
            ``self`` (so ``with WRITERS.create(...).open(...) as w:`` works).

        Raises:
            OutputError: the output cannot be created or written.
            ConfigError: an option this build or this output cannot honour.
        """
        if self._state != "new":
            raise RuntimeError(f"{type(self).__name__}: open() may be called once")
        if int(width) < 1 or int(height) < 1:
            raise ValueError(f"frame size must be positive, got {width}×{height}")
        if fps is not None and not (float(fps) > 0.0 and np.isfinite(float(fps))):
            raise ValueError(f"fps must be a positive number, got {fps}")
        self.path = Path(out).expanduser()
        self.width, self.height = int(width), int(height)
        self.fps = None if fps is None else float(fps)
        self.frame_count_hint = frame_count_hint
        self.source = None if source is None else Path(source).expanduser()
        self._open()
        self._state = "open"
        return self

    def write(self, index: int, frame: np.ndarray, info: FrameInfo | None = None,
              extra: dict[str, Any] | None = None) -> None:
        """Write frame ``index`` (0-based position in the input).

        Args:
            index: The frame's index; file names use ``info.frame_number`` when ``info`` is
                given, else ``index``.
            frame: H×W×3/4 float32 (see the module docstring); never modified.
            info: Where the frame came from (names and numbers), optional.
            extra: Writer-specific data (the patch writer's faces).

        Raises:
            ValueError: wrong size or channel count, a repeated or (video) decreasing index.
            OutputError: the file cannot be written.
        """
        if self._state != "open":
            raise RuntimeError(f"{type(self).__name__}: write() needs an open writer "
                               f"(state: {self._state})")
        index = int(index)
        if index < 0:
            raise ValueError(f"index must be ≥ 0, got {index}")
        if self.strictly_increasing and index <= self._last_index:
            raise ValueError(f"frame indices must increase: {index} after {self._last_index}")
        pixels = self.check_frame(frame)
        self._write(index, pixels, info, extra or {})
        self._last_index = max(self._last_index, index)
        self.frames_written += 1

    def close(self) -> None:
        """Finish the output (flush, finalise the container). Idempotent; safe after errors."""
        if self._state == "closed":
            return
        was_open = self._state == "open"
        self._state = "closed"
        if was_open:
            self._close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- helpers for subclasses --------------------------------------------------------------

    def check_frame(self, frame: np.ndarray) -> np.ndarray:
        """Validate shape/channels and return a float32 view or copy (never the caller's array
        to modify: subclasses must not write into it)."""
        if not isinstance(frame, np.ndarray):
            raise ValueError(f"frame: expected a NumPy array, got {type(frame).__name__}")
        if frame.ndim == 2 and 1 in self.channels:
            frame = frame[..., None]
        if frame.ndim != 3 or frame.shape[2] not in self.channels:
            want = " or ".join("H×W" if c == 1 else f"H×W×{c}" for c in self.channels)
            raise ValueError(f"frame: expected {want}, got shape {frame.shape}")
        if frame.shape[:2] != (self.height, self.width):
            raise ValueError(f"frame: expected {self.width}×{self.height} (as opened), got "
                             f"{frame.shape[1]}×{frame.shape[0]}")
        if frame.dtype == np.uint8 and self.takes_uint8:
            return frame
        return as_float32(frame)

    def frame_number(self, index: int, info: FrameInfo | None) -> int:
        """The number in file names before the offset: ``info.frame_number``, else ``index``."""
        return int(info.frame_number) if info is not None else int(index)

    # -- subclass hooks ----------------------------------------------------------------------

    @abstractmethod
    def _open(self) -> None:
        """Create the output (``self.path`` etc. are set)."""

    @abstractmethod
    def _write(self, index: int, frame: np.ndarray, info: FrameInfo | None,
               extra: dict[str, Any]) -> None:
        """Write one checked float32 frame (H×W×C); must not modify ``frame``."""

    @abstractmethod
    def _close(self) -> None:
        """Flush and finalise; called at most once, after a successful open."""


WRITERS: Registry[FrameWriter] = Registry("writer")
