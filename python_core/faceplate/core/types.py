"""Immutable records that flow one way through the pipeline.

``FrameInfo`` → ``Detection`` → ``FaceRecord`` → ``AlignedFace``.

Conventions (DESIGN.md):
    * Images are NumPy arrays H×W×C, top-left origin, RGB(A). Detection works on ``uint8`` display
      sRGB; scene-linear float frames travel beside it untouched.
    * Points are (x, y) in frame pixel coordinates, x right, y down, pixel centres at +0.5
      (the top-left pixel covers [0, 1) × [0, 1) and its centre is (0.5, 0.5)).
    * Boxes are (x, y, w, h) in the same coordinates, floats.
    * Affine matrices are 2×3 float64 and map frame coordinates to the other space
      (crop or mask pixels), with the same pixel-centre convention on both sides.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

Centering = Literal["face", "whole_face", "head"]
CENTERINGS: tuple[Centering, ...] = ("face", "whole_face", "head")


@dataclass(frozen=True)
class BBox:
    """An axis-aligned box in frame pixels: left, top, width, height (floats)."""

    x: float
    y: float
    w: float
    h: float

    @property
    def center(self) -> tuple[float, float]:
        return (self.x + self.w / 2.0, self.y + self.h / 2.0)

    @property
    def size(self) -> float:
        """Geometric mean of width and height, the box's scale."""
        return float(np.sqrt(max(self.w, 0.0) * max(self.h, 0.0)))

    def as_tuple(self) -> tuple[float, float, float, float]:
        return (self.x, self.y, self.w, self.h)

    def iou(self, other: BBox) -> float:
        """Intersection over union with ``other`` (0 when either box is empty)."""
        ix = max(0.0, min(self.x + self.w, other.x + other.w) - max(self.x, other.x))
        iy = max(0.0, min(self.y + self.h, other.y + other.h) - max(self.y, other.y))
        inter = ix * iy
        union = self.w * self.h + other.w * other.h - inter
        return inter / union if union > 0 else 0.0

    @staticmethod
    def from_points(pts: np.ndarray) -> BBox:
        """The tight box around an N×2 array of (x, y) points."""
        x0, y0 = np.min(pts, axis=0)
        x1, y1 = np.max(pts, axis=0)
        return BBox(float(x0), float(y0), float(x1 - x0), float(y1 - y0))


#: The number of a video's first frame: a video's frame ``index`` is numbered
#: ``index + VIDEO_FIRST_FRAME``, as compositing hosts (Natron, Nuke) number a movie's frames.
VIDEO_FIRST_FRAME = 1


@dataclass(frozen=True)
class FrameInfo:
    """Where a frame came from.

    Attributes:
        index: 0-based position in the clip (for sequences: position in sorted order).
        name: Stable name used as the store key: the file name for stills and sequences,
            ``<stem>_<index:06d>`` for video frames.
        timestamp: Presentation time in seconds for video frames, ``None`` otherwise.
        width: Frame width in pixels.
        height: Frame height in pixels.
        frame_number: The frame's own number, its identity in the alignments store and in
            a host: a numbered sequence's file number (``shot_1001.exr`` → 1001), a video's
            ``index + VIDEO_FIRST_FRAME``, a still's position in a folder of unrelated stills
            (see :mod:`faceplate.io.media`), the host's frame for frames analysed in the OFX
            node.
    """

    index: int
    name: str
    timestamp: float | None
    width: int
    height: int
    frame_number: int


@dataclass(frozen=True, eq=False)
class Frame:
    """A decoded frame.

    Attributes:
        info: Where it came from.
        rgb: H×W×3 ``uint8`` display-referred sRGB, the image detectors and aligners see.
        linear: H×W×C ``float32`` scene-linear original for float inputs (EXR/DPX/float TIFF),
            ``None`` for integer inputs.
    """

    info: FrameInfo
    rgb: np.ndarray
    linear: np.ndarray | None = None


@dataclass(frozen=True)
class Detection:
    """One face candidate from a detector.

    Attributes:
        bbox: The box in frame pixels, already mapped to the aligner's convention
            (a square-ish box from brows to chin, ears excluded: dlib's frontal-face box).
        score: Detector confidence in [0, 1].
        detector: Registry name of the detector that produced it.
        keypoints: Optional K×2 float32 keypoints (BlazeFace/CenterFace give 5 or 6).
        angle: Rotation in degrees (counter-clockwise) applied to the frame before detection,
            0 unless a rotation retry found it. The box is in the unrotated frame either way.
    """

    bbox: BBox
    score: float
    detector: str
    keypoints: np.ndarray | None = field(default=None, compare=False)
    angle: float = 0.0


@dataclass(frozen=True)
class Rejection:
    """A face candidate that was found and then dropped, with the reason (kept in the store so a
    user can see why a face is missing).

    Attributes:
        bbox: The candidate's box in frame pixels (aligner convention).
        score: The proposing detector's score in [0, 1].
        detector: Registry name of the detector that proposed it.
        stage: Where it was dropped: ``"verify"`` (the detector chain's verification),
            ``"size"`` (the chain's size limits), ``"filter"`` (a face filter after alignment:
            size, roll, landmark sanity, distance from the mean face) or ``"identity"`` (the
            reference-image filter).
        reason: One line for a person, e.g. ``"CenterFace does not see a face here (best 0.12
            < 0.50)"``.
    """

    bbox: BBox
    score: float
    detector: str
    stage: str
    reason: str


@dataclass(frozen=True, eq=False)
class StoredMask:
    """A mask kept with its geometry so it can be mapped back to the frame.

    Attributes:
        name: Masker registry name ("components", "extended", "mesh_oval", ...).
        data: ``zlib``-compressed ``uint8`` size×size mask, 0 outside, 255 inside.
        size: Side of the stored mask in pixels.
        affine: 2×3 float64 matrix mapping frame pixels to mask pixels.
        centering: The crop centering the mask was stored with.
    """

    name: str
    data: bytes
    size: int
    affine: np.ndarray
    centering: Centering


@dataclass(frozen=True, eq=False)
class FaceRecord:
    """Everything known about one face in one frame.

    Attributes:
        frame_index: Index of the frame in its clip.
        frame_name: Name of the frame (the store key).
        face_index: 0-based index of the face within the frame.
        bbox: Detector box in frame pixels.
        landmarks: 68×2 float32 (x, y) frame pixels, iBUG order.
        score: Detection confidence in [0, 1].
        yaw: Degrees, positive when the face turns to its left (towards image right).
        pitch: Degrees, positive when the face looks up.
        roll: Degrees, positive counter-clockwise in the image.
        detector: Registry name of the detector.
        aligner: Registry name of the aligner.
        masks: Masker name → stored mask.
        identity: Optional 128-d float32 dlib embedding.
        thumbnail: Optional small JPEG (bytes) of the aligned face.
        timestamp: Frame presentation time in seconds (video), else ``None``.
    """

    frame_index: int
    frame_name: str
    face_index: int
    bbox: BBox
    landmarks: np.ndarray
    score: float
    yaw: float = 0.0
    pitch: float = 0.0
    roll: float = 0.0
    detector: str = ""
    aligner: str = ""
    masks: dict[str, StoredMask] = field(default_factory=dict)
    identity: np.ndarray | None = None
    thumbnail: bytes | None = None
    timestamp: float | None = None

    @property
    def key(self) -> str:
        """``<frame_name>_<face_index>``: the default face file stem."""
        stem = self.frame_name.rsplit(".", 1)[0] if "." in self.frame_name else self.frame_name
        return f"{stem}_{self.face_index}"


@dataclass(frozen=True, eq=False)
class AlignedFace:
    """A face warped into the mean-face template.

    Attributes:
        image: size×size×3 ``uint8`` sRGB crop.
        matrix: 2×3 float64 frame → crop pixels (invert with ``geometry.invert_affine``).
        size: Output side in pixels.
        centering: Which template framing was used.
        record: The face record it was cut from.
    """

    image: np.ndarray
    matrix: np.ndarray
    size: int
    centering: Centering
    record: FaceRecord
