"""dlib's frontal-face HOG + linear SVM detector: the reference box convention of the aligner."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from faceplate.core.config import Config, option
from faceplate.core.types import BBox, Detection
from faceplate.extract import dlib_models
from faceplate.extract.detect.base import DETECTORS, Detector
from faceplate.extract.detect.common import clip_box, fit_max_side, scale_detection


def svm_score_to_unit(score: float) -> float:
    """Map a dlib SVM margin to [0, 1]: the logistic ``1 / (1 + exp(-2 s))``.

    The margin 0 (dlib's default decision threshold) maps to 0.5; a margin of 1 (a clear frontal
    face) maps to 0.88 and 2 to 0.98. Negative margins, reachable with ``adjust_threshold < 0``,
    map below 0.5.
    """
    return float(1.0 / (1.0 + np.exp(-2.0 * score)))


@dataclass(frozen=True)
class DlibHogConfig(Config):
    """Options of the dlib HOG detector."""

    upsample: int = option(1, "Times to double the image before detecting (finds faces down to "
                              "~80 px / 2^upsample); each step costs ~4× the time.",
                           minimum=0, maximum=3)
    adjust_threshold: float = option(0.0, "Added to the SVM decision threshold: negative finds "
                                          "more (and more false) faces.",
                                     minimum=-1.0, maximum=2.0)
    max_side: int = option(0, "Downscale frames whose longer side exceeds this many pixels "
                              "before detecting (0 = never); boxes are mapped back.",
                           minimum=0, maximum=16384)


@DETECTORS.register("dlib_hog", config=DlibHogConfig)
class DlibHog(Detector):
    """dlib frontal-face HOG detector (5 HOG filters: frontal, left/right turned, tilted).

    Its boxes define the aligner convention, so no box mapping is applied. Scores are the SVM
    margin mapped by :func:`svm_score_to_unit`; no keypoints.
    """

    def __init__(self, cfg: DlibHogConfig) -> None:
        super().__init__(cfg)
        self.cfg: DlibHogConfig = cfg
        self._lock = threading.Lock()
        self._detector: Any = None

    def _get(self) -> Any:
        if self._detector is None:
            self._detector = dlib_models.hog_detector()
        return self._detector

    def _detect(self, rgb: np.ndarray) -> list[Detection]:
        small, k = fit_max_side(rgb, self.cfg.max_side)
        with self._lock:
            rects, scores, _ = self._get().run(small, self.cfg.upsample, self.cfg.adjust_threshold)
        h, w = rgb.shape[:2]
        out = []
        for r, s in zip(rects, scores):
            # dlib rectangles are inclusive integer pixel bounds: [left, right] covers
            # right - left + 1 pixels starting at the edge x = left.
            box = BBox(float(r.left()), float(r.top()), float(r.width()), float(r.height()))
            det = scale_detection(Detection(box, svm_score_to_unit(s), self.registry_name), k)
            clipped = clip_box(det.bbox, w, h)
            if clipped is not None:
                out.append(det)
        return out
