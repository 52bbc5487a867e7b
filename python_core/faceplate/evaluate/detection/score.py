"""Scoring detections against ground truth: boxes from landmarks, matching, the figures.

Conventions:
    Points are (x, y) frame pixels, x right, y down, pixel centres at +0.5; landmarks are 68×2
    in iBUG order. Boxes are :class:`~faceplate.core.types.BBox` in dlib's frontal-face
    convention (what every detector reports, see ``faceplate.extract.detect.base``).

A ground-truth face is a :class:`TruthFace`: its box is the one the aligner convention puts
around its landmarks (:func:`truth_box`). A detection *matches* a truth face when its box centre
lies within ``MATCH_CENTRE`` truth-box sizes of the truth box's centre and its size is within a
factor ``MATCH_SIZE`` of it (rotated detections report the face centre too, so the rule holds
for them). Each truth face takes at most one detection, nearest first. Detections on faces
marked ``ignore`` (faces a person would not ask for: cut in half by the frame edge, tiny in
the background) count neither way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from faceplate.core.geometry import template_matrix
from faceplate.core.types import BBox

#: Where the mean-face template sits in a dlib frontal-face box: the same constant the aligners
#: use for their fallback (``faceplate.extract.align.base.BOX_TEMPLATE``), restated so the
#: benchmark's truth does not move when extraction code changes.
BOX_TEMPLATE = (0.4979, 0.5135, 0.7809)

MATCH_CENTRE = 0.4
MATCH_SIZE = 2.0


def truth_box(landmarks: np.ndarray) -> BBox:
    """The dlib-convention box of a face with 68 landmarks (axis-aligned, square).

    The similarity fit of the 51 inner points to the mean face gives the face's scale and the
    frame position of the template point the box is centred on.
    """
    m = template_matrix(np.asarray(landmarks, np.float64))
    lin = m[:, :2]
    scale = float(np.sqrt(abs(np.linalg.det(lin))))  # template units per pixel
    ox, oy, unit = BOX_TEMPLATE
    centre = np.linalg.solve(lin, np.array([ox, oy]) - m[:, 2])
    side = 1.0 / (scale * unit)
    return BBox(float(centre[0] - side / 2), float(centre[1] - side / 2), side, side)


def inner_width(landmarks: np.ndarray) -> float:
    """Inner-face width in pixels: the scale of the template fit (template width is 1).

    The same measure as ``faceplate.extract.filters.face_width``.
    """
    m = template_matrix(np.asarray(landmarks, np.float64))
    return float(1.0 / np.sqrt(abs(np.linalg.det(m[:, :2]))))


@dataclass(frozen=True, eq=False)
class TruthFace:
    """One annotated face of a benchmark image.

    Attributes:
        box: Its box (:func:`truth_box`, or the annotated box when there are no landmarks).
        landmarks: 68×2 float64 points, or None where only a box is known.
        yaw: Head yaw in degrees (``faceplate.extract.pose`` convention), NaN if unknown.
        width: Inner-face width in pixels.
        ignore: A face that counts neither for recall nor as a false face when found.
        tags: What the face shows (``turned``, ``glasses``, ``small``, ``rotated`` ...).
    """

    box: BBox
    landmarks: np.ndarray | None
    yaw: float
    width: float
    ignore: bool = False
    tags: tuple[str, ...] = ()


def matches(det: BBox, truth: BBox) -> float | None:
    """Centre distance in truth-box sizes when ``det`` matches ``truth``, else None."""
    (dx, dy), (tx, ty) = det.center, truth.center
    dist = float(np.hypot(dx - tx, dy - ty)) / max(truth.size, 1e-9)
    ratio = det.size / max(truth.size, 1e-9)
    if dist <= MATCH_CENTRE and 1.0 / MATCH_SIZE <= ratio <= MATCH_SIZE:
        return dist
    return None


@dataclass(frozen=True)
class Matching:
    """Detections of one image against its truth.

    Attributes:
        found: For each truth face, the index of its detection or -1.
        false: Indices of detections that match no truth face (ignored faces excluded).
    """

    found: tuple[int, ...]
    false: tuple[int, ...]


def match(dets: Sequence[BBox], truth: Sequence[TruthFace]) -> Matching:
    """Greedy nearest-first matching of detection boxes to truth faces (see the module doc)."""
    pairs = []
    for i, d in enumerate(dets):
        for j, t in enumerate(truth):
            dist = matches(d, t.box)
            if dist is not None:
                pairs.append((dist, i, j))
    pairs.sort()
    found = [-1] * len(truth)
    used: set[int] = set()
    for _, i, j in pairs:
        if i in used or found[j] >= 0:
            continue
        found[j] = i
        used.add(i)
    on_ignored = {i for i, d in enumerate(dets)
                  if i not in used and any(t.ignore and matches(d, t.box) is not None
                                           for t in truth)}
    false = tuple(i for i in range(len(dets)) if i not in used and i not in on_ignored)
    return Matching(tuple(found), false)


def nme(pred: np.ndarray, truth: np.ndarray, points: slice = slice(0, 68)) -> float:
    """Mean point error over ``points`` divided by the truth's outer-eye-corner distance
    (36–45, the 300-W inter-ocular normalisation)."""
    pred, truth = np.asarray(pred, np.float64), np.asarray(truth, np.float64)
    iod = float(np.linalg.norm(truth[45] - truth[36]))
    err = np.linalg.norm(pred[points] - truth[points], axis=1).mean()
    return float(err / max(iod, 1e-9))
