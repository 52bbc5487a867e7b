"""Patch writer (``patch``): the raw swapped face, its mask and the crop ↔ frame matrix, per face.

For compositing by hand (Faceswap's ``patch`` writer, which VFX users rely on): instead of pasting
the face into the plate, each face of each frame is written as its aligned crop, with the
matte (as the alpha channel or a separate file) and the 2×3 affine matrices that place it in the
frame. A compositor re-inserts it with one transform node.

Files (in the output folder), by default ``<stem>_face<k>_<frame_number:06d>.<ext>``, so each
face slot forms its own numbered sequence (the frame number is the last number in the name):

* the patch: 8- or 16-bit PNG (display sRGB codes, straight alpha) or 32-bit float EXR (values
  as given, colour premultiplied by alpha, the EXR convention) or 32-bit float TIFF (straight,
  tagged unassociated alpha);
* with ``mask="file"``: ``<name>_mask.<ext>``, a single-channel matte in the same format, and the
  patch has no alpha;
* with ``sidecar=True``: ``<name>.json``, the same metadata as the file's own.

Metadata (JSON text, in a PNG ``iTXt`` chunk keyword ``faceplate-patch``, an EXR string attribute
``faceplatePatch`` or the TIFF ``ImageDescription`` tag, and the sidecar)::

    {"format": "faceplate.patch", "version": 1, "frame_index", "frame_number", "frame_name",
     "face_index", "frame_size": [W, H], "patch_size": [w, h], "origin", "y_axis",
     "pixel_centers", "frame_to_crop": [[a, b, c], [d, e, f]], "crop_to_frame": [[...], [...]],
     "colour_space", "alpha", "mask_file", "bit_depth", "empty"}

Matrix convention: ``M`` maps a point ``p = (x, y)`` to ``M[:, :2] @ p + M[:, 2]``; pixel
``(i, j)`` covers ``[i, i+1] × [j, j+1]`` so its centre is ``(i + 0.5, j + 0.5)`` (OpenCV's
``warpAffine`` wants integer centres: see :func:`faceplate.core.geometry.to_cv2`). With
``origin="top-left"`` (Faceplate's, OpenCV's) y points down from the top edge of the frame and of
the patch; with ``origin="bottom-left"`` (OpenFX, Nuke) y points up from their bottom edges, i.e.
``y_bl = H − y_tl`` in the frame and ``y_bl = h − y_tl`` in the patch (:func:`convert_origin`).

Provenance: every patch and mask file also carries the statement that the face was synthetically
replaced (:func:`~faceplate.convert.writers.images.encode_file`), with the frame index and number,
the face slot and the facts the caller passes as ``extra["provenance"]`` to :meth:`write`.

Empty frames (no face): ``empty="blank"`` writes one fully transparent patch (face slot 0, the size
of the last patch written, else ``blank_size``; metadata ``"empty": true`` and null matrices) so a
compositor sees no missing frame; ``"skip"`` writes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import OpenImageIO as oiio

from faceplate.convert.writers.base import (
    WRITERS,
    FrameWriter,
    SequenceConfig,
    as_float32,
    atomic_write_bytes,
    file_name,
    prepare_folder,
    resolve_stem,
    to_display,
)
from faceplate.convert.writers.images import IMAGE_FORMATS, encode_file, read_png_itxt
from faceplate.core.colorspace import unpremultiply
from faceplate.core.config import option
from faceplate.core.errors import ConfigError, InputError, RecordError
from faceplate.core.geometry import invert_affine
from faceplate.core.types import FrameInfo
from faceplate.core.validate import check_matrix

Origin = Literal["top-left", "bottom-left"]
PatchFormat = Literal["png8", "png16", "exr", "tiff"]

#: PNG iTXt keyword of the patch metadata.
PNG_KEY = "faceplate-patch"
#: EXR header attribute holding the patch metadata.
EXR_ATTR = "faceplatePatch"
PATCH_FORMAT = "faceplate.patch"
PATCH_VERSION = 1
PIXEL_CENTERS = "pixel (i, j) covers [i, i+1] x [j, j+1]; its centre is (i + 0.5, j + 0.5)"

_FILE_FORMAT = {"png8": "png8", "png16": "png16", "exr": "exr-float", "tiff": "tiff-float"}


def _flip(height: float) -> np.ndarray:
    """3×3 matrix of ``y → height − y`` (its own inverse)."""
    return np.array([[1.0, 0.0, 0.0], [0.0, -1.0, float(height)], [0.0, 0.0, 1.0]])


def convert_origin(frame_to_crop: np.ndarray, frame_size: tuple[int, int],
                   patch_size: tuple[int, int], src: Origin, dst: Origin) -> np.ndarray:
    """Re-express a frame → crop matrix in another origin convention.

    Args:
        frame_to_crop: 2×3 matrix in the ``src`` convention.
        frame_size: (width, height) of the frame in pixels.
        patch_size: (width, height) of the crop in pixels.
        src: Convention of ``frame_to_crop``.
        dst: Wanted convention.

    Returns:
        2×3 float64 frame → crop matrix in ``dst``: ``F_crop · M · F_frame`` with ``F_h`` the flip
        ``y → h − y`` when the conventions differ (pixel centres stay at +0.5). For a
        crop → frame matrix, swap the two sizes.
    """
    m = check_matrix(frame_to_crop, "frame_to_crop")
    if src == dst:
        return m.copy()
    full = np.vstack([m, [0.0, 0.0, 1.0]])
    return (_flip(patch_size[1]) @ full @ _flip(frame_size[1]))[:2]


@dataclass(frozen=True)
class PatchConfig(SequenceConfig):
    """Options of the ``patch`` writer."""

    pattern: str = option(
        "{stem}_face{face}_{frame}",
        "File name without extension: {stem}, {face} (face slot in the frame), {frame} (the "
        "zero-padded frame number, last in the name so each face slot is a sequence).")
    format: PatchFormat = option("png16", "png8 / png16 (straight alpha) or 32-bit float exr "
                                 "(premultiplied) / tiff (straight).")
    mask: Literal["alpha", "file"] = option("alpha", "Store the mask as the patch's alpha or as "
                                            "a separate single-channel file.")
    origin: Origin = option("top-left", "Matrix convention: top-left (y down, Faceplate/OpenCV) "
                            "or bottom-left (y up, OpenFX/Nuke).")
    empty: Literal["blank", "skip"] = option("blank", "Frames without a face: write one "
                                             "transparent patch, or nothing.")
    blank_size: int = option(256, "Side of a blank patch before any face was written.",
                             minimum=1, maximum=8192)
    sidecar: bool = option(True, "Also write the metadata as <name>.json next to each patch.")
    png_compression: int = option(1, "PNG zlib level (0 fastest, 9 smallest).", minimum=0,
                                  maximum=9)

    def __post_init__(self) -> None:
        super().__post_init__()
        if "{face}" not in self.pattern:
            raise ConfigError(f"pattern: {self.pattern!r} needs a {{face}} field (several faces "
                              "per frame)")


@dataclass(frozen=True, eq=False)
class PatchFace:
    """One face to write as a patch.

    Attributes:
        face: h×w×3 float32 swapped face crop (display sRGB in [0, 1], or as ``input_space``).
        mask: h×w float32 matte in [0, 1] (or h×w×1).
        matrix: 2×3 frame → crop matrix, top-left origin, pixel centres at +0.5 (as
            :func:`faceplate.core.geometry.crop_matrix` returns).
    """

    face: np.ndarray
    mask: np.ndarray
    matrix: np.ndarray


@WRITERS.register("patch", config=PatchConfig)
class PatchWriter(FrameWriter):
    """Raw face patches + mask + crop↔frame matrix per face (metadata and JSON sidecar)."""

    def __init__(self, cfg: PatchConfig) -> None:
        super().__init__(cfg)
        self.cfg: PatchConfig = cfg
        self.stem = "frame"
        self.patches_written = 0
        self._last_size: tuple[int, int] | None = None
        self._faces_in_frame: dict[int, int] = {}
        self._provenance: dict[str, Any] = {}

    @property
    def ext(self) -> str:
        return IMAGE_FORMATS[_FILE_FORMAT[self.cfg.format]].ext

    def _open(self) -> None:
        assert self.path is not None
        prepare_folder(self.path)
        self.stem = resolve_stem(self.cfg.stem, self.source)

    def path_for(self, index: int, face_index: int, info: FrameInfo | None = None) -> Path:
        """The patch file of face slot ``face_index`` in frame ``index``."""
        assert self.path is not None
        return self.path / file_name(self.cfg, self.stem, self.frame_number(index, info),
                                     self.ext, face=face_index)

    # -- the frame-writer entry point ---------------------------------------------------------

    def _write(self, index: int, frame: np.ndarray, info: FrameInfo | None,
               extra: dict[str, Any]) -> None:
        """``extra["faces"]``: a sequence of :class:`PatchFace` or ``(face, mask, matrix)``
        tuples (the frame itself is not stored; it only fixes the frame size). No faces: an
        empty frame (see ``empty``)."""
        faces: Sequence[PatchFace | tuple[np.ndarray, np.ndarray, np.ndarray]] = (
            extra.get("faces") or ())
        self._provenance = dict(extra.get("provenance") or {})
        if not faces:
            self.write_empty(index, info)
            return
        for item in faces:
            face, mask, matrix = ((item.face, item.mask, item.matrix)
                                  if isinstance(item, PatchFace) else item)
            self.write_patch(index, face, mask, matrix, info=info)

    # -- patches -----------------------------------------------------------------------------

    def write_patch(self, index: int, face: np.ndarray, mask: np.ndarray, matrix: np.ndarray,
                    frame_size: tuple[int, int] | None = None, info: FrameInfo | None = None,
                    face_index: int | None = None) -> Path:
        """Write one face patch (and its mask file and sidecar).

        Args:
            index: Frame index (0-based); file names use ``info.frame_number`` when given.
            face: h×w×3 float32 crop (display sRGB [0, 1] unless ``input_space="linear"``).
            mask: h×w (or h×w×1) float32 matte in [0, 1].
            matrix: 2×3 frame → crop, top-left origin, pixel centres at +0.5.
            frame_size: (width, height) of the frame; defaults to (and must equal) the size
                given to :meth:`open`.
            info: Where the frame came from.
            face_index: Face slot in the frame; default: the next free slot of this frame.

        Returns:
            The patch file's path.

        Raises:
            ValueError: bad shapes or a non-finite matrix.
            OutputError: a file cannot be written.
        """
        if self._state != "open":
            raise RuntimeError(f"PatchWriter: write_patch() needs an open writer "
                               f"(state: {self._state})")
        size = (self.width, self.height)
        if frame_size is not None and (int(frame_size[0]), int(frame_size[1])) != size:
            raise ValueError(f"frame_size {tuple(frame_size)} differs from the opened size {size}")
        face = np.asarray(face)
        if face.ndim != 3 or face.shape[2] != 3:
            raise ValueError(f"face: expected h×w×3, got shape {face.shape}")
        mask = np.asarray(mask)
        if mask.ndim == 3 and mask.shape[2] == 1:
            mask = mask[..., 0]
        if mask.shape != face.shape[:2]:
            raise ValueError(f"mask: expected {face.shape[:2]} like the face, got {mask.shape}")
        m_tl = check_matrix(matrix, "matrix")
        face_f = as_float32(face)
        mask_f = as_float32(mask)
        if face_index is None:
            face_index = self._faces_in_frame.get(index, 0)
        self._faces_in_frame[index] = max(self._faces_in_frame.get(index, 0), face_index + 1)
        h, w = face_f.shape[:2]
        self._last_size = (w, h)
        return self._emit(index, info, face_index, face_f, mask_f, m_tl)

    def write_empty(self, index: int, info: FrameInfo | None = None) -> Path | None:
        """Handle a frame without faces: a blank patch (``empty="blank"``) or nothing."""
        if self.cfg.empty == "skip":
            return None
        w, h = self._last_size or (self.cfg.blank_size, self.cfg.blank_size)
        zeros = np.zeros((h, w, 3), np.float32)
        return self._emit(index, info, 0, zeros, np.zeros((h, w), np.float32), None)

    def _metadata(self, index: int, info: FrameInfo | None, face_index: int,
                  patch_size: tuple[int, int], m_tl: np.ndarray | None,
                  mask_file: str | None) -> dict[str, Any]:
        fmt = _FILE_FORMAT[self.cfg.format]
        spec = IMAGE_FORMATS[fmt]
        f2c = c2f = None
        if m_tl is not None:
            m = convert_origin(m_tl, (self.width, self.height), patch_size, "top-left",
                               self.cfg.origin)
            f2c = m.tolist()
            c2f = invert_affine(m).tolist()
        if mask_file is not None:
            alpha = "none"
        elif spec.ext == ".exr":
            alpha = "premultiplied"
        else:
            alpha = "straight"
        return {
            "format": PATCH_FORMAT,
            "version": PATCH_VERSION,
            "frame_index": int(index),
            "frame_number": self.frame_number(index, info) + self.cfg.offset,
            "frame_name": None if info is None else info.name,
            "face_index": int(face_index),
            "frame_size": [self.width, self.height],
            "patch_size": [int(patch_size[0]), int(patch_size[1])],
            "origin": self.cfg.origin,
            "y_axis": "down" if self.cfg.origin == "top-left" else "up",
            "pixel_centers": PIXEL_CENTERS,
            "frame_to_crop": f2c,
            "crop_to_frame": c2f,
            "colour_space": self.cfg.input_space if spec.is_float else "srgb",
            "alpha": alpha,
            "mask_file": mask_file,
            "bit_depth": spec.bits,
            "empty": m_tl is None,
        }

    def _emit(self, index: int, info: FrameInfo | None, face_index: int, face: np.ndarray,
              mask: np.ndarray, m_tl: np.ndarray | None) -> Path:
        fmt = _FILE_FORMAT[self.cfg.format]
        spec = IMAGE_FORMATS[fmt]
        target = self.path_for(index, face_index, info)
        h, w = face.shape[:2]
        rgb = face if spec.is_float else to_display(face, self.cfg.input_space)
        mask_path = None
        if self.cfg.mask == "file":
            mask_path = target.with_name(f"{target.stem}_mask{target.suffix}")
        meta = self._metadata(index, info, face_index, (w, h), m_tl,
                              None if mask_path is None else mask_path.name)
        text = json.dumps(meta, indent=1)
        key = EXR_ATTR if spec.ext == ".exr" else PNG_KEY
        facts = {"frame_index": int(index), "frame_number": meta["frame_number"],
                 "face_index": int(face_index), **self._provenance}
        if mask_path is not None:
            encode_file(mask_path, mask[..., None], fmt,
                        png_compression=self.cfg.png_compression, provenance=facts)
            pixels = rgb
        else:
            a = mask[..., None]
            colour = rgb * a if meta["alpha"] == "premultiplied" else rgb
            pixels = np.concatenate([colour, a], axis=2)
        encode_file(target, pixels, fmt, png_compression=self.cfg.png_compression,
                    metadata=(key, text), provenance=facts)
        if self.cfg.sidecar:
            atomic_write_bytes(target.with_suffix(".json"), (text + "\n").encode("utf-8"))
        if mask_path is not None:
            self.written.append(mask_path)
        self.written.append(target)
        self.patches_written += 1
        return target

    def _close(self) -> None:
        pass


# --------------------------------------------------------------------------------------------
# Reading


def _read_pixels(path: Path) -> tuple[np.ndarray, str | None]:
    """(H×W×C float32 pixels, embedded metadata text) of a patch or mask file."""
    ext = path.suffix.lower()
    if ext == ".png":
        img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if img is None:
            raise InputError("cannot decode the patch PNG", path)
        if img.ndim == 2:
            img = img[..., None]
        elif img.shape[2] == 3:
            img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        elif img.shape[2] == 4:
            img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA)
        return as_float32(img), read_png_itxt(path, PNG_KEY)
    config = oiio.ImageSpec()
    config.attribute("oiio:UnassociatedAlpha", 1)
    inp = oiio.ImageInput.open(str(path), config)
    if inp is None:
        raise InputError(f"cannot decode the patch ({oiio.geterror().strip()})", path)
    try:
        spec = inp.spec()
        arr = inp.read_image(0, 0, 0, int(spec.nchannels), oiio.FLOAT)
        key = EXR_ATTR if ext == ".exr" else "ImageDescription"
        text = spec.getattribute(key)
    finally:
        inp.close()
    if arr is None:
        raise InputError("cannot read the patch pixels", path)
    arr = np.asarray(arr, dtype=np.float32)
    if arr.ndim == 2:
        arr = arr[..., None]
    return arr, (str(text) if text else None)


def read_patch(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray | None,
                                          dict[str, Any]]:
    """Read a patch written by :class:`PatchWriter`.

    Args:
        path: The patch file (PNG, EXR or TIFF).

    Returns:
        ``(face, mask, matrix, meta)``: face h×w×3 float32 as stored (straight colour: EXR
        patches are un-premultiplied, 0 where the mask is 0; display sRGB for PNG); mask h×w
        float32 in [0, 1]; matrix the 2×3 float64 frame → crop in the file's own convention
        (``meta["origin"]``; ``None`` for a blank patch); meta the metadata dict (from the file,
        else from the JSON sidecar).

    Raises:
        InputError: the file (or its mask file) is missing or unreadable.
        RecordError: no patch metadata, or metadata of another format/version.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError("patch file not found", p)
    pixels, text = _read_pixels(p)
    if text is None and p.with_suffix(".json").is_file():
        text = p.with_suffix(".json").read_text(encoding="utf-8")
    if text is None:
        raise RecordError("no faceplate patch metadata in the file or a .json sidecar", p)
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as err:
        raise RecordError(f"patch metadata is not valid JSON ({err})", p) from None
    if not isinstance(meta, dict) or meta.get("format") != PATCH_FORMAT:
        raise RecordError("metadata is not a faceplate patch record", p)
    if int(meta.get("version", 0)) > PATCH_VERSION:
        raise RecordError(f"patch version {meta.get('version')} is newer than this reader "
                          f"({PATCH_VERSION})", p)
    if meta.get("mask_file"):
        mask_px, _ = _read_pixels(p.with_name(str(meta["mask_file"])))
        mask = mask_px[..., 0]
        face = pixels[..., :3]
    elif pixels.shape[2] == 4:
        mask = pixels[..., 3]
        face = pixels[..., :3]
        if meta.get("alpha") == "premultiplied":
            face = unpremultiply(pixels)[..., :3]
    else:
        raise RecordError("patch has neither an alpha channel nor a mask file", p)
    matrix = None if meta.get("frame_to_crop") is None else np.asarray(
        meta["frame_to_crop"], dtype=np.float64)
    return (np.ascontiguousarray(face, dtype=np.float32),
            np.ascontiguousarray(mask, dtype=np.float32), matrix, meta)

