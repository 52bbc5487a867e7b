"""Following faces between detections (``faceplate extract --track on``).

Detection costs most of an extracted frame. With tracking on, the detector runs on a frame only
when one of these holds (a *detection frame*):

* it is the first frame of the run, or ``detect_every`` processed frames have passed since the
  last detection frame;
* no face is being followed (so frames without a face are searched as with per-frame
  detection, and the first face to appear is found at once);
* the frame is a scene cut: the colour histograms of this frame and the previous processed one
  differ by more than :data:`CUT_DISTANCE` (:func:`scene_signature`, :func:`scene_distance`);
* following a face failed its check (below).

On every other frame each face kept in the previous frame is *followed*: the aligner runs on the
box its previous landmarks imply — the box the detector gave it, moved by the similarity that
takes its landmarks at that detection onto its landmarks in the previous frame (so the aligner
sees the face framed as the detector framed it, whatever the pose) — and the new landmarks are
accepted only if all of these hold, for every followed face:

* the aligner's own fit score is at least :data:`MIN_FIT`: it is 0 when the aligner found no
  face in its crop (mesh68 runs MediaPipe's face detection and presence threshold there);
  dlib68's regression trees always fit and score 1, so for it the checks below decide;
* motion: the box the new landmarks imply moved by at most :data:`MAX_JUMP` box sizes from the
  box the aligner started from and changed its size by at most a factor :data:`MAX_SCALE`;
* pose: the new landmarks' yaw is within :data:`MAX_YAW` degrees (on turned faces the 68-point
  landmarks degrade fast, and a fresh detector box gives the aligner its best start: on the
  benchmark's synthetic head-turn clips, following past 20° moved the median landmark error
  up by 7 %, past 30° by more);
* appearance: the normalised correlation between the face's small grey aligned crop
  (:func:`appearance`) and the one of the last detection frame is at least
  :data:`MIN_APPEARANCE` (landmarks that slid off the face, or onto another one, fail it);
* no two followed faces end on the same face.

If any check fails, the frame becomes a detection frame (the detector's result replaces the
followed faces), so a failed check costs one detection, never a face. A face that enters the
picture while another one is followed is found at the next detection frame, at most
``detect_every - 1`` frames late: that is the one thing per-frame detection (``--track off``,
the default) does better, and why ``detect_every`` is small.

:class:`FollowState` is what a run keeps between frames. It is not stored: a resumed run
starts with a detection frame, so the frames up to its next detection frame may be detected
where an uninterrupted run followed them, and their landmarks agree with that run's only within
the aligner's frame-to-frame noise (with ``--track off`` a resumed run is exact).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import cv2
import numpy as np

from faceplate.core.config import Config, option
from faceplate.core.geometry import crop_matrix, to_cv2
from faceplate.core.types import BBox, Detection
from faceplate.extract.align.base import Aligner, Alignment
from faceplate.extract.pose import estimate_pose
from faceplate.extract.smoothing import move_box, similarity_between
from faceplate.extract.track import links

TrackMode = Literal["on", "off"]

#: Least aligner fit score of a followed face (see the module docstring).
MIN_FIT = 0.5
#: Largest move of a followed face's box between two processed frames, in box sizes.
MAX_JUMP = 0.25
#: Largest change of a followed face's box size between two processed frames (a factor).
MAX_SCALE = 1.15
#: Largest |yaw| (degrees, from the new landmarks) of a followed face.
MAX_YAW = 20.0
#: Least normalised correlation of a followed face's appearance with its last detection's.
MIN_APPEARANCE = 0.85
#: Histogram distance (half the L1 distance, in [0, 1]) above which a frame is a scene cut.
CUT_DISTANCE = 0.3
#: Side of the grey aligned crop :func:`appearance` compares.
APPEARANCE_SIZE = 32
#: Stride of the pixel sample :func:`scene_signature` takes of a frame.
SIGNATURE_STRIDE = 8
#: Bins per channel of :func:`scene_signature`'s histograms.
SIGNATURE_BINS = 16


@dataclass(frozen=True)
class FollowConfig(Config):
    """Options of tracking between detections during extraction."""

    track: TrackMode = option(
        "off", "on: run the detector every --detect-every frames, on a scene cut and where "
               "following a face from its landmarks fails its check, and follow the faces "
               "in between (faster; a face that enters while another is followed is found "
               "up to N-1 frames late); off: detect on every frame (not the --track-search "
               "option).",
        choices=("on", "off"))
    detect_every: int = option(
        5, "With --track on: run the detector at least every N processed frames.",
        minimum=1, maximum=100)


def scene_signature(rgb: np.ndarray) -> np.ndarray:
    """A frame's colour signature for the scene-cut test.

    Args:
        rgb: H×W×3 ``uint8`` sRGB frame.

    Returns:
        3×``SIGNATURE_BINS`` float32 histograms (one per channel, each summing to 1) of every
        ``SIGNATURE_STRIDE``-th pixel in both directions.
    """
    if rgb.strides[2] == 1 and rgb.strides[1] == 3:
        # gather whole 3-byte pixels (one item each), not bytes: the same sample, faster
        h, w = rgb.shape[:2]
        pixels = rgb.view(np.dtype((np.void, 3))).reshape(h, w)
        sample = np.ascontiguousarray(pixels[::SIGNATURE_STRIDE, ::SIGNATURE_STRIDE]
                                      ).view(np.uint8).reshape(-(-h // SIGNATURE_STRIDE),
                                                               -(-w // SIGNATURE_STRIDE), 3)
    else:
        sample = np.ascontiguousarray(rgb[::SIGNATURE_STRIDE, ::SIGNATURE_STRIDE])
    hists = [cv2.calcHist([sample], [c], None, [SIGNATURE_BINS], [0, 256]).ravel()
             for c in range(3)]
    out = np.asarray(hists, np.float32)
    return out / np.maximum(out.sum(axis=1, keepdims=True), 1.0)


def scene_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Distance in [0, 1] between two :func:`scene_signature` values: half the L1 distance of
    the histograms, the largest over the three channels."""
    return float(np.max(0.5 * np.abs(a - b).sum(axis=1)))


def appearance(rgb: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """The face's appearance for the follow check.

    Args:
        rgb: H×W×3 ``uint8`` sRGB frame.
        landmarks: 68×2 (x, y) frame pixels, pixel centres at +0.5.

    Returns:
        ``APPEARANCE_SIZE``² float32 vector: the grey ``face``-centred aligned crop (cut at
        4× the size, then area-averaged so it does not alias), minus its mean, divided by its
        norm (all zeros for a flat crop); the dot product of two is their normalised
        correlation in [-1, 1].
    """
    big = 4 * APPEARANCE_SIZE
    m = crop_matrix(landmarks, big, "face")
    crop = cv2.warpAffine(rgb, to_cv2(m), (big, big), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)
    grey = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)
    small = cv2.resize(grey, (APPEARANCE_SIZE, APPEARANCE_SIZE),
                       interpolation=cv2.INTER_AREA).astype(np.float32).ravel()
    small -= small.mean()
    norm = float(np.linalg.norm(small))
    return small / norm if norm > 1e-6 else np.zeros_like(small)


@dataclass
class Followed:
    """One face followed from frame to frame.

    Attributes:
        landmarks: Its 68×2 float32 landmarks in the last processed frame (frame pixels).
        box: The box those landmarks imply (where the aligner looks next).
        anchor_landmarks: Its landmarks in the last detection frame.
        anchor_box: Its detection box there.
        reference: Its :func:`appearance` there.
        score: The score of that detection.
        detector: The name of the detector that found it.
    """

    landmarks: np.ndarray
    box: BBox
    anchor_landmarks: np.ndarray
    anchor_box: BBox
    reference: np.ndarray
    score: float
    detector: str

    @classmethod
    def detected(cls, rgb: np.ndarray, landmarks: np.ndarray, box: BBox, score: float,
                 detector: str) -> Followed:
        """A face kept in a detection frame (``rgb``), with its detection's box."""
        lm = np.asarray(landmarks, np.float32)
        return cls(lm, box, lm, box, appearance(rgb, lm), float(score), base_detector(detector))

    def moved(self, landmarks: np.ndarray, box: BBox | None = None) -> Followed:
        """This face followed to ``landmarks`` (a followed frame keeps the anchor); ``box``:
        their :meth:`implied_box` when the caller has it already."""
        lm = np.asarray(landmarks, np.float32)
        return Followed(lm, self.implied_box(lm) if box is None else box,
                        self.anchor_landmarks, self.anchor_box, self.reference, self.score,
                        self.detector)

    def implied_box(self, landmarks: np.ndarray) -> BBox:
        """The detection box moved with the face from its anchor landmarks to ``landmarks``."""
        return move_box(self.anchor_box, similarity_between(self.anchor_landmarks, landmarks))


@dataclass
class FollowState:
    """What a run keeps between frames when tracking is on (see the module docstring).

    Attributes:
        detect_every: Processed frames between scheduled detection frames.
        faces: The faces kept in the last processed frame.
        since_detection: Processed frames since the last detection frame (None before any).
        signature: The last processed frame's :func:`scene_signature`.
        reasons: Detection frames counted by why they were one ("scheduled", "no face",
            "scene cut", "check failed", "first frame").
    """

    detect_every: int
    faces: list[Followed] = field(default_factory=list)
    since_detection: int | None = None
    signature: np.ndarray | None = None
    reasons: dict[str, int] = field(default_factory=dict)

    def why_detect(self, signature: np.ndarray) -> str | None:
        """Why the frame with this signature must be a detection frame (None: follow it).

        Also remembers the signature for the next frame's scene-cut test.
        """
        previous, self.signature = self.signature, signature
        if self.since_detection is None:
            return "first frame"
        if previous is not None and scene_distance(previous, signature) > CUT_DISTANCE:
            return "scene cut"
        if self.since_detection + 1 >= self.detect_every:
            return "scheduled"
        if not self.faces:
            return "no face"
        return None

    def count(self, reason: str) -> None:
        """Count one detection frame under ``reason``."""
        self.reasons[reason] = self.reasons.get(reason, 0) + 1


def follow_faces(aligner: Aligner, rgb: np.ndarray, faces: list[Followed]
                 ) -> list[tuple[Detection, Alignment, Followed]] | None:
    """Follow each face into frame ``rgb``, or None when any fails the check.

    Args:
        aligner: The run's aligner.
        rgb: H×W×3 ``uint8`` sRGB frame.
        faces: The faces kept in the previous processed frame.

    Returns:
        For each face (same order): its detection (the box its previous landmarks imply, its
        detection's score, the detector name suffixed ``+follow``), the new alignment and the
        face moved to the new landmarks (:meth:`Followed.moved`); None if any face failed a
        check (see the module docstring).
    """
    dets = [Detection(f.box, f.score, f"{f.detector}+follow") for f in faces]
    aligns = aligner.align(rgb, dets) if dets else []
    out = []
    boxes: list[BBox] = []
    for f, det, al in zip(faces, dets, aligns):
        if al.confidence < MIN_FIT:
            return None
        new = f.implied_box(al.landmarks)
        (ax, ay), (bx, by) = f.box.center, new.center
        size = max(f.box.size, 1e-6)
        if float(np.hypot(ax - bx, ay - by)) > MAX_JUMP * size:
            return None
        if not 1.0 / MAX_SCALE <= new.size / size <= MAX_SCALE:
            return None
        if abs(estimate_pose(al.landmarks, (rgb.shape[1], rgb.shape[0]))[0]) > MAX_YAW:
            return None
        if float(appearance(rgb, al.landmarks) @ f.reference) < MIN_APPEARANCE:
            return None
        if any(links(b, new) or links(new, b) for b in boxes):
            return None
        boxes.append(new)
        out.append((det, al, f.moved(al.landmarks, new)))
    return out


def base_detector(name: str) -> str:
    """The detector's registry name without the ``+track``/``+follow`` suffixes."""
    return name.split("+", 1)[0]
