"""The default detector: a fast detector, a recall detector for missed faces, and verification.

Steps for one frame (all boxes in dlib's frontal-HOG convention, see ``base.py``):

1. The **fast** detector (BlazeFace) proposes candidates.
2. Every candidate is **verified** (:meth:`Chain.verify`): a 192×192 crop is cut with the face
   scaled to 100 px and, when the detector gives eye keypoints, turned so the eyes are level.
   dlib's HOG face detector must find a face in the crop overlapping the candidate (a second,
   independent detector agreeing, at a scale and angle where it works best), and dlib's 68-point
   predictor fitted there must give a face-like shape (distance from the mean face, eyes above
   nose above mouth, a plausible size for the box). Drawings, animals and texture that fool one
   detector do not pass both checks.
3. If no candidate survives, or every survivor is **small** (below ``small_face`` % of the short
   side), the **recall** detector (CenterFace) runs on the frame too. Its candidates that
   duplicate a verified face are dropped; those that match a fast candidate (IoU of the mapped
   boxes ≥ ``agree_iou``) are verified by that agreement plus the landmark check; the rest go
   through the crop check.
4. If nothing is found, each angle of ``rotations`` is tried in turn: the frame is rotated, steps
   1–3 run on it, and the first angle that finds faces wins.

The common case (one clear face) therefore costs one BlazeFace pass plus one crop check
(~7 ms per 1080p frame on two cores).

Rotated detections: ``Detection.angle`` is the counter-clockwise rotation applied to the frame.
The box's centre is the face centre in the *unrotated* frame and its ``w``×``h`` is the face's
size measured upright (in the rotated frame). An aligner rotates the frame (or a crop) by
``angle`` about the box centre, uses a ``w``×``h`` box about that centre, and maps its landmarks
back with the inverse rotation. Keypoints are mapped back into the unrotated frame.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from faceplate.core import geometry
from faceplate.core.config import Config, option
from faceplate.core.types import BBox, Detection
from faceplate.extract import dlib_models
from faceplate.extract.detect.base import DETECTORS, Detector
from faceplate.extract.detect.common import nms, rotate_frame

#: Detectors a chain may use (the chain itself excluded).
CHAIN_MEMBERS = ("blazeface", "centerface", "dlib_hog", "dlib_cnn")

#: Keypoint indices of the mouth for detectors whose keypoints 0 and 1 are the subject's right
#: and left eye (BlazeFace: mouth centre; CenterFace: the two mouth corners).
_MOUTH_KEYPOINTS: dict[str, tuple[int, ...]] = {"blazeface": (3,), "centerface": (3, 4)}

CROP = 192  #: side of the verification crop in pixels
CROP_FACE = 100.0  #: size of the candidate box inside the crop


@dataclass(frozen=True)
class ChainConfig(Config):
    """Options of the detector chain."""

    fast: str = option("blazeface", "Detector run first on every frame.", choices=CHAIN_MEMBERS)
    recall: str = option("centerface", "Detector run when the fast one finds nothing or only "
                                       "small faces ('none' = never).",
                         choices=(*CHAIN_MEMBERS, "none"))
    min_confidence: float = option(0.5, "Minimum detector score of a candidate.",
                                   minimum=0.0, maximum=1.0)
    small_face: float = option(15.0, "Face size, in % of the frame's short side, below which the "
                                     "recall detector also runs (box size = sqrt(w*h)).",
                               minimum=0.0, maximum=100.0)
    min_size: float = option(0.0, "Drop faces smaller than this, in % of the frame's short side "
                                  "(box size = sqrt(w*h); 0 = off).", minimum=0.0, maximum=200.0)
    max_size: float = option(0.0, "Drop faces larger than this, in % of the frame's short side "
                                  "(0 = off).", minimum=0.0, maximum=200.0)
    rotations: tuple[float, ...] = option((), "Counter-clockwise frame rotations in degrees "
                                              "tried in turn when nothing is found, e.g. 90 -90 "
                                              "180.", minimum=-360.0, maximum=360.0)
    verify: bool = option(True, "Verify every candidate (HOG agreement + 68-point fit); off "
                                "keeps every candidate above min_confidence.")
    hog_threshold: float = option(-0.5, "dlib HOG threshold adjustment used in the verification "
                                        "crop (lower accepts harder faces).",
                                  minimum=-2.0, maximum=2.0)
    agree_iou: float = option(0.5, "IoU of mapped boxes at which two detectors agree.",
                              minimum=0.0, maximum=1.0)
    max_landmark_distance: float = option(0.09, "Largest mean distance of the fitted 68 points "
                                                "from the mean face (face widths).",
                                          minimum=0.0, maximum=1.0)


@dataclass(frozen=True)
class Verdict:
    """Outcome of verifying one candidate (see :meth:`Chain.verify`).

    Attributes:
        hog: HOG agreed (a HOG face in the crop overlaps the candidate).
        hog_score: The best overlapping HOG SVM margin (``-inf`` when none).
        landmarks_ok: The 68-point fit is face-like.
        distance: Fitted shape's distance from the mean face (template units).
        landmarks: 68×2 float64 fitted points in frame pixels.
        roll: Counter-clockwise rotation (degrees, ``rotate_frame`` sense) that levels the eyes.
        box: The face box measured upright (HOG's box in the crop when HOG agreed, else the
            candidate's), with its centre in frame pixels and its size in upright pixels.
    """

    hog: bool
    hog_score: float
    landmarks_ok: bool
    distance: float
    landmarks: np.ndarray
    roll: float
    box: BBox


def _norm_angle(angle: float) -> float:
    """``angle`` in degrees wrapped to (-180, 180]."""
    a = float(angle) % 360.0
    return a - 360.0 if a > 180.0 else a


def _size_pct(box: BBox, short_side: int) -> float:
    return 100.0 * box.size / short_side


def _corners(dets: list[Detection]) -> np.ndarray:
    return np.array([[d.bbox.x, d.bbox.y, d.bbox.x + d.bbox.w, d.bbox.y + d.bbox.h]
                     for d in dets], dtype=np.float64).reshape(-1, 4)


@DETECTORS.register("chain", config=ChainConfig)
class Chain(Detector):
    """Default: BlazeFace, CenterFace for small/missed faces, every candidate verified."""

    def __init__(self, cfg: ChainConfig) -> None:
        super().__init__(cfg)
        self.cfg: ChainConfig = cfg
        self._fast = self._member(cfg.fast)
        self._recall = None if cfg.recall in ("none", cfg.fast) else self._member(cfg.recall)
        self._lock = threading.Lock()
        self._hog: Any = None
        self._predictor: Any = None

    def _member(self, name: str) -> Detector:
        cls = DETECTORS.config_class(name)
        fields = getattr(cls, "__dataclass_fields__", {})
        cfg = cls(min_confidence=self.cfg.min_confidence) if "min_confidence" in fields else cls()
        return DETECTORS.create(name, cfg)

    def _dlib(self) -> tuple[Any, Any]:
        if self._predictor is None:
            self._hog = dlib_models.hog_detector()
            self._predictor = dlib_models.shape_predictor_68()
        return self._hog, self._predictor

    # -- verification -------------------------------------------------------------------------

    def _hog_in_crop(self, rgb: np.ndarray, box: BBox, theta: float
                     ) -> tuple[np.ndarray, np.ndarray, BBox, BBox | None, float]:
        """Cut the verification crop turned by ``theta`` radians and run HOG in it.

        Returns:
            The crop, the 2×3 frame → crop matrix, the candidate box in the crop, the best HOG
            box overlapping it (IoU ≥ 0.3; ``None`` when none) and that box's SVM margin.
        """
        hog, _ = self._dlib()
        k = CROP_FACE / max(box.size, 1e-6)
        c, s = np.cos(theta) * k, np.sin(theta) * k
        cx, cy = box.center
        # Frame → crop: rotate counter-clockwise by theta about the box centre, scale by k and
        # centre in the crop (the same rotation sense as ``rotate_frame``).
        m = np.array([[c, s, CROP / 2 - (c * cx + s * cy)],
                      [-s, c, CROP / 2 - (-s * cx + c * cy)]])
        crop = cv2.warpAffine(rgb, geometry.to_cv2(m), (CROP, CROP), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)
        cw, ch = box.w * k, box.h * k
        cand = BBox(CROP / 2 - cw / 2, CROP / 2 - ch / 2, cw, ch)
        with self._lock:
            rects, scores, _ = hog.run(crop, 0, self.cfg.hog_threshold)
        best, best_score = None, -np.inf
        for r, sc in zip(rects, scores):
            hb = BBox(float(r.left()), float(r.top()), float(r.width()), float(r.height()))
            if hb.iou(cand) >= 0.3 and sc > best_score:
                best, best_score = hb, float(sc)
        return crop, m, cand, best, best_score

    def verify(self, rgb: np.ndarray, det: Detection) -> Verdict:
        """Check one candidate in an H×W×3 uint8 RGB frame.

        The crop (``CROP``² px) maps the candidate box to a centred ``CROP_FACE`` px box, turned
        so the eye keypoints (indices 0 and 1 for BlazeFace and CenterFace) are level with the
        mouth keypoint below them. In it, dlib HOG (upsample 0, threshold ``hog_threshold``) must
        find a box with IoU ≥ 0.3 with the candidate. When HOG's margin is weak (< 1) the crop
        turned by 180° is scored as well and wins if HOG prefers it: keypoints read off an
        upside-down face can look upright. The 68-point predictor runs in the HOG box (else in
        the candidate box) and the shape must be within ``max_landmark_distance`` of the mean
        face, with the eyes above the nose tip above the mouth, and an inner-face width of
        0.5–1.5× the box width.
        """
        _, predictor = self._dlib()
        import dlib

        box = det.bbox
        theta = 0.0
        kp = det.keypoints
        mouth_idx = _MOUTH_KEYPOINTS.get(det.detector)
        if kp is not None and mouth_idx is not None and len(kp) > max(mouth_idx):
            ex, ey = kp[1] - kp[0]
            if np.hypot(ex, ey) > 0.1 * box.size:
                theta = float(np.arctan2(ey, ex))
                # The mouth must lie below the eye line (y down): when it lies above, the eye
                # labels are swapped (an upside-down face read as upright): turn by 180°.
                mx, my = kp[list(mouth_idx)].mean(axis=0) - (kp[0] + kp[1]) / 2
                if ex * my - ey * mx < 0:
                    theta += np.pi
        crop, m, cand, best, best_score = self._hog_in_crop(rgb, box, theta)
        if best_score < 1.0:
            flipped = self._hog_in_crop(rgb, box, theta + np.pi)
            if flipped[4] > best_score:
                theta += np.pi
                crop, m, cand, best, best_score = flipped
        fit_box = best if best is not None else cand
        rect = dlib.rectangle(int(round(fit_box.x)), int(round(fit_box.y)),
                              int(round(fit_box.x + fit_box.w)), int(round(fit_box.y + fit_box.h)))
        with self._lock:
            shape = predictor(crop, rect)
        pts = np.array([[p.x + 0.5, p.y + 0.5] for p in shape.parts()], dtype=np.float64)
        dist = geometry.distance_from_mean(pts)
        eyes_y = pts[36:48, 1].mean()
        nose_y = pts[30, 1]
        mouth_y = pts[48:68, 1].mean()
        inner_w = np.ptp(pts[17:68, 0])
        ok = (dist <= self.cfg.max_landmark_distance and eyes_y < nose_y < mouth_y
              and 0.5 * fit_box.w <= inner_w <= 1.5 * fit_box.w)
        k = CROP_FACE / max(box.size, 1e-6)
        to_frame = geometry.invert_affine(m)
        frame_pts = geometry.transform_points(pts, to_frame)
        fcx, fcy = geometry.transform_points(np.array([fit_box.center]), to_frame)[0]
        up = BBox(float(fcx - fit_box.w / k / 2), float(fcy - fit_box.h / k / 2),
                  fit_box.w / k, fit_box.h / k)
        return Verdict(best is not None, best_score, bool(ok), dist, frame_pts,
                       float(np.degrees(theta)), up)

    # -- detection ----------------------------------------------------------------------------

    def _candidates(self, detector: Detector, rgb: np.ndarray) -> list[Detection]:
        return [d for d in detector.detect(rgb) if d.score >= self.cfg.min_confidence]

    def _accept(self, rgb: np.ndarray, det: Detection, agreed: bool) -> Detection | None:
        """The verified detection (upright-corrected, see :meth:`_upright`) or ``None``."""
        if not self.cfg.verify:
            return det
        v = self.verify(rgb, det)
        if not (v.landmarks_ok and (v.hog or agreed)):
            return None
        return self._upright(det, v)

    @staticmethod
    def _upright(det: Detection, v: Verdict) -> Detection:
        """Report a face rolled by more than 45° as a rotated detection.

        The verification crop levels the eyes, so a sideways or upside-down face passes it; its
        axis-aligned box would not suit the aligner. The roll is snapped to the nearest multiple
        of 90° and recorded in ``angle``; the box becomes the upright face box about the face
        centre (as for rotation retries, see the module docstring).
        """
        snapped = _norm_angle(round(v.roll / 90.0) * 90.0)
        if snapped == 0.0:
            return det
        return Detection(v.box, det.score, det.detector, det.keypoints,
                         _norm_angle(det.angle + snapped))

    def _detect_upright(self, rgb: np.ndarray) -> list[Detection]:
        short = min(rgb.shape[:2])
        fast = self._candidates(self._fast, rgb)
        kept: list[Detection] = []
        rejected: list[Detection] = []
        for d in fast:
            ok = self._accept(rgb, d, False)
            if ok is None:
                rejected.append(d)
            else:
                kept.append(ok)
        all_small = all(_size_pct(d.bbox, short) < self.cfg.small_face for d in kept)
        if self._recall is not None and all_small:
            for d in self._candidates(self._recall, rgb):
                if any(d.bbox.iou(v.bbox) >= 0.3 for v in kept):
                    continue  # the same face, already verified
                agreed = any(d.bbox.iou(r.bbox) >= self.cfg.agree_iou for r in rejected)
                ok = self._accept(rgb, d, agreed)
                if ok is not None:
                    kept.append(ok)
        if len(kept) > 1:
            keep = nms(_corners(kept), np.array([d.score for d in kept]), 0.3)
            kept = [kept[i] for i in keep]
        return kept

    def _size_ok(self, box: BBox, short: int) -> bool:
        pct = _size_pct(box, short)
        if self.cfg.min_size > 0 and pct < self.cfg.min_size:
            return False
        return not (self.cfg.max_size > 0 and pct > self.cfg.max_size)

    def _detect(self, rgb: np.ndarray) -> list[Detection]:
        short = min(rgb.shape[:2])
        found = [d for d in self._detect_upright(rgb) if self._size_ok(d.bbox, short)]
        if found:
            return [self._as_chain(d) for d in found]
        for angle in self.cfg.rotations:
            if float(angle) % 360.0 == 0.0:
                continue
            rotated, back = rotate_frame(rgb, float(angle))
            dets = [d for d in self._detect_upright(rotated) if self._size_ok(d.bbox, short)]
            if dets:
                return [self._map_back(d, back, float(angle)) for d in dets]
        return []

    def _as_chain(self, det: Detection) -> Detection:
        return Detection(det.bbox, det.score, self.registry_name, det.keypoints, det.angle)

    def _map_back(self, det: Detection, back: np.ndarray, angle: float) -> Detection:
        """A detection in the rotated frame → the unrotated frame (see the module docstring)."""
        cx, cy = geometry.transform_points(np.array([det.bbox.center]), back)[0]
        w, h = det.bbox.w, det.bbox.h
        kp = None
        if det.keypoints is not None:
            kp = geometry.transform_points(det.keypoints, back).astype(np.float32)
        return Detection(BBox(float(cx - w / 2), float(cy - h / 2), w, h), det.score,
                         self.registry_name, kp, _norm_angle(angle + det.angle))
