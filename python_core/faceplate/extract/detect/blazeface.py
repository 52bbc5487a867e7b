"""BlazeFace full-range (mediapipe): a fast detector with 6 keypoints.

The full-range model sees the whole frame letterboxed to 192×192, so a face needs to be roughly
1/15 of the frame's longer side (~130 px in 1080p) to be found reliably; smaller faces are
left to the chain's recall detector.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from faceplate.core.config import Config, option
from faceplate.core.types import Detection
from faceplate.extract import mediapipe_graphs
from faceplate.extract.detect.base import DETECTORS, Detector
from faceplate.extract.detect.common import BoxMap, clip_box

#: Native BlazeFace box → dlib frontal-HOG box. Derived by ``tools/calibrate_boxes.py``:
#: least-squares fit of the box centre offset and scale against dlib HOG (upsample 1) boxes
#: matched by centre on the sample stills and video frames.
#: 112 box pairs from 12 sources; mean IoU with HOG 0.757 unmapped -> 0.808 mapped
#: (source-weighted).
BOX_MAP = BoxMap(dx=-0.0161, dy=-0.0162, sw=0.8840, sh=0.8836)


@dataclass(frozen=True)
class BlazeFaceConfig(Config):
    """Options of the BlazeFace detector."""

    min_confidence: float = option(0.5, "Minimum BlazeFace score to keep a face.",
                                   minimum=0.0, maximum=1.0)


@DETECTORS.register("blazeface", config=BlazeFaceConfig)
class BlazeFace(Detector):
    """BlazeFace full-range (mediapipe): fast, 6 keypoints, weak on faces under ~1/15 frame.

    Keypoints (K=6, frame pixels): subject's right eye, left eye, nose tip, mouth centre, right
    ear tragion, left ear tragion. Scores are the model's own probabilities in [0, 1].
    The mediapipe graph is created on first use and guarded by a lock (it is not thread-safe).
    """

    box_map = BOX_MAP

    def __init__(self, cfg: BlazeFaceConfig) -> None:
        super().__init__(cfg)
        self.cfg: BlazeFaceConfig = cfg
        self._lock = threading.Lock()
        self._graph: Any = None

    def _get_graph(self) -> Any:
        if self._graph is None:
            self._graph = mediapipe_graphs.face_detection(self.cfg.min_confidence)
        return self._graph

    def raw(self, rgb: np.ndarray) -> list[tuple[float, float, float, float, float, np.ndarray]]:
        """Native (unmapped) boxes: ``(x, y, w, h, score, keypoints 6×2)`` in frame pixels."""
        h, w = rgb.shape[:2]
        with self._lock:
            result = self._get_graph().process(rgb)
        out = []
        for d in result.detections or []:
            rb = d.location_data.relative_bounding_box
            kp = np.array([[k.x * w, k.y * h] for k in d.location_data.relative_keypoints],
                          dtype=np.float32).reshape(-1, 2)
            score = float(np.clip(d.score[0], 0.0, 1.0))
            out.append((rb.xmin * w, rb.ymin * h, rb.width * w, rb.height * h, score, kp))
        return out

    def _detect(self, rgb: np.ndarray) -> list[Detection]:
        h, w = rgb.shape[:2]
        dets = []
        for x, y, bw, bh, score, kp in self.raw(rgb):
            if score < self.cfg.min_confidence or bw <= 1 or bh <= 1:
                continue
            box = clip_box(self.box_map.apply(x, y, bw, bh), w, h)
            if box is not None:
                dets.append(Detection(box, score, self.registry_name, kp))
        return dets

    def close(self) -> None:
        """Release the mediapipe graph (it is re-created on the next call)."""
        with self._lock:
            if self._graph is not None:
                self._graph.close()
                self._graph = None
