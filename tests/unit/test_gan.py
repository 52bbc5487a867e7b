"""Patch discriminator and GAN losses: shapes, learning, gradient paths."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812  (the PyTorch convention)

from faceplate.core.errors import ConfigError
from faceplate.train.gan import (
    GanConfig,
    PatchDiscriminator,
    discriminator_loss,
    gan_losses,
    generator_loss,
)


def _seeded(seed: int, make):  # type: ignore[no-untyped-def]
    """Build modules under a fixed torch seed without touching the global RNG state."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return make()


def _rand(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def _smooth(seed: int, n: int = 8, s: int = 32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, 4, 4, generator=g)
    return F.interpolate(x, size=(s, s), mode="bilinear", align_corners=False)


@pytest.mark.parametrize("layers, size", [(1, 20), (2, 33), (3, 64), (3, 67)])
def test_patch_logits_shape_and_receptive_field(layers: int, size: int) -> None:
    d = PatchDiscriminator(3, dims=8, layers=layers)
    out = d(_rand(2, 3, size, size + 3))
    h = size // 2**layers - 2
    w = (size + 3) // 2**layers - 2
    assert out.shape == (2, 1, h, w) and out.dtype == torch.float32
    assert d.receptive_field == {1: 16, 2: 34, 3: 70}[layers]


def test_receptive_field_is_measured() -> None:
    """Perturbing one input pixel changes exactly a receptive-field-sized set of logits' inputs."""
    d = PatchDiscriminator(3, dims=4, layers=2, spectral_norm=False)
    x = _rand(1, 3, 96, 96).requires_grad_(True)
    out = d(x)
    out[0, 0, out.shape[2] // 2, out.shape[3] // 2].backward()
    assert x.grad is not None
    rows = torch.nonzero(x.grad.abs().sum(dim=(0, 1, 3)) > 0).flatten()
    assert int(rows.max() - rows.min() + 1) <= d.receptive_field
    assert int(rows.max() - rows.min() + 1) >= d.receptive_field - 2


def test_too_small_input_and_bad_channels_are_refused() -> None:
    d = PatchDiscriminator(3, dims=4, layers=3)
    with pytest.raises(ValueError, match="need inputs"):
        d(_rand(1, 3, 16, 16))
    with pytest.raises(ValueError, match="N×3×H×W"):
        d(_rand(1, 4, 64, 64))


def test_config_builds_and_validates() -> None:
    cfg = GanConfig(dims=8, layers=2, spectral_norm=False, loss="hinge")
    d = PatchDiscriminator.from_config(cfg, in_ch=4)
    assert d(_rand(1, 4, 32, 32)).shape == (1, 1, 6, 6)
    with pytest.raises(ConfigError):
        GanConfig(loss="wgan")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        GanConfig(power=-1.0)


@pytest.mark.parametrize("kind", ["bce", "hinge"])
@pytest.mark.parametrize("sn", [True, False])
def test_discriminator_learns_real_from_noise(kind: str, sn: bool) -> None:
    d = _seeded(0, lambda: PatchDiscriminator(3, dims=8, layers=2, spectral_norm=sn))
    opt = torch.optim.Adam(d.parameters(), lr=2e-3, betas=(0.5, 0.999))
    g = torch.Generator().manual_seed(1)
    losses = []
    for step in range(40):
        real = _smooth(step)
        fake = torch.rand(8, 3, 32, 32, generator=g)
        d_loss, _ = gan_losses(d, real, fake, kind=kind)  # type: ignore[arg-type]
        opt.zero_grad()
        d_loss.backward()
        opt.step()
        losses.append(d_loss.item())
    first = sum(losses[:5]) / 5
    last = sum(losses[-5:]) / 5
    assert last < 0.5 * first, (first, last)
    with torch.no_grad():
        d.eval()
        assert d(_smooth(99)).mean() > d(torch.rand(8, 3, 32, 32, generator=g)).mean()


@pytest.mark.parametrize("kind", ["bce", "hinge"])
def test_g_loss_reaches_the_generator_and_d_loss_does_not(kind: str) -> None:
    gen = _seeded(0, lambda: nn.Sequential(nn.Conv2d(3, 3, 3, padding=1), nn.Sigmoid()))
    d = _seeded(1, lambda: PatchDiscriminator(3, dims=8, layers=2))
    z = _rand(4, 3, 32, 32).requires_grad_(True)
    fake = gen(z)
    real = _smooth(3, n=4)
    d_loss, g_loss = gan_losses(d, real, fake, kind=kind)  # type: ignore[arg-type]
    assert d_loss.shape == () and g_loss.shape == ()
    assert d_loss.dtype == torch.float32 and g_loss.dtype == torch.float32
    d_loss.backward(retain_graph=True)
    assert z.grad is None
    assert all(p.grad is None for p in gen.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in d.parameters())
    d.zero_grad(set_to_none=True)
    g_loss.backward()
    assert z.grad is not None and torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in gen.parameters())


def test_generator_step_fools_a_fixed_discriminator() -> None:
    """A few generator steps on g_loss raise D's score of the fakes."""
    d = _seeded(0, lambda: PatchDiscriminator(3, dims=8, layers=2, spectral_norm=False))
    z = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    gen = _seeded(
        1,
        lambda: nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 3, 3, padding=1)
        ),
    )
    opt = torch.optim.Adam(gen.parameters(), lr=1e-2)
    with torch.no_grad():
        before = d(gen(z)).mean().item()
    for _ in range(10):
        _, g_loss = gan_losses(d, _smooth(0, n=4), gen(z))
        opt.zero_grad()
        g_loss.backward()
        opt.step()
    with torch.no_grad():
        assert d(gen(z)).mean().item() > before


def test_loss_values_match_definitions() -> None:
    r = torch.tensor([2.0, -1.0])
    f = torch.tensor([0.5, -3.0])
    bce_d = 0.5 * (
        F.binary_cross_entropy_with_logits(r, torch.ones(2))
        + F.binary_cross_entropy_with_logits(f, torch.zeros(2))
    )
    assert discriminator_loss(r, f, "bce").item() == pytest.approx(bce_d.item(), rel=1e-6)
    bce_g = F.binary_cross_entropy_with_logits(f, torch.ones(2))
    assert generator_loss(f, "bce").item() == pytest.approx(bce_g.item(), rel=1e-6)
    # hinge: relu(1 - r) = [0, 2], relu(1 + f) = [1.5, 0]
    assert discriminator_loss(r, f, "hinge").item() == pytest.approx(1.0 + 0.75)
    assert generator_loss(f, "hinge").item() == pytest.approx(1.25)
    # half-precision logits give float32 losses
    assert discriminator_loss(r.half(), f.half()).dtype == torch.float32
    with pytest.raises(ValueError):
        discriminator_loss(r, f, "wgan")  # type: ignore[arg-type]


def test_autocast_mixed_inputs() -> None:
    d = PatchDiscriminator(3, dims=8, layers=2)
    real = _smooth(4, n=2)
    fake = _rand(2, 3, 32, 32).requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        d_loss, g_loss = gan_losses(d, real, fake.to(torch.bfloat16))
    assert d_loss.dtype == torch.float32 and g_loss.dtype == torch.float32
    g_loss.backward()
    assert fake.grad is not None and torch.isfinite(fake.grad).all()
