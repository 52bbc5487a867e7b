"""Contract tests over every registered loss, plus SSIM/MS-SSIM/FFL properties and the composite."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn import functional as F  # noqa: N812  (the PyTorch convention)

from faceplate.core.errors import ConfigError
from faceplate.train.data import Batch
from faceplate.train.losses import (
    LOSSES,
    CompositeLoss,
    FFLConfig,
    LossSpec,
    MaskLossConfig,
    SSIMConfig,
    dssim_kernel_sizes,
    gaussian_window,
    ms_ssim_scales,
    parse_losses,
    ssim_maps,
)

NAMES = LOSSES.names()


def _images(seed: int, n: int = 2, c: int = 3, h: int = 48, w: int = 40) -> torch.Tensor:
    """Smooth random images in [0, 1] (low-passed noise, like faces more than white noise)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, c, h // 4 + 1, w // 4 + 1, generator=g)
    x = F.interpolate(x, size=(h, w), mode="bicubic", align_corners=False)
    return x.clamp(0.0, 1.0)


def _noise(seed: int, like: torch.Tensor) -> torch.Tensor:
    return torch.randn(like.shape, generator=torch.Generator().manual_seed(seed))


def _pair(name: str, seed: int = 0, h: int = 48, w: int = 40) -> tuple[torch.Tensor, torch.Tensor]:
    c = 1 if name == "mask" else 3
    t = _images(seed, c=c, h=h, w=w)
    p = (t + 0.1 * _noise(seed + 100, t)).clamp(0.0, 1.0)
    return p, t


@pytest.fixture(params=NAMES)
def loss(request: pytest.FixtureRequest) -> torch.nn.Module:
    return LOSSES.create(request.param)


def test_registry_has_the_planned_losses() -> None:
    assert {"ssim", "ms_ssim", "l1", "l2", "ffl", "mask"} <= set(NAMES)
    for entry in LOSSES:
        assert entry.summary, entry.name


def test_scalar_finite_float32_positive(loss: torch.nn.Module) -> None:
    p, t = _pair(loss.registry_name)
    v = loss(p, t)
    assert v.shape == () and v.dtype == torch.float32
    assert torch.isfinite(v) and v.item() > 1e-4


def test_zero_for_identical(loss: torch.nn.Module) -> None:
    _, t = _pair(loss.registry_name)
    assert abs(loss(t, t.clone()).item()) < 1e-5


def test_symmetric(loss: torch.nn.Module) -> None:
    p, t = _pair(loss.registry_name)
    assert loss(p, t).item() == pytest.approx(loss(t, p).item(), rel=1e-4, abs=1e-7)


def test_gradient_reaches_pred_with_and_without_weight(loss: torch.nn.Module) -> None:
    p, t = _pair(loss.registry_name)
    g = torch.Generator().manual_seed(3)
    weight = 1.0 + 2.0 * torch.rand(p.shape[0], 1, *p.shape[2:], generator=g)
    for wmap in (None, weight):
        x = p.clone().requires_grad_(True)
        loss(x, t, wmap).backward()
        assert x.grad is not None
        assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_zero_weight_gives_zero_and_scaling_weight_scales(loss: torch.nn.Module) -> None:
    p, t = _pair(loss.registry_name)
    n, _, h, w = p.shape
    zero = torch.zeros(n, 1, h, w)
    x = p.clone().requires_grad_(True)
    v0 = loss(x, t, zero)
    v0.backward()
    assert v0.item() == 0.0
    assert x.grad is not None and torch.isfinite(x.grad).all()
    # a constant weight c multiplies the error, so the loss (c × loss)
    ones = torch.ones(n, 1, h, w)
    assert loss(p, t, 3.0 * ones).item() == pytest.approx(3.0 * loss(p, t).item(), rel=1e-4)
    assert loss(p, t, ones).item() == pytest.approx(loss(p, t).item(), rel=1e-5)


def test_weight_map_focuses_on_a_region(loss: torch.nn.Module) -> None:
    """Differences only outside the weighted region do not count; inside they do."""
    _, t = _pair(loss.registry_name, h=64, w=64)
    n, c, h, w = t.shape
    weight = torch.zeros(n, 1, h, w)
    weight[..., 16:48, 16:48] = 1.0
    outside = t.clone()
    outside[..., :4, :] = 1.0 - outside[..., :4, :]
    inside = t.clone()
    inside[..., 30:34, 16:48] = 1.0 - inside[..., 30:34, 16:48]
    v_out = loss(outside, t, weight).item()
    v_in = loss(inside, t, weight).item()
    assert v_in > 1e-3
    if loss.registry_name == "ms_ssim":
        # the weight applies at window centres; the coarsest scale's windows (11 px at 1/4
        # resolution) reach 20 px beyond the weighted region, so a trace remains
        assert v_out < 0.01 * v_in
    else:
        assert v_out < 1e-7


def test_increases_with_noise_level(loss: torch.nn.Module) -> None:
    _, t = _pair(loss.registry_name)
    noise = _noise(7, t)
    values = [loss(t + s * noise, t).item() for s in (0.01, 0.03, 0.1, 0.3)]
    assert all(a < b for a, b in zip(values, values[1:])), values


def test_black_images_are_finite(loss: torch.nn.Module) -> None:
    """Masked training zeroes large areas: constant-zero inputs must not produce NaN."""
    c = 1 if loss.registry_name == "mask" else 3
    x = torch.zeros(2, c, 32, 32, requires_grad=True)
    v = loss(x, torch.zeros(2, c, 32, 32), torch.zeros(2, 1, 32, 32))
    v.backward()
    assert v.item() == 0.0
    assert x.grad is not None and torch.isfinite(x.grad).all()
    x = torch.zeros(2, c, 32, 32, requires_grad=True)
    loss(x, torch.zeros(2, c, 32, 32)).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


@pytest.mark.parametrize("h, w", [(65, 67), (33, 31), (7, 9)])
def test_odd_and_small_sizes(loss: torch.nn.Module, h: int, w: int) -> None:
    p, t = _pair(loss.registry_name, h=h, w=w)
    x = p.clone().requires_grad_(True)
    v = loss(x, t, torch.ones(p.shape[0], 1, h, w))
    v.backward()
    assert torch.isfinite(v) and v.item() > 0
    assert x.grad is not None and x.grad.shape == (p.shape[0], p.shape[1], h, w)


def test_half_precision_inputs_give_float32(loss: torch.nn.Module) -> None:
    p, t = _pair(loss.registry_name)
    ref = loss(p, t).item()
    for dtype in (torch.float16, torch.bfloat16):
        v = loss(p.to(dtype), t.to(dtype), torch.ones(p.shape[0], 1, *p.shape[2:], dtype=dtype))
        assert v.dtype == torch.float32
        assert v.item() == pytest.approx(ref, rel=0.05)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        v = loss(p, t)
    assert v.dtype == torch.float32
    assert v.item() == pytest.approx(ref, rel=1e-5)


def test_bad_shapes_are_refused(loss: torch.nn.Module) -> None:
    p, t = _pair(loss.registry_name)
    with pytest.raises(ValueError, match="pred and target"):
        loss(p, t[:, :, :-1])
    with pytest.raises(ValueError, match="weight"):
        loss(p, t, torch.ones(p.shape[0], 2, 5, 5))


# --------------------------------------------------------------------------- SSIM


def test_dssim_kernel_sizes_follow_deepfacelab() -> None:
    assert dssim_kernel_sizes(64) == (5,)
    assert dssim_kernel_sizes(128) == (11,)
    assert dssim_kernel_sizes(255) == (21,)
    assert dssim_kernel_sizes(256) == (23, 11)
    assert dssim_kernel_sizes(512) == (45, 23)
    assert dssim_kernel_sizes(16) == (3,)


def test_ssim_of_identical_is_one_and_of_constants_matches_formula() -> None:
    x = _images(1, h=32, w=32)
    win = gaussian_window(11, 1.5)
    s, cs = ssim_maps(x, x, win, 1e-4, 9e-4)
    assert torch.allclose(s, torch.ones_like(s), atol=1e-5)
    assert torch.allclose(cs, torch.ones_like(cs), atol=1e-5)
    a, b, c1, c2 = 0.3, 0.7, 1e-4, 9e-4
    s, cs = ssim_maps(torch.full((1, 1, 20, 20), a), torch.full((1, 1, 20, 20), b), win, c1, c2)
    expected = (2 * a * b + c1) / (a * a + b * b + c1)
    assert torch.allclose(s, torch.full_like(s, expected), atol=1e-5)
    assert torch.allclose(cs, torch.ones_like(cs), atol=1e-5)


def test_ssim_hand_computed_flat_window() -> None:
    """A 3×3 image pair and a flat 3-tap window: one window, SSIM computed by hand in numpy."""
    x = np.array([[0.1, 0.5, 0.9], [0.2, 0.4, 0.3], [0.8, 0.7, 0.6]])
    y = np.array([[0.2, 0.4, 0.8], [0.1, 0.6, 0.2], [0.9, 0.5, 0.7]])
    c1, c2 = 1e-4, 9e-4
    mx, my = x.mean(), y.mean()
    vx = ((x - mx) ** 2).mean()
    vy = ((y - my) ** 2).mean()
    cov = ((x - mx) * (y - my)).mean()
    expected = (2 * mx * my + c1) * (2 * cov + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    tx = torch.tensor(x, dtype=torch.float32).view(1, 1, 3, 3)
    ty = torch.tensor(y, dtype=torch.float32).view(1, 1, 3, 3)
    s, cs = ssim_maps(tx, ty, torch.full((3,), 1.0 / 3.0), c1, c2)
    assert s.shape == (1, 1, 1, 1)
    assert s.item() == pytest.approx(expected, abs=1e-5)
    assert cs.item() == pytest.approx((2 * cov + c2) / (vx + vy + c2), abs=1e-5)


def test_ssim_loss_is_dssim() -> None:
    p, t = _pair("ssim", h=32, w=32)
    loss = LOSSES.create("ssim", SSIMConfig(kernel_size=7, sigma=1.5))
    s, _ = ssim_maps(p, t, gaussian_window(7, 1.5), 1e-4, 9e-4)
    assert loss(p, t).item() == pytest.approx(((1 - s) / 2).mean().item(), rel=1e-5)
    # anti-correlated images: DSSIM above 0.5
    assert loss(t, 1.0 - t).item() > 0.5


def test_ssim_two_scales_from_256() -> None:
    """At 256 px the loss is the mean of the 23-px and 11-px DSSIM."""
    p, t = _pair("ssim", h=256, w=256)
    auto = LOSSES.create("ssim")(p, t).item()
    k23 = LOSSES.create("ssim", SSIMConfig(kernel_size=23))(p, t).item()
    k11 = LOSSES.create("ssim", SSIMConfig(kernel_size=11))(p, t).item()
    assert auto == pytest.approx((k23 + k11) / 2, rel=1e-5)
    assert k23 != pytest.approx(k11, rel=1e-3)


def test_ms_ssim_scales_and_range() -> None:
    assert ms_ssim_scales(64, 64, 11) == 3
    assert ms_ssim_scales(128, 128, 11) == 4
    assert ms_ssim_scales(176, 200, 11) == 5
    assert ms_ssim_scales(512, 512, 11) == 5
    assert ms_ssim_scales(10, 10, 11) == 1
    loss = LOSSES.create("ms_ssim")
    t = _images(5, h=128, w=128)
    for s in (0.05, 0.2, 1.0):
        v = loss((t + s * _noise(9, t)), t).item()
        assert 0.0 < v <= 1.0
    # consistent with single-scale SSIM when only one scale is used
    one = LOSSES.create("ms_ssim", LOSSES.default_config("ms_ssim").replace(scales=1))
    p = (t + 0.1 * _noise(2, t)).clamp(0, 1)
    s, _ = ssim_maps(p, t, gaussian_window(11, 1.5), 1e-4, 9e-4)
    assert one(p, t).item() == pytest.approx(1.0 - s.mean().item(), rel=1e-5)


def test_ms_ssim_is_more_tolerant_to_a_global_brightness_shift_than_to_blur() -> None:
    """MS-SSIM weights luminance only at the coarsest scale: a brightness shift costs little."""
    t = _images(6, h=128, w=128)
    loss = LOSSES.create("ms_ssim")
    shifted = t + 0.15
    blurred = F.avg_pool2d(F.pad(t, (2, 2, 2, 2), mode="replicate"), 5, stride=1)
    assert F.mse_loss(shifted, t) > F.mse_loss(blurred, t)
    assert loss(shifted, t) < loss(blurred, t)


# --------------------------------------------------------------------------- FFL


def test_ffl_alpha_zero_is_mse_by_parseval() -> None:
    p, t = _pair("ffl", h=33, w=30)
    w = 1.0 + torch.rand(p.shape[0], 1, 33, 30, generator=torch.Generator().manual_seed(1))
    ffl0 = LOSSES.create("ffl", FFLConfig(alpha=0.0))
    assert ffl0(p, t).item() == pytest.approx(F.mse_loss(p, t).item(), rel=1e-4)
    l2 = LOSSES.create("l2")
    assert ffl0(p, t, w).item() == pytest.approx(l2(p, t, w).item(), rel=1e-4)


def test_ffl_focuses_on_the_dominant_frequencies() -> None:
    """Equal-energy errors: a pure sinusoid keeps its full MSE, white noise is down-weighted.

    The focal weights are the error spectrum normalised by its own peak: an error concentrated
    in one frequency gets weight 1 there, an error spread over all frequencies gets weights < 1.
    """
    n, c, h, w = 2, 3, 32, 32
    t = _images(4, n=n, h=h, w=w)
    yy = torch.arange(h, dtype=torch.float32).view(1, 1, h, 1)
    wave = 0.1 * torch.cos(2 * torch.pi * 5 * yy / h).expand(n, c, h, w)
    white = _noise(8, t)
    white = white / white.pow(2).mean().sqrt() * wave.pow(2).mean().sqrt()
    ffl = LOSSES.create("ffl")
    mse_wave = F.mse_loss(t + wave, t).item()
    mse_white = F.mse_loss(t + white, t).item()
    assert mse_wave == pytest.approx(mse_white, rel=1e-4)
    assert ffl(t + wave, t).item() == pytest.approx(mse_wave, rel=1e-3)
    assert ffl(t + white, t).item() < 0.6 * mse_white
    # larger alpha: sharper focus, never above the plain spectrum MSE
    sharp = LOSSES.create("ffl", FFLConfig(alpha=2.0))
    assert sharp(t + white, t).item() < ffl(t + white, t).item() <= mse_white


def test_ffl_weight_options() -> None:
    p, t = _pair("ffl")
    plain = LOSSES.create("ffl")(p, t).item()
    batch = LOSSES.create("ffl", FFLConfig(batch_weights=True))(p, t).item()
    logw = LOSSES.create("ffl", FFLConfig(log_weights=True))(p, t).item()
    mse = F.mse_loss(p, t).item()
    assert 0 < batch <= plain <= mse
    assert 0 < logw <= mse


def test_mask_loss_kinds() -> None:
    p, t = _pair("mask")
    assert LOSSES.create("mask")(p, t).item() == pytest.approx(F.mse_loss(p, t).item(), rel=1e-5)
    l1 = LOSSES.create("mask", MaskLossConfig(kind="l1"))
    assert l1(p, t).item() == pytest.approx(F.l1_loss(p, t).item(), rel=1e-5)


# --------------------------------------------------------------------------- composite


def test_parse_losses() -> None:
    assert parse_losses("ssim:10, l2:10") == (LossSpec("ssim", 10.0), LossSpec("l2", 10.0))
    assert parse_losses("ms_ssim") == (LossSpec("ms_ssim", 1.0),)
    for bad in ("", "nope:1", "ssim:x", "ssim:-1", "ssim:nan", "ssim,ssim:2", "mask:1"):
        with pytest.raises(ConfigError):
            parse_losses(bad)


def _batch(seed: int, n: int = 2, s: int = 64) -> Batch:
    target = _images(seed, n=n, h=s, w=s)
    mask = torch.zeros(n, 1, s, s)
    mask[..., 12:52, 10:54] = 1.0
    weight = 1.0 + mask.clone()
    weight[..., 20:28, 16:48] += 2.0  # "eyes"
    return Batch(warped=target, target=target, mask=mask, weight=weight)


def test_composite_parts_sum_to_total_and_gradients_flow() -> None:
    batch = _batch(0)
    crit = CompositeLoss(parse_losses("ssim:10,l2:10,ffl:1"), mask_weight=2.0)
    face = (batch.target + 0.1 * _noise(1, batch.target)).clamp(0, 1).requires_grad_(True)
    mask = torch.full_like(batch.mask, 0.5).requires_grad_(True)
    total, parts = crit(face, mask, batch)
    assert total.dtype == torch.float32 and total.shape == ()
    assert set(parts) == {"ssim", "l2", "ffl", "mask", "total"}
    assert all(isinstance(v, float) for v in parts.values())
    assert parts["total"] == pytest.approx(total.item(), rel=1e-6)
    assert sum(v for k, v in parts.items() if k != "total") == pytest.approx(total.item(), rel=1e-5)
    expected_mask = 2.0 * F.mse_loss(mask, batch.mask).item()
    assert parts["mask"] == pytest.approx(expected_mask, rel=1e-5)
    total.backward()
    assert face.grad is not None and face.grad.abs().sum() > 0
    assert mask.grad is not None and mask.grad.abs().sum() > 0
    # no predicted mask: no mask term
    _, parts = crit(face.detach(), None, batch)
    assert "mask" not in parts


def test_composite_masked_ignores_pixels_outside_the_mask() -> None:
    batch = _batch(2)
    crit = CompositeLoss("ssim:10,l2:10,ms_ssim:1,ffl:1,l1:1", masked=True)
    face = (batch.target + 0.1 * _noise(3, batch.target)).clamp(0, 1)
    changed = face.clone()
    outside = (batch.mask == 0).expand_as(face)
    changed[outside] = torch.rand(int(outside.sum()), generator=torch.Generator().manual_seed(4))
    a, pa = crit(face, None, batch)
    b, pb = crit(changed, None, batch)
    assert a.item() == b.item()
    assert pa == pb
    # unmasked training does see the change
    plain = CompositeLoss("ssim:10,l2:10,ms_ssim:1,ffl:1,l1:1", masked=False)
    assert plain(changed, None, batch)[0].item() > plain(face, None, batch)[0].item()


def test_composite_refuses_bad_settings() -> None:
    with pytest.raises(ConfigError):
        CompositeLoss((LossSpec("mask", 1.0),))
    with pytest.raises(ConfigError):
        CompositeLoss("ssim", mask_weight=-1.0)
    with pytest.raises(ConfigError):
        CompositeLoss((LossSpec("nope", 1.0),))


def test_composite_uses_given_configs() -> None:
    batch = _batch(5)
    face = (batch.target + 0.1 * _noise(6, batch.target)).clamp(0, 1)
    mask = torch.full_like(batch.mask, 0.5)
    l1 = CompositeLoss("l2", configs={"mask": MaskLossConfig(kind="l1")})
    _, parts = l1(face, mask, batch)
    assert parts["mask"] == pytest.approx(0.5, rel=1e-6)
