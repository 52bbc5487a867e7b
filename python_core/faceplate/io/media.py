"""Frame sources for ``faceplate extract INPUT``: a video file, a still image or an image folder.

:func:`open_source` picks the reader from the path:

* **video** (:data:`VIDEO_EXTS`) through PyAV: frames are decoded with FFmpeg's automatic
  threading and converted with ``to_ndarray(format="rgb24")`` (swscale, honouring the stream's
  colour matrix). ``index`` counts decoded frames from 0 in presentation order; ``timestamp`` is
  the frame's exact ``pts × time_base`` in seconds (not shifted by the stream's start time).
  Random access (:meth:`FrameSource.read`) seeks to the keyframe before the target and decodes
  forward, matching frames by ``pts`` against an index of every packet's ``pts`` built once by
  demuxing (no decoding); streams without usable ``pts`` fall back to decoding from the start.
  Rotation metadata (phone footage) is **not** applied: frames are returned as stored.
* **image** (:data:`IMAGE_EXTS`): one still.
* **sequence**: a folder of images in natural order (``frame2`` before ``frame10``), or a
  numbered pattern such as ``shot_####.exr`` / ``shot_%04d.exr`` (files matching the pattern in
  its folder, ordered by number). Hidden files, sub-folders and non-image files are ignored (the
  latter listed in :attr:`FrameSource.ignored`).

Pixels: every :class:`~faceplate.core.types.Frame` carries ``rgb``, an H×W×3 ``uint8`` display
sRGB image (top-left origin) for detection. Integer files (8/16-bit PNG and TIFF, JPEG, 10/16-bit
DPX) are display-referred: 16-bit values are rounded to 8 bits (``round(v / 257)``) and
``linear`` is ``None``. Float files (half/float EXR, float TIFF, float DPX, HDR) are
scene-linear: ``linear`` keeps the float32 pixels exactly (H×W×3 RGB, or H×W×4 RGBA when the
file has alpha; grey is replicated to RGB) and ``rgb`` is
:func:`~faceplate.core.colorspace.linear_to_display_u8` of it. NaN/Inf samples do not fail a
frame: they are replaced in the detection view only and counted in
:attr:`FrameSource.nonfinite_frames`. Alpha is dropped from ``rgb``; greyscale becomes 3 channels.
EXR data windows that differ from the display window are placed into a display-window canvas
(zeros outside the data window), so pixel coordinates are display-window coordinates.

Colour spaces: :func:`open_source` decides the input's colour space (``colorspace=``, else the
file's metadata, else by kind: see :mod:`faceplate.io.colormanage`); frames of an input in a
space other than its kind's native one (linear Rec.709 for float files, sRGB for the others)
are converted to the working linear space as they are decoded, and then carry ``linear`` even
when the file is an integer one.

Frame numbers (``FrameInfo.frame_number``, a frame's identity in the alignments store and in
hosts): a numbered sequence's file numbers (``shot_1001.exr`` is frame 1001); a folder of stills
that are not one numbered sequence, their positions from 0; a video's frames are numbered from
:data:`VIDEO_FIRST_FRAME` (1), as Natron's and Nuke's readers number them. ``index`` stays the
0-based position. :meth:`FrameSource.number_of` and :meth:`FrameSource.index_of` convert
between the two without decoding.

Orientation: JPEG EXIF orientation **is applied** (the picture as photo viewers show it; OpenCV's
default). Other formats are read as stored.

Errors (all from :mod:`faceplate.core.errors`, naming the file): a missing path or an
unreadable/corrupt file is an :class:`InputError`, an unknown extension an
:class:`UnsupportedFormatError`, an image smaller than :data:`MIN_FRAME_SIZE` on a side an
:class:`InputError`. Inside a folder or pattern one bad file does not stop the iteration: it yields
nothing and its error is appended to :attr:`FrameSource.errors`. A single file raises.
"""

from __future__ import annotations

import itertools
import re
from abc import ABC, abstractmethod
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import av
import cv2
import numpy as np
import OpenImageIO as oiio

from faceplate.core.colorspace import linear_to_display_u8
from faceplate.core.errors import ConfigError, FaceplateError, InputError, UnsupportedFormatError
from faceplate.core.types import VIDEO_FIRST_FRAME, Frame, FrameInfo
from faceplate.io.colormanage import DISPLAY_SRGB

SourceKind = Literal["video", "image", "sequence"]

#: Smallest width and height (pixels) of a frame that can contain a detectable face.
MIN_FRAME_SIZE = 16

#: Still formats decoded by OpenCV (fast path for 8/16-bit display-referred files).
_CV2_EXTS = frozenset({".png", ".jpg", ".jpeg", ".jpe", ".bmp", ".ppm", ".pgm", ".pnm", ".webp"})
#: Still formats decoded by OpenImageIO (float and film formats).
_OIIO_EXTS = frozenset({".exr", ".dpx", ".tif", ".tiff", ".tga", ".hdr"})
_JPEG_EXTS = frozenset({".jpg", ".jpeg", ".jpe"})

#: Image file extensions (lower case, with the dot) that Faceplate reads.
IMAGE_EXTS: frozenset[str] = _CV2_EXTS | _OIIO_EXTS
#: Video container extensions (lower case, with the dot) that Faceplate reads through PyAV.
VIDEO_EXTS: frozenset[str] = frozenset({
    ".mp4", ".m4v", ".mov", ".mkv", ".avi", ".webm", ".mxf", ".mts", ".m2ts", ".ts", ".mpg",
    ".mpeg", ".wmv", ".flv", ".y4m",
})

#: When the next wanted video frame is further ahead than this, seek instead of decoding forward.
SEEK_GAP = 96

_FLOAT_TYPES = (oiio.HALF, oiio.FLOAT, oiio.DOUBLE)
_DIGITS = re.compile(r"(\d+)")
_LAST_NUMBER = re.compile(r"(\d+)(?!.*\d)")
_PATTERN = re.compile(r"(#+|@+|%0?(\d*)d)")


# --------------------------------------------------------------------------------------------
# Names and paths


def is_video(path: str | Path) -> bool:
    """True when ``path``'s extension is a video container Faceplate reads (no I/O)."""
    return Path(path).suffix.lower() in VIDEO_EXTS


def is_image(path: str | Path) -> bool:
    """True when ``path``'s extension is an image format Faceplate reads (no I/O)."""
    return Path(path).suffix.lower() in IMAGE_EXTS


def natural_key(name: str) -> list[Any]:
    """Sort key that orders embedded numbers by value: ``frame2`` < ``frame10``.

    Case-insensitive; ties broken by the original name so the order is total.
    """
    parts: list[Any] = [int(t) if i % 2 else t.lower() for i, t in enumerate(_DIGITS.split(name))]
    parts.append(name)
    return parts


def frame_number_from_name(name: str) -> int | None:
    """The last run of digits in a file name's stem (``shot_0012.exr`` → 12), else ``None``."""
    m = _LAST_NUMBER.search(Path(name).stem)
    return int(m.group(1)) if m else None


def sequence_numbers(numbers: Sequence[int | None]) -> list[int] | None:
    """The numbers from an ordered list of stills' names when they number it as a sequence
    (every name has one, no two share it), else None (the stills are numbered by position)."""
    if all(n is not None for n in numbers) and len(set(numbers)) == len(numbers):
        return [int(n) for n in numbers if n is not None]
    return None


def frame_name_for(path: str | Path, index: int | None = None) -> str:
    """The store key of a frame (``FrameInfo.name``).

    Args:
        path: The video file, or the image file the frame was read from.
        index: 0-based decoded-frame index; required for videos, ignored for images.

    Returns:
        ``"<stem>_<index:06d>"`` for a video (``clip.mp4``, 7 → ``"clip_000007"``), the file name
        for an image (``"shot_0012.exr"``).
    """
    p = Path(path)
    if is_video(p):
        if index is None:
            raise ValueError(f"{p}: a video frame name needs the frame index")
        return f"{p.stem}_{index:06d}"
    return p.name


def _supported_list() -> str:
    return ", ".join(sorted(IMAGE_EXTS | VIDEO_EXTS))


def _is_pattern(path: Path) -> bool:
    return bool(_PATTERN.search(path.name))


def _pattern_files(path: Path) -> list[tuple[int, Path]]:
    """Files matching a numbered pattern (``shot_####.exr``, ``shot_%04d.exr``), by number."""
    name = path.name
    m = list(_PATTERN.finditer(name))[-1]  # the last placeholder is the frame number
    token = m.group(1)
    if token[0] in "#@":
        pad = len(token)
    else:
        pad = int(m.group(2)) if m.group(2) else 1
    digits = r"\d+" if pad <= 1 else rf"\d{{{pad},}}"
    rx = re.compile(
        re.escape(name[: m.start()]) + f"({digits})" + re.escape(name[m.end():]) + r"\Z"
    )
    folder = path.parent
    if not folder.is_dir():
        raise InputError("folder of the image sequence not found", folder)
    found = []
    for entry in folder.iterdir():
        mm = rx.match(entry.name)
        if mm and entry.is_file() and not entry.name.startswith("."):
            found.append((int(mm.group(1)), entry))
    found.sort(key=lambda t: (t[0], natural_key(t[1].name)))
    return found


# --------------------------------------------------------------------------------------------
# Still images


@dataclass(frozen=True, eq=False)
class DecodedImage:
    """One decoded still.

    Attributes:
        rgb: H×W×3 ``uint8`` display sRGB (the detection view).
        linear: H×W×C ``float32`` scene-linear pixels (C = 3 RGB or 4 RGBA) for float files,
            else ``None``.
        nonfinite: Number of NaN/Inf samples replaced in ``rgb`` (always 0 for integer files).
    """

    rgb: np.ndarray
    linear: np.ndarray | None
    nonfinite: int = 0

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])


def _check_size(w: int, h: int, path: Path) -> None:
    if w < MIN_FRAME_SIZE or h < MIN_FRAME_SIZE:
        raise InputError(
            f"too small to contain a face ({w}×{h}; minimum {MIN_FRAME_SIZE}×{MIN_FRAME_SIZE})",
            path,
        )


def _u16_to_u8(img: np.ndarray) -> np.ndarray:
    """Round 16-bit integers to 8 bits: ``round(v × 255 / 65535)`` = ``round(v / 257)``."""
    # cv2 rounds v × (1/257) half-up and saturates: exact for all 65536 values (tested).
    return cv2.convertScaleAbs(img, alpha=1.0 / 257.0).reshape(img.shape)


def _int_to_rgb8(img: np.ndarray, *, bgr: bool) -> np.ndarray:
    """H×W[×C] uint8/uint16 (grey, grey+alpha, colour, colour+alpha) → H×W×3 uint8 RGB."""
    if img.dtype == np.uint16:
        img = _u16_to_u8(img)
    elif img.dtype != np.uint8:
        raise TypeError(f"unexpected integer image dtype {img.dtype}")
    if img.ndim == 2:
        img = img[..., None]
    c = img.shape[2]
    if c <= 2:
        return np.repeat(img[..., :1], 3, axis=2)
    rgb = img[..., 2::-1] if bgr else img[..., :3]
    return np.ascontiguousarray(rgb)


def _read_cv2(path: Path) -> DecodedImage:
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as e:
        raise InputError(f"cannot read file ({e.strerror or e})", path) from e
    # JPEG: IMREAD_COLOR applies EXIF orientation (documented behaviour); others as stored.
    flags = cv2.IMREAD_COLOR if path.suffix.lower() in _JPEG_EXTS else cv2.IMREAD_UNCHANGED
    img = cv2.imdecode(data, flags) if data.size else None
    if img is None:
        raise InputError(f"cannot decode image (corrupt or not a {path.suffix} file)", path)
    _check_size(int(img.shape[1]), int(img.shape[0]), path)
    if img.dtype not in (np.uint8, np.uint16):
        raise InputError(f"cannot decode image (unexpected sample type {img.dtype})", path)
    return DecodedImage(_int_to_rgb8(img, bgr=True), None, 0)


def _float_image(lin: np.ndarray) -> DecodedImage:
    """float32 H×W×C (C = 1..4, RGB(A) order) → DecodedImage with grey expanded to RGB."""
    if lin.ndim == 2:
        lin = lin[..., None]
    c = lin.shape[2]
    if c == 1:
        lin = np.repeat(lin, 3, axis=2)
    elif c == 2:  # grey + alpha
        lin = np.concatenate([np.repeat(lin[..., :1], 3, axis=2), lin[..., 1:2]], axis=2)
    lin = np.ascontiguousarray(lin, dtype=np.float32)
    rgb, n_bad = linear_to_display_u8(lin)
    return DecodedImage(rgb, lin, n_bad)


def _oiio_channels(spec: Any) -> list[int]:
    """Channel indices to keep, in R, G, B(, A) order (or grey(, alpha))."""
    names = [str(n) for n in spec.channelnames]
    short = [n.rsplit(".", 1)[-1].upper() for n in names]
    alpha = spec.alpha_channel if spec.alpha_channel >= 0 else (
        short.index("A") if "A" in short else -1)
    if all(k in short for k in ("R", "G", "B")):
        idx = [short.index("R"), short.index("G"), short.index("B")]
    elif spec.nchannels >= 3:
        idx = [i for i in range(spec.nchannels) if i != alpha][:3]
    else:
        idx = [next(i for i in range(spec.nchannels) if i != alpha)] if spec.nchannels else []
    if len(idx) in (1, 3) and alpha >= 0 and alpha not in idx:
        idx.append(alpha)
    return idx


def _open_oiio(path: Path) -> Any:
    """Open with OIIO, keeping stored colour values as they are (no premultiplication of files
    that store straight alpha), like the OpenCV path."""
    config = oiio.ImageSpec()
    config.attribute("oiio:UnassociatedAlpha", 1)
    return oiio.ImageInput.open(str(path), config)


def _read_oiio(path: Path) -> DecodedImage:
    inp = _open_oiio(path)
    if inp is None:
        msg = oiio.geterror() or "unknown error"
        raise InputError(f"cannot decode image ({msg.strip()})", path)
    try:
        spec = inp.spec()
        full_w, full_h = int(spec.full_width), int(spec.full_height)
        if full_w <= 0 or full_h <= 0:
            full_w, full_h = int(spec.width), int(spec.height)
        _check_size(full_w, full_h, path)
        is_float = spec.format.basetype in _FLOAT_TYPES
        if is_float:
            fmt = oiio.FLOAT
        else:
            fmt = oiio.UINT8 if spec.format.basetype == oiio.UINT8 else oiio.UINT16
        pixels = inp.read_image(0, 0, 0, int(spec.nchannels), fmt)
        if pixels is None:
            msg = inp.geterror() or oiio.geterror() or "unknown error"
            raise InputError(f"cannot decode image ({msg.strip()})", path)
    finally:
        inp.close()
    arr = np.asarray(pixels)
    if arr.ndim == 2:
        arr = arr[..., None]
    arr = arr[..., _oiio_channels(spec)]
    # Place the data window into the display window (EXR overscan / cropped data windows).
    dx, dy = int(spec.x - spec.full_x), int(spec.y - spec.full_y)
    if (dx, dy, arr.shape[1], arr.shape[0]) != (0, 0, full_w, full_h):
        canvas = np.zeros((full_h, full_w, arr.shape[2]), dtype=arr.dtype)
        x0, y0 = max(dx, 0), max(dy, 0)
        x1 = min(dx + arr.shape[1], full_w)
        y1 = min(dy + arr.shape[0], full_h)
        if x1 > x0 and y1 > y0:
            canvas[y0:y1, x0:x1] = arr[y0 - dy:y1 - dy, x0 - dx:x1 - dx]
        arr = canvas
    if is_float:
        return _float_image(arr.astype(np.float32, copy=False))
    return DecodedImage(_int_to_rgb8(arr, bgr=False), None, 0)


def decode_image(path: str | Path) -> DecodedImage:
    """Decode one still image file.

    Args:
        path: An image file with an extension in :data:`IMAGE_EXTS`.

    Returns:
        The display view (H×W×3 uint8 sRGB), the scene-linear float32 pixels for float formats,
        and the count of NaN/Inf samples replaced in the display view.

    Raises:
        InputError: missing, unreadable, corrupt, or smaller than :data:`MIN_FRAME_SIZE`.
        UnsupportedFormatError: an extension not in :data:`IMAGE_EXTS`.
    """
    p = Path(path)
    ext = p.suffix.lower()
    if ext not in IMAGE_EXTS:
        raise UnsupportedFormatError(
            f"unsupported image format {ext or '(no extension)'!r}; supported: "
            + ", ".join(sorted(IMAGE_EXTS)), p)
    if not p.is_file():
        raise InputError("file not found" if not p.exists() else "not a file", p)
    if ext in _CV2_EXTS:
        return _read_cv2(p)
    return _read_oiio(p)


def read_image(path: str | Path) -> Frame:
    """Read one still as a :class:`Frame` (index 0; ``name`` = file name).

    ``rgb`` is H×W×3 uint8 display sRGB; ``linear`` float32 RGB(A) for float files, else
    ``None``. Use :func:`decode_image` to also get the NaN/Inf count. Raises like
    :func:`decode_image`.
    """
    p = Path(path)
    img = decode_image(p)
    num = frame_number_from_name(p.name)
    info = FrameInfo(0, p.name, None, img.width, img.height, 0 if num is None else num)
    return Frame(info, img.rgb, img.linear)


def probe_image(path: str | Path) -> tuple[int, int]:
    """(width, height) of an image from its header (orientation-corrected for JPEG).

    Raises:
        InputError: the file cannot be opened or is smaller than :data:`MIN_FRAME_SIZE`.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError("file not found" if not p.exists() else "not a file", p)
    inp = _open_oiio(p)
    if inp is None:
        msg = oiio.geterror() or "unknown error"
        raise InputError(f"cannot decode image ({msg.strip()})", p)
    try:
        spec = inp.spec()
        w, h = int(spec.full_width), int(spec.full_height)
        if w <= 0 or h <= 0:
            w, h = int(spec.width), int(spec.height)
        if p.suffix.lower() in _JPEG_EXTS and int(spec.get_int_attribute("Orientation", 1)) > 4:
            w, h = h, w
    finally:
        inp.close()
    _check_size(w, h, p)
    return w, h


# --------------------------------------------------------------------------------------------
# Sources


class FrameSource(ABC):
    """Frames of one input, in index order.

    Attributes:
        path: The input as given (file, folder or pattern).
        kind: ``"video"``, ``"image"`` or ``"sequence"``.
        total_frames: Frames in the input before sampling (for video the container's count, or
            an estimate from duration × rate when the container does not know it).
        width: Frame width in pixels (of the first readable frame for sequences).
        height: Frame height in pixels.
        fps: Average frame rate for video, ``None`` for stills and sequences.
        every_n: Sampling step: only indices with ``index % every_n == 0`` are yielded.
        start: First index to consider (indices below it are not yielded).
        errors: Per-file errors met while iterating a folder or pattern (those files yielded
            nothing); always empty for a single file, which raises instead.
        nonfinite_frames: Frame index → number of NaN/Inf samples replaced in ``rgb``
            (float inputs only; frames without any are absent).
        ignored: Files in an input folder that are not images (hidden files not listed).
    """

    path: Path
    kind: SourceKind
    total_frames: int
    width: int
    height: int
    fps: float | None

    def __init__(self, path: Path, every_n: int, start: int) -> None:
        if every_n < 1:
            raise ConfigError(f"every_n must be ≥ 1, got {every_n}")
        if start < 0:
            raise ConfigError(f"start must be ≥ 0, got {start}")
        self.path = path
        self.every_n = int(every_n)
        self.start = int(start)
        self.errors: list[FaceplateError] = []
        self.nonfinite_frames: dict[int, int] = {}
        self.ignored: list[Path] = []
        self.colorspace = DISPLAY_SRGB  # set by set_colorspace (open_source calls it)
        self._convert_from: str | None = None

    def set_colorspace(self, explicit: str = "") -> None:
        """Decide the input's colour space (``explicit``, else the first file's metadata, else
        by kind: see :mod:`faceplate.io.colormanage`); frames in a space other than the kind's
        native one are converted to the working linear space as they are decoded.

        Raises:
            ConfigError: ``explicit`` is not a space of the colour config.
        """
        from faceplate.io import colormanage as cm

        metadata, is_float = self._probe_colorspace()
        self.colorspace = cm.input_space(explicit, metadata, is_float)
        self._convert_from = None if cm.is_native(self.colorspace, is_float) \
            else self.colorspace

    @property
    def converts(self) -> bool:
        """Whether frames are converted from :attr:`colorspace` as they are decoded."""
        return self._convert_from is not None

    def _probe_colorspace(self) -> tuple[str | None, bool]:
        """(the colour space the input's metadata names or None, whether its pixels are
        float)."""
        return None, False

    def _finish(self, frame: Frame) -> Frame:
        """``frame`` in the working space: converted from the input's colour space when that
        is not the kind's native one (float pixels then fill ``linear`` even for integer
        files), else as decoded."""
        if self._convert_from is None:
            return frame
        from faceplate.io import colormanage as cm

        src = frame.linear if frame.linear is not None \
            else frame.rgb.astype(np.float32) / np.float32(255.0)
        lin = cm.to_working(src, self._convert_from)
        rgb, _ = linear_to_display_u8(lin)
        return Frame(frame.info, rgb, lin)

    @property
    def first_index(self) -> int:
        """The smallest index ≥ ``start`` that sampling keeps."""
        return -(-self.start // self.every_n) * self.every_n

    def indices(self) -> range:
        """The frame indices :meth:`__iter__` yields (for video, up to ``total_frames``)."""
        return range(self.first_index, max(self.total_frames, self.first_index), self.every_n)

    def __len__(self) -> int:
        """Frames the default iteration yields (exact for stills and sequences, counting files
        that may fail to decode; for video based on ``total_frames``)."""
        return len(self.indices())

    def __iter__(self) -> Iterator[Frame]:
        return self.frames()

    def _wanted(self, indices: Iterable[int] | None, skip: Collection[int]) -> Iterator[int]:
        skip_set = skip if isinstance(skip, (set, frozenset)) else set(skip)
        if indices is None:
            it: Iterable[int] = self._default_indices()
        else:
            it = sorted({int(i) for i in indices if int(i) >= 0})
        return (i for i in it if i not in skip_set)

    def _default_indices(self) -> Iterable[int]:
        return self.indices()

    @abstractmethod
    def frames(self, indices: Iterable[int] | None = None,
               skip: Collection[int] = ()) -> Iterator[Frame]:
        """Yield frames in increasing index order.

        Args:
            indices: Which frames; ``None`` means the sampled set (``start``, ``every_n``).
                Given indices ignore sampling; they are sorted and de-duplicated.
            skip: Indices not to yield (already done, for resume). Sequences do not read those
                files; video still decodes through them but skips the RGB conversion, and seeks
                over long runs of them.
        """

    @abstractmethod
    def read(self, index: int) -> Frame:
        """Random access to frame ``index`` (0-based, before sampling).

        Raises:
            IndexError: ``index`` is out of range.
            InputError: the frame cannot be decoded.
        """

    @abstractmethod
    def number_of(self, index: int) -> int:
        """The frame's own number (``FrameInfo.frame_number``) of frame ``index``, known
        without decoding: a sequence file's number, a video's ``index + VIDEO_FIRST_FRAME``."""

    @abstractmethod
    def index_of(self, number: int) -> int | None:
        """The index of the frame numbered ``number``, or None when the input has none."""

    def close(self) -> None:  # noqa: B027 - sources without open handles need nothing
        """Release open files and decoders (idempotent)."""

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({str(self.path)!r}, kind={self.kind!r}, "
                f"frames={self.total_frames}, {self.width}×{self.height})")


class ImageSequenceSource(FrameSource):
    """A single still (``kind="image"``) or an ordered list of still files (``"sequence"``).

    Frame numbers: the number in each file's name when every file has one and no two share
    it (a numbered sequence: ``shot_1001.exr`` is frame 1001); otherwise (a folder of unrelated
    stills) the file's position in the sorted list. A single still without a number is 0.
    """

    def __init__(self, path: Path, files: list[Path], numbers: list[int | None], *,
                 kind: SourceKind, every_n: int = 1, start: int = 0) -> None:
        super().__init__(path, every_n, start)
        self.kind = kind
        self.files = files
        self._numbers = sequence_numbers(numbers) or list(range(len(files)))
        self._positions = {n: i for i, n in enumerate(self._numbers)}
        self.total_frames = len(files)
        self.fps = None
        self.width, self.height = self._probe()

    def _probe(self) -> tuple[int, int]:
        if self.kind == "image":
            return probe_image(self.files[0])
        last: FaceplateError | None = None
        for f in self.files:
            try:
                return probe_image(f)
            except FaceplateError as e:
                last = e
        raise InputError(
            f"none of the {len(self.files)} images can be read (last error: {last})", self.path)

    def _probe_colorspace(self) -> tuple[str | None, bool]:
        for f in self.files:
            inp = _open_oiio(f)
            if inp is None:
                continue
            try:
                spec = inp.spec()
                is_float = spec.format.basetype in (oiio.HALF, oiio.FLOAT, oiio.DOUBLE)
                return spec.get_string_attribute("oiio:ColorSpace") or None, bool(is_float)
            finally:
                inp.close()
        return None, False

    def _decode(self, index: int) -> Frame:
        f = self.files[index]
        img = decode_image(f)
        if img.nonfinite:
            self.nonfinite_frames[index] = img.nonfinite
        info = FrameInfo(index, f.name, None, img.width, img.height, self._numbers[index])
        return self._finish(Frame(info, img.rgb, img.linear))

    def number_of(self, index: int) -> int:
        return self._numbers[index]

    def index_of(self, number: int) -> int | None:
        return self._positions.get(int(number))

    def frames(self, indices: Iterable[int] | None = None,
               skip: Collection[int] = ()) -> Iterator[Frame]:
        for i in self._wanted(indices, skip):
            if i >= self.total_frames:
                break
            try:
                frame = self._decode(i)
            except FaceplateError as e:
                if self.kind == "image":
                    raise
                self.errors.append(e)
                continue
            yield frame

    def read(self, index: int) -> Frame:
        if not 0 <= index < self.total_frames:
            raise IndexError(f"{self.path}: frame {index} out of range 0..{self.total_frames - 1}")
        return self._decode(index)


@dataclass
class _PtsIndex:
    """Presentation timestamps of every frame, in order (from demuxing, no decoding)."""

    pts: list[int]
    position: dict[int, int]


class _VideoCursor:
    """One open decoder that walks forward through a video, seeking when a jump is long.

    Frames are labelled with their index: by position of their ``pts`` in the
    :class:`_PtsIndex` when there is one, else by counting decoded frames from the start.
    """

    def __init__(self, path: Path, index: _PtsIndex | None) -> None:
        self.path = path
        self.index = index
        self.container: Any = None
        self._restart()

    def _restart(self) -> None:
        """(Re)open the file and position before frame 0."""
        if self.container is not None:
            self.container.close()
        self.container = _open_container(self.path)
        self.stream = self.container.streams.video[0]
        self.stream.thread_type = "AUTO"
        self._gen: Iterator[Any] | None = None
        self._pending: tuple[int | None, Any] | None = None
        self.next_index: int | None = 0
        self.eof = False

    def _decode_next(self) -> tuple[int | None, Any] | None:
        """Decode one frame and label it; ``None`` at the end of the stream."""
        if self._pending is not None:
            item, self._pending = self._pending, None
            return item
        if self.eof:
            return None
        if self._gen is None:
            self._gen = iter(self.container.decode(self.stream))
        try:
            frame = next(self._gen)
        except StopIteration:
            self.eof = True
            return None
        except av.error.FFmpegError as e:
            raise InputError(f"cannot decode video frame {self.next_index} ({e})",
                             self.path) from e
        label = self.next_index
        if self.index is not None and frame.pts is not None:
            label = self.index.position.get(int(frame.pts), label)
        self.next_index = None if label is None else label + 1
        return label, frame

    def _seek(self, target: int) -> None:
        """Position the decoder so that the next frames lead up to ``target``."""
        assert self.index is not None
        back = 0
        while target - back > 0:
            anchor = target - back
            self.container.seek(self.index.pts[anchor], stream=self.stream, backward=True,
                                any_frame=False)
            self._gen, self._pending, self.eof, self.next_index = None, None, False, None
            item = self._decode_next()
            if item is not None and item[0] is not None and item[0] <= target:
                self._pending = item
                return
            back = max(2 * back, SEEK_GAP)  # landed after the target: seek further back
        self._restart()

    def advance_to(self, target: int) -> Any | None:
        """Decode up to frame ``target``; return it as an ``av.VideoFrame``, ``None`` past the end.

        Frames before it are decoded but not converted.
        """
        behind = self.next_index is None or target < self.next_index
        if self.index is not None and (behind or target - (self.next_index or 0) > SEEK_GAP):
            if target >= len(self.index.pts):
                return None
            self._seek(target)
        elif behind:
            self._restart()
        while True:
            item = self._decode_next()
            if item is None:
                return None
            label, frame = item
            if label == target:
                return frame
            if label is not None and label > target:
                raise InputError(f"cannot locate video frame {target} (decoder skipped it)",
                                 self.path)

    def close(self) -> None:
        self._gen = None
        self._pending = None
        if self.container is not None:
            self.container.close()
            self.container = None


def _open_container(path: Path) -> Any:
    try:
        container = av.open(str(path), mode="r")
    except (av.error.FFmpegError, OSError, ValueError) as e:
        raise InputError(f"cannot decode video ({e})", path) from e
    if not container.streams.video:
        container.close()
        raise InputError("no video stream in file", path)
    return container


class VideoSource(FrameSource):
    """Frames of a video file decoded with PyAV (see the module docstring)."""

    kind: SourceKind = "video"

    def __init__(self, path: Path, *, every_n: int = 1, start: int = 0) -> None:
        super().__init__(path, every_n, start)
        container = _open_container(path)
        try:
            stream = container.streams.video[0]
            cc = stream.codec_context
            self.width, self.height = int(cc.width), int(cc.height)
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
            self.fps = float(rate) if rate else None
            self.time_base: Fraction = stream.time_base or Fraction(1, 1)
            self.stem = path.stem
            if stream.frames and stream.frames > 0:
                self.total_frames = int(stream.frames)
            else:
                secs = None
                if stream.duration:
                    secs = float(stream.duration * self.time_base)
                elif container.duration:
                    secs = container.duration / 1_000_000.0
                self.total_frames = int(round(secs * self.fps)) if secs and self.fps else 0
        finally:
            container.close()
        if self.width <= 0 or self.height <= 0:
            raise InputError("cannot decode video (no frame size in the stream)", path)
        _check_size(self.width, self.height, path)
        self._index: _PtsIndex | None = None
        self._index_built = False
        self._cursor: _VideoCursor | None = None

    # -- index -------------------------------------------------------------------------------

    def pts_index(self) -> _PtsIndex | None:
        """Build (once) the pts of every frame by demuxing; ``None`` when pts are unusable."""
        if self._index_built:
            return self._index
        self._index_built = True
        container = _open_container(self.path)
        pts: list[int] = []
        try:
            stream = container.streams.video[0]
            for pkt in container.demux(stream):
                if pkt.size == 0 or pkt.is_discard:
                    continue
                if pkt.pts is None:
                    return None
                pts.append(int(pkt.pts))
        except av.error.FFmpegError:
            return None
        finally:
            container.close()
        pts.sort()
        position = {p: i for i, p in enumerate(pts)}
        if not pts or len(position) != len(pts):
            return None
        self._index = _PtsIndex(pts, position)
        self.total_frames = len(pts)
        return self._index

    # -- frames ------------------------------------------------------------------------------

    def _default_indices(self) -> Iterable[int]:
        # Open-ended: decode until the stream ends (total_frames may be an estimate).
        return itertools.count(self.first_index, self.every_n)

    def _to_frame(self, vf: Any, index: int) -> Frame:
        rgb = vf.to_ndarray(format="rgb24")
        ts = (float(vf.pts * self.time_base) if vf.pts is not None
              else (index / self.fps if self.fps else None))
        info = FrameInfo(index, f"{self.stem}_{index:06d}", ts, int(rgb.shape[1]),
                         int(rgb.shape[0]), self.number_of(index))
        return self._finish(Frame(info, rgb, None))

    def number_of(self, index: int) -> int:
        return int(index) + VIDEO_FIRST_FRAME

    def index_of(self, number: int) -> int | None:
        index = int(number) - VIDEO_FIRST_FRAME
        return index if index >= 0 and (self.total_frames <= 0 or index < self.total_frames) \
            else None

    def frames(self, indices: Iterable[int] | None = None,
               skip: Collection[int] = ()) -> Iterator[Frame]:
        wanted = self._wanted(indices, skip)
        first = next(wanted, None)
        if first is None:
            return
        index = self.pts_index() if first > SEEK_GAP or skip else None
        cursor = _VideoCursor(self.path, index)
        try:
            for i in itertools.chain([first], wanted):
                if cursor.index is None and i - (cursor.next_index or 0) > SEEK_GAP:
                    cursor.index = self.pts_index()
                vf = cursor.advance_to(i)
                if vf is None:
                    return
                yield self._to_frame(vf, i)
        finally:
            cursor.close()

    def read(self, index: int) -> Frame:
        if index < 0 or (self._index_built and self._index is not None
                         and index >= len(self._index.pts)):
            raise IndexError(f"{self.path}: frame {index} out of range 0..{self.total_frames - 1}")
        if self._cursor is None:
            self._cursor = _VideoCursor(self.path, self.pts_index())
        vf = self._cursor.advance_to(index)
        if vf is None:
            raise IndexError(f"{self.path}: frame {index} out of range (the video ends before)")
        return self._to_frame(vf, index)

    def close(self) -> None:
        if self._cursor is not None:
            self._cursor.close()
            self._cursor = None


# --------------------------------------------------------------------------------------------
# Entry point


def _folder_source(folder: Path, every_n: int, start: int) -> ImageSequenceSource:
    images: list[Path] = []
    ignored: list[Path] = []
    videos = 0
    for entry in folder.iterdir():
        if entry.name.startswith(".") or entry.is_dir():
            continue
        if is_image(entry):
            images.append(entry)
        else:
            ignored.append(entry)
            videos += is_video(entry)
    if not images:
        if videos:
            raise InputError(f"folder holds no images but {videos} video file(s); pass each "
                             "video as its own input", folder)
        extra = f" ({len(ignored)} other files ignored)" if ignored else ""
        raise InputError(f"folder holds no images{extra}; supported: "
                         + ", ".join(sorted(IMAGE_EXTS)), folder)
    images.sort(key=lambda p: natural_key(p.name))
    src = ImageSequenceSource(folder, images, [frame_number_from_name(p.name) for p in images],
                              kind="sequence", every_n=every_n, start=start)
    src.ignored = sorted(ignored, key=lambda p: natural_key(p.name))
    return src


def open_source(path: str | Path, *, every_n: int = 1, start: int = 0,
                colorspace: str = "") -> FrameSource:
    """Open an extraction input.

    Args:
        path: A video file, an image file, a folder of images, or a numbered pattern
            (``shot_####.exr``, ``shot_%04d.exr``).
        every_n: Keep only frames whose index is a multiple of ``every_n`` (≥ 1).
        start: Skip frames with a smaller index (≥ 0).
        colorspace: The input's colour space (a name in the colour config, see
            :mod:`faceplate.io.colormanage`); empty: from the file's metadata, else by kind.

    Returns:
        A :class:`FrameSource` (use it as a context manager, or call ``close``).

    Raises:
        InputError: missing path, unreadable or corrupt file, folder without images, image too
            small.
        UnsupportedFormatError: a file whose extension is neither an image nor a video format.
        ConfigError: ``every_n`` < 1 or ``start`` < 0, or an unknown colour space.
    """
    src = _open_source(path, every_n=every_n, start=start)
    try:
        src.set_colorspace(colorspace)
    except BaseException:
        src.close()
        raise
    return src


def _open_source(path: str | Path, *, every_n: int = 1, start: int = 0) -> FrameSource:
    """The source for ``path`` (:func:`open_source` without the colour space)."""
    p = Path(path).expanduser()
    if p.is_dir():
        return _folder_source(p, every_n, start)
    if not p.exists():
        if is_image(p) and _is_pattern(p):
            found = _pattern_files(p)
            if not found:
                raise InputError("no files match the numbered sequence pattern", p)
            return ImageSequenceSource(p, [f for _, f in found], [n for n, _ in found],
                                       kind="sequence", every_n=every_n, start=start)
        raise InputError("file or folder not found", p)
    if is_video(p):
        return VideoSource(p, every_n=every_n, start=start)
    if is_image(p):
        return ImageSequenceSource(p, [p], [frame_number_from_name(p.name)], kind="image",
                                   every_n=every_n, start=start)
    raise UnsupportedFormatError(
        f"unsupported file type {p.suffix or '(no extension)'!r}; supported: "
        + _supported_list(), p)
