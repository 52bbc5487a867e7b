"""The detector contract.

A detector takes one display-referred ``uint8`` RGB frame (H×W×3, top-left origin) and returns
:class:`~faceplate.core.types.Detection` objects whose boxes are in frame pixels (x right, y down,
pixel centres at +0.5) **and already mapped to the aligner box convention**: the box dlib's
frontal-face detector would draw (brows to chin, roughly ear to ear, square). Each detector draws
its box differently, so each one owns a calibrated mapping from its native box to that convention.

:meth:`Detector.detect_all` also returns the candidates a detector found and then dropped, each
with its reason (:class:`~faceplate.core.types.Rejection`; only the chain drops any), and
:meth:`Detector.search` looks for a face in one region of a frame, at a scale where the detector
works well: what a face track uses when a face it follows was not found in a frame
(``faceplate.extract.track``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from faceplate.core import geometry
from faceplate.core.registry import Registry
from faceplate.core.types import BBox, Detection, Rejection

#: :meth:`Detector.search` cuts a square of this many region sizes about the region's centre...
SEARCH_CONTEXT = 3.0
#: ...and resamples it so the region is this many pixels (the detectors' comfortable size).
SEARCH_FACE = 128.0


@dataclass(frozen=True)
class DetectionResult:
    """What one detector run found.

    Attributes:
        faces: Accepted detections, best score first.
        rejected: Candidates found and dropped, with their reasons.
    """

    faces: list[Detection]
    rejected: list[Rejection] = field(default_factory=list)


def _map_detection(det: Detection, back: np.ndarray, k: float, name: str) -> Detection:
    """A detection in a search crop → frame pixels (``back``: crop → frame, scale ``1/k``)."""
    cx, cy = geometry.transform_points(np.array([det.bbox.center]), back)[0]
    w, h = det.bbox.w / k, det.bbox.h / k
    kp = None
    if det.keypoints is not None:
        kp = geometry.transform_points(det.keypoints, back).astype(np.float32)
    return Detection(BBox(float(cx - w / 2), float(cy - h / 2), w, h), det.score, name, kp,
                     det.angle)


class Detector(ABC):
    """Base class: subclasses implement :meth:`_detect` (or :meth:`_detect_all` when they
    drop candidates); the base validates input and output."""

    registry_name: str = ""

    def __init__(self, cfg: Any) -> None:
        self.cfg = cfg

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        """Detect faces in an H×W×3 ``uint8`` RGB frame; boxes in the aligner convention."""
        return self.detect_all(rgb).faces

    def detect_all(self, rgb: np.ndarray) -> DetectionResult:
        """:meth:`detect` plus the candidates dropped on the way (with reasons)."""
        from faceplate.core.validate import check_image

        check_image(rgb, "frame")
        res = self._detect_all(np.ascontiguousarray(rgb))
        return DetectionResult(sorted(res.faces, key=lambda d: -d.score), list(res.rejected))

    def search(self, rgb: np.ndarray, region: BBox) -> DetectionResult:
        """Look for one face about ``region`` (a predicted face box in frame pixels).

        A square of ``SEARCH_CONTEXT`` region sizes about the region's centre is cut from the
        frame (edges replicated) and resampled so the region is ``SEARCH_FACE`` px, the detector
        runs on that crop with its usual standard (the chain verifies every candidate as on a
        whole frame), and what it finds is mapped back to the frame. Only faces on the region
        (centre within half its size, size within a factor 1.6) are returned.
        """
        from faceplate.core.validate import check_image

        check_image(rgb, "frame")
        if region.size <= 1.0:
            return DetectionResult([])
        side = int(round(SEARCH_CONTEXT * SEARCH_FACE))
        k = SEARCH_FACE / region.size
        cx, cy = region.center
        m = np.array([[k, 0.0, side / 2 - k * cx], [0.0, k, side / 2 - k * cy]])
        res = self._detect_all(np.ascontiguousarray(search_crop(rgb, m, side)))
        back = geometry.invert_affine(m)
        faces, rejected = [], []
        for d in res.faces:
            fd = _map_detection(d, back, k, self.registry_name)
            dist = float(np.hypot(*(np.subtract(fd.bbox.center, region.center))))
            ratio = fd.bbox.size / region.size
            if dist <= 0.5 * region.size and 1 / 1.6 <= ratio <= 1.6:
                faces.append(fd)
        for r in res.rejected:
            cxr, cyr = geometry.transform_points(np.array([r.bbox.center]), back)[0]
            w, h = r.bbox.w / k, r.bbox.h / k
            rejected.append(Rejection(BBox(float(cxr - w / 2), float(cyr - h / 2), w, h),
                                      r.score, r.detector, r.stage, r.reason))
        return DetectionResult(sorted(faces, key=lambda d: -d.score), rejected)

    def _detect_all(self, rgb: np.ndarray) -> DetectionResult:
        """Subclass hook for detectors that drop candidates; the default wraps :meth:`_detect`."""
        return DetectionResult(self._detect(rgb))

    @abstractmethod
    def _detect(self, rgb: np.ndarray) -> list[Detection]:
        """Subclass hook: contiguous H×W×3 uint8 RGB in, detections out."""


def search_crop(rgb: np.ndarray, m: np.ndarray, side: int) -> np.ndarray:
    """The ``side``² crop of the scale-and-shift ``m`` (frame → crop pixels, centres at +0.5),
    edges replicated. Shrinking by a factor of two or more first averages whole blocks of
    pixels (exact, so ``m`` still maps the frame onto the crop), then resamples bilinearly."""
    k = float(m[0, 0])
    f = int(np.floor(1.0 / k)) if k < 1.0 else 1
    if f < 2:
        return cv2.warpAffine(rgb, geometry.to_cv2(m), (side, side), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)
    # The frame patch the crop covers (a block of f×f pixels more on each side), edges
    # replicated, starting at a whole pixel.
    x0 = int(np.floor(-m[0, 2] / k)) - f
    y0 = int(np.floor(-m[1, 2] / k)) - f
    n = int(np.ceil(side / k)) + 2 * f
    n -= n % f
    h, w = rgb.shape[:2]
    xs = np.clip(np.arange(x0, x0 + n), 0, w - 1)
    ys = np.clip(np.arange(y0, y0 + n), 0, h - 1)
    patch = rgb[ys[:, None], xs[None, :]]
    small = cv2.resize(patch, (n // f, n // f), interpolation=cv2.INTER_AREA)
    # small pixel (x, y) is frame (f x + x0, f y + y0), so the crop is m ∘ that.
    m2 = np.array([[k * f, 0.0, k * x0 + m[0, 2]], [0.0, k * f, k * y0 + m[1, 2]]])
    return cv2.warpAffine(small, geometry.to_cv2(m2), (side, side), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)


DETECTORS: Registry[Detector] = Registry("detector")
