"""Verifiers: does a detector's candidate hold a human face? (registry ``VERIFIERS``).

The detector chain (``chain.py``) hands every candidate to one verifier. A verifier looks at a
*levelled crop*: the candidate box scaled to a fixed size and turned so the eye keypoints the
detector gave are level, with the mouth below them (a face rolled sideways or upside down is
seen upright). It returns a :class:`Verdict`: accepted or not, and when not, a short reason a
person can read (the chain records it in the alignments store).

Verifiers:

* ``families`` (the default) — the two detector families must both see a face: BlazeFace
  (mediapipe) and CenterFace (WIDER FACE), each either by its own full-frame candidate on the
  same face or by re-detecting it in the levelled crop. CenterFace does not fire on line
  drawings and cartoons that BlazeFace accepts; BlazeFace rejects non-human faces that
  CenterFace accepts; neither is a frontal-face test (both were trained on faces turned well
  past 45°). The threshold is the detectors' own default (0.5), not fitted to our data.
* ``agreement`` — the same, and the face mesh's landmark network must see a face too: its
  face-presence output must reach ``presence_threshold`` (mediapipe's own gate, 0.5). A third
  opinion against non-human faces, which costs recall on hard turned faces (see the README's
  detection benchmark).
* ``presence`` — the mesh's face-presence alone.
* ``hog_landmarks`` — the chain's former check: dlib's frontal HOG detector in the levelled crop
  (or a second detector agreeing on the full frame) and dlib's 68-point fit within
  ``max_landmark_distance`` of the mean face. Kept for comparison: it rejects faces turned
  beyond ~40° and accepts drawings (``benchmarks/detect.py``).

Conventions: frames are H×W×3 ``uint8`` RGB (display sRGB, top-left origin); points and boxes in
frame pixels, x right, y down, pixel centres at +0.5; angles in degrees, counter-clockwise as
seen on screen (the sense of ``common.rotate_frame``).
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from faceplate.core import geometry
from faceplate.core.config import Config, option
from faceplate.core.registry import Registry
from faceplate.core.types import BBox, Detection
from faceplate.extract import dlib_models, mediapipe_graphs

#: Keypoint indices of the mouth for detectors whose keypoints 0 and 1 are the subject's right
#: and left eye (BlazeFace: mouth centre; CenterFace: the two mouth corners).
MOUTH_KEYPOINTS: dict[str, tuple[int, ...]] = {"blazeface": (3,), "blazeface_tiles": (3,),
                                              "centerface": (3, 4)}

#: The two detector families whose agreement ``families`` and ``agreement`` require.
FAMILIES = ("blazeface", "centerface")

#: Levelled crops: (side in pixels, size of the candidate box in it).
PRESENCE_CROP = (mediapipe_graphs.LANDMARK_INPUT, 100.0)
CENTERFACE_CROP = (96, 38.0)
BLAZEFACE_CROP = (128, 60.0)
HOG_CROP = (192, 100.0)


@dataclass(frozen=True)
class VerifyConfig(Config):
    """Options of the verifiers (the detector chain's config extends this one)."""

    agree_threshold: float = option(
        0.5, "Score at which a detector re-run in the verification crop confirms a candidate "
             "(BlazeFace and CenterFace, verifiers agreement and families).",
        minimum=0.0, maximum=1.0)
    presence_threshold: float = option(
        0.5, "Face-mesh presence probability a candidate needs (verifiers agreement and "
             "presence; 0.5 is mediapipe's own gate).", minimum=0.0, maximum=1.0)
    hog_threshold: float = option(
        -0.5, "dlib HOG threshold adjustment in the verification crop (verifier "
              "hog_landmarks; lower accepts harder faces).", minimum=-2.0, maximum=2.0)
    max_landmark_distance: float = option(
        0.09, "Largest mean distance of the fitted 68 points from the mean face, in face "
              "widths (verifier hog_landmarks).", minimum=0.0, maximum=1.0)


@dataclass(frozen=True)
class Verdict:
    """Outcome of verifying one candidate.

    Attributes:
        accepted: The candidate holds a face.
        reason: Why it was rejected ("" when accepted), e.g. ``"CenterFace does not see a face
            here (best 0.12 < 0.50)"``.
        scores: What each opinion said (``blazeface``, ``centerface``, ``presence``, ``hog``,
            ``distance`` …), for reports.
        roll: Counter-clockwise rotation in degrees that levelled the face in the crop.
        box: The face box measured upright: its centre in frame pixels, its size in upright
            pixels (the candidate's own box size).
    """

    accepted: bool
    reason: str
    scores: dict[str, float] = field(default_factory=dict)
    roll: float = 0.0
    box: BBox = field(default_factory=lambda: BBox(0.0, 0.0, 0.0, 0.0))


def level_angle(det: Detection) -> float:
    """Radians to turn the frame (counter-clockwise) so the candidate's eyes are level and its
    mouth below them; 0 when the detector gives no usable keypoints."""
    kp, box = det.keypoints, det.bbox
    mouth = MOUTH_KEYPOINTS.get(det.detector)
    if kp is None or mouth is None or len(kp) <= max(mouth):
        return 0.0
    ex, ey = kp[1] - kp[0]
    if np.hypot(ex, ey) <= 0.1 * box.size:
        return 0.0
    theta = float(np.arctan2(ey, ex))
    # The mouth must lie below the eye line (y down): when it lies above, the eye labels are
    # swapped (an upside-down face read as upright): turn by 180°.
    mx, my = kp[list(mouth)].mean(axis=0) - (kp[0] + kp[1]) / 2
    if ex * my - ey * mx < 0:
        theta += np.pi
    return theta


def levelled_crop(rgb: np.ndarray, box: BBox, theta: float, side: int, face: float
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Cut a ``side``² crop where ``box`` is ``face`` px, turned counter-clockwise by ``theta``
    radians about the box centre (edges replicated).

    Returns:
        The side×side×3 uint8 crop and the 2×3 float64 frame → crop matrix.
    """
    k = face / max(box.size, 1e-6)
    c, s = np.cos(theta) * k, np.sin(theta) * k
    cx, cy = box.center
    m = np.array([[c, s, side / 2 - (c * cx + s * cy)],
                  [-s, c, side / 2 - (-s * cx + c * cy)]])
    crop = cv2.warpAffine(rgb, geometry.to_cv2(m), (side, side), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)
    return crop, m


def _centred(box: BBox, side: int, face: float) -> bool:
    """Does a box found in a crop sit on the crop's centred candidate box?"""
    cx, cy = box.center
    dist = float(np.hypot(cx - side / 2, cy - side / 2))
    return dist <= 0.5 * face and 0.5 * face <= box.size <= 2.0 * face


def _square(box: BBox) -> BBox:
    """A square box of the same size about the same centre (a face's upright box when the
    candidate's own box was drawn around a sideways face)."""
    cx, cy = box.center
    s = box.size
    return BBox(cx - s / 2, cy - s / 2, s, s)


class Verifier(ABC):
    """Base class: subclasses implement :meth:`_verify`."""

    registry_name: str = ""

    def __init__(self, cfg: VerifyConfig) -> None:
        self.cfg = cfg

    def verify(self, rgb: np.ndarray, det: Detection,
               confirmed_by: frozenset[str] = frozenset()) -> Verdict:
        """Judge candidate ``det`` in the H×W×3 uint8 RGB frame ``rgb``.

        Args:
            rgb: The frame.
            det: The candidate (box in the aligner convention, keypoints if any).
            confirmed_by: Detectors whose own full-frame candidates lie on the same face.
        """
        return self._verify(rgb, det, confirmed_by)

    @abstractmethod
    def _verify(self, rgb: np.ndarray, det: Detection, confirmed_by: frozenset[str]
                ) -> Verdict:
        """Subclass hook."""


VERIFIERS: Registry[Verifier] = Registry("verifier")


class _Models:
    """The models the verifiers share, created on first use (one set per verifier)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._centerface: Any = None
        self._blazeface: Any = None
        self._net: Any = None

    def centerface(self) -> Any:
        if self._centerface is None:
            from faceplate.extract.detect.centerface import CenterFace, CenterFaceConfig

            self._centerface = CenterFace(CenterFaceConfig(min_confidence=0.05, max_side=0,
                                                           threads=1))
        return self._centerface

    def blazeface_short(self) -> Any:
        if self._blazeface is None:
            self._blazeface = mediapipe_graphs.face_detection(0.05, short_range=True)
        return self._blazeface

    def net(self) -> mediapipe_graphs.FaceLandmarkNet:
        if self._net is None:
            self._net = mediapipe_graphs.FaceLandmarkNet()
        return self._net


def _centerface_in_crop(models: _Models, rgb: np.ndarray, box: BBox, theta: float
                        ) -> tuple[float, bool]:
    """Best CenterFace score on the candidate in its levelled crop, and whether its keypoints
    say the face is upside down there (mouth above the eyes)."""
    side, face = CENTERFACE_CROP
    crop, _ = levelled_crop(rgb, box, theta, side, face)
    best, flipped = 0.0, False
    for d in models.centerface().detect(crop):
        if _centred(d.bbox, side, face) and d.score > best:
            best = d.score
            kp = d.keypoints
            flipped = bool(kp is not None and kp[3:5, 1].mean() < kp[0:2, 1].mean())
    return best, flipped


def _blazeface_in_crop(models: _Models, rgb: np.ndarray, box: BBox, theta: float
                       ) -> tuple[float, bool]:
    """Best short-range BlazeFace score on the candidate in its levelled crop, and whether its
    keypoints say the face is upside down there."""
    side, face = BLAZEFACE_CROP
    crop, _ = levelled_crop(rgb, box, theta, side, face)
    with models.lock:
        result = models.blazeface_short().process(crop)
    best, flipped = 0.0, False
    for d in result.detections or []:
        rb = d.location_data.relative_bounding_box
        found = BBox(rb.xmin * side, rb.ymin * side, rb.width * side, rb.height * side)
        score = float(d.score[0])
        if _centred(found, side, face) and score > best:
            best = score
            kp = [(k.x, k.y) for k in d.location_data.relative_keypoints]
            flipped = len(kp) > 3 and kp[3][1] < 0.5 * (kp[0][1] + kp[1][1])
    return best, flipped


def _presence(models: _Models, rgb: np.ndarray, box: BBox, theta: float) -> float:
    side, face = PRESENCE_CROP
    crop, _ = levelled_crop(rgb, box, theta, int(side), face)
    return models.net().run(crop)[1]


class _FamilyVerifier(Verifier):
    """Shared by ``agreement`` and ``families``: both detector families must see the face."""

    use_presence = True

    def __init__(self, cfg: VerifyConfig) -> None:
        super().__init__(cfg)
        self._models = _Models()

    def _verify(self, rgb: np.ndarray, det: Detection, confirmed_by: frozenset[str]
                ) -> Verdict:
        theta = level_angle(det)
        scores: dict[str, float] = {det.detector: float(det.score)}
        thr = self.cfg.agree_threshold
        for fam in FAMILIES:
            if fam == det.detector or fam in confirmed_by:
                scores.setdefault(fam, 1.0)
                continue
            run = _centerface_in_crop if fam == "centerface" else _blazeface_in_crop
            best, flipped = run(self._models, rgb, det.bbox, theta)
            if flipped:
                # The re-detection sees the face upside down in the crop: the keypoints that
                # levelled it were read off an upside-down face. Look again turned by 180°.
                theta += np.pi
                best = max(best, run(self._models, rgb, det.bbox, theta)[0])
            scores[fam] = best
            if best < thr:
                name = "CenterFace" if fam == "centerface" else "BlazeFace"
                return Verdict(False, f"{name} does not see a face here (best {best:.2f} < "
                                      f"{thr:.2f})", scores, float(np.degrees(theta)),
                               _square(det.bbox))
        if self.use_presence:
            return _presence_verdict(self._models, rgb, det, theta, scores,
                                     self.cfg.presence_threshold)
        return Verdict(True, "", scores, float(np.degrees(theta)), _square(det.bbox))


def _presence_verdict(models: _Models, rgb: np.ndarray, det: Detection, theta: float,
                      scores: dict[str, float], threshold: float) -> Verdict:
    """The face mesh's presence probability in the levelled crop decides (added to
    ``scores`` as ``presence``)."""
    p = _presence(models, rgb, det.bbox, theta)
    scores["presence"] = p
    if p < threshold:
        return Verdict(False, f"the face mesh sees no face here (presence {p:.2f} < "
                              f"{threshold:.2f})", scores, float(np.degrees(theta)),
                       _square(det.bbox))
    return Verdict(True, "", scores, float(np.degrees(theta)), _square(det.bbox))


@VERIFIERS.register("families", config=VerifyConfig)
class Families(_FamilyVerifier):
    """BlazeFace and CenterFace must both see the face (the default)."""

    use_presence = False


@VERIFIERS.register("agreement", config=VerifyConfig)
class Agreement(_FamilyVerifier):
    """BlazeFace, CenterFace and the face mesh's presence network must all see the face."""


@VERIFIERS.register("presence", config=VerifyConfig)
class Presence(Verifier):
    """The face mesh's face-presence probability alone."""

    def __init__(self, cfg: VerifyConfig) -> None:
        super().__init__(cfg)
        self._models = _Models()

    def _verify(self, rgb: np.ndarray, det: Detection, confirmed_by: frozenset[str]
                ) -> Verdict:
        theta = level_angle(det)
        return _presence_verdict(self._models, rgb, det, theta,
                                 {det.detector: float(det.score)}, self.cfg.presence_threshold)


@VERIFIERS.register("hog_landmarks", config=VerifyConfig)
class HogLandmarks(Verifier):
    """dlib HOG in the levelled crop (or full-frame agreement) and a 68-point fit near the mean
    face: the chain's former check (frontal faces only)."""

    def __init__(self, cfg: VerifyConfig) -> None:
        super().__init__(cfg)
        self._lock = threading.Lock()
        self._hog: Any = None
        self._predictor: Any = None

    def _dlib(self) -> tuple[Any, Any]:
        if self._predictor is None:
            self._hog = dlib_models.hog_detector()
            self._predictor = dlib_models.shape_predictor_68()
        return self._hog, self._predictor

    def _hog_in_crop(self, rgb: np.ndarray, box: BBox, theta: float
                     ) -> tuple[np.ndarray, np.ndarray, BBox, BBox | None, float]:
        hog, _ = self._dlib()
        side, face = HOG_CROP
        crop, m = levelled_crop(rgb, box, theta, side, face)
        k = face / max(box.size, 1e-6)
        cw, ch = box.w * k, box.h * k
        cand = BBox(side / 2 - cw / 2, side / 2 - ch / 2, cw, ch)
        with self._lock:
            rects, scores, _ = hog.run(crop, 0, self.cfg.hog_threshold)
        best, best_score = None, -np.inf
        for r, sc in zip(rects, scores):
            hb = BBox(float(r.left()), float(r.top()), float(r.width()), float(r.height()))
            if hb.iou(cand) >= 0.3 and sc > best_score:
                best, best_score = hb, float(sc)
        return crop, m, cand, best, best_score

    def _verify(self, rgb: np.ndarray, det: Detection, confirmed_by: frozenset[str]
                ) -> Verdict:
        import dlib

        _, predictor = self._dlib()
        box = det.bbox
        theta = level_angle(det)
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
        eyes_y, nose_y, mouth_y = pts[36:48, 1].mean(), pts[30, 1], pts[48:68, 1].mean()
        inner_w = np.ptp(pts[17:68, 0])
        shape_ok = eyes_y < nose_y < mouth_y and 0.5 * fit_box.w <= inner_w <= 1.5 * fit_box.w
        k = HOG_CROP[1] / max(box.size, 1e-6)
        to_frame = geometry.invert_affine(m)
        fcx, fcy = geometry.transform_points(np.array([fit_box.center]), to_frame)[0]
        up = BBox(float(fcx - fit_box.w / k / 2), float(fcy - fit_box.h / k / 2),
                  fit_box.w / k, fit_box.h / k)
        scores = {det.detector: float(det.score), "hog": float(best_score), "distance": dist}
        roll = float(np.degrees(theta))
        if best is None and not confirmed_by:
            return Verdict(False, "dlib HOG finds no face in the crop and no other detector "
                                  "agrees", scores, roll, up)
        if dist > self.cfg.max_landmark_distance:
            return Verdict(False, f"the 68-point fit is far from the mean face ({dist:.3f} > "
                                  f"{self.cfg.max_landmark_distance:.3f})", scores, roll, up)
        if not shape_ok:
            return Verdict(False, "the 68-point fit is not face-like", scores, roll, up)
        return Verdict(True, "", scores, roll, up)
