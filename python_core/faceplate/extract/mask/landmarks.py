"""Landmark maskers: ``components`` and ``extended``, plus the 68-point region shapes.

Both maskers draw the union of convex hulls of groups of the 68 iBUG landmarks, in the crop's
pixel space (landmarks are mapped frame → crop with the crop matrix):

* ``components`` covers the face from the brows to the chin, the shape Faceswap users know: one
  hull for each half of the jaw with the outer end of its brow, one for both brows with the chin,
  and one for the nose. Splitting the jaw into halves keeps the hull from spilling past the jaw
  line on turned faces.
* ``extended`` adds the forehead: the brow points are lifted along the face's "up" direction (the
  perpendicular to the line through the eye centres, so yaw does not tilt it) by ``forehead`` ×
  the brow-to-chin height. The rule of thirds puts the hairline near 0.5 of the brow-to-chin
  height; the default 0.3 stays below it on most faces. ``extended`` ⊇ ``components`` by
  construction (its hulls include all of the components hulls), and it grows monotonically with
  ``forehead`` (each lifted hull also holds the unlifted brow point it was lifted from).

The region helpers (:func:`eye_regions`, :func:`brow_regions`, :func:`mouth_region`,
:func:`oval_groups`) are also the 68-point fallback of the mesh maskers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from faceplate.core.config import Config, option
from faceplate.core.geometry import (
    LEFT_BROW,
    LEFT_EYE,
    NOSE,
    RIGHT_BROW,
    RIGHT_EYE,
    transform_points,
)
from faceplate.core.validate import check_image, check_matrix, check_points
from faceplate.extract.mask.base import MASKERS, Masker
from faceplate.extract.mask.raster import union_of_hulls

BROWS = slice(17, 27)
OUTER_LIPS = slice(48, 60)
CHIN = 8
#: Point indices of the ``components`` hulls that join two runs of points (one index array
#: each, so a group is one gather): a jaw half with the outer end of its brow, the brows
#: with the chin.
_RIGHT_HALF = np.r_[0:9, 17]
_LEFT_HALF = np.r_[8:17, 26]
_BROWS_CHIN = np.r_[17:27, CHIN]


def crop_points(crop: np.ndarray, landmarks: np.ndarray,
                matrix: np.ndarray) -> tuple[int, np.ndarray]:
    """Validate masker inputs; return the crop side and the 68 landmarks in crop pixels.

    Args:
        crop: size×size×3 uint8 RGB aligned face.
        landmarks: 68×2 (x, y) frame pixels, iBUG order.
        matrix: 2×3 frame → crop matrix.

    Returns:
        (size, 68×2 float64 (x, y) crop pixels, pixel centres at +0.5).
    """
    check_image(crop, "crop")
    if crop.shape[0] != crop.shape[1]:
        raise ValueError(f"crop: expected a square size×size×3 crop, got shape {crop.shape}")
    pts = check_points(landmarks, 68)
    m = check_matrix(matrix)
    return int(crop.shape[0]), transform_points(pts.astype(np.float64), m)


def face_up(pts: np.ndarray) -> np.ndarray:
    """Unit "up" vector of the face in the points' space: perpendicular to the eye line.

    Args:
        pts: 68×2 (x, y) points, y down.
    """
    eye_line = pts[LEFT_EYE].mean(axis=0) - pts[RIGHT_EYE].mean(axis=0)
    up = np.array([eye_line[1], -eye_line[0]])
    n = float(np.linalg.norm(up))
    return up / n if n > 1e-9 else np.array([0.0, -1.0])


def brow_to_chin(pts: np.ndarray) -> float:
    """Height of the face from the brows' mean to the chin, measured along :func:`face_up`."""
    return float(abs(np.dot(pts[BROWS].mean(axis=0) - pts[CHIN], face_up(pts))))


def lifted_brows(pts: np.ndarray, forehead: float) -> np.ndarray:
    """The 10 brow points moved up by ``forehead`` × the brow-to-chin height (10×2)."""
    return pts[BROWS] + forehead * brow_to_chin(pts) * face_up(pts)


def component_groups(pts: np.ndarray) -> list[np.ndarray]:
    """Point groups whose convex hulls make up the ``components`` mask."""
    return [
        pts[_RIGHT_HALF],  # subject's right jaw half + outer end of right brow
        pts[_LEFT_HALF],  # left jaw half + outer end of left brow
        pts[_BROWS_CHIN],  # both brows + chin: the centre of the face
        pts[NOSE],
    ]


def extended_groups(pts: np.ndarray, forehead: float) -> list[np.ndarray]:
    """The ``components`` groups plus hulls that reach ``forehead`` above the brows."""
    top = lifted_brows(pts, forehead)
    return component_groups(pts) + [
        np.concatenate([pts[_RIGHT_HALF], top[0:1]]),
        np.concatenate([pts[_LEFT_HALF], top[9:10]]),
        np.concatenate([pts[BROWS], top, pts[CHIN:CHIN + 1]]),
    ]


def oval_groups(pts: np.ndarray) -> list[np.ndarray]:
    """68-point stand-in for the mesh face oval: the ``extended`` shape with the default lift."""
    return extended_groups(pts, ExtendedConfig().forehead)


def eye_regions(pts: np.ndarray) -> list[np.ndarray]:
    """The two eye openings (6-point loops, subject's right then left)."""
    return [pts[RIGHT_EYE], pts[LEFT_EYE]]


def brow_regions(pts: np.ndarray) -> list[np.ndarray]:
    """Two brow bands (10-point loops) around iBUG's brow lines.

    The 5 iBUG points of a brow run along its upper middle; the band spans 0.15 of the
    brow-to-eye distance above them and 0.35 below, which covers the brow hair on typical faces
    (the mesh brows, measured on the sample faces, run from about the iBUG line to 0.3 below).
    """
    up = face_up(pts)
    out = []
    for brow, eye in ((RIGHT_BROW, RIGHT_EYE), (LEFT_BROW, LEFT_EYE)):
        d = float(abs(np.dot(pts[brow].mean(axis=0) - pts[eye].mean(axis=0), up)))
        upper = pts[brow] + 0.15 * d * up
        lower = pts[brow] - 0.35 * d * up
        out.append(np.vstack([upper, lower[::-1]]))
    return out


def mouth_region(pts: np.ndarray) -> np.ndarray:
    """The outer lip line (12-point loop)."""
    return pts[OUTER_LIPS]


@dataclass(frozen=True)
class ComponentsConfig(Config):
    """The ``components`` masker has no options."""


@dataclass(frozen=True)
class ExtendedConfig(Config):
    forehead: float = option(
        0.3, "Lift the brow points by this fraction of the brow-to-chin height to cover the "
        "forehead.", minimum=0.0, maximum=1.0)


@MASKERS.register("components", config=ComponentsConfig)
class ComponentsMasker(Masker):
    """Union of landmark hulls from the brows to the chin (Faceswap's "components")."""

    reads_pixels = False

    def mask(self, crop: np.ndarray, landmarks: np.ndarray, matrix: np.ndarray,
             mesh: np.ndarray | None = None) -> np.ndarray:
        """size×size uint8 mask (0 outside, 255 inside, anti-aliased edges); ``mesh`` unused."""
        size, pts = crop_points(crop, landmarks, matrix)
        return union_of_hulls(size, component_groups(pts))


@MASKERS.register("extended", config=ExtendedConfig)
class ExtendedMasker(Masker):
    """``components`` extended upward onto the forehead (Faceswap's "extended")."""

    cfg: ExtendedConfig
    reads_pixels = False

    def mask(self, crop: np.ndarray, landmarks: np.ndarray, matrix: np.ndarray,
             mesh: np.ndarray | None = None) -> np.ndarray:
        """size×size uint8 mask (0 outside, 255 inside, anti-aliased edges); ``mesh`` unused."""
        size, pts = crop_points(crop, landmarks, matrix)
        return union_of_hulls(size, extended_groups(pts, self.cfg.forehead))


__all__ = [
    "ComponentsConfig",
    "ComponentsMasker",
    "ExtendedConfig",
    "ExtendedMasker",
    "brow_regions",
    "component_groups",
    "crop_points",
    "extended_groups",
    "eye_regions",
    "face_up",
    "mouth_region",
    "oval_groups",
]
