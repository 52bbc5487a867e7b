"""BlazeFace full-range (mediapipe): a fast detector with 6 keypoints.

The full-range model sees the whole frame letterboxed to 192×192, so a face needs to be roughly
1/15 of the frame's longer side (~130 px in 1080p) to be found reliably; smaller faces are
left to the chain's recall detector.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from faceplate.core.config import Config, option
from faceplate.core.types import BBox, Detection
from faceplate.extract import mediapipe_graphs
from faceplate.extract.detect.base import DETECTORS, DetectionResult, Detector
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


@dataclass(frozen=True)
class BlazeFaceTilesConfig(Config):
    """Options of BlazeFace run on overlapping tiles."""

    min_confidence: float = option(0.5, "Minimum BlazeFace score to keep a face.",
                                   minimum=0.0, maximum=1.0)
    tile: float = option(0.5, "Tile side as a fraction of the frame's short side.",
                         minimum=0.2, maximum=1.0)
    overlap: float = option(0.25, "Overlap of neighbouring tiles, as a fraction of the tile.",
                            minimum=0.0, maximum=0.5)
    nms_iou: float = option(0.3, "Boxes overlapping a better one (from another tile) by more "
                                 "than this IoU are dropped.", minimum=0.0, maximum=1.0)


@DETECTORS.register("blazeface_tiles", config=BlazeFaceTilesConfig)
class BlazeFaceTiles(Detector):
    """BlazeFace full-range on overlapping square tiles: finds the small faces it misses whole.

    Every tile (side ``tile`` × the short side, ``overlap`` shared with its neighbours) is
    detected alone, so a face needs to be about 1/15 of the *tile* rather than of the frame;
    boxes and keypoints are mapped back to the frame and merged by non-maximum suppression.
    Frames whose short side is under two BlazeFace inputs (384 px) are detected whole. Costs
    one BlazeFace pass per tile (8 on a 16:9 frame at the defaults). Permissively licensed
    (Apache 2.0, Google's data): a recall detector the commercial profile may use
    (``--chain-recall blazeface_tiles``; more small faces found, more false faces too: see the
    README's model profile figures).
    """

    box_map = BOX_MAP

    def __init__(self, cfg: BlazeFaceTilesConfig) -> None:
        super().__init__(cfg)
        self.cfg: BlazeFaceTilesConfig = cfg
        self._one = BlazeFace(BlazeFaceConfig(min_confidence=cfg.min_confidence))

    def tiles(self, width: int, height: int) -> list[tuple[int, int, int]]:
        """``(x0, y0, side)`` of every tile of a width×height frame, covering it."""
        short = min(width, height)
        if short < 384:
            return [(0, 0, max(width, height))]
        side = max(192, int(round(self.cfg.tile * short)))
        step = max(1, int(round(side * (1.0 - self.cfg.overlap))))

        def starts(n: int) -> list[int]:
            if n <= side:
                return [0]
            out = list(range(0, n - side, step))
            return [*out, n - side]

        return [(x, y, side) for y in starts(height) for x in starts(width)]

    def _detect(self, rgb: np.ndarray) -> list[Detection]:
        from faceplate.extract.detect.common import nms

        h, w = rgb.shape[:2]
        found: list[tuple[float, float, float, float, float, np.ndarray]] = []
        for x0, y0, side in self.tiles(w, h):
            tile = np.ascontiguousarray(rgb[y0:y0 + side, x0:x0 + side])
            for x, y, bw, bh, score, kp in self._one.raw(tile):
                if score < self.cfg.min_confidence or bw <= 1 or bh <= 1:
                    continue
                shift = np.array([x0, y0], np.float32)
                found.append((x + x0, y + y0, bw, bh, score, kp + shift))
        if not found:
            return []
        corners = np.array([[x, y, x + bw, y + bh] for x, y, bw, bh, _, _ in found])
        keep = nms(corners, np.array([f[4] for f in found]), self.cfg.nms_iou)
        dets = []
        for i in keep:
            x, y, bw, bh, score, kp = found[int(i)]
            box = clip_box(self.box_map.apply(x, y, bw, bh), w, h)
            if box is not None:
                dets.append(Detection(box, score, self.registry_name, kp))
        return dets

    def search(self, rgb: np.ndarray, region: BBox) -> DetectionResult:
        """The track search: the crop about ``region`` is already scaled to the face, so it is
        detected whole, by one BlazeFace pass."""
        res = self._one.search(rgb, region)
        return DetectionResult([replace(d, detector=self.registry_name) for d in res.faces],
                               res.rejected)

    def close(self) -> None:
        """Release the mediapipe graph (it is re-created on the next call)."""
        self._one.close()
