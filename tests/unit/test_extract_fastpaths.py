"""Extraction's faster paths give their plain form's result to the bit: the hull-union mask
(points converted once for all groups) and the scene signature (whole-pixel gather), on odd
sizes, strided views and degenerate input."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from faceplate.extract.follow import SIGNATURE_BINS, SIGNATURE_STRIDE, scene_signature
from faceplate.extract.mask.raster import SHIFT, SUPERSAMPLE, _fine_fixed, union_of_hulls


def _hulls_one_by_one(size: int, groups: list[np.ndarray]) -> np.ndarray:
    """The plain form: each group's hull points found, converted and filled in turn."""
    fine = np.zeros((size * SUPERSAMPLE, size * SUPERSAMPLE), np.uint8)
    for g in groups:
        p = np.asarray(g, dtype=np.float64).reshape(-1, 2)
        if len(p) >= 3 and np.all(np.isfinite(p)):
            hull = cv2.convexHull(p.astype(np.float32)).reshape(-1, 2)
            cv2.fillConvexPoly(fine, _fine_fixed(hull), 255, lineType=cv2.LINE_8, shift=SHIFT)
    return cv2.resize(fine, (size, size), interpolation=cv2.INTER_AREA)


def _signature_plain(rgb: np.ndarray) -> np.ndarray:
    sample = np.ascontiguousarray(rgb[::SIGNATURE_STRIDE, ::SIGNATURE_STRIDE])
    hists = [cv2.calcHist([sample], [c], None, [SIGNATURE_BINS], [0, 256]).ravel()
             for c in range(3)]
    out = np.asarray(hists, np.float32)
    return out / np.maximum(out.sum(axis=1, keepdims=True), 1.0)


def test_union_of_hulls_is_each_hull_filled_in_turn(rng):
    for k in range(200):
        size = int(rng.integers(16, 160))
        groups = [rng.normal(size / 2, size / 3, (int(rng.integers(1, 12)), 2))
                  for _ in range(int(rng.integers(0, 8)))]
        if groups and k % 5 == 0:
            groups[0][0, 1] = np.nan  # skipped, as fill_hull skips it
        if len(groups) > 1 and k % 7 == 0:
            groups[1] = groups[1][:2]  # under 3 points: skipped
        with np.errstate(all="raise"):
            got = union_of_hulls(size, groups)
        np.testing.assert_array_equal(got, _hulls_one_by_one(size, groups))
    assert not union_of_hulls(8, []).any()


@pytest.mark.parametrize("shape", [(1080, 1920), (17, 33), (7, 5), (1, 1), (9, 8)])
def test_scene_signature_is_the_plain_sample_histogram(rng, shape):
    h, w = shape
    rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    np.testing.assert_array_equal(scene_signature(rgb), _signature_plain(rgb))
    view = rng.integers(0, 256, (h + 3, w + 5, 4), dtype=np.uint8)[1:h + 1, 2:w + 2, :3]
    np.testing.assert_array_equal(scene_signature(view), _signature_plain(view))
    flipped = rgb[::-1, ::-1]
    np.testing.assert_array_equal(scene_signature(flipped), _signature_plain(flipped))


def test_landmark_mask_groups_are_the_point_runs_they_name(rng):
    """The hull groups gathered by index are the runs of points the masks are defined by."""
    from faceplate.extract.mask.landmarks import (
        BROWS,
        component_groups,
        extended_groups,
        lifted_brows,
    )

    pts = rng.normal(100.0, 30.0, (68, 2))
    c = component_groups(pts)
    np.testing.assert_array_equal(c[0], np.vstack([pts[0:9], pts[17:18]]))
    np.testing.assert_array_equal(c[1], np.vstack([pts[8:17], pts[26:27]]))
    np.testing.assert_array_equal(c[2], np.vstack([pts[BROWS], pts[8:9]]))
    np.testing.assert_array_equal(c[3], pts[27:36])
    top = lifted_brows(pts, 0.3)
    e = extended_groups(pts, 0.3)
    assert len(e) == 7
    np.testing.assert_array_equal(e[4], np.vstack([pts[0:9], pts[17:18], top[0:1]]))
    np.testing.assert_array_equal(e[5], np.vstack([pts[8:17], pts[26:27], top[9:10]]))
    np.testing.assert_array_equal(e[6], np.vstack([pts[BROWS], top, pts[8:9]]))
