"""Anti-aliased polygon rasterisation in crop pixels, shared by the maskers.

Coordinates are (x, y) crop pixels with pixel centres at +0.5 (the project convention); OpenCV
puts pixel centres on integers, so points are shifted by -0.5 (in the fine grid, below) before
they are drawn.

Anti-aliasing is by supersampling: polygons are filled with ``cv2.fillPoly`` /
``cv2.fillConvexPoly`` (sub-pixel fixed-point coordinates, hard edges) on a grid
:data:`SUPERSAMPLE` times finer, then box-averaged down (``INTER_AREA`` over whole blocks), so an
edge pixel holds the fraction of it the polygon covers, in 1/16 steps. OpenCV's hard fill takes
every fine pixel whose centre is within about half a fine pixel of the polygon (a Minkowski sum
with one fine pixel), so edges sit 1/8 (axis-aligned) to 0.18 (diagonal) crop pixel outside the
true outline, and centroids are within 0.14 px of the polygon's (tested).

``cv2.LINE_AA`` was measured and not used: on a pixel-aligned 8×8 square it spreads every edge
~0.6 px outwards (+24 px² of 64) and shifts ``fillPoly``'s centroid 0.15 px down, while the
supersampled fill gives +4 px² and a symmetric outline.
"""

from __future__ import annotations

import cv2
import numpy as np

#: Supersampling factor per axis (fine pixels per crop pixel).
SUPERSAMPLE = 4
#: Fractional bits of the fixed-point fine-grid coordinates handed to OpenCV.
SHIFT = 3


def _fine_fixed(pts: np.ndarray) -> np.ndarray:
    """N×2 +0.5-centred crop points → N×1×2 int32 fixed-point points on OpenCV's fine grid."""
    # fine +0.5-centred coordinates, then −0.5 for OpenCV's integer pixel centres
    p = np.asarray(pts, dtype=np.float64).reshape(-1, 2) * SUPERSAMPLE - 0.5
    lim = float(1 << 26)  # keep wild points from overflowing the fixed-point range
    return np.round(np.clip(p, -lim, lim) * (1 << SHIFT)).astype(np.int32).reshape(-1, 1, 2)


class Raster:
    """A size×size mask drawn by filling polygons, read back anti-aliased with :meth:`result`.

    Later fills overwrite earlier ones (value 255 adds to the region, 0 cuts holes).
    """

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"mask size must be positive, got {size}")
        self.size = int(size)
        n = self.size * SUPERSAMPLE
        self._fine = np.zeros((n, n), dtype=np.uint8)

    def fill_polygon(self, pts: np.ndarray, value: int = 255) -> Raster:
        """Fill a simple (possibly concave) polygon given as an ordered N×2 loop of points."""
        p = np.asarray(pts, dtype=np.float64).reshape(-1, 2)
        if len(p) >= 3 and np.all(np.isfinite(p)):
            cv2.fillPoly(self._fine, [_fine_fixed(p)], int(value), lineType=cv2.LINE_8,
                         shift=SHIFT)
        return self

    def fill_hull(self, pts: np.ndarray, value: int = 255) -> Raster:
        """Fill the convex hull of N×2 points."""
        return self.fill_hulls([pts], value)

    def fill_hulls(self, groups: list[np.ndarray], value: int = 255) -> Raster:
        """Fill the convex hull of each group of N×2 points in turn (a group with under 3
        points or a non-finite one is skipped).

        The points of all groups are converted to the fine grid at once: a hull's corners are
        some of its group's float32 points, so taking them from the converted points is the
        same as converting the hull.
        """
        parts = [np.asarray(g, dtype=np.float64).reshape(-1, 2) for g in groups]
        if not parts:
            return self
        p32 = np.concatenate(parts).astype(np.float32)
        with np.errstate(invalid="ignore"):  # a non-finite group's points: converted, not drawn
            fixed = _fine_fixed(p32)
        start = 0
        for part in parts:
            end = start + len(part)
            if end - start >= 3 and np.isfinite(part).all():
                idx = cv2.convexHull(p32[start:end], returnPoints=False).ravel()
                cv2.fillConvexPoly(self._fine, fixed[start:end][idx], int(value),
                                   lineType=cv2.LINE_8, shift=SHIFT)
            start = end
        return self

    def result(self) -> np.ndarray:
        """size×size uint8 mask: 0 outside, 255 inside, edge pixels hold their coverage."""
        if SUPERSAMPLE == 1:
            return self._fine.copy()
        return cv2.resize(self._fine, (self.size, self.size), interpolation=cv2.INTER_AREA)


def union_of_hulls(size: int, groups: list[np.ndarray]) -> np.ndarray:
    """A size×size uint8 mask: 255 inside the union of the convex hulls of ``groups``."""
    return Raster(size).fill_hulls(groups).result()


def grow(mask: np.ndarray, pixels: float) -> np.ndarray:
    """Dilate (``pixels`` > 0) or erode (< 0) a uint8 mask with an elliptical kernel."""
    rad = int(round(abs(pixels)))
    if rad == 0:
        return mask
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * rad + 1, 2 * rad + 1))
    # OpenCV's default border for morphology leaves the canvas edge neutral, so a region that
    # touches the crop edge does not shrink away from it.
    op = cv2.dilate if pixels > 0 else cv2.erode
    return op(mask, kernel)
