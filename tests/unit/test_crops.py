"""warp_to_crop: exact geometry on every resampling path, odd sizes, and less aliasing."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from faceplate.core import geometry as g
from faceplate.extract.crops import PYRAMID_BELOW, warp_to_crop


def _similarity(angle_deg: float, scale: float, tx: float, ty: float) -> np.ndarray:
    a = np.radians(angle_deg)
    return np.array([[scale * np.cos(a), -scale * np.sin(a), tx],
                     [scale * np.sin(a), scale * np.cos(a), ty]])


def _centred(scale: float, angle: float, size: int, centre: tuple[float, float]) -> np.ndarray:
    """A frame → crop similarity putting frame point ``centre`` at the crop's centre."""
    m = _similarity(angle, scale, 0.0, 0.0)
    c = m[:, :2] @ np.asarray(centre)
    m[:, 2] = size / 2 - c
    return m


# scales below PYRAMID_BELOW take 1-3 pyramid levels; 0.6 bilinear; 1.0 and 1.7 bicubic
@pytest.mark.parametrize("scale", [0.11, 0.21, PYRAMID_BELOW - 0.01, 0.6, 1.0, 1.7])
@pytest.mark.parametrize("size,angle", [(97, 13.0), (64, -31.0)])
def test_crop_samples_the_frame_where_the_matrix_says(scale, size, angle):
    # A linear ramp: every kernel on every path (bilinear, bicubic, the pyramid's Gaussian)
    # reproduces it exactly, so each crop pixel must hold the ramp's value at the frame point
    # its centre maps from. Odd frame size (W ≠ H) catches swapped axes and parity slips.
    h, w = 1577, 1401
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    img = (0.37 * xs + 0.11 * ys).astype(np.float32)  # pixel (x, y) is centred at (x+.5, y+.5)
    m = _centred(scale, angle, size, (w / 2 + 3.3, h / 2 - 7.9))
    out = warp_to_crop(img, m, size)
    assert out.shape == (size, size) and out.dtype == np.float32
    vv, uu = np.mgrid[0:size, 0:size]
    src = g.transform_points(np.stack([uu.ravel() + 0.5, vv.ravel() + 0.5], 1),
                             g.invert_affine(m))
    want = 0.37 * (src[:, 0] - 0.5) + 0.11 * (src[:, 1] - 0.5)
    # in pixels of the grid the last warp samples (the frame, or the pyramid level it read):
    # OpenCV tabulates its kernels at 1/32 pixel, its bicubic reproduces a ramp to ~0.08 px;
    # a pyramid level off by its quarter pixel would be 0.25 px, and systematic.
    grid = 2.0 ** max(0, math.ceil(math.log2(PYRAMID_BELOW / scale)))
    err = (out.ravel().astype(np.float64) - want) / math.hypot(0.37, 0.11) / grid
    assert np.abs(err).max() < 0.1
    assert abs(err.mean()) < 0.01


@pytest.mark.parametrize("scale", [0.15, 0.6, 1.4])
def test_crop_keeps_dtype_and_channels_and_matches_points_near_the_edge(scale):
    # uint8 RGB frame of odd size, a bright dot near the frame's corner (the crop reaches past
    # the frame's edges, so the pyramid's region is cut there): its centroid in the crop sits
    # where the matrix maps it.
    h, w = 333, 451
    size = 65
    p = (60.5, 70.5)  # centre of pixel (60, 70)
    sigma = 2.5 / scale  # the dot spans a few crop pixels at every scale
    ys, xs = np.mgrid[0:h, 0:w] + 0.5
    dot = np.exp(-((xs - p[0]) ** 2 + (ys - p[1]) ** 2) / (2 * sigma**2))
    img = np.repeat((200 * dot)[..., None], 3, axis=2).round().astype(np.uint8)
    m = _centred(scale, 21.0, size, (p[0] + 4 / scale, p[1] - 3 / scale))
    out = warp_to_crop(img, m, size)
    assert out.shape == (size, size, 3) and out.dtype == np.uint8
    grey = out[..., 1].astype(np.float64)
    vv, uu = np.mgrid[0:size, 0:size] + 0.5
    got = np.array([(grey * uu).sum(), (grey * vv).sum()]) / grey.sum()
    want = g.transform_points(np.array([p]), m)[0]
    np.testing.assert_allclose(got, want, atol=0.15)
    assert warp_to_crop(img[..., 0], m, size).shape == (size, size)


def _reference(img: np.ndarray, m: np.ndarray, size: int, k: int = 4) -> np.ndarray:
    """Area-correct crop: bicubic warp at k× the size, then area-averaged down."""
    big = cv2.warpAffine(img, g.to_cv2(g.compose_affine(np.diag([k, k, 1.0])[:2], m)),
                         (k * size, k * size), flags=cv2.INTER_CUBIC,
                         borderMode=cv2.BORDER_REPLICATE)
    return cv2.resize(big, (size, size), interpolation=cv2.INTER_AREA).astype(np.float64)


@pytest.mark.parametrize("scale", [0.2, 0.3, 0.6, 0.8])
def test_shrinking_crop_is_closer_to_the_area_correct_one_than_bicubic(rng, scale):
    # fine detail up to near the frame's Nyquist limit: what a bicubic shrink aliases
    img = cv2.GaussianBlur(rng.integers(0, 256, (601, 603, 3), dtype=np.uint8), (0, 0), 0.8)
    size = 96
    m = _centred(scale, 17.0, size, (301.0, 299.0))
    ref = _reference(img, m, size)
    new = warp_to_crop(img, m, size).astype(np.float64)
    old = warp_to_crop(img, m, size, cv2.INTER_CUBIC).astype(np.float64)
    rmse = lambda a: float(np.sqrt(np.mean((a - ref) ** 2)))  # noqa: E731
    assert rmse(new) < 0.85 * rmse(old)


def test_enlarging_crop_is_the_bicubic_warp(rng):
    img = rng.integers(0, 256, (101, 99, 3), dtype=np.uint8)
    m = _centred(1.3, 5.0, 64, (50.0, 49.0))
    np.testing.assert_array_equal(warp_to_crop(img, m, 64),
                                  warp_to_crop(img, m, 64, cv2.INTER_CUBIC))


def test_aligner_crop_is_a_read_only_view_inside_the_frame_and_padded_at_its_edge(rng):
    from faceplate.core.types import BBox
    from faceplate.extract.align.base import crop_around
    from faceplate.extract.align.normalize import normalize_crop

    rgb = rng.integers(0, 256, (301, 407, 3), dtype=np.uint8)
    crop, m, _ = crop_around(rgb, BBox(150.3, 100.7, 61.0, 59.0), 0.5)
    x0, y0 = int(-m[0, 2]), int(-m[1, 2])
    side = crop.shape[0]
    assert np.shares_memory(crop, rgb) and not crop.flags.writeable
    np.testing.assert_array_equal(crop, rgb[y0:y0 + side, x0:x0 + side])
    fed = normalize_crop(crop, "none")  # what the aligners read: a contiguous copy
    assert fed.flags.c_contiguous and not np.shares_memory(fed, rgb)
    np.testing.assert_array_equal(fed, crop)
    edge, m2, _ = crop_around(rgb, BBox(3.0, 290.0, 40.0, 40.0), 0.5)
    assert not np.shares_memory(edge, rgb)
    x0, y0 = int(-m2[0, 2]), int(-m2[1, 2])
    assert x0 < 0 and y0 + edge.shape[0] > rgb.shape[0]
    assert not edge[:, : -x0].any() and not edge[rgb.shape[0] - y0:].any()  # zeros outside
    np.testing.assert_array_equal(edge[: rgb.shape[0] - y0, -x0:],
                                  rgb[y0:, : x0 + edge.shape[1]])


@pytest.mark.parametrize("box", [(150.3, 100.7, 61.0, 59.0), (3.0, 290.0, 40.0, 40.0),
                                 (380.2, -20.5, 70.0, 66.0), (-100.0, 50.0, 55.0, 57.0),
                                 (900.0, 900.0, 40.0, 40.0)])
def test_crop_window_is_crop_around_without_the_copy(rng, box):
    """Inside, across each edge and off the frame: the window's padded crop is crop_around's
    crop to the byte, with the same matrix and box; the window is a read-only view."""
    from faceplate.core.types import BBox
    from faceplate.extract.align.base import crop_around, crop_window

    rgb = rng.integers(0, 256, (301, 407, 3), dtype=np.uint8)
    b = BBox(*box)
    crop, m, crop_box = crop_around(rgb, b, 0.5)
    window, m2, crop_box2 = crop_window(rgb, b, 0.5)
    np.testing.assert_array_equal(m, m2)
    assert crop_box == crop_box2 and window.side == crop.shape[0]
    assert not window.pixels.flags.writeable
    assert window.pixels.size == 0 or np.shares_memory(window.pixels, rgb)
    full = window.materialize()
    assert full.flags.c_contiguous and full.dtype == np.uint8
    np.testing.assert_array_equal(full, crop)


def test_dlib68_reads_the_window_as_its_padded_crop(rng):
    """The aligner's window path (no copy) gives the landmarks of the crop path, to the bit,
    on a real face moved inside, across the edges of and off the frame."""
    from faceplate.core.types import BBox
    from faceplate.extract.align import ALIGNERS
    from faceplate.extract.align.base import crop_around, crop_window
    from faceplate.extract.align.normalize import normalize_crop
    from faceplate.extract.detect import DETECTORS
    from faceplate.io import samples
    from faceplate.io.media import read_image

    rgb = read_image(samples.path("obama.jpg")).rgb
    aligner = ALIGNERS.create("dlib68", None)
    det = DETECTORS.create("dlib_hog", None).detect(rgb)[0].bbox
    h, w = rgb.shape[:2]
    for dx, dy, k in ((0, 0, 1.0), (-det.x - det.w / 2, 0, 1.2), (w - det.x - 20, 3, 0.9),
                      (0, h - det.y - det.h / 3, 1.1), (-w, -h, 1.0)):
        box = BBox(det.x + dx, det.y + dy, det.w * k, det.h * k)
        crop, _, crop_box = crop_around(rgb, box, 0.5)
        want = aligner._align_crop(normalize_crop(crop, "none"), crop_box)
        window, _, crop_box = crop_window(rgb, box, 0.5)
        got = aligner._align_window(window, crop_box)
        assert want is not None and got is not None
        np.testing.assert_array_equal(want.landmarks, got.landmarks)
