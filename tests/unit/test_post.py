"""Post filters: sharpen, blur, motion blur, denoise, bicubic degrade, bit depth, the config."""

from __future__ import annotations

import numpy as np
import pytest

from faceplate.convert import post
from faceplate.core.errors import ConfigError

H, W = 67, 61  # odd, non-square


def high_freq_energy(img: np.ndarray) -> float:
    a = img.astype(np.float64)
    lap = a[:-2, 1:-1] + a[2:, 1:-1] + a[1:-1, :-2] + a[1:-1, 2:] - 4 * a[1:-1, 1:-1]
    return float((lap**2).mean())


@pytest.fixture()
def face(rng: np.random.Generator) -> np.ndarray:
    """A soft, band-limited 'face': smooth random texture with an edge, RGB in ~[0, 1]."""
    import cv2

    noise = rng.uniform(size=(H, W, 3)).astype(np.float32)
    img = cv2.GaussianBlur(noise, (0, 0), 1.5)
    img[:, W // 2:] += 0.3
    return img


@pytest.mark.parametrize("method", ["box", "gaussian", "unsharp"])
def test_sharpen_raises_high_frequency_energy(face, method) -> None:
    before = face.copy()
    out = post.sharpen(face, method, 150.0, 1.5, 0.0)
    np.testing.assert_array_equal(face, before)
    assert out.dtype == np.float32 and out.shape == face.shape
    assert high_freq_energy(out) > 1.5 * high_freq_energy(face)
    assert high_freq_energy(post.sharpen(face, method, 300.0, 1.5, 0.0)) > high_freq_energy(out)
    np.testing.assert_allclose(out.mean(), face.mean(), atol=0.01)
    np.testing.assert_array_equal(post.sharpen(face, "none"), face)


def test_unsharp_threshold_leaves_low_contrast_alone(rng) -> None:
    img = np.full((H, W, 3), 0.5, np.float32)
    img += rng.uniform(-1, 1, size=img.shape).astype(np.float32) * (2.0 / 255)  # faint grain
    img[:, W // 2:] += 0.4  # one strong edge
    out = post.sharpen(img, "unsharp", 150.0, 2.0, 5.0)
    flat = np.zeros((H, W), bool)
    flat[:, :W // 2 - 8] = True
    np.testing.assert_array_equal(out[flat], img[flat])  # grain below 5/255: untouched
    edge = slice(W // 2 - 2, W // 2 + 2)
    assert np.abs(out[:, edge] - img[:, edge]).max() > 0.05  # the edge is sharpened
    grainy = post.sharpen(img, "unsharp", 150.0, 2.0, 0.0)
    assert np.abs(grainy[flat] - img[flat]).max() > 0.001  # no threshold: grain sharpened too


def test_blur_lowers_high_frequency_energy(face) -> None:
    out = post.gaussian_blur(face, 2.0)
    assert high_freq_energy(out) < 0.5 * high_freq_energy(face)
    np.testing.assert_array_equal(post.gaussian_blur(face, 0.0), face)


def _moments(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centroid and 2×2 covariance of a non-negative single-channel image, (x, y)."""
    w = img.astype(np.float64)
    yy, xx = np.mgrid[:w.shape[0], :w.shape[1]]
    total = w.sum()
    c = np.array([(w * xx).sum(), (w * yy).sum()]) / total
    dx, dy = xx - c[0], yy - c[1]
    cov = np.array([[(w * dx * dx).sum(), (w * dx * dy).sum()],
                    [(w * dx * dy).sum(), (w * dy * dy).sum()]]) / total
    return c, cov


@pytest.mark.parametrize("velocity", [(12.0, 0.0), (0.0, -9.0), (10.0, 6.0), (-7.0, 11.0)])
def test_motion_blur_spreads_along_the_velocity_only(velocity) -> None:
    img = np.zeros((H, W, 3), np.float32)
    img[H // 2, W // 2] = 1.0  # an impulse: the output is the kernel
    out = post.motion_blur(img, velocity, 1.0)[..., 0]
    centre, cov = _moments(out)
    np.testing.assert_allclose(centre, (W // 2, H // 2), atol=0.05)  # centred: no shift
    u = np.array(velocity) / np.hypot(*velocity)
    n = np.array([-u[1], u[0]])
    along, across = u @ cov @ u, n @ cov @ n
    length = np.hypot(*velocity)
    assert along == pytest.approx(length**2 / 12, rel=0.25)  # a uniform segment
    assert across < 0.35
    assert out.sum() == pytest.approx(1.0, abs=1e-5)
    # Half the strength, half the length.
    _, cov_half = _moments(post.motion_blur(img, velocity, 0.5)[..., 0])
    assert u @ cov_half @ u == pytest.approx(along / 4, rel=0.3)


def test_motion_blur_no_motion_is_identity(face) -> None:
    np.testing.assert_array_equal(post.motion_blur(face, (0.2, 0.3), 1.0), face)
    assert post.motion_kernel((0.0, 0.0)) is None


@pytest.mark.parametrize("bits", [1, 2, 5, 8])
def test_quantize_to_two_to_the_bits_levels(rng, bits) -> None:
    img = rng.uniform(size=(H, W, 3)).astype(np.float32)
    out = post.quantize(img, bits)
    levels = np.unique(out)
    assert levels.size <= 2**bits
    assert levels.size == 2**bits or bits == 8 and levels.size > 200
    step = 1.0 / (2**bits - 1)
    np.testing.assert_allclose(levels / step, np.round(levels / step), atol=1e-4)
    assert np.abs(out - img).max() <= step / 2 + 1e-6


def test_quantize_keeps_scene_linear_values() -> None:
    img = np.array([[[-0.1, 4.0, 0.5]]], np.float32)
    out = post.quantize(img, 4)
    assert out[0, 0, 0] < 0 and out[0, 0, 1] == pytest.approx(4.0)


def test_bicubic_degrade_loses_detail(face) -> None:
    out = post.bicubic_degrade(face, 0.5)
    assert out.shape == face.shape
    assert high_freq_energy(out) < 0.6 * high_freq_energy(face)
    np.testing.assert_array_equal(post.bicubic_degrade(face, 0.0), face)
    with pytest.raises(ValueError):
        post.bicubic_degrade(face, 1.0)


def test_denoise_smooths_noise_and_keeps_edges(rng) -> None:
    clean = np.full((H, W, 3), 0.3, np.float32)
    clean[:, W // 2:] = 0.8
    noisy = clean + rng.normal(0, 0.02, size=clean.shape).astype(np.float32)
    out = post.denoise(noisy, 1.0)
    flat = (slice(5, -5), slice(5, W // 2 - 6))
    assert out[flat].std() < 0.6 * noisy[flat].std()
    step = out[:, W // 2 + 3:].mean() - out[:, :W // 2 - 3].mean()
    assert step == pytest.approx(0.5, abs=0.03)
    gray = post.denoise(noisy[..., :1].copy(), 1.0)
    assert gray.shape == (H, W, 1)


def test_alpha_passes_through(face, rng) -> None:
    rgba = np.concatenate([face, rng.uniform(size=(H, W, 1)).astype(np.float32)], axis=2)
    cfg = post.PostConfig(blur=0.5, sharpen="unsharp", motion_blur=1.0, denoise=0.5,
                          bicubic=0.3, color_bits=6)
    out = post.apply(rgba, cfg, velocity_px=(5.0, 2.0))
    assert out.shape == rgba.shape
    np.testing.assert_array_equal(out[..., 3], rgba[..., 3])
    np.testing.assert_array_equal(out[..., :3], post.apply(face, cfg, velocity_px=(5.0, 2.0)))


def test_apply_order_and_defaults(face) -> None:
    before = face.copy()
    out = post.apply(face)
    np.testing.assert_array_equal(out, face)
    assert out is not face
    cfg = post.PostConfig(blur=0.5, sharpen="gaussian", motion_blur=0.5, denoise=0.3,
                          bicubic=0.2, color_bits=8)
    ref = post.quantize(post.bicubic_degrade(post.denoise(post.motion_blur(
        post.sharpen(post.gaussian_blur(face, 0.5), "gaussian", 150.0, 0.3, 5.0),
        (8.0, 0.0), 0.5), 0.3), 0.2), 8)
    np.testing.assert_array_equal(post.apply(face, cfg, velocity_px=(8.0, 0.0)), ref)
    np.testing.assert_array_equal(face, before)


def test_config_and_input_validation(face) -> None:
    with pytest.raises(ConfigError):
        post.PostConfig(sharpen="laplace")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        post.PostConfig(color_bits=17)
    with pytest.raises(ValueError, match="float32"):
        post.sharpen(face.astype(np.float64))
    with pytest.raises(ValueError):
        post.quantize(face, 0)
