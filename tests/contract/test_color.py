"""Contract tests for every entry of the COLOR registry (colour transfer), and the L*a*b* helpers.

Statistics, not pixels (the scikit-image way): each method declares in :data:`EXPECT` which
statistics of the masked output must match the masked target, and how closely, on two inputs:

* ``synthetic``: 101×99 crops whose masked pixels are correlated Gaussian colour clouds (different
  means and covariances for face and target) and whose unmasked pixels are uniform noise, so a
  method that ignores the mask fails;
* ``real``: Biden's face (the "prediction") onto Obama's (the "plate"), 128 px aligned crops cut
  with dlib HOG + 68 points and ``crop_matrix``, masks from the ``components`` masker. Real
  faces clip at 0 and 1 and are 8-bit quantised, so the tolerances are looser there.

Measures: ``mean`` = max over R, G, B of |masked output mean − masked target mean| (sRGB 0..1);
``cov`` = ‖Σ_out − Σ_target‖_F / ‖Σ_target‖_F (RGB); ``ks`` = max over channels of the
two-sample Kolmogorov–Smirnov distance between masked output and masked target; ``lab_mean`` /
``lab_std`` = max |difference| of the per-channel L*a*b* mean / standard deviation (L*a*b* units).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import cv2
import numpy as np
import pytest

from faceplate.convert.color import COLOR, ColorTransfer
from faceplate.convert.color.base import MIN_PIXELS
from faceplate.core.colorspace import lab_to_srgb, srgb_to_lab
from faceplate.core.config import params
from faceplate.core.errors import ConfigError
from faceplate.core.geometry import crop_matrix
from faceplate.extract.crops import warp_to_crop
from faceplate.extract.identity import DlibLandmarker, load_rgb
from faceplate.extract.mask import MASKERS
from faceplate.io import samples

NAMES = COLOR.names()
H, W = 101, 99  # odd and different: catches H/W swaps


@dataclass(frozen=True)
class Expect:
    """Bounds on the masked output's statistics against the masked target (None = unchecked)."""

    mean: float | None = None
    cov: float | None = None
    ks: float | None = None
    lab_mean: float | None = None
    lab_std: float | None = None


# Every registry entry must have both rows (test_every_method_has_test_parameters).
EXPECT: dict[str, dict[str, Expect]] = {
    "none": {"synthetic": Expect(), "real": Expect()},  # checked separately: identity
    "avg-color": {"synthetic": Expect(mean=1e-4), "real": Expect(mean=0.005)},
    "rct": {"synthetic": Expect(lab_mean=0.2, lab_std=0.3),
            "real": Expect(lab_mean=0.5, lab_std=0.75)},
    "lct": {"synthetic": Expect(mean=1e-4, cov=2e-3), "real": Expect(mean=0.005, cov=0.1)},
    "mkl": {"synthetic": Expect(mean=1e-4, cov=2e-3), "real": Expect(mean=0.005, cov=0.1)},
    # threshold 0.99 looks the face's CDF up at 0.99×: the mean moves by up to ~0.01 × range
    "hist-match": {"synthetic": Expect(mean=0.006, ks=0.02),
                   "real": Expect(mean=0.01, ks=0.04)},
    "idt": {"synthetic": Expect(mean=0.003, cov=0.03, ks=0.03),
            "real": Expect(mean=0.006, cov=0.03, ks=0.04)},
    "sot": {"synthetic": Expect(mean=0.003, cov=0.03, ks=0.03),
            "real": Expect(mean=0.006, cov=0.05, ks=0.04)},
}


# --- inputs ---------------------------------------------------------------------------------


def ellipse_mask(h: int, w: int, feather: bool = False) -> np.ndarray:
    """H×W float32 mask: 1 inside a centred ellipse (about 55 % of the area), 0 outside."""
    yy, xx = np.mgrid[:h, :w]
    r = ((yy + 0.5 - h / 2) / (0.42 * h)) ** 2 + ((xx + 0.5 - w / 2) / (0.42 * w)) ** 2
    if feather:
        return np.clip((1.2 - r) / 0.4, 0.0, 1.0).astype(np.float32)
    return (r < 1.0).astype(np.float32)


def gaussian_crop(rng: np.random.Generator, mean: list[float], mix: list[list[float]],
                  mask: np.ndarray) -> np.ndarray:
    """H×W×3 float32: a Gaussian colour cloud N(mean, mix·mixᵀ) inside ``mask``, noise outside."""
    h, w = mask.shape
    cloud = rng.standard_normal((h * w, 3)) @ np.asarray(mix).T + np.asarray(mean)
    img = rng.random((h * w, 3))
    inside = mask.ravel() > 0.5
    img[inside] = cloud[inside]
    return np.clip(img, 0.0, 1.0).reshape(h, w, 3).astype(np.float32)


@pytest.fixture(scope="module")
def synthetic() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(face, target, face_mask, target_mask), 101×99; the two masks differ."""
    rng = np.random.default_rng(7)
    fmask = ellipse_mask(H, W)
    tmask = np.roll(fmask, (4, -3), axis=(0, 1))
    face = gaussian_crop(rng, [0.62, 0.45, 0.38],
                         [[0.07, 0.02, 0.0], [0.03, 0.05, 0.01], [0.0, 0.02, 0.045]], fmask)
    target = gaussian_crop(rng, [0.42, 0.50, 0.56],
                           [[0.045, 0.0, 0.01], [0.02, 0.07, 0.0], [0.01, 0.03, 0.06]], tmask)
    return face, target, fmask, tmask


def real_crop(name: str, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(size×size×3 float32 sRGB 0..1 aligned face, size×size float32 components mask)."""
    rgb = load_rgb(samples.path(name))
    faces = DlibLandmarker()(rgb)
    assert faces, name
    lm = max(faces, key=lambda p: float(np.ptp(p[:, 0])))
    m = crop_matrix(lm, size, "face")
    crop = warp_to_crop(rgb, m, size, cv2.INTER_AREA)
    mask = MASKERS.create("components").mask(crop, lm, m)
    return crop.astype(np.float32) / 255.0, mask.astype(np.float32) / 255.0


@pytest.fixture(scope="module")
def real() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(face = Biden, target = Obama, face_mask, target_mask), 128 px aligned crops."""
    face, fmask = real_crop("biden.jpg", 128)
    target, tmask = real_crop("obama.jpg", 128)
    return face, target, fmask, tmask


@pytest.fixture(scope="module")
def methods() -> dict[str, ColorTransfer]:
    return {n: COLOR.create(n) for n in NAMES}


# --- statistics ---------------------------------------------------------------------------------


def ks_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample Kolmogorov–Smirnov distance sup |F_a − F_b| of 1-D samples."""
    a, b = np.sort(a), np.sort(b)
    grid = np.concatenate([a, b])
    fa = np.searchsorted(a, grid, side="right") / len(a)
    fb = np.searchsorted(b, grid, side="right") / len(b)
    return float(np.abs(fa - fb).max())


def measure(out: np.ndarray, target: np.ndarray, fmask: np.ndarray, tmask: np.ndarray
            ) -> dict[str, float]:
    o = out[fmask > 0.5].astype(np.float64)
    t = target[tmask > 0.5].astype(np.float64)
    cov_o, cov_t = np.cov(o.T, bias=True), np.cov(t.T, bias=True)
    lab_o = srgb_to_lab(o.astype(np.float32)).astype(np.float64)
    lab_t = srgb_to_lab(t.astype(np.float32)).astype(np.float64)
    return {
        "mean": float(np.abs(o.mean(0) - t.mean(0)).max()),
        "cov": float(np.linalg.norm(cov_o - cov_t) / np.linalg.norm(cov_t)),
        "ks": max(ks_distance(o[:, c], t[:, c]) for c in range(3)),
        "lab_mean": float(np.abs(lab_o.mean(0) - lab_t.mean(0)).max()),
        "lab_std": float(np.abs(lab_o.std(0) - lab_t.std(0)).max()),
    }


# --- the contract -------------------------------------------------------------------------------


def test_registry_lists_all_methods() -> None:
    assert set(NAMES) == {"none", "avg-color", "rct", "lct", "mkl", "hist-match", "idt", "sot"}
    for entry in COLOR:
        cfg = entry.config()  # valid defaults
        assert dataclasses.is_dataclass(cfg)
        assert any(p.name == "strength" for p in params(entry.config))
        assert entry.summary, f"{entry.name} has no one-line docstring"


def test_every_method_has_test_parameters() -> None:
    """A new registry entry must declare what it matches (albumentations' check_all_augs_exists)."""
    missing = set(NAMES) - set(EXPECT)
    assert not missing, f"add EXPECT rows for: {sorted(missing)}"
    assert set(EXPECT) <= set(NAMES), f"stale EXPECT rows: {sorted(set(EXPECT) - set(NAMES))}"
    for name, rows in EXPECT.items():
        assert set(rows) == {"synthetic", "real"}, name


@pytest.mark.parametrize("case", ["synthetic", "real"])
@pytest.mark.parametrize("name", [n for n in NAMES if n != "none"])
def test_matches_target_statistics(name: str, case: str, methods, request) -> None:
    face, target, fmask, tmask = request.getfixturevalue(case)
    out = methods[name].apply(face, target, fmask, tmask)
    got = measure(out, target, fmask, tmask)
    before = measure(face, target, fmask, tmask)
    expect = EXPECT[name][case]
    checked = {k: v for k, v in dataclasses.asdict(expect).items() if v is not None}
    assert checked, f"{name}: no statistic checked for {case}"
    for key, bound in checked.items():
        assert got[key] <= bound, f"{name} {case}: {key} {got[key]:.5f} > {bound} ({got})"
        assert got[key] < before[key], f"{name} {case}: {key} did not improve"


@pytest.mark.parametrize("case", ["synthetic", "real"])
def test_none_is_identity(case: str, methods, request) -> None:
    face, target, fmask, tmask = request.getfixturevalue(case)
    np.testing.assert_array_equal(methods["none"].apply(face, target, fmask, tmask), face)


@pytest.mark.parametrize("name", NAMES)
def test_inputs_untouched_dtype_shape_range(name: str, synthetic, methods) -> None:
    face, target, fmask, tmask = synthetic
    copies = [a.copy() for a in synthetic]
    out = methods[name].apply(face, target, fmask, tmask)
    for a, c in zip(synthetic, copies, strict=True):
        np.testing.assert_array_equal(a, c)
    assert out.dtype == np.float32 and out.shape == (H, W, 3)
    assert np.isfinite(out).all() and out.min() >= 0.0 and out.max() <= 1.0
    assert not np.shares_memory(out, face)


@pytest.mark.parametrize("name", NAMES)
def test_non_contiguous_inputs(name: str, synthetic, methods) -> None:
    """Views (a flipped crop, a crop cut from a bigger array) give the contiguous result."""
    face, target, fmask, tmask = synthetic
    big = np.zeros((H + 6, W + 8, 3), np.float32)
    big[3:-3, 4:-4] = target
    ref = methods[name].apply(face[:, ::-1].copy(), target, fmask[:, ::-1].copy(), tmask)
    out = methods[name].apply(face[:, ::-1], big[3:-3, 4:-4], fmask[:, ::-1], tmask)
    np.testing.assert_array_equal(out, ref)


@pytest.mark.parametrize("name", NAMES)
def test_output_clipped_for_extreme_target(name: str, synthetic, methods) -> None:
    """A saturated, high-contrast plate pushes the transfer outside [0, 1]: the base class clips."""
    face, _, fmask, _ = synthetic
    rng = np.random.default_rng(3)
    target = (rng.random((H, W, 3)) > 0.5).astype(np.float32)
    out = methods[name].apply(face, target, fmask)
    assert out.dtype == np.float32 and np.isfinite(out).all()
    assert out.min() >= 0.0 and out.max() <= 1.0


@pytest.mark.parametrize("name", NAMES)
def test_strength(name: str, synthetic) -> None:
    face, target, fmask, tmask = synthetic
    cls = COLOR.config_class(name)
    zero = COLOR.create(name, cls(strength=0.0)).apply(face, target, fmask, tmask)
    np.testing.assert_array_equal(zero, face)
    full = COLOR.create(name, cls(strength=1.0)).apply(face, target, fmask, tmask)
    half = COLOR.create(name, cls(strength=0.5)).apply(face, target, fmask, tmask)
    np.testing.assert_allclose(half, 0.5 * (face + full), atol=1e-6)
    lo, hi = np.minimum(face, full), np.maximum(face, full)
    assert np.all(half >= lo - 1e-6) and np.all(half <= hi + 1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_target_pixels_outside_the_mask_are_ignored(name: str, synthetic, methods) -> None:
    face, target, fmask, tmask = synthetic
    other = target.copy()
    outside = tmask <= 0.5
    other[outside] = np.random.default_rng(11).random((int(outside.sum()), 3), dtype=np.float32)
    a = methods[name].apply(face, target, fmask, tmask)
    b = methods[name].apply(face, other, fmask, tmask)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", NAMES)
def test_mask_threshold_and_defaults(name: str, synthetic, methods) -> None:
    """A feathered mask counts pixels above 0.5; a missing mask takes the other one; H×W×1 works."""
    face, target, _, _ = synthetic
    soft = ellipse_mask(H, W, feather=True)
    hard = (soft > 0.5).astype(np.float32)
    m = methods[name]
    ref = m.apply(face, target, hard, hard)
    np.testing.assert_array_equal(m.apply(face, target, soft, soft), ref)
    np.testing.assert_array_equal(m.apply(face, target, hard), ref)
    np.testing.assert_array_equal(m.apply(face, target, None, hard[..., None]), ref)


@pytest.mark.parametrize("name", NAMES)
def test_empty_mask_returns_face(name: str, synthetic, methods) -> None:
    face, target, fmask, tmask = synthetic
    empty = np.zeros((H, W), np.float32)
    few = np.zeros((H, W), np.float32)
    few.flat[: MIN_PIXELS - 1] = 1.0
    for fm, tm in ((empty, tmask), (fmask, empty), (empty, empty), (few, tmask)):
        out = methods[name].apply(face, target, fm, tm)
        assert np.isfinite(out).all()
        np.testing.assert_array_equal(out, face)


@pytest.mark.parametrize("name", NAMES)
def test_deterministic(name: str, synthetic) -> None:
    face, target, fmask, tmask = synthetic
    a = COLOR.create(name).apply(face, target, fmask, tmask)
    b = COLOR.create(name).apply(face, target, fmask, tmask)
    np.testing.assert_array_equal(a, b)
    cls = COLOR.config_class(name)
    if any(p.name == "seed" for p in params(cls)):
        c = COLOR.create(name, cls(seed=1)).apply(face, target, fmask, tmask)
        assert not np.array_equal(a, c), f"{name}: the seed changes nothing"


@pytest.mark.parametrize("name", NAMES)
def test_bad_input(name: str, synthetic, methods) -> None:
    face, target, fmask, _ = synthetic
    m = methods[name]
    with pytest.raises(ValueError, match="face"):
        m.apply((face * 255).astype(np.uint8), target)
    with pytest.raises(ValueError, match="target"):
        m.apply(face, target[:-1])
    with pytest.raises(ValueError, match="face_mask"):
        m.apply(face, target, fmask.T)
    with pytest.raises(ValueError, match="target_mask"):
        m.apply(face, target, None, (fmask > 0.5))
    bad = face.copy()
    bad[3, 4, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        m.apply(bad, target)
    with pytest.raises(ConfigError):
        COLOR.config_class(name)(strength=1.5)


# --- method-specific properties -----------------------------------------------------------------


def test_lct_cholesky_mode_matches_covariance(synthetic) -> None:
    face, target, fmask, tmask = synthetic
    cfg = COLOR.config_class("lct")(mode="chol")
    out = COLOR.create("lct", cfg).apply(face, target, fmask, tmask)
    got = measure(out, target, fmask, tmask)
    assert got["mean"] <= 1e-4 and got["cov"] <= 2e-3, got


def test_mkl_moves_colours_least(synthetic) -> None:
    """Among maps that reach the same mean and covariance, the Monge–Kantorovich one minimises the
    mean squared colour displacement (exact for the empirical covariances)."""
    face, target, fmask, tmask = synthetic
    sel = fmask > 0.5

    def cost(name: str, **kw: object) -> float:
        cfg = COLOR.config_class(name)(**kw)
        out = COLOR.create(name, cfg).apply(face, target, fmask, tmask)
        return float(np.mean(np.sum((out[sel] - face[sel]).astype(np.float64) ** 2, axis=1)))

    mkl = cost("mkl")
    assert mkl <= cost("lct", mode="pca") + 1e-6
    assert mkl <= cost("lct", mode="chol") + 1e-6


def test_hist_match_threshold_one_is_exact_on_quantised_data(real) -> None:
    face, target, fmask, tmask = real
    cfg = COLOR.config_class("hist-match")(threshold=1.0)
    out = COLOR.create("hist-match", cfg).apply(face, target, fmask, tmask)
    got = measure(out, target, fmask, tmask)
    assert got["ks"] <= 0.03 and got["mean"] <= 0.003, got


def test_iterations_improve_idt_and_sot(real) -> None:
    face, target, fmask, tmask = real
    for name in ("idt", "sot"):
        cls = COLOR.config_class(name)
        one = COLOR.create(name, cls(iterations=1)).apply(face, target, fmask, tmask)
        many = COLOR.create(name).apply(face, target, fmask, tmask)
        err_many = measure(many, target, fmask, tmask)["cov"]
        assert err_many < measure(one, target, fmask, tmask)["cov"], name


# --- L*a*b* -------------------------------------------------------------------------------------


def test_lab_reference_values() -> None:
    rgb = np.array([[[1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]],
                   np.float32)
    # CIE L*a*b* (D65) of sRGB white, black, red and blue
    ref = np.array([[[100.0, 0.0, 0.0], [0.0, 0.0, 0.0], [53.24, 80.09, 67.20],
                     [32.30, 79.19, -107.86]]])
    np.testing.assert_allclose(srgb_to_lab(rgb), ref, atol=0.02)


def test_lab_matches_opencv_and_round_trips() -> None:
    rgb = np.random.default_rng(5).random((H, W, 3), dtype=np.float32)
    lab = srgb_to_lab(rgb)
    assert lab.dtype == np.float32 and lab.shape == (H, W, 3)
    np.testing.assert_allclose(lab, cv2.cvtColor(rgb, cv2.COLOR_RGB2Lab), atol=1.0)
    np.testing.assert_allclose(lab_to_srgb(lab), rgb, atol=1e-4)
    wide = np.random.default_rng(6).normal(0.5, 1.0, (17, 13, 3)).astype(np.float32)
    back = lab_to_srgb(srgb_to_lab(wide))
    assert np.isfinite(back).all()
    np.testing.assert_allclose(back, wide, atol=1e-3)
