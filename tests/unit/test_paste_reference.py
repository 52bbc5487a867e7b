"""The convert paste (``swap._paste_box``: box-only float, plane-by-plane bicubic warp, blend and
8-bit rounding in place) against a straightforward reference written independently of it.

The reference works on the whole frame: the frame to float (uint8 ``k/255`` in float64), face
and matte warped over everything right and below of the paste's box origin (one 3-channel
OpenCV call, matte bilinear and clipped; OpenCV quantises sample positions to 1/32 pixel from
the position in the warped image, so both warp from the same origin), ``face·m + plate·(1 − m)``
in float64, rounded half up to uint8. Frames are odd-sized (97×131), uint8 RGB / RGBA and
float32 display-sRGB RGB / scene-linear RGBA (values > 1 and < 0), the face inside the frame or
cut by its top-left or bottom-right edge, the face smooth like a real one (upscaled about 2×).

Tolerances: uint8 at most 1 code (1/255: float32 against float64 at rounding ties); float
1e-5 relative to max(1, |value|) (float32 rounding: the plane-by-plane warp sums its kernel in
another order, the blend runs in float32). Exact (bit for bit): every pixel where the paste's
matte is 0, every pixel outside the pasted box, and the alpha channel (``keep``).
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import pytest

from faceplate.convert import swap as swap_mod
from faceplate.convert.blend import BLEND
from faceplate.convert.composite import _warp_face, merge_region, paste_bands
from faceplate.convert.swap import ConvertConfig
from faceplate.core.colorspace import srgb_to_linear
from faceplate.core.geometry import to_cv2

H, W, S = 97, 131, 63
#: (name, dtype, channels, frame_is_linear)
FRAMES = [("u8_rgb", np.uint8, 3, False), ("u8_rgba", np.uint8, 4, False),
          ("f32_srgb_rgb", np.float32, 3, False), ("f32_linear_rgba", np.float32, 4, True)]
#: Where the face's centre lands in the frame (x, y).
PLACES = {"inside": (61.3, 47.8), "top_left": (9.6, 6.2), "bottom_right": (125.4, 92.7)}


def _bits(a: np.ndarray) -> np.ndarray:
    """The values' bytes (so -0.0 ≠ 0.0 and NaN = NaN)."""
    return np.ascontiguousarray(a).view(np.uint8)


def _frame(rng: np.random.Generator, dtype: Any, c: int, linear: bool) -> np.ndarray:
    if dtype == np.uint8:
        return rng.integers(0, 256, (H, W, c), dtype=np.uint8)
    f = rng.uniform(0.0, 1.0, (H, W, c)).astype(np.float32)
    if linear:
        f[rng.random((H, W)) < 0.1, :3] = 3.5
        f[rng.random((H, W)) < 0.1, :3] = -0.05
    return f


def _face_and_mask(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    face = cv2.GaussianBlur(rng.random((S, S, 3), dtype=np.float32), (0, 0), 2.0)
    face = np.clip((face - face.mean()) * 4.0 + 0.5, 0.0, 1.0).astype(np.float32)
    yy, xx = np.mgrid[:S, :S]
    d = np.hypot((xx + 0.5 - S / 2) / 0.8, yy + 0.5 - S / 2 - 3.0)
    mask = np.clip((24.0 - d) / 5.0, 0.0, 1.0).astype(np.float32)  # interior 1, soft band, 0
    return face, mask


def _matrix(centre: tuple[float, float]) -> np.ndarray:
    """Frame → crop: rotated 17°, 0.47 crop px a frame px, the crop centre at ``centre``."""
    a, k = np.radians(17.0), 0.47
    lin = k * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    t = np.array([S / 2.0, S / 2.0]) - lin @ np.asarray(centre)
    return np.hstack([lin, t[:, None]])


def _reference(frame: np.ndarray, face: np.ndarray, mask: np.ndarray, matrix: np.ndarray,
               linear: bool, origin: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(the pasted frame, the whole frame's matte), the plain way; the warps sample from
    ``origin`` (x, y) to the frame's right and bottom edges (zero matte above and left)."""
    colour = srgb_to_linear(face) if linear else face
    ox, oy = origin
    shifted = matrix.copy()
    shifted[:, 2] += matrix[:, :2] @ np.array([ox, oy], np.float64)  # window px → crop px
    size = (W - ox, H - oy)
    fw = np.zeros((H, W, 3), np.float64)
    m = np.zeros((H, W), np.float32)
    fw[oy:, ox:] = cv2.warpAffine(colour, to_cv2(shifted), size,
                                  flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
                                  borderMode=cv2.BORDER_REPLICATE)
    m[oy:, ox:] = np.clip(cv2.warpAffine(mask, to_cv2(shifted), size,
                                         flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                         borderMode=cv2.BORDER_CONSTANT, borderValue=0),
                          0.0, 1.0)
    m64 = m.astype(np.float64)[..., None]
    if frame.dtype == np.uint8:
        plate = frame[..., :3].astype(np.float64) / 255.0
    else:
        plate = frame[..., :3].astype(np.float64)
    out = frame.copy()
    blended = fw * m64 + plate * (1.0 - m64)
    if frame.dtype == np.uint8:
        out[..., :3] = np.floor(np.clip(blended, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    else:
        out[..., :3] = blended.astype(np.float32)
    out[m <= 0.0] = frame[m <= 0.0]
    return out, m


@pytest.mark.parametrize("rows", [7, 64])
@pytest.mark.parametrize("place", list(PLACES))
@pytest.mark.parametrize("name,dtype,c,linear", FRAMES)
def test_paste_matches_the_plain_reference(name: str, dtype: Any, c: int, linear: bool,
                                           place: str, rows: int,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """``rows``: the paste's bands of rows (7: several bands in the box; 64: one)."""
    monkeypatch.setattr(swap_mod, "BAND_ROWS", rows)
    rng = np.random.default_rng(17)
    frame = _frame(rng, dtype, c, linear)
    face, mask = _face_and_mask(rng)
    matrix = _matrix(PLACES[place])
    out = frame.copy()
    placed = swap_mod._paste_box(out, face, mask, matrix, ConvertConfig(),
                                 BLEND.create("overlay"), linear, None)
    assert placed is not None
    (x0, y0, x1, y1), matte, _seen, by_hand = placed
    assert not by_hand and matte.shape == (y1 - y0, x1 - x0)
    if place != "inside":  # the box is cut by the frame's edge
        assert x0 == 0 or y0 == 0 or x1 == W or y1 == H
    ref, m_ref = _reference(frame, face, mask, matrix, linear, (x0, y0))

    # Bit for bit: outside the box, where the paste's matte is 0, and the alpha channel.
    inside = np.zeros((H, W), bool)
    inside[y0:y1, x0:x1] = True
    untouched = ~inside
    untouched[y0:y1, x0:x1] |= matte <= 0.0
    assert np.array_equal(_bits(out[untouched]), _bits(frame[untouched]))
    if c == 4:
        assert np.array_equal(_bits(out[..., 3]), _bits(frame[..., 3]))
    # The paste's matte is the reference's, and its box holds all of it.
    assert not (m_ref > 0.0)[~inside].any()
    np.testing.assert_array_equal(matte, m_ref[y0:y1, x0:x1])

    # Close to the reference everywhere.
    diff = np.abs(out[..., :3].astype(np.float64) - ref[..., :3].astype(np.float64))
    if dtype == np.uint8:
        assert diff.max() <= 1.0
        assert (diff > 0).mean() < 0.002  # rounding ties only
    else:
        scale = np.maximum(1.0, np.abs(ref[..., :3]))  # scene-linear highlights of 3.5
        assert (diff / scale).max() <= 1e-5
    assert (m_ref >= 1.0).sum() > 200 and ((m_ref > 0) & (m_ref < 1)).sum() > 100


@pytest.mark.parametrize("h,w", [(37, 53), (64, 64)])
def test_planar_bicubic_warp_equals_one_multichannel_call(h: int, w: int) -> None:
    """The plane-by-plane bicubic warp differs from OpenCV's 3-channel call by float rounding
    only (its kernel sums in another order), at the same sample positions."""
    rng = np.random.default_rng(3)
    face = rng.random((S, S, 3), dtype=np.float32) * np.float32(4.0) - np.float32(1.0)
    m = to_cv2(_matrix((w / 2.0 + 0.3, h / 2.0 - 0.2)))  # box → crop (WARP_INVERSE_MAP)
    one = cv2.warpAffine(face, m, (w, h), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
                         borderMode=cv2.BORDER_REPLICATE)
    planes = _warp_face(face, m, (w, h), "cubic")
    assert planes.shape == (h, w, 3) and planes.dtype == np.float32
    np.testing.assert_allclose(planes, one, rtol=0, atol=4e-6)
    # One channel and non-planar interpolations run as they did.
    np.testing.assert_array_equal(
        _warp_face(face[..., :1].copy(), m, (w, h), "cubic")[..., 0], cv2.warpAffine(
            np.ascontiguousarray(face[..., 0]), m, (w, h),
            flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE))


@pytest.mark.parametrize("name", BLEND.names())
def test_per_pixel_blenders_blend_the_same_in_bands(name: str) -> None:
    """A blender that declares ``per_pixel`` gives, band by band of rows, bit for bit what it
    gives on the whole box (the paste then works in cache-sized bands); the others (the
    Poisson blends, which solve over the whole matte) are never banded, and banding one would
    change it."""
    rng = np.random.default_rng(5)
    frame = _frame(rng, np.float32, 4, True)
    face, mask = _face_and_mask(rng)
    matrix = _matrix(PLACES["inside"])
    blender = BLEND.create(name)
    whole = paste_bands(frame.shape, face, mask, matrix, rows=None)
    bands = paste_bands(frame.shape, face, mask, matrix, rows=5)
    assert whole is not None and bands is not None and whole.box == bands.box
    np.testing.assert_array_equal(whole.mask, bands.mask)
    one = [r for r in whole.regions]
    parts = [r for r in bands.regions]
    assert len(one) == 1 and len(parts) == -(-whole.box.height // 5)
    # The bands' warps are the whole box's rows, exactly.
    assert np.array_equal(_bits(np.concatenate([r.face for r in parts])), _bits(one[0].face))
    mode = blender.default_alpha
    a = np.ascontiguousarray(frame[whole.box.slices])
    merge_region(a, one[0], blender, mode)
    b = np.ascontiguousarray(frame[whole.box.slices])
    for r in parts:
        merge_region(b[r.box.y0 - whole.box.y0:r.box.y1 - whole.box.y0], r, blender, mode)
    assert np.array_equal(_bits(a), _bits(b)) == blender.per_pixel
