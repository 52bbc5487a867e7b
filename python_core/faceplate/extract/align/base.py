"""The aligner contract.

An aligner takes the ``uint8`` RGB frame and detections (boxes in dlib's frontal-face convention)
and returns one :class:`Alignment` per detection: 68 (x, y) points in iBUG order, in frame pixels,
x right, y down, pixel centres at +0.5.

The base class owns everything the aligners share, so each aligner implements one method,
:meth:`Aligner._align_crop`:

* **Crop.** For each detection the base cuts a square crop around the box (``crop_margins`` box
  sizes on each side, zero padding outside the frame). A detection found by a rotation retry
  (``Detection.angle != 0``) is cut rotated by that angle, so the aligner sees the face upright.
  Landmarks come back in crop pixels and are mapped to the frame exactly.
  With no rotation and no normalisation the base hands the aligner a :class:`CropWindow` (the
  part of that crop inside the frame, a view, and where it sits in the crop) through
  :meth:`Aligner._align_window`; an aligner that can read it as the zero-padded crop (dlib68)
  skips building the crop, the others get the crop built once from it.
* **Normalisation** (``normalization`` option): applied to the crop only (``normalize.py``).
* **Re-feed** (``refeed`` option): the aligner runs ``1 + refeed`` times, the extra runs on boxes
  jittered by a seeded generator (scale and shift up to ``refeed_jitter`` of the box size), and
  the landmarks are averaged. Deterministic: the same frame and boxes give the same output.
* **Failure.** When the aligner finds no face in a crop it returns ``None``; the detection then
  gets the mean face placed in its box with confidence 0 (still 68 finite points, so the
  one-alignment-per-detection contract holds).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from faceplate.core.config import Config, option
from faceplate.core.geometry import MEAN_FACE_68, invert_affine, to_cv2, transform_points
from faceplate.core.registry import Registry
from faceplate.core.types import BBox, Detection
from faceplate.core.validate import check_image
from faceplate.extract.align.normalize import NORMALIZATIONS, Normalization, normalize_crop

#: Seed of the re-feed jitter generator (re-created per call, so results are deterministic).
REFEED_SEED = 20240611

#: Where the mean-face template sits in a dlib frontal-face box, used for the failure fallback:
#: (template x offset, template y offset, template unit) in box sizes, so that a template point
#: ``t`` lands at ``box.center + (t - (ox, oy)) * unit * box.size``. Median over the dlib HOG
#: boxes and 68-point shapes of the sample media (tools/derive_mesh68.py prints it).
BOX_TEMPLATE = (0.4979, 0.5135, 0.7809)


@dataclass(frozen=True, eq=False)
class Alignment:
    """Landmarks for one detection.

    Attributes:
        landmarks: 68×2 float32 frame pixels, iBUG order.
        confidence: Aligner confidence in [0, 1] (1.0 when the aligner gives none; 0.0 when the
            aligner found no face and the landmarks are the mean face placed in the box).
        mesh: Optional N×3 float32 dense mesh (x, y in frame pixels, z relative depth in the
            same pixel scale), e.g. mediapipe's 468 points.
    """

    landmarks: np.ndarray
    confidence: float = 1.0
    mesh: np.ndarray | None = field(default=None)


@dataclass(frozen=True)
class AlignerConfig(Config):
    """Options every aligner has (its own config class extends this one)."""

    normalization: Normalization = option(
        "none", "Contrast normalisation of the aligner's input crop (not of the output).",
        choices=NORMALIZATIONS)
    refeed: int = option(
        0, "Extra aligner passes on jittered boxes, landmarks averaged (removes micro-jitter).",
        minimum=0, maximum=10)
    refeed_jitter: float = option(
        0.05, "Largest re-feed box jitter (shift and scale), as a fraction of the box size.",
        minimum=0.0, maximum=0.2)


def mean_face_in_box(box: BBox) -> np.ndarray:
    """The mean-face template placed in a dlib-convention box: 68×2 float32 frame pixels."""
    ox, oy, unit = BOX_TEMPLATE
    cx, cy = box.center
    k = unit * box.size
    pts = (MEAN_FACE_68 - np.array([ox, oy])) * k + np.array([cx, cy])
    return pts.astype(np.float32)


def jittered_boxes(box: BBox, n: int, jitter: float, rng: np.random.Generator) -> list[BBox]:
    """``n`` copies of ``box`` with centre shifted and size scaled by up to ``jitter`` box sizes.

    The box keeps its aspect ratio; draws come from ``rng`` (uniform in [-jitter, jitter]).
    """
    out = []
    cx, cy = box.center
    for dx, dy, ds in rng.uniform(-jitter, jitter, size=(n, 3)):
        w, h = box.w * (1.0 + ds), box.h * (1.0 + ds)
        ncx, ncy = cx + dx * box.size, cy + dy * box.size
        out.append(BBox(ncx - w / 2.0, ncy - h / 2.0, w, h))
    return out


@dataclass(frozen=True, eq=False)
class CropWindow:
    """A square crop of the frame, zero outside the frame, kept as the part inside it.

    Attributes:
        pixels: h×w×3 ``uint8`` read-only view of the frame: the crop's pixels that lie in
            the frame (h, w >= 0; empty when the crop misses the frame).
        x: Column of ``pixels[0, 0]`` in the crop (integer, 0 <= x <= side).
        y: Row of ``pixels[0, 0]`` in the crop.
        side: The crop's side in pixels; every crop pixel outside ``pixels`` is 0.
    """

    pixels: np.ndarray
    x: int
    y: int
    side: int

    def materialize(self) -> np.ndarray:
        """The side×side×3 ``uint8`` zero-padded crop (a new contiguous array)."""
        crop = np.zeros((self.side, self.side, 3), np.uint8)
        h, w = self.pixels.shape[:2]
        crop[self.y:self.y + h, self.x:self.x + w] = self.pixels
        return crop


def crop_window(rgb: np.ndarray, box: BBox, margin: float
                ) -> tuple[CropWindow, np.ndarray, BBox]:
    """:func:`crop_around` with ``angle == 0``, without cutting the crop.

    Returns:
        ``(window, matrix, crop_box)``: the crop as a :class:`CropWindow` (its
        :meth:`CropWindow.materialize` is :func:`crop_around`'s crop, to the byte), the 2×3
        float64 frame → crop matrix (an integer translation, pixel centres at +0.5) and the
        box in crop pixels, both as :func:`crop_around` gives them.
    """
    h, w = rgb.shape[:2]
    cx, cy = box.center
    side = _crop_side(box, margin)
    x0, y0 = int(np.floor(cx - side / 2.0)), int(np.floor(cy - side / 2.0))
    sx0, sy0 = min(max(x0, 0), w), min(max(y0, 0), h)
    sx1, sy1 = max(min(x0 + side, w), sx0), max(min(y0 + side, h), sy0)
    view = rgb[sy0:sy1, sx0:sx1].view()
    view.flags.writeable = False
    m = np.array([[1.0, 0.0, -x0], [0.0, 1.0, -y0]])
    crop_box = _box_in_crop(box, m)
    if sx1 == sx0 or sy1 == sy0:
        return CropWindow(view[:0, :0], 0, 0, side), m, crop_box
    return CropWindow(view, sx0 - x0, sy0 - y0, side), m, crop_box


def _crop_side(box: BBox, margin: float) -> int:
    """The side in pixels of the square crop around ``box`` with ``margin`` (at least 8)."""
    return max(int(np.ceil(2.0 * box.size * (0.5 + margin))), 8)


def _box_in_crop(box: BBox, m: np.ndarray) -> BBox:
    cx, cy = box.center
    ncx, ncy = transform_points(np.array([[cx, cy]]), m)[0]
    return BBox(float(ncx - box.w / 2.0), float(ncy - box.h / 2.0), box.w, box.h)


def crop_around(rgb: np.ndarray, box: BBox, margin: float,
                angle: float = 0.0) -> tuple[np.ndarray, np.ndarray, BBox]:
    """Cut a square crop around ``box`` (zero padding outside the frame).

    Args:
        rgb: H×W×3 uint8 frame.
        box: Box in frame pixels (pixel centres at +0.5).
        margin: Crop half-side beyond the box, in box sizes (side = box.size × (1 + 2·margin)).
        angle: Counter-clockwise rotation (degrees) that makes the face upright.

    Returns:
        ``(crop, matrix, crop_box)``: the H'×W'×3 uint8 crop, the 2×3 float64 frame → crop
        matrix (pixel centres at +0.5 on both sides) and the box in crop pixels. With
        ``angle == 0`` the matrix is an integer translation and the crop holds the frame's own
        pixels: a read-only view of the frame when the square lies inside it (no copy;
        :func:`normalize_crop` makes the contiguous copy the aligners read), else a zero-padded
        copy.
    """
    if angle == 0.0:
        window, m, crop_box = crop_window(rgb, box, margin)
        inside = window.pixels.shape[:2] == (window.side, window.side)
        return (window.pixels if inside else window.materialize()), m, crop_box
    cx, cy = box.center
    side = _crop_side(box, margin)
    # Rotate counter-clockwise (as seen on screen, y down) about the box centre, then put the
    # box centre at the crop centre.
    a = np.radians(angle)
    c, s = np.cos(a), np.sin(a)
    rot = np.array([[c, s], [-s, c]])
    centre = np.array([cx, cy])
    t = np.array([side / 2.0, side / 2.0]) - rot @ centre
    m = np.hstack([rot, t[:, None]])
    crop = cv2.warpAffine(rgb, to_cv2(m), (side, side), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
    return crop, m, _box_in_crop(box, m)


class Aligner(ABC):
    """Base class: subclasses implement :meth:`_align_crop`; the base does the rest.

    Class attributes a subclass may override:
        crop_margins: Crop half-sides beyond the box, in box sizes, tried in order until the
            aligner finds the face (a face detector inside the aligner may miss a face at one
            framing and find it at another).
    """

    registry_name: str = ""
    crop_margins: tuple[float, ...] = (0.5,)

    def __init__(self, cfg: Any) -> None:
        self.cfg = cfg

    def align(self, rgb: np.ndarray, detections: list[Detection]) -> list[Alignment]:
        """One alignment per detection, same order.

        Args:
            rgb: H×W×3 ``uint8`` RGB frame (display-referred sRGB). Not modified.
            detections: Boxes in frame pixels, dlib frontal-face convention.

        Returns:
            One :class:`Alignment` per detection: landmarks 68×2 float32 (x, y) frame pixels,
            pixel centres at +0.5, iBUG order; mesh (if any) N×3 float32 in frame pixels.
        """
        check_image(rgb, "frame")
        refeed = int(getattr(self.cfg, "refeed", 0))
        jitter = float(getattr(self.cfg, "refeed_jitter", 0.0))
        method = str(getattr(self.cfg, "normalization", "none"))
        out = []
        for det in detections:
            boxes = [det.bbox]
            if refeed > 0:
                rng = np.random.default_rng(REFEED_SEED)
                boxes += jittered_boxes(det.bbox, refeed, jitter, rng)
            found = [self._run(rgb, b, det.angle, method) for b in boxes]
            runs = [r for r in found if r is not None]
            out.append(_average(runs) if runs else
                       Alignment(mean_face_in_box(det.bbox), 0.0, None))
        return out

    def _run(self, rgb: np.ndarray, box: BBox, angle: float, method: str) -> Alignment | None:
        for margin in self.crop_margins:
            if angle == 0.0 and method == "none":
                window, m, crop_box = crop_window(rgb, box, margin)
                found = self._align_window(window, crop_box)
            else:
                crop, m, crop_box = crop_around(rgb, box, margin, angle)
                found = self._align_crop(normalize_crop(crop, method), crop_box)
            if found is not None:
                break
        else:
            return None
        inv = invert_affine(m)
        lm = transform_points(found.landmarks, inv).astype(np.float32)
        mesh = None
        if found.mesh is not None:
            mesh = np.empty_like(found.mesh, dtype=np.float32)
            mesh[:, :2] = transform_points(found.mesh[:, :2], inv)
            mesh[:, 2] = found.mesh[:, 2]  # the crop matrix is rigid: depth keeps its scale
        return Alignment(lm, float(found.confidence), mesh)

    def _align_window(self, window: CropWindow, box: BBox) -> Alignment | None:
        """:meth:`_align_crop` on an upright, unnormalised crop given as a :class:`CropWindow`
        (same arguments and result). The default builds the crop; an aligner that reads the
        window as the zero-padded crop overrides it to skip that copy."""
        return self._align_crop(window.materialize(), box)

    @abstractmethod
    def _align_crop(self, crop: np.ndarray, box: BBox) -> Alignment | None:
        """Subclass hook: align the face in ``box`` of one crop.

        Args:
            crop: Contiguous S×S×3 ``uint8`` RGB crop (already normalised), face upright.
            box: The detection box in crop pixels (pixel centres at +0.5).

        Returns:
            An :class:`Alignment` in crop pixels (landmarks 68×2, mesh N×3 with z in the same
            pixel scale), or ``None`` when no face was found.
        """


def _average(runs: list[Alignment]) -> Alignment:
    if len(runs) == 1:
        return runs[0]
    lm = np.mean([r.landmarks for r in runs], axis=0).astype(np.float32)
    conf = float(np.mean([r.confidence for r in runs]))
    meshes = [r.mesh for r in runs if r.mesh is not None]
    mesh = np.mean(meshes, axis=0).astype(np.float32) if len(meshes) == len(runs) else None
    return Alignment(lm, conf, mesh)


ALIGNERS: Registry[Aligner] = Registry("aligner")
