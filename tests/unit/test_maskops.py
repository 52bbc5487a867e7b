"""Mask operations: combine, erode/dilate overall and per side, blur, threshold, the config."""

from __future__ import annotations

import numpy as np
import pytest

from faceplate.convert import maskops as mo
from faceplate.core.errors import ConfigError

S = 128


def ellipse(h: int = S, w: int = S, rx: float = 40.0, ry: float = 50.0, feather: float = 0.0
            ) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    d = np.hypot((xx + 0.5 - w / 2) / rx, (yy + 0.5 - h / 2) / ry)
    if feather == 0.0:
        return (d <= 1.0).astype(np.float32)
    return np.clip((1.0 - d) * min(rx, ry) / feather, 0.0, 1.0).astype(np.float32)


def bbox(m: np.ndarray, level: float = 0.5) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) inclusive rows/columns where m > level."""
    ys, xs = np.nonzero(m > level)
    return int(ys.min()), int(ys.max()), int(xs.min()), int(xs.max())


@pytest.mark.parametrize("mode,ref", [("multiply", np.multiply), ("min", np.minimum),
                                      ("max", np.maximum),
                                      ("add", lambda a, b: np.clip(a + b, 0, 1))])
def test_combine_modes(rng, mode, ref) -> None:
    a = rng.uniform(size=(37, 41)).astype(np.float32)
    b = rng.uniform(size=(37, 41)).astype(np.float32)
    out = mo.combine([a, b], mode)
    assert out.dtype == np.float32 and out.shape == a.shape
    np.testing.assert_allclose(out, ref(a, b), atol=1e-7)
    np.testing.assert_array_equal(mo.combine([a], mode), a)
    with pytest.raises(ValueError):
        mo.combine([a, b[:-1]], mode)


def test_erode_shrinks_monotonically_and_dilate_grows() -> None:
    for m in (ellipse(), ellipse(feather=6.0)):
        areas = [float(mo.erode(m, p).sum()) for p in (-10, -5, -2, 0, 2, 5, 10, 20)]
        assert all(a > b for a, b in zip(areas, areas[1:])), areas
        assert float(m.sum()) == pytest.approx(areas[3])


def test_erode_binary_disc_by_a_known_radius() -> None:
    disc = ellipse(rx=40, ry=40)
    r = 10.0 / 100 * S  # 10 % of the side: 12.8 px
    out = mo.erode(disc, 10.0)
    assert set(np.unique(out)) <= {0.0, 1.0}  # a binary mask stays binary
    assert out.sum() == pytest.approx(np.pi * (40 - r) ** 2, rel=0.04)
    grown = mo.erode(disc, -10.0)
    assert grown.sum() == pytest.approx(np.pi * (40 + r) ** 2, rel=0.04)


def test_erode_keeps_a_soft_edge_soft() -> None:
    soft = ellipse(rx=40, ry=40, feather=8.0)
    out = mo.erode(soft, 5.0)
    mid = (out > 0.05) & (out < 0.95)
    assert mid.sum() > 0.5 * ((soft > 0.05) & (soft < 0.95)).sum()
    assert out.min() >= 0 and out.max() <= 1


@pytest.mark.parametrize("side,index,sign", [("top", 0, +1), ("bottom", 1, -1),
                                             ("left", 2, +1), ("right", 3, -1)])
@pytest.mark.parametrize("amount", [8.0, -8.0])
def test_per_side_erosion_moves_only_that_side(side, index, sign, amount) -> None:
    # A soft-edged rectangle, odd and non-square (catches H/W swaps): its edges are straight,
    # so eroding one side must leave the other three bounding-box edges exactly in place.
    yy, xx = np.mgrid[:101, :99]
    m = np.clip(np.minimum.reduce([yy - 15, 85 - yy, xx - 20, 75 - xx]) / 3.0, 0, 1
                ).astype(np.float32)
    before = bbox(m)
    out = mo.erode_sides(m, **{side: amount})
    after = bbox(out)
    shift = round(amount / 100 * 101)
    for i in range(4):
        if i == index:
            assert after[i] - before[i] == sign * shift, (side, before, after)
        else:
            assert after[i] == before[i], (side, before, after)


def test_per_side_erosion_is_a_shifted_intersection() -> None:
    m = ellipse(feather=4.0)
    r = round(10 / 100 * S)
    out = mo.erode_sides(m, top=10.0)
    shifted = np.zeros_like(m)
    shifted[r:] = m[:-r]
    np.testing.assert_allclose(out, np.minimum(m, shifted), atol=1e-6)


@pytest.mark.parametrize("kind", ["gaussian", "normalized"])
def test_blur_keeps_sum_and_range_and_widens_the_edge(kind) -> None:
    m = ellipse()
    out = mo.blur(m, kind, 6.0, 4)
    assert out.dtype == np.float32 and out.shape == m.shape
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert out.sum() == pytest.approx(m.sum(), rel=0.01)
    soft = lambda a: int(((a > 0.01) & (a < 0.99)).sum())  # noqa: E731
    assert soft(out) > 5 * soft(m)
    assert soft(mo.blur(m, kind, 12.0, 4)) > soft(out)  # wider kernel, wider edge


def test_blur_treats_the_crop_border_as_background() -> None:
    full = np.ones((64, 64), np.float32)
    out = mo.blur(full, "normalized", 10.0, 2)
    assert out[0, 0] < 0.5 and out[32, 32] == pytest.approx(1.0)


def test_threshold() -> None:
    m = np.linspace(0, 1, 101, dtype=np.float32).reshape(1, -1)
    out = mo.threshold(m, 0.1)
    assert (out[m < 0.1] == 0).all() and (out[m > 0.9] == 1).all()
    mid = (m >= 0.1) & (m <= 0.9)
    np.testing.assert_array_equal(out[mid], m[mid])
    with pytest.raises(ValueError):
        mo.threshold(m, 0.5)


def test_apply_runs_in_order_keeps_shape_and_input() -> None:
    learned = ellipse(rx=45, ry=55, feather=5.0)[..., None]  # h×w×1 keeps its axis
    landmark = ellipse(rx=38, ry=60)[..., None]
    before = learned.copy()
    cfg = mo.MaskOpsConfig(erode=3.0, erode_bottom=5.0, blur_kernel=4.0, threshold=0.05)
    out = mo.apply([learned, landmark], cfg)
    np.testing.assert_array_equal(learned, before)
    assert out.shape == learned.shape and out.dtype == np.float32
    ref = mo.combine([learned, landmark], "multiply")
    ref = mo.threshold(mo.blur(mo.erode_sides(mo.erode(ref, 3.0), bottom=5.0), "normalized",
                               4.0, 4), 0.05)
    np.testing.assert_array_equal(out, ref)
    vals = out[(out > 0) & (out < 1)]
    assert vals.min() >= 0.05 and vals.max() <= 0.95


def test_defaults_only_blur_and_threshold() -> None:
    m = ellipse()
    out = mo.apply(m)
    np.testing.assert_array_equal(out, mo.threshold(mo.blur(m), 0.04))


def test_config_validation() -> None:
    with pytest.raises(ConfigError):
        mo.MaskOpsConfig(erode=80.0)
    with pytest.raises(ConfigError):
        mo.MaskOpsConfig(combine="xor")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="float32"):
        mo.erode(np.ones((4, 4)), 1.0)


@pytest.mark.parametrize("percent", [3.3, -4.1, 9.0])
def test_erode_equals_brute_force_disc_morphology(rng, percent) -> None:
    """Against a direct min/max over the disc dx² + dy² <= r², zero outside the crop."""
    import cv2

    h, w = 41, 37
    m = cv2.GaussianBlur(rng.uniform(size=(h, w)).astype(np.float32), (0, 0), 2.0)
    m = np.clip((m - m.min()) / (m.max() - m.min()) * 1.4 - 0.2, 0, 1).astype(np.float32)
    r = abs(percent) / 100 * max(h, w)
    ri = int(np.floor(r))
    pad = np.pad(m, ri)
    offsets = [(dy, dx) for dy in range(-ri, ri + 1) for dx in range(-ri, ri + 1)
               if dx * dx + dy * dy <= r * r]
    stack = [pad[ri + dy:ri + dy + h, ri + dx:ri + dx + w] for dy, dx in offsets]
    ref = np.min(stack, axis=0) if percent > 0 else np.max(stack, axis=0)
    np.testing.assert_array_equal(mo.erode(m, percent), ref)


def test_erode_binary_matches_the_distance_transform() -> None:
    import cv2

    m = ellipse(101, 99, rx=33, ry=41)
    r = 7.0 / 100 * 101
    dist = cv2.distanceTransform(np.pad(m.astype(np.uint8), 1), cv2.DIST_L2,
                                 cv2.DIST_MASK_PRECISE)[1:-1, 1:-1]
    np.testing.assert_array_equal(mo.erode(m, 7.0), (dist > r).astype(np.float32))
