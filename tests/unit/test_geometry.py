"""Geometry: Umeyama, the mean face, crop matrices and their exact inverse."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from faceplate.core import geometry as g


def _similarity(angle_deg: float, scale: float, tx: float, ty: float) -> np.ndarray:
    a = np.radians(angle_deg)
    return np.array([[scale * np.cos(a), -scale * np.sin(a), tx],
                     [scale * np.sin(a), scale * np.cos(a), ty]])


@pytest.mark.parametrize("angle,scale", [(0, 1), (17, 2.5), (-130, 0.3), (90, 1.0)])
def test_umeyama_recovers_similarity(rng, angle, scale):
    src = rng.normal(size=(30, 2)) * 50
    m = _similarity(angle, scale, 12.0, -7.0)
    dst = g.transform_points(src, m)
    est = g.umeyama(src, dst, True)[:2]
    np.testing.assert_allclose(est, m, atol=1e-9)


def test_umeyama_rigid_keeps_unit_scale(rng):
    src = rng.normal(size=(20, 2))
    dst = g.transform_points(src, _similarity(30, 3.0, 1, 2))
    est = g.umeyama(src, dst, False)[:2]
    assert g.matrix_scale(est) == pytest.approx(1.0)


def test_umeyama_plane_is_the_least_squares_similarity(rng):
    # The 2-D closed form against an independent oracle: the linear least-squares fit of
    # (a, b, tx, ty) in x' = a·x − b·y + tx, y' = b·x + a·y + ty, on noisy points, mirrored
    # ones included (the best proper similarity either way, as the SVD's reflection correction
    # gives); and coincident points fall back to the SVD path.
    for mirror in (False, True):
        for _ in range(100):
            src = rng.normal(size=(51, 2)) * rng.uniform(1.0, 500.0)
            m = _similarity(rng.uniform(-180, 180), rng.uniform(0.05, 20.0),
                            *rng.uniform(-2000, 2000, 2))
            dst = g.transform_points(src * ([-1.0, 1.0] if mirror else 1.0), m)
            dst += rng.normal(size=dst.shape) * 0.05 * np.abs(dst).max()
            x, y = src.T
            rows = np.block([[x[:, None], -y[:, None], np.ones((51, 1)), np.zeros((51, 1))],
                             [y[:, None], x[:, None], np.zeros((51, 1)), np.ones((51, 1))]])
            (a, b, tx, ty), *_ = np.linalg.lstsq(rows, np.concatenate(dst.T), rcond=None)
            want = np.array([[a, -b, tx], [b, a, ty]])
            np.testing.assert_allclose(g.umeyama(src, dst, True)[:2], want, rtol=0,
                                       atol=1e-9 * max(1.0, np.abs(want).max()))
    same = np.ones((5, 2))
    np.testing.assert_allclose(g.umeyama(same, same + 3.0, True)[:2],
                               [[1.0, 0.0, 3.0], [0.0, 1.0, 3.0]])


def test_umeyama_rejects_bad_shapes():
    with pytest.raises(ValueError):
        g.umeyama(np.zeros((5, 2)), np.zeros((4, 2)))


def test_mean_face_is_symmetric_and_normalised():
    m = g.MEAN_FACE_68
    assert m.shape == (68, 2)
    np.testing.assert_allclose(m[g.INNER].min(axis=0), [0, 0], atol=1e-9)
    np.testing.assert_allclose(m[g.INNER].max(axis=0), [1, 1], atol=1e-9)
    mirrored = m.copy()
    mirrored[:, 0] = 1.0 - mirrored[:, 0]
    np.testing.assert_allclose(mirrored[g.MIRROR_68], m, atol=1e-9)
    # anatomy: eyes above nose tip above mouth above chin
    assert m[g.RIGHT_EYE, 1].mean() < m[30, 1] < m[g.MOUTH, 1].mean() < m[8, 1]
    assert m[36, 0] < m[45, 0]


def test_mirror_permutation_is_an_involution():
    assert sorted(g.MIRROR_68.tolist()) == list(range(68))
    np.testing.assert_array_equal(g.MIRROR_68[g.MIRROR_68], np.arange(68))


@pytest.mark.parametrize("centering", ["face", "whole_face", "head"])
@pytest.mark.parametrize("size", [64, 101, 512])
def test_crop_matrix_maps_mean_face_into_template_frame(centering, size):
    # a face that *is* the mean face at some pose maps onto the template position exactly
    pose = _similarity(25, 180.0, 400.0, 300.0)
    lm = g.transform_points(g.MEAN_FACE_68, pose)
    m = g.crop_matrix(lm, size, centering)
    expected = g.transform_points(g.MEAN_FACE_68, g.template_to_crop(size, centering))
    # landmarks are float32 in the pipeline: 1e-3 px is float32 precision at this scale
    np.testing.assert_allclose(g.transform_points(lm, m), expected, atol=1e-3)
    # the face sits inside the crop and is upright
    crop_pts = g.transform_points(lm, m)
    assert np.all(crop_pts[g.INNER] > 0) and np.all(crop_pts[g.INNER] < size)
    assert abs(crop_pts[36, 1] - crop_pts[45, 1]) < 1e-3


def test_larger_centering_shows_more_and_the_inverse_is_exact(rng):
    lm = g.transform_points(g.MEAN_FACE_68, _similarity(-10, 150, 320, 240))
    widths = []
    for c in ("face", "whole_face", "head"):
        m = g.crop_matrix(lm, 256, c)
        inv = g.invert_affine(m)
        pts = rng.uniform(0, 256, size=(50, 2))
        np.testing.assert_allclose(g.transform_points(g.transform_points(pts, inv), m), pts,
                                   atol=1e-9)
        widths.append(g.matrix_scale(inv) * 256)
    assert widths[0] < widths[1] < widths[2]


def test_recentre_matches_direct_crop_matrix():
    lm = g.transform_points(g.MEAN_FACE_68, _similarity(5, 120, 200, 210))
    face = g.crop_matrix(lm, 256, "face")
    head = g.crop_matrix(lm, 512, "head")
    np.testing.assert_allclose(g.recentre(face, 256, "face", "head", 512), head, atol=1e-6)


def test_to_cv2_warp_samples_where_the_matrix_says():
    # an image whose pixel (x, y) holds x + 1000 y; a pure translation by (+3, +5) in the
    # +0.5-centre convention must read the source pixel 3 left and 5 up.
    h, w = 40, 50
    ys, xs = np.mgrid[0:h, 0:w]
    img = (xs + 1000 * ys).astype(np.float32)
    m = np.array([[2.0, 0.0, 3.0], [0.0, 2.0, 5.0]])  # scale 2 about the origin corner
    out = cv2.warpAffine(img, g.to_cv2(m), (w, h), flags=cv2.INTER_LINEAR)
    # output pixel centre (u+0.5, v+0.5) comes from source ((u+0.5-3)/2, (v+0.5-5)/2)
    u, v = 21, 17
    sx, sy = (u + 0.5 - 3) / 2 - 0.5, (v + 0.5 - 5) / 2 - 0.5
    assert out[v, u] == pytest.approx(sx + 1000 * sy, abs=1e-3)


def test_roll_degrees_and_distance_from_mean():
    for angle in (0.0, 15.0, -40.0):
        lm = g.transform_points(g.MEAN_FACE_68, _similarity(angle, 100, 300, 300))
        # a positive angle in this matrix turns the face clockwise on a y-down screen, and
        # roll is counter-clockwise positive
        assert g.roll_degrees(lm) == pytest.approx(-angle, abs=1e-4)
        assert g.distance_from_mean(lm) == pytest.approx(0.0, abs=1e-5)
    lm = g.MEAN_FACE_68 * 100
    lm = lm.copy()
    lm[48:68, 1] += 30  # mouth dropped by 0.3 face heights
    assert g.distance_from_mean(lm) > 0.05


def test_invert_affine_rejects_garbage():
    with pytest.raises(ValueError):
        g.invert_affine(np.full((2, 3), np.nan))
    with pytest.raises(np.linalg.LinAlgError):
        g.invert_affine(np.array([[1.0, 2.0, 3.0], [2.0, 4.0, 5.0]]))  # singular


def test_compose_and_invert_are_the_3x3_products(rng):
    for _ in range(20):
        a, b = rng.normal(size=(2, 2, 3)) * [1.0, 1.0, 100.0]
        full = [np.vstack([m, [0.0, 0.0, 1.0]]) for m in (a, b)]
        np.testing.assert_allclose(g.compose_affine(a, b), (full[0] @ full[1])[:2],
                                   rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(g.invert_affine(a), np.linalg.inv(full[0])[:2],
                                   rtol=1e-9, atol=1e-9)


def test_template_matrix_is_memoised_without_sharing_its_result(rng):
    """The memo (extraction asks for the same face's matrix several times) gives the fit's
    own value, a new array each time (a caller writing to it changes nothing else), and keys
    on the points' values (float32, as checked), whatever array carries them."""
    from faceplate.core.geometry import INNER, MEAN_FACE_68, template_matrix, umeyama

    lm = (MEAN_FACE_68 * 180.0 + rng.normal(0.0, 2.0, (68, 2)) + 300.0).astype(np.float32)
    want = umeyama(lm[INNER], MEAN_FACE_68[INNER], True)[:2]
    a = template_matrix(lm)
    np.testing.assert_array_equal(a, want)
    a[:] = 0.0
    b = template_matrix(lm.astype(np.float64))
    np.testing.assert_array_equal(b, want)
    assert not np.shares_memory(a, b)
    other = lm.copy()
    other[30] += 1.0
    assert not np.array_equal(template_matrix(other), want)
