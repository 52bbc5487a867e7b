"""Contract tests for every entry of the BLEND registry, on box-sized arrays.

The plate is EXR-like: scene-linear values with 4.0 highlights and −0.1 blacks, an odd box
(37×41) to catch H/W swaps. The acceptance of issue #4: every blend leaves the plate bit-exact
wherever the mask is 0.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from faceplate.convert.blend import BLEND, Blender, match_histograms, poisson_solve
from faceplate.core.config import Config
from faceplate.core.errors import ConfigError

NAMES = BLEND.names()
H, W = 37, 41


def _bits(a: np.ndarray) -> np.ndarray:
    """The raw float32 bits, so −0.0 vs 0.0 and every last ulp count."""
    return np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)


def _plate(rng: np.random.Generator, h: int = H, w: int = W) -> np.ndarray:
    p = rng.uniform(-0.1, 1.0, size=(h, w, 3)).astype(np.float32)
    p[rng.random((h, w)) < 0.1] = 4.0   # specular highlights
    p[rng.random((h, w)) < 0.1] = -0.1  # crushed blacks below 0
    p[0, 0] = -0.0
    return p


def _soft_disc(h: int, w: int, cx: float, cy: float, r: float, feather: float) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    d = np.hypot(xx + 0.5 - cx, yy + 0.5 - cy)
    return np.clip((r - d) / feather, 0.0, 1.0).astype(np.float32)


@pytest.fixture()
def arrays(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    plate = _plate(rng)
    face = rng.uniform(0.0, 1.0, size=(H, W, 3)).astype(np.float32)
    mask = _soft_disc(H, W, 20.0, 17.0, 14.0, 5.0)
    mask[15:18, 18:22] = 0.0  # a hole inside the matte (an occluder)
    return plate, face, mask


@pytest.fixture(params=NAMES)
def blender(request: pytest.FixtureRequest) -> Blender:
    return BLEND.create(request.param)


def test_registry_lists_the_issue_modes() -> None:
    assert {"overlay", "seamless", "seamless-hist", "raw"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_config_is_frozen_and_validated(name: str) -> None:
    entry = BLEND.entry(name)
    cfg = entry.config()
    assert isinstance(cfg, Config)
    assert dataclasses.is_dataclass(cfg)
    fields = dataclasses.fields(cfg)
    if fields:
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(cfg, fields[0].name, getattr(cfg, fields[0].name))
    assert entry.summary, "the plugin's docstring gives the registry a summary"


def test_bad_config_is_rejected() -> None:
    with pytest.raises(ConfigError):
        BLEND.config_class("seamless-hist")(strength=1.5)
    with pytest.raises(ConfigError):
        BLEND.create("seamless", BLEND.default_config("overlay"))


def test_bit_exact_where_mask_is_zero(blender: Blender, arrays) -> None:
    plate, face, mask = arrays
    out = blender.blend(plate, face, mask)
    assert out.dtype == np.float32 and out.shape == plate.shape
    zero = mask == 0.0
    assert zero.sum() > 100 and (~zero).sum() > 100
    np.testing.assert_array_equal(_bits(out)[zero], _bits(plate)[zero])
    assert np.isfinite(out).all()
    assert not np.array_equal(out[mask > 0.5], plate[mask > 0.5]), "the face must show"


def test_inputs_untouched_and_result_is_new(blender: Blender, arrays) -> None:
    plate, face, mask = arrays
    copies = [a.copy() for a in arrays]
    out = blender.blend(plate, face, mask)
    for a, c in zip(arrays, copies):
        np.testing.assert_array_equal(_bits(a), _bits(c))
    assert not np.shares_memory(out, plate) and not np.shares_memory(out, face)


def test_empty_mask_returns_the_plate(blender: Blender, arrays) -> None:
    plate, face, _ = arrays
    out = blender.blend(plate, face, np.zeros((H, W), np.float32))
    np.testing.assert_array_equal(_bits(out), _bits(plate))


@pytest.mark.parametrize("shape", [(1, 1), (2, 7), (9, 1), (64, 33)])
def test_odd_sizes_and_mask_with_channel_axis(blender: Blender, rng, shape) -> None:
    h, w = shape
    plate = _plate(rng, h, w)
    face = rng.uniform(size=(h, w, 3)).astype(np.float32)
    mask = rng.uniform(size=(h, w, 1)).astype(np.float32)
    mask[mask < 0.3] = 0.0
    out = blender.blend(plate, face, mask)
    assert out.shape == (h, w, 3)
    zero = mask[..., 0] == 0.0
    np.testing.assert_array_equal(_bits(out)[zero], _bits(plate)[zero])


@pytest.mark.parametrize("channels", [1, 4])
def test_other_channel_counts(blender: Blender, rng, channels) -> None:
    plate = rng.uniform(-0.1, 4.0, size=(H, W, channels)).astype(np.float32)
    face = rng.uniform(size=(H, W, channels)).astype(np.float32)
    mask = _soft_disc(H, W, 20.0, 17.0, 14.0, 5.0)
    out = blender.blend(plate, face, mask)
    assert out.shape == plate.shape
    np.testing.assert_array_equal(_bits(out)[mask == 0], _bits(plate)[mask == 0])


def test_rejects_bad_inputs(blender: Blender, arrays) -> None:
    plate, face, mask = arrays
    with pytest.raises(ValueError, match="mask"):
        blender.blend(plate, face, mask * 2.0)
    with pytest.raises(ValueError, match="mask"):
        blender.blend(plate, face, np.where(mask > 0, np.nan, 0).astype(np.float32))
    with pytest.raises(ValueError, match="mask"):
        blender.blend(plate, face, mask.T.copy())
    with pytest.raises(ValueError, match="face"):
        blender.blend(plate, face[:, :-1], mask)
    with pytest.raises(ValueError, match="plate"):
        blender.blend(plate.astype(np.float64), face, mask)


def test_overlay_is_alpha_over(arrays) -> None:
    plate, face, mask = arrays
    ov = BLEND.create("overlay")
    ones = np.ones((H, W), np.float32)
    np.testing.assert_array_equal(_bits(ov.blend(plate, face, ones)), _bits(face))
    half = np.full((H, W), 0.5, np.float32)
    np.testing.assert_allclose(ov.blend(plate, face, half), (plate + face) / 2, atol=1e-6)
    ref = face * mask[..., None] + plate * (1 - mask[..., None])
    np.testing.assert_allclose(ov.blend(plate, face, mask), ref, atol=1e-6)


@pytest.mark.parametrize("channels", [1, 3, 4, 5])
def test_overlay_is_numpys_float32_formula_bit_for_bit(rng, channels) -> None:
    """OpenCV's passes (up to 4 channels) and NumPy (more) give the same bits."""
    plate = rng.uniform(-0.1, 4.0, size=(23, 31, channels)).astype(np.float32)
    face = rng.uniform(0.0, 1.0, size=(23, 31, channels)).astype(np.float32)
    mask = rng.random((23, 31)).astype(np.float32)
    mask[:5] = 0.0
    mask[5:9] = 1.0
    m = mask[..., None]
    ref = face * m + plate * (np.float32(1.0) - m)
    got = BLEND.create("overlay").blend(plate, face, mask)
    assert got.shape == plate.shape
    np.testing.assert_array_equal(_bits(got), _bits(ref))


def test_raw_is_the_face_inside_the_matte(arrays) -> None:
    plate, face, mask = arrays
    raw = BLEND.create("raw")
    out = raw.blend(plate, face, mask)
    inside = mask > 0
    np.testing.assert_array_equal(out[inside], face[inside])
    assert type(raw).default_alpha == "mask"


def _laplacian(a: np.ndarray) -> np.ndarray:
    """4-neighbour Laplacian of the interior pixels (float64), shape (h-2)×(w-2)×C."""
    a = a.astype(np.float64)
    return (a[:-2, 1:-1] + a[2:, 1:-1] + a[1:-1, :-2] + a[1:-1, 2:] - 4 * a[1:-1, 1:-1])


@pytest.mark.parametrize("feather", [True, False])
def test_seamless_keeps_face_laplacian_inside_the_mask(rng, feather) -> None:
    h, w = 45, 52
    plate = _plate(rng, h, w)
    face = (rng.uniform(size=(h, w, 3)) * 3.0 - 0.5).astype(np.float32)
    mask = (_soft_disc(h, w, 26.0, 22.0, 17.0, 0.01) > 0).astype(np.float32)
    cfg = BLEND.config_class("seamless")(feather=feather)
    out = BLEND.create("seamless", cfg).blend(plate, face, mask)
    inner = mask[1:-1, 1:-1] > 0
    err = np.abs(_laplacian(out) - _laplacian(face))[inner]
    assert err.max() < 2e-4  # float32 rounding of values up to ~4
    # Outside the mask the plate is untouched: the Laplacian differs there.
    assert np.abs(_laplacian(out) - _laplacian(face))[~inner].mean() > 0.1


def test_seamless_removes_the_offset_and_matches_the_plate_at_the_boundary(rng) -> None:
    h, w = 48, 45
    yy, xx = np.mgrid[:h, :w].astype(np.float32)
    plate = np.stack([0.02 * xx + 0.5, 0.05 * yy - 0.1, 4.0 - 0.03 * xx], axis=2)
    texture = rng.normal(0, 0.2, size=(h, w, 3)).astype(np.float32)
    window = _soft_disc(h, w, 22.0, 24.0, 12.0, 3.0)[..., None]  # zero near the mask edge
    face = (plate + 0.7 + texture * window).astype(np.float32)
    mask = (_soft_disc(h, w, 22.0, 24.0, 19.0, 0.01) > 0).astype(np.float32)
    out = BLEND.create("seamless").blend(plate, face, mask)
    inside = mask > 0
    # The exact solution is the plate plus the face's texture: the +0.7 offset is gone.
    np.testing.assert_allclose(out[inside], (plate + texture * window)[inside], atol=2e-4)
    # On the ring just inside the boundary the result meets the plate.
    ring = inside & ~(_soft_disc(h, w, 22.0, 24.0, 17.0, 0.01) > 0)
    assert np.abs(out[ring] - plate[ring]).max() < 1e-3
    assert np.abs(face[ring] - plate[ring]).min() > 0.69


def test_poisson_without_plate_boundary_keeps_the_face(rng) -> None:
    plate = _plate(rng, 12, 13)
    face = rng.uniform(size=(12, 13, 3)).astype(np.float32)
    out = poisson_solve(plate, face, np.ones((12, 13), bool))
    np.testing.assert_allclose(out, face, atol=1e-5)


def test_match_histograms_matches_the_reference_cdf(rng) -> None:
    h, w = 60, 70
    region = _soft_disc(h, w, 35, 30, 25, 0.01) > 0
    src = rng.gamma(2.0, 0.3, size=(h, w, 3)).astype(np.float32)
    ref = rng.normal(1.5, 1.2, size=(h, w, 3)).astype(np.float32)  # scene-linear, < 0 and > 1
    out = match_histograms(src, ref, region)
    for c in range(3):
        qs = np.linspace(0.02, 0.98, 25)
        np.testing.assert_allclose(np.quantile(out[..., c][region], qs),
                                   np.quantile(ref[..., c][region], qs), atol=0.03)
    np.testing.assert_array_equal(match_histograms(src, ref, region, 0.0), src)


def test_seamless_hist_takes_the_plate_contrast_seamless_keeps_the_face(rng) -> None:
    h, w = 50, 50
    plate = (0.5 + rng.normal(0, 0.05, size=(h, w, 3))).astype(np.float32)
    face = (0.5 + rng.normal(0, 0.3, size=(h, w, 3))).astype(np.float32)
    mask = _soft_disc(h, w, 25, 25, 20, 4.0)
    core = mask >= 1.0
    plain = BLEND.create("seamless").blend(plate, face, mask)
    hist = BLEND.create("seamless-hist").blend(plate, face, mask)
    assert plain[core].std() > 0.2
    assert hist[core].std() < 0.08
