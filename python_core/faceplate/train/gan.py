"""Optional adversarial stage: a patch discriminator and its losses.

The discriminator (pix2pix / DeepFaceLab style) is a stack of stride-2 4×4 convolutions with
LeakyReLU(0.2) and no normalisation except optional spectral norm; it ends in two stride-1 4×4
convolutions and outputs one logit per overlapping patch (N×1×h×w), each judging a square of
:attr:`PatchDiscriminator.receptive_field` px of the input (DeepFaceLab picks a patch of about
res/8; ``layers`` sets it here: 1 → 16 px, 2 → 34, 3 → 70, 4 → 142).

Training loop sketch (the trainer owns the optimisers)::

    d_loss, g_loss = gan_losses(disc, target, face, kind=cfg.loss)
    (recon + cfg.power * g_loss).backward()   # also writes disc grads: zero them next
    opt_g.step()
    opt_d.zero_grad(set_to_none=True)
    d_loss.backward()                          # graph of (target, face.detach()) only
    opt_d.step()

Images in: N×C×H×W float in [0, 1] (RGB); logits and losses are float32.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn
from torch.nn import functional as F  # noqa: N812  (the PyTorch convention)

from faceplate.core.config import Config, option

__all__ = [
    "GanConfig",
    "PatchDiscriminator",
    "discriminator_loss",
    "gan_losses",
    "generator_loss",
]

GanLossKind = Literal["bce", "hinge"]


@dataclass(frozen=True)
class GanConfig(Config):
    """The patch-GAN stage (off while ``power`` is 0)."""

    power: float = option(
        0.0, "Weight of the adversarial loss for the generator (0 = off; DFL typical 0.1).",
        minimum=0.0, maximum=10.0,
    )
    start_iteration: int = option(0, "Iteration from which the GAN stage runs.", minimum=0)
    dims: int = option(16, "Channels of the discriminator's first layer.", minimum=4, maximum=256)
    layers: int = option(
        3, "Stride-2 layers of the discriminator (patch 16/34/70/142 px for 1/2/3/4).",
        minimum=1, maximum=6,
    )
    spectral_norm: bool = option(True, "Spectral normalisation of the discriminator's convs.")
    loss: GanLossKind = option("bce", "Non-saturating BCE with logits, or hinge.")
    lr: float = option(1e-4, "Discriminator learning rate.", minimum=1e-7, maximum=1.0)


class PatchDiscriminator(nn.Module):
    """Patch discriminator: N×in_ch×H×W images → N×1×h×w logits (one per patch).

    Args:
        in_ch: Input channels (3 for RGB; 4 to also judge a mask).
        dims: Channels of the first layer; doubled per layer, capped at 8 × dims.
        layers: Stride-2 convolutions (≥ 1). The input must be at least
            ``3 · 2 ** layers`` px on each side so the output is not empty.
        spectral_norm: Wrap every conv in spectral normalisation (stabilises training).
    """

    def __init__(
        self, in_ch: int = 3, dims: int = 16, layers: int = 3, spectral_norm: bool = True
    ) -> None:
        super().__init__()
        if layers < 1 or dims < 1 or in_ch < 1:
            raise ValueError(f"PatchDiscriminator: bad in_ch={in_ch} dims={dims} layers={layers}")

        def conv(cin: int, cout: int, stride: int) -> nn.Module:
            c = nn.Conv2d(cin, cout, 4, stride=stride, padding=1)  # PyTorch's default init:
            # pix2pix's N(0, 0.02) assumes batch norm and starves a norm-free stack
            return nn.utils.parametrizations.spectral_norm(c) if spectral_norm else c

        mods: list[nn.Module] = []
        cin = in_ch
        for i in range(layers):
            cout = dims * min(2**i, 8)
            mods += [conv(cin, cout, 2), nn.LeakyReLU(0.2, inplace=True)]
            cin = cout
        cout = dims * min(2**layers, 8)
        mods += [conv(cin, cout, 1), nn.LeakyReLU(0.2, inplace=True), conv(cout, 1, 1)]
        self.net = nn.Sequential(*mods)
        self.in_ch = in_ch
        self.layers = layers
        self.receptive_field = self.patch_size(layers)

    @staticmethod
    def patch_size(layers: int) -> int:
        """Receptive field in input px of one output logit for ``layers`` stride-2 layers."""
        r = 4 + 3  # the two stride-1 4×4 convs at the end
        for _ in range(layers):
            r = 2 * r + 2  # back through a stride-2 4×4 conv: (r − 1)·2 + 4
        return r

    @classmethod
    def from_config(cls, cfg: GanConfig, in_ch: int = 3) -> PatchDiscriminator:
        return cls(in_ch=in_ch, dims=cfg.dims, layers=cfg.layers, spectral_norm=cfg.spectral_norm)

    def forward(self, x: Tensor) -> Tensor:
        """Patch logits N×1×h×w (h ≈ H / 2**layers − 2) for images N×in_ch×H×W."""
        if x.dim() != 4 or x.shape[1] != self.in_ch:
            raise ValueError(
                f"PatchDiscriminator: expected N×{self.in_ch}×H×W, got {tuple(x.shape)}"
            )
        least = 3 * 2**self.layers
        if min(x.shape[-2:]) < least:
            raise ValueError(
                f"PatchDiscriminator: {self.layers} layers need inputs ≥ {least} px, "
                f"got {tuple(x.shape[-2:])}"
            )
        return self.net(x)


def discriminator_loss(
    real_logits: Tensor, fake_logits: Tensor, kind: GanLossKind = "bce"
) -> Tensor:
    """D's loss (float32 scalar) from patch logits of real and fake images.

    BCE: ½·[mean(−log σ(real)) + mean(−log(1 − σ(fake)))]; hinge: mean(relu(1 − real)) +
    mean(relu(1 + fake)).
    """
    r = real_logits.float()
    f = fake_logits.float()
    if kind == "bce":
        return 0.5 * (F.softplus(-r).mean() + F.softplus(f).mean())
    if kind == "hinge":
        return F.relu(1.0 - r).mean() + F.relu(1.0 + f).mean()
    raise ValueError(f"unknown GAN loss {kind!r}; choose bce or hinge")


def generator_loss(fake_logits: Tensor, kind: GanLossKind = "bce") -> Tensor:
    """G's adversarial loss (float32): mean(−log σ(fake)) for BCE (non-saturating), else −mean."""
    f = fake_logits.float()
    if kind == "bce":
        return F.softplus(-f).mean()
    if kind == "hinge":
        return -f.mean()
    raise ValueError(f"unknown GAN loss {kind!r}; choose bce or hinge")


def gan_losses(
    d: nn.Module, real: Tensor, fake: Tensor, kind: GanLossKind = "bce"
) -> tuple[Tensor, Tensor]:
    """Both adversarial losses for one batch.

    Args:
        d: The discriminator (e.g. :class:`PatchDiscriminator`, possibly DDP-wrapped).
        real: Real images N×C×H×W (the targets).
        fake: Generated images N×C×H×W, attached to the generator's graph.
        kind: ``"bce"`` (non-saturating, with logits) or ``"hinge"``.

    Returns:
        (d_loss, g_loss), float32 scalars. ``d_loss`` sees ``fake.detach()`` so its backward
        never reaches the generator; ``g_loss`` backpropagates through ``d`` into ``fake`` (it
        also fills ``d``'s ``.grad``: zero those before the discriminator's backward).
    """
    if kind not in ("bce", "hinge"):
        raise ValueError(f"unknown GAN loss {kind!r}; choose bce or hinge")
    n = real.shape[0]
    both = d(torch.cat((real.detach(), fake.detach().to(real.dtype)), dim=0))
    d_loss = discriminator_loss(both[:n], both[n:], kind)
    g_loss = generator_loss(d(fake), kind)
    return d_loss, g_loss

