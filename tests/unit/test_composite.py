"""Paste-back: the box, the +0.5 pixel-centre convention, bit-exactness outside the face, alpha.

Frames are EXR-like float32 (4.0 highlights, −0.1 blacks) of odd size (101×99) so H/W swaps and
clipping of scene-linear values show up. The golden (tests/golden/composite_overlay.npy, 32×28
RGB) pins the overlay paste edges at a known sub-pixel matrix; regenerate it with
``python tests/golden/make_composite_golden.py`` after a deliberate change.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from faceplate.convert.blend import BLEND
from faceplate.convert.composite import face_box, paste_back, paste_region
from faceplate.core.geometry import to_cv2, transform_points

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "composite_overlay.npy"
NAMES = BLEND.names()


def _bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)


def similarity(angle_deg: float, scale: float, centre: tuple[float, float], size: int
               ) -> np.ndarray:
    """Frame → crop matrix: rotate/scale about the frame point ``centre`` to the crop centre."""
    a = np.radians(angle_deg)
    lin = scale * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    t = np.array([size / 2.0, size / 2.0]) - lin @ np.asarray(centre)
    return np.hstack([lin, t[:, None]])


def exr_frame(rng: np.random.Generator, h: int = 101, w: int = 99, c: int = 4) -> np.ndarray:
    f = rng.uniform(-0.1, 1.0, size=(h, w, c)).astype(np.float32)
    f[rng.random((h, w)) < 0.1, :3] = 4.0
    f[rng.random((h, w)) < 0.1, :3] = -0.1
    f[3, 5] = -0.0
    return f


def disc_mask(size: int, radius: float, feather: float = 3.0) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    d = np.hypot(xx + 0.5 - size / 2, yy + 0.5 - size / 2)
    return np.clip((radius - d) / feather, 0.0, 1.0).astype(np.float32)


def full_frame_mask(mask: np.ndarray, matrix: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The matte warped over the whole frame, independently of the box code."""
    return cv2.warpAffine(mask, to_cv2(matrix), (shape[1], shape[0]),
                          flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


@pytest.fixture()
def scene(rng: np.random.Generator):
    frame = exr_frame(rng)
    s = 48
    face = rng.uniform(0.0, 1.0, size=(s, s, 3)).astype(np.float32)
    mask = disc_mask(s, 20.0)
    matrix = similarity(23.0, 0.9, (47.3, 52.8), s)
    return frame, face, mask, matrix


@pytest.mark.parametrize("name", NAMES)
def test_every_blend_keeps_the_frame_bit_exact_where_the_mask_is_zero(scene, name) -> None:
    frame, face, mask, matrix = scene
    before = [a.copy() for a in scene]
    out = paste_back(frame, face, mask, matrix, blend=name, alpha="keep")
    for a, b in zip(scene, before):
        np.testing.assert_array_equal(a, b)  # inputs untouched
    assert out is not frame and not np.shares_memory(out, frame)
    assert out.dtype == np.float32 and out.shape == frame.shape
    warped = full_frame_mask(mask, matrix, frame.shape)
    zero = warped == 0.0
    np.testing.assert_array_equal(_bits(out)[zero], _bits(frame)[zero])
    np.testing.assert_array_equal(_bits(out[..., 3]), _bits(frame[..., 3]))  # alpha kept
    changed = np.any(out != frame, axis=2)
    assert changed.sum() > 500
    assert (warped[changed] > 0).all()


def test_box_covers_every_pixel_the_mask_reaches(scene) -> None:
    frame, face, mask, matrix = scene
    region = paste_region(frame.shape, face, mask, matrix)
    assert region is not None
    warped = full_frame_mask(mask, matrix, frame.shape)
    ys, xs = np.nonzero(warped > 0)
    b = region.box
    assert b.x0 <= xs.min() and xs.max() < b.x1 and b.y0 <= ys.min() and ys.max() < b.y1
    assert b.width < 70 and b.height < 70  # the box, not the 99×101 frame
    np.testing.assert_allclose(region.mask, warped[b.slices], atol=0.015)  # 1/32 px rounding


def test_overlay_matches_a_full_frame_reference(scene) -> None:
    """Warping the box only equals warping the whole frame, up to OpenCV's 1/32 px rounding
    of sample positions (which depends on the pixel's absolute position)."""
    frame, face, mask, matrix = scene
    out = paste_back(frame, face, mask, matrix, blend="overlay", interpolation="linear")
    h, w = frame.shape[:2]
    fw = cv2.warpAffine(face, to_cv2(matrix), (w, h), flags=cv2.INTER_LINEAR
                        | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)
    m = full_frame_mask(mask, matrix, frame.shape)[..., None]
    ref = fw * m + frame[..., :3] * (1 - m)
    diff = np.abs(out[..., :3] - ref)
    assert diff.max() < 0.08 and diff.mean() < 5e-4


@pytest.mark.parametrize("interpolation,atol", [("linear", 0.02), ("cubic", 0.07),
                                                ("lanczos", 0.05)])
def test_pixel_centre_convention(rng, interpolation, atol) -> None:
    """A face that stores its own crop coordinates reads back M @ (x + 0.5, y + 0.5).

    Bilinear reproduces a linear ramp up to OpenCV's 1/32 px position rounding; OpenCV's cubic
    (a = −0.75) and Lanczos-4 only approximately, hence their wider tolerances. A half-pixel
    convention slip would be off by ≥ 0.5.
    """
    s = 40
    yy, xx = np.mgrid[:s, :s].astype(np.float32)
    face = np.stack([xx + 0.5, yy + 0.5, xx * 0], axis=2)  # linear: interpolation is exact
    mask = np.ones((s, s), np.float32)
    matrix = similarity(-31.0, 1.37, (30.25, 41.7), s)
    frame = exr_frame(rng, 70, 63, 3)
    out = paste_back(frame, face, mask, matrix, interpolation=interpolation)
    # Frame pixels whose centre maps well inside the crop (away from the edge kernel support).
    fy, fx = np.mgrid[:70, :63]
    centres = np.stack([fx.ravel() + 0.5, fy.ravel() + 0.5], axis=1)
    crop = transform_points(centres, matrix)
    inner = np.all((crop > 5) & (crop < s - 5), axis=1)
    assert inner.sum() > 300
    got = out.reshape(-1, 3)[inner, :2]
    np.testing.assert_allclose(got, crop[inner], atol=atol)


def test_golden_overlay_edges() -> None:
    from tests.golden.make_composite_golden import make

    np.testing.assert_allclose(make(), np.load(GOLDEN), atol=1e-5)


def test_face_box_maps_the_crop_corners_back() -> None:
    m = similarity(0.0, 2.0, (20.0, 30.0), 16)  # crop covers frame [16, 24) × [26, 34)
    b = face_box(m, 16, (100, 100), support=0.0, pad=0)
    # With no support the outer crop pixel centres (0.5, 15.5) map to frame 16.25 .. 23.75.
    assert (b.x0, b.x1, b.y0, b.y1) == (16, 24, 26, 34)
    assert face_box(m, 16, (30, 22), pad=0).x1 == 22  # clipped to the frame
    far = similarity(0.0, 1.0, (500.0, 500.0), 16)
    assert face_box(far, 16, (100, 100)).empty


def test_face_outside_the_frame_returns_an_exact_copy(scene) -> None:
    frame, face, mask, _ = scene
    far = similarity(10.0, 1.0, (400.0, -300.0), face.shape[0])
    out = paste_back(frame, face, mask, far)
    np.testing.assert_array_equal(_bits(out), _bits(frame))
    assert out is not frame


@pytest.mark.parametrize("centre", [(2.0, 50.0), (98.0, 99.5), (50.0, 0.3)])
def test_face_clipped_by_the_frame_edge(scene, centre) -> None:
    frame, face, mask, _ = scene
    m = similarity(12.0, 1.0, centre, face.shape[0])
    for name in NAMES:
        out = paste_back(frame, face, mask, m, blend=name, alpha="keep")
        zero = full_frame_mask(mask, m, frame.shape) == 0
        np.testing.assert_array_equal(_bits(out)[zero], _bits(frame)[zero])
        assert np.isfinite(out).all()


def test_alpha_modes(scene) -> None:
    frame, face, mask, matrix = scene
    warped = full_frame_mask(mask, matrix, frame.shape)
    over = paste_back(frame, face, mask, matrix, alpha="over")
    a = frame[..., 3]
    inside = warped > 0
    np.testing.assert_allclose(over[..., 3][inside], (a + warped * (1 - a))[inside], atol=0.015)
    np.testing.assert_array_equal(_bits(over[..., 3])[~inside], _bits(a)[~inside])
    matte = paste_back(frame, face, mask, matrix, alpha="mask")
    np.testing.assert_allclose(matte[..., 3], warped, atol=0.015)
    raw = paste_back(frame, face, mask, matrix, blend="raw")  # raw writes its matte by default
    np.testing.assert_array_equal(raw[..., 3], matte[..., 3])
    with pytest.raises(ValueError, match="alpha"):
        paste_back(frame, face, mask, matrix, alpha="bogus")  # type: ignore[arg-type]


def test_face_with_alpha_and_gray_frames(rng, scene) -> None:
    frame, face, mask, matrix = scene
    face4 = np.concatenate([face, np.zeros_like(face[..., :1])], axis=2)
    np.testing.assert_array_equal(paste_back(frame, face4, mask, matrix),
                                  paste_back(frame, face, mask, matrix))
    gray = exr_frame(rng, 101, 99, 1)
    out = paste_back(gray, face[..., :1].copy(), mask, matrix)
    zero = full_frame_mask(mask, matrix, gray.shape) == 0
    np.testing.assert_array_equal(_bits(out[..., 0])[zero], _bits(gray[..., 0])[zero])
    with pytest.raises(ValueError, match="face"):
        paste_back(gray, face, mask, matrix)


def test_out_buffer_and_in_place(scene) -> None:
    frame, face, mask, matrix = scene
    ref = paste_back(frame, face, mask, matrix)
    buf = np.full_like(frame, 7.0)
    res = paste_back(frame, face, mask, matrix, out=buf)
    assert res is buf
    np.testing.assert_array_equal(buf, ref)
    inplace = frame.copy()
    paste_back(inplace, face, mask, matrix, out=inplace)
    np.testing.assert_array_equal(inplace, ref)


def test_smaller_stored_mask_is_scaled_onto_the_face(scene) -> None:
    frame, face, _, matrix = scene
    big = disc_mask(48, 20.0, 6.0)
    small = cv2.resize(big, (24, 24), interpolation=cv2.INTER_AREA)
    up = paste_back(frame, face, small, matrix, interpolation="linear")
    ref = paste_back(frame, face, big, matrix, interpolation="linear")
    assert np.abs(up - ref).mean() < 0.01


def test_bad_inputs(scene) -> None:
    frame, face, mask, matrix = scene
    with pytest.raises(ValueError, match="frame"):
        paste_back(frame.astype(np.float64), face, mask, matrix)
    with pytest.raises(ValueError, match="face"):
        paste_back(frame, face[:-1], mask, matrix)
    with pytest.raises(ValueError, match="mask"):
        paste_back(frame, face, mask + 1.0, matrix)
    with pytest.raises(ValueError, match="matrix"):
        paste_back(frame, face, mask, np.eye(3))
    with pytest.raises(ValueError, match="interpolation"):
        paste_back(frame, face, mask, matrix, interpolation="area")  # type: ignore[arg-type]
