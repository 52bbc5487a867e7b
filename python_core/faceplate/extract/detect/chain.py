"""The default detector: a fast detector, a recall detector for missed faces, and verification.

Steps for one frame (all boxes in dlib's frontal-HOG convention, see ``base.py``):

1. The **fast** detector (BlazeFace) proposes candidates.
2. Every candidate is **verified** by the configured verifier (``verify.py``; default
   ``families``): BlazeFace and CenterFace must both see a face there, each either by its own
   full-frame candidate or by re-detecting the face in a crop levelled by the candidate's eye
   keypoints. Drawings and cartoons (which CenterFace does not take for faces), animals and
   texture (which BlazeFace rejects) fail; turned faces pass, because neither detector is a
   frontal-face test.
3. Unless exactly one candidate survived and it is not **small** (below ``small_face`` % of the
   short side) — the one-clear-face case — the **recall** detector (CenterFace) runs on the
   frame too: where nothing was found, where faces are small, and in group scenes, where the
   fast detector misses turned faces beside the ones it finds. Its candidates that duplicate a
   verified face are dropped; those that lie on a rejected fast candidate count that
   detector's agreement; every other one is verified like the fast ones.
4. If nothing is found, each angle of ``rotations`` is tried in turn: the frame is rotated, steps
   1–3 run on it, and the first angle that finds faces wins.

Every candidate that is dropped is reported with its reason (:meth:`Detector.detect_all`), and
the extraction pipeline keeps those reasons in the alignments store.

The common case (one clear face) costs one BlazeFace pass plus CenterFace on one 96×96 crop.

Rotated detections: ``Detection.angle`` is the counter-clockwise rotation applied to the frame.
The box's centre is the face centre in the *unrotated* frame and its ``w``×``h`` is the face's
size measured upright (in the rotated frame). An aligner rotates the frame (or a crop) by
``angle`` about the box centre, uses a ``w``×``h`` box about that centre, and maps its landmarks
back with the inverse rotation. Keypoints are mapped back into the unrotated frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from faceplate.core import geometry
from faceplate.core.config import option
from faceplate.core.types import BBox, Detection, Rejection
from faceplate.extract.detect.base import DETECTORS, DetectionResult, Detector
from faceplate.extract.detect.common import nms, rotate_frame
from faceplate.extract.detect.verify import VERIFIERS, Verdict, VerifyConfig

#: Detectors a chain may use (the chain itself excluded).
CHAIN_MEMBERS = ("blazeface", "centerface", "dlib_hog", "dlib_cnn", "blazeface_tiles")


@dataclass(frozen=True)
class ChainConfig(VerifyConfig):
    """Options of the detector chain (with the verifiers' options, ``verify.VerifyConfig``)."""

    fast: str = option("blazeface", "Detector run first on every frame.", choices=CHAIN_MEMBERS)
    recall: str = option("centerface", "Detector run too unless the fast one found exactly one "
                                       "face that is not small ('none' = never).",
                         choices=(*CHAIN_MEMBERS, "none"))
    min_confidence: float = option(0.5, "Minimum detector score of a candidate.",
                                   minimum=0.0, maximum=1.0)
    small_face: float = option(15.0, "Face size, in % of the frame's short side, below which a "
                                     "face found alone does not spare the recall detector (box "
                                     "size = sqrt(w*h)).",
                               minimum=0.0, maximum=100.0)
    min_size: float = option(0.0, "Drop faces smaller than this, in % of the frame's short side "
                                  "(box size = sqrt(w*h); 0 = off).", minimum=0.0, maximum=200.0)
    max_size: float = option(0.0, "Drop faces larger than this, in % of the frame's short side "
                                  "(0 = off).", minimum=0.0, maximum=200.0)
    rotations: tuple[float, ...] = option((), "Counter-clockwise frame rotations in degrees "
                                              "tried in turn when nothing is found, e.g. 90 -90 "
                                              "180.", minimum=-360.0, maximum=360.0)
    verify: bool = option(True, "Verify every candidate (see --chain-verifier); off keeps every "
                                "candidate above min_confidence.")
    verifier: str = option("families", "How candidates are verified: families (BlazeFace and "
                                       "CenterFace agree), agreement (and the face mesh), "
                                       "presence (the face mesh alone), hog_landmarks (the "
                                       "former frontal check).",
                           choices=tuple(VERIFIERS.names()))
    agree_iou: float = option(0.5, "IoU of mapped boxes at which two detectors' full-frame "
                                   "candidates agree.", minimum=0.0, maximum=1.0)


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
        self.verifier = VERIFIERS.create(cfg.verifier, cfg)

    def _member(self, name: str) -> Detector:
        cls = DETECTORS.config_class(name)
        fields = getattr(cls, "__dataclass_fields__", {})
        cfg = cls(min_confidence=self.cfg.min_confidence) if "min_confidence" in fields else cls()
        return DETECTORS.create(name, cfg)

    def verify(self, rgb: np.ndarray, det: Detection,
               confirmed_by: frozenset[str] = frozenset()) -> Verdict:
        """The configured verifier's verdict on candidate ``det`` (see ``verify.py``)."""
        return self.verifier.verify(rgb, det, confirmed_by)

    # -- detection ----------------------------------------------------------------------------

    def _candidates(self, detector: Detector, rgb: np.ndarray) -> list[Detection]:
        return [d for d in detector.detect(rgb) if d.score >= self.cfg.min_confidence]

    def _accept(self, rgb: np.ndarray, det: Detection, confirmed_by: frozenset[str],
                rejected: list[Rejection]) -> Detection | None:
        """The verified detection (upright-corrected, see :meth:`_upright`) or ``None`` (the
        reason appended to ``rejected``)."""
        if not self.cfg.verify:
            return det
        v = self.verify(rgb, det, confirmed_by)
        if not v.accepted:
            rejected.append(Rejection(det.bbox, float(det.score), det.detector, "verify",
                                      v.reason))
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

    def _detect_upright(self, rgb: np.ndarray) -> tuple[list[Detection], list[Rejection]]:
        short = min(rgb.shape[:2])
        fast = self._candidates(self._fast, rgb)
        kept: list[Detection] = []
        dropped: list[Detection] = []
        rejected: list[Rejection] = []
        for d in fast:
            ok = self._accept(rgb, d, frozenset(), rejected)
            if ok is None:
                dropped.append(d)
            else:
                kept.append(ok)
        one_clear = len(kept) == 1 and _size_pct(kept[0].bbox, short) >= self.cfg.small_face
        if self._recall is not None and not one_clear:
            for d in self._candidates(self._recall, rgb):
                if any(d.bbox.iou(v.bbox) >= 0.3 for v in kept):
                    continue  # the same face, already verified
                agreed = [r for r in dropped if d.bbox.iou(r.bbox) >= self.cfg.agree_iou]
                ok = self._accept(rgb, d, frozenset(r.detector for r in agreed), rejected)
                if ok is not None:
                    kept.append(ok)
                    # The fast detector's rejection of this face is overruled: forget it.
                    rejected = [r for r in rejected
                                if not any(r.detector == a.detector and r.bbox == a.bbox
                                           for a in agreed)]
        if len(kept) > 1:
            keep = nms(_corners(kept), np.array([d.score for d in kept]), 0.3)
            kept = [kept[i] for i in keep]
        return kept, rejected

    def _size_ok(self, box: BBox, short: int) -> bool:
        pct = _size_pct(box, short)
        if self.cfg.min_size > 0 and pct < self.cfg.min_size:
            return False
        return not (self.cfg.max_size > 0 and pct > self.cfg.max_size)

    def _sized(self, dets: list[Detection], short: int, rejected: list[Rejection],
               back: np.ndarray | None = None, angle: float = 0.0) -> list[Detection]:
        out = []
        for d in dets:
            if self._size_ok(d.bbox, short):
                out.append(d if back is None else self._map_back(d, back, angle))
            else:
                b = d.bbox if back is None else self._map_back(d, back, angle).bbox
                rejected.append(Rejection(b, float(d.score), d.detector, "size",
                                          f"{_size_pct(d.bbox, short):.1f} % of the frame's "
                                          "short side is outside the chain's min/max size"))
        return out

    def _detect(self, rgb: np.ndarray) -> list[Detection]:
        return self._detect_all(rgb).faces

    def _detect_all(self, rgb: np.ndarray) -> DetectionResult:
        short = min(rgb.shape[:2])
        kept, rejected = self._detect_upright(rgb)
        found = self._sized(kept, short, rejected)
        if found:
            return DetectionResult([self._as_chain(d) for d in found], rejected)
        for angle in self.cfg.rotations:
            if float(angle) % 360.0 == 0.0:
                continue
            rotated, back = rotate_frame(rgb, float(angle))
            dets, more = self._detect_upright(rotated)
            rejected += [Rejection(self._map_back(Detection(r.bbox, r.score, r.detector), back,
                                                  float(angle)).bbox,
                                   r.score, r.detector, r.stage, r.reason) for r in more]
            found = self._sized(dets, short, rejected, back, float(angle))
            if found:
                return DetectionResult(found, rejected)
        return DetectionResult([], rejected)

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

