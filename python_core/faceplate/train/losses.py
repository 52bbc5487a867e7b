"""Reconstruction losses for swap-model training: a registry plus the weighted composite.

Conventions: images are N×3×H×W float tensors, RGB, display-referred sRGB in [0, 1]; masks are
N×1×H×W in [0, 1]. Every loss takes ``(pred, target, weight=None)`` and returns a float32 scalar.
``weight`` is an optional N×1×H×W (or N×C×H×W) non-negative map that **multiplies the per-pixel
error** before the mean (for SSIM: multiplies the DSSIM map); the data loader builds it as
``1 + eye/mouth priority`` (mask-aware), so eye/mouth priority and masked training are the same
mechanism. The mean is over all N×C×H×W elements (not normalised by the weight's sum): doubling a
region's weight doubles its share of the loss, and a weight map of zeros gives a loss of 0.

Every loss runs in float32 with autocast disabled inside (bf16/fp16 inputs are cast up), so mixed
precision never touches the loss arithmetic; every denominator has a positive constant.

Registered losses (``LOSSES``):

- ``ssim``: DSSIM = (1 − SSIM) / 2 with a gaussian window. Window size as DeepFaceLab: ``res/11.6``
  px, and at ``res ≥ 256`` the mean of that and a second scale ``res/23.2`` px ("two scales from
  256 px"); see :func:`dssim_kernel_sizes`.
- ``ms_ssim``: 1 − MS-SSIM (Wang et al. 2003, the standard 5 scale weights), scales reduced to
  what the image size allows (see :func:`ms_ssim_scales`).
- ``l1``: mean absolute error.
- ``l2``: mean squared error (DeepFaceLab trains 10 × DSSIM + 10 × MSE; weights are the user's).
- ``ffl``: focal frequency loss (Jiang et al. 2021): squared spectrum distance weighted by its own
  normalised magnitude^alpha (weights detached).
- ``mask``: the predicted mask against the target mask, L2 (default) or L1.

Example:
    >>> import torch
    >>> specs = parse_losses("ssim:10,l2:10")
    >>> crit = CompositeLoss(specs, mask_weight=1.0, masked=True)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import torch
from torch import Tensor, nn
from torch.nn import functional as F  # noqa: N812  (the PyTorch convention)

from faceplate.core.config import Config, option
from faceplate.core.errors import ConfigError
from faceplate.core.registry import Registry

__all__ = [
    "LOSSES",
    "MS_SSIM_WEIGHTS",
    "CompositeLoss",
    "FFLConfig",
    "FocalFrequencyLoss",
    "L1Loss",
    "L2Loss",
    "Loss",
    "LossSpec",
    "MSSSIMConfig",
    "MSSSIMLoss",
    "MaskLoss",
    "MaskLossConfig",
    "PixelLossConfig",
    "SSIMConfig",
    "SSIMLoss",
    "dssim_kernel_sizes",
    "gaussian_window",
    "ms_ssim_scales",
    "parse_losses",
    "ssim_maps",
]

LOSSES: Registry[Loss] = Registry("loss")

#: Standard MS-SSIM exponents for scales 1 (finest) … 5 (Wang, Simoncelli & Bovik 2003).
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)

_EPS = 1e-8


# --------------------------------------------------------------------------- base class


class Loss(nn.Module):
    """Base of every registered loss: checks shapes, casts to float32, disables autocast.

    Subclasses implement :meth:`compute` only, which receives float32 tensors: ``pred`` and
    ``target`` N×C×H×W, ``weight`` None or N×1×H×W / N×C×H×W.
    """

    registry_name: str

    def __init__(self, cfg: Any) -> None:
        super().__init__()
        self.cfg = cfg
        self._windows: dict[tuple[int, float, str], Tensor] = {}

    def window(self, size: int, sigma: float, device: torch.device) -> Tensor:
        """The gaussian window for ``size``/``sigma`` on ``device``, built once per instance."""
        key = (size, sigma, str(device))
        win = self._windows.get(key)
        if win is None:
            win = self._windows[key] = gaussian_window(size, sigma, device)
        return win

    def forward(self, pred: Tensor, target: Tensor, weight: Tensor | None = None) -> Tensor:
        """The loss of ``pred`` against ``target``, a float32 scalar (differentiable in ``pred``).

        Args:
            pred: N×C×H×W prediction, any float dtype, nominally in [0, 1].
            target: N×C×H×W target, same shape.
            weight: Optional non-negative per-pixel weight, N×1×H×W or N×C×H×W.
        """
        if pred.dim() != 4 or pred.shape != target.shape:
            raise ValueError(
                f"{self.registry_name}: pred and target must both be N×C×H×W of one shape, "
                f"got {tuple(pred.shape)} and {tuple(target.shape)}"
            )
        n, c, h, w = pred.shape
        if weight is not None and (
            weight.dim() != 4
            or weight.shape[0] != n
            or weight.shape[1] not in (1, c)
            or weight.shape[2:] != pred.shape[2:]
        ):
            raise ValueError(
                f"{self.registry_name}: weight must be {n}×1×{h}×{w} or {n}×{c}×{h}×{w}, "
                f"got {tuple(weight.shape)}"
            )
        with torch.autocast(device_type=pred.device.type, enabled=False):
            return self.compute(
                pred.float(),
                target.float(),
                None if weight is None else weight.float(),
            )

    def compute(self, pred: Tensor, target: Tensor, weight: Tensor | None) -> Tensor:
        raise NotImplementedError


def _weighted_mean(err: Tensor, weight: Tensor | None) -> Tensor:
    """Mean of ``err`` (N×C×H×W) with ``weight`` (broadcastable) multiplying each element."""
    if weight is None:
        return err.mean()
    return (err * weight).mean()


# --------------------------------------------------------------------------- SSIM family


def gaussian_window(size: int, sigma: float, device: torch.device | None = None) -> Tensor:
    """A normalised 1-D gaussian window, float32 vector of ``size`` taps summing to 1."""
    x = torch.arange(size, dtype=torch.float32, device=device) - (size - 1) / 2.0
    g = torch.exp(-(x * x) / (2.0 * sigma * sigma))
    return g / g.sum()


def _separable_filter(x: Tensor, win: Tensor) -> Tensor:
    """Valid (unpadded) separable filtering of every channel of N×C×H×W ``x`` with 1-D ``win``.

    Two depthwise convolutions (1×k then k×1); output N×C×(H−k+1)×(W−k+1).
    """
    c = x.shape[1]
    k = win.numel()
    x = F.conv2d(x, win.view(1, 1, 1, k).expand(c, 1, 1, k), groups=c)
    return F.conv2d(x, win.view(1, 1, k, 1).expand(c, 1, k, 1), groups=c)


def ssim_maps(x: Tensor, y: Tensor, win: Tensor, c1: float, c2: float) -> tuple[Tensor, Tensor]:
    """SSIM and contrast-structure maps of two float32 N×C×H×W images with 1-D window ``win``.

    The window is applied separably in both directions without padding, so the maps are
    N×C×(H−k+1)×(W−k+1); each value describes the window centred on pixel (i + r, j + r) of the
    input, r = (k − 1) / 2. ``c1 = (k1·L)²`` and ``c2 = (k2·L)²`` (L: dynamic range) keep every
    denominator positive.

    Returns:
        (ssim_map, cs_map): luminance × contrast-structure, and contrast-structure alone.
    """
    c = x.shape[1]
    stats = _separable_filter(torch.cat((x, y, x * x, y * y, x * y), dim=1), win)
    mu_x, mu_y, e_xx, e_yy, e_xy = stats.split(c, dim=1)
    mu_xx = mu_x * mu_x
    mu_yy = mu_y * mu_y
    mu_xy = mu_x * mu_y
    var_x = e_xx - mu_xx
    var_y = e_yy - mu_yy
    cov = e_xy - mu_xy
    cs = (2.0 * cov + c2) / (var_x + var_y + c2)
    lum = (2.0 * mu_xy + c1) / (mu_xx + mu_yy + c1)
    return lum * cs, cs


def _odd(v: float) -> int:
    k = max(int(v), 3)
    return k if k % 2 else k + 1


def dssim_kernel_sizes(resolution: int, two_scale_from: int = 256) -> tuple[int, ...]:
    """DeepFaceLab's DSSIM window sizes for a face of ``resolution`` px, made odd and ≥ 3.

    ``int(res / 11.6)`` (64 → 5, 128 → 11), and from ``two_scale_from`` px upward a second,
    smaller window ``int(res / 23.2)`` (256 → 23 and 11, 512 → 45 and 23). DeepFaceLab uses the
    sizes as they come (possibly even); we round even sizes up so the window has a centre pixel.
    """
    sizes = [_odd(resolution / 11.6)]
    if resolution >= two_scale_from:
        sizes.append(_odd(resolution / 23.2))
    return tuple(sizes)


def _fit_kernel(k: int, h: int, w: int) -> int:
    """Largest odd window ≤ ``k`` that fits an H×W image (at least 1)."""
    m = min(k, h, w)
    return m if m % 2 else m - 1


def _crop(weight: Tensor | None, k: int, out_h: int, out_w: int) -> Tensor | None:
    """The part of ``weight`` under the centres of the valid windows of size ``k``."""
    if weight is None:
        return None
    r = (k - 1) // 2
    return weight[:, :, r : r + out_h, r : r + out_w]


@dataclass(frozen=True)
class SSIMConfig(Config):
    """DSSIM with DeepFaceLab's resolution-scaled gaussian window(s)."""

    kernel_size: int = option(
        0,
        "Gaussian window in px; 0 = automatic (res/11.6, plus res/23.2 at two_scale_from px).",
        minimum=0,
        maximum=255,
    )
    sigma: float = option(
        0.0, "Gaussian sigma in px; 0 = 1.5 × window / 11 (the standard 11-tap, 1.5 shape).",
        minimum=0.0, maximum=100.0,
    )
    two_scale_from: int = option(
        256, "From this face size on (automatic window) average DSSIM at two window sizes.",
        minimum=1,
    )
    k1: float = option(0.01, "SSIM luminance constant k1 (c1 = (k1·L)²).", minimum=1e-6)
    k2: float = option(0.03, "SSIM contrast constant k2 (c2 = (k2·L)²).", minimum=1e-6)
    max_val: float = option(1.0, "Dynamic range L of the images.", minimum=1e-6)


@LOSSES.register("ssim", config=SSIMConfig)
class SSIMLoss(Loss):
    """Structural dissimilarity DSSIM = (1 − SSIM) / 2, gaussian window, one or two scales.

    Window: ``cfg.kernel_size`` or, when 0, :func:`dssim_kernel_sizes` of min(H, W) (two sizes
    averaged at ≥ 256 px, as DeepFaceLab). Sigma scales with the window (1.5 × k / 11) so the
    second scale really looks at coarser structure: DeepFaceLab keeps sigma = 1.5 for every size,
    which makes its res/11.6 and res/23.2 windows nearly the same truncated 1.5-px gaussian. The
    weight map multiplies the DSSIM map (cropped to the valid window centres). Range [0, 1].
    """

    cfg: SSIMConfig

    def compute(self, pred: Tensor, target: Tensor, weight: Tensor | None) -> Tensor:
        cfg = self.cfg
        h, w = pred.shape[-2:]
        sizes = (cfg.kernel_size,) if cfg.kernel_size else dssim_kernel_sizes(
            min(h, w), cfg.two_scale_from
        )
        c1 = (cfg.k1 * cfg.max_val) ** 2
        c2 = (cfg.k2 * cfg.max_val) ** 2
        total = pred.new_zeros(())
        for size in sizes:
            k = _fit_kernel(size, h, w)
            sigma = cfg.sigma if cfg.sigma > 0 else 1.5 * k / 11.0
            s_map, _ = ssim_maps(pred, target, self.window(k, sigma, pred.device), c1, c2)
            dssim = (1.0 - s_map) * 0.5
            total = total + _weighted_mean(dssim, _crop(weight, k, *s_map.shape[-2:]))
        return total / len(sizes)


@dataclass(frozen=True)
class MSSSIMConfig(Config):
    """Multi-scale SSIM settings (defaults: the standard 11-tap, sigma-1.5 window, 5 scales)."""

    kernel_size: int = option(11, "Gaussian window in px (odd).", minimum=3, maximum=63)
    sigma: float = option(1.5, "Gaussian sigma in px.", minimum=0.1, maximum=20.0)
    scales: int = option(
        5, "Most scales to use; fewer when the image is too small (weights renormalised).",
        minimum=1, maximum=5,
    )
    k1: float = option(0.01, "SSIM luminance constant k1.", minimum=1e-6)
    k2: float = option(0.03, "SSIM contrast constant k2.", minimum=1e-6)
    max_val: float = option(1.0, "Dynamic range L of the images.", minimum=1e-6)


def ms_ssim_scales(h: int, w: int, kernel_size: int, most: int = 5) -> int:
    """How many MS-SSIM scales an H×W image supports with a ``kernel_size`` window.

    Scale j (0-based) sees the image halved j times; it must still hold one full window:
    ``min(H, W) / 2^j ≥ k``. 64 px → 3 scales, 128 px → 4, ≥ 176 px → 5 (with k = 11).
    """
    m = 1
    while m < most and min(h, w) // (2**m) >= kernel_size:
        m += 1
    return m


@LOSSES.register("ms_ssim", config=MSSSIMConfig)
class MSSSIMLoss(Loss):
    """1 − MS-SSIM: product of contrast-structure at fine scales and SSIM at the coarsest.

    Uses the first M of the standard weights (0.0448, 0.2856, 0.3001, 0.2363, 0.1333),
    renormalised to sum 1, where M = :func:`ms_ssim_scales` (the standard 5 need ≥ 176 px with an
    11-px window). Downsampling: 2×2 average pooling. Each scale's value is clamped to ≥ 1e-6
    before the fractional power (keeps gradients finite). Computed per image, then averaged.
    Weighted: each scale uses the weight-averaged map (weight pooled alongside the images), and
    the image's loss is multiplied by the image's mean weight, so weight = c·1 gives c × loss and
    weight = 0 gives 0. Range [0, 1].
    """

    cfg: MSSSIMConfig

    def compute(self, pred: Tensor, target: Tensor, weight: Tensor | None) -> Tensor:
        cfg = self.cfg
        h, w = pred.shape[-2:]
        k = _fit_kernel(cfg.kernel_size, h, w)
        m = ms_ssim_scales(h, w, k, cfg.scales)
        total_w = sum(MS_SSIM_WEIGHTS[:m])
        exps = [wj / total_w for wj in MS_SSIM_WEIGHTS[:m]]
        win = self.window(k, cfg.sigma, pred.device)
        c1 = (cfg.k1 * cfg.max_val) ** 2
        c2 = (cfg.k2 * cfg.max_val) ** 2
        wbar = None if weight is None else weight.mean(dim=(1, 2, 3))
        x, y, wt = pred, target, weight
        values = []
        for j in range(m):
            s_map, cs_map = ssim_maps(x, y, win, c1, c2)
            v_map = s_map if j == m - 1 else cs_map
            wc = _crop(wt, k, *v_map.shape[-2:])
            if wc is None:
                v = v_map.mean(dim=(1, 2, 3))
            else:
                wc = wc.expand_as(v_map)
                v = (v_map * wc).sum(dim=(1, 2, 3)) / wc.sum(dim=(1, 2, 3)).clamp_min(_EPS)
            values.append(v.clamp_min(1e-6) ** exps[j])
            if j < m - 1:
                x = F.avg_pool2d(x, 2)
                y = F.avg_pool2d(y, 2)
                wt = None if wt is None else F.avg_pool2d(wt, 2)
        ms = torch.prod(torch.stack(values, dim=1), dim=1)
        per_image = 1.0 - ms
        if wbar is not None:
            per_image = per_image * wbar
        return per_image.mean()


# --------------------------------------------------------------------------- pixel losses


@dataclass(frozen=True)
class PixelLossConfig(Config):
    """Pixel losses take no options."""


@LOSSES.register("l1", config=PixelLossConfig)
class L1Loss(Loss):
    """Mean absolute error, weight map multiplying |pred − target|."""

    def compute(self, pred: Tensor, target: Tensor, weight: Tensor | None) -> Tensor:
        return _weighted_mean((pred - target).abs(), weight)


@LOSSES.register("l2", config=PixelLossConfig)
class L2Loss(Loss):
    """Mean squared error, weight map multiplying (pred − target)²."""

    def compute(self, pred: Tensor, target: Tensor, weight: Tensor | None) -> Tensor:
        d = pred - target
        return _weighted_mean(d * d, weight)


# --------------------------------------------------------------------------- focal frequency


@dataclass(frozen=True)
class FFLConfig(Config):
    """Focal frequency loss settings (defaults as the paper: alpha 1, per-image weights)."""

    alpha: float = option(
        1.0, "Focusing exponent on the spectrum distance (0 = plain spectrum MSE).",
        minimum=0.0, maximum=10.0,
    )
    log_weights: bool = option(False, "Use log(1 + w) for the spectrum weights.")
    batch_weights: bool = option(
        False, "Normalise the spectrum weights by the batch maximum instead of per image/channel."
    )


@LOSSES.register("ffl", config=FFLConfig)
class FocalFrequencyLoss(Loss):
    """Focal frequency loss: spectrum distance weighted by its own normalised magnitude^alpha.

    D = |FFT₂(pred) − FFT₂(target)|² per frequency (orthonormal FFT over H, W, per channel);
    W = (√D)^alpha, optionally log(1 + W), divided by its maximum (per image and channel, or
    over the batch), detached; loss = mean(W · D). With alpha = 0 the weights are 1 and, by
    Parseval, the loss equals the plain MSE; with alpha > 0 the frequencies the model gets most
    wrong dominate. Weighted: the error is multiplied by √weight before the FFT (the FFT is linear,
    so this is FFT(√w·pred) − FFT(√w·target)), which again equals weighted MSE at alpha = 0.
    """

    cfg: FFLConfig

    def compute(self, pred: Tensor, target: Tensor, weight: Tensor | None) -> Tensor:
        diff = pred - target
        if weight is not None:
            diff = diff * weight.clamp_min(0.0).sqrt()
        spec = torch.fft.fft2(diff, norm="ortho")
        dist = spec.real * spec.real + spec.imag * spec.imag
        with torch.no_grad():
            wm = dist.sqrt() ** self.cfg.alpha if self.cfg.alpha != 0 else torch.ones_like(dist)
            if self.cfg.log_weights:
                wm = torch.log1p(wm)
            if self.cfg.batch_weights:
                peak = wm.amax()
            else:
                peak = wm.amax(dim=(-2, -1), keepdim=True)
            wm = torch.nan_to_num(wm / peak.clamp_min(_EPS), nan=0.0).clamp(0.0, 1.0)
        return (wm * dist).mean()


# --------------------------------------------------------------------------- mask loss


@dataclass(frozen=True)
class MaskLossConfig(Config):
    """Learned-mask loss settings."""

    kind: Literal["l2", "l1"] = option("l2", "Distance between predicted and target masks.")


@LOSSES.register("mask", config=MaskLossConfig)
class MaskLoss(Loss):
    """Predicted mask (N×1×H×W in [0, 1]) against the target mask: mean squared/absolute error."""

    cfg: MaskLossConfig

    def compute(self, pred: Tensor, target: Tensor, weight: Tensor | None) -> Tensor:
        d = pred - target
        err = d * d if self.cfg.kind == "l2" else d.abs()
        return _weighted_mean(err, weight)


# --------------------------------------------------------------------------- composite


@dataclass(frozen=True)
class LossSpec:
    """One term of the composite loss: a registered loss name and its weight (≥ 0)."""

    name: str
    weight: float


def parse_losses(text: str) -> tuple[LossSpec, ...]:
    """Parse ``"ssim:10,l2:10"`` (``name[:weight]`` comma-separated, weight default 1).

    Raises:
        ConfigError: empty text, unknown name, ``mask`` (use ``mask_weight``), a duplicate, or a
            weight that is not a finite number ≥ 0.
    """
    specs: list[LossSpec] = []
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            continue
        name, sep, value = item.partition(":")
        name = name.strip()
        LOSSES.entry(name)  # ConfigError listing the valid names
        if name == "mask":
            raise ConfigError("losses: the mask loss is set with the mask loss weight, not here")
        if any(s.name == name for s in specs):
            raise ConfigError(f"losses: {name!r} is listed twice")
        weight = 1.0
        if sep:
            try:
                weight = float(value)
            except ValueError:
                raise ConfigError(
                    f"losses: weight {value.strip()!r} of {name!r} is not a number"
                ) from None
            if not math.isfinite(weight) or weight < 0:
                raise ConfigError(f"losses: weight of {name!r} must be a finite number ≥ 0")
        specs.append(LossSpec(name, weight))
    if not specs:
        raise ConfigError(f"losses: no loss given in {text!r} (e.g. 'ssim:10,l2:10')")
    return tuple(specs)


class BatchLike(Protocol):
    """What :class:`CompositeLoss` reads from a batch (``faceplate.train.data.Batch``)."""

    @property
    def target(self) -> Tensor: ...

    @property
    def mask(self) -> Tensor: ...

    @property
    def weight(self) -> Tensor: ...


class CompositeLoss(nn.Module):
    """Weighted sum of registered losses on the face, plus the learned-mask loss.

    Args:
        specs: The terms (:func:`parse_losses`), or the text to parse.
        mask_weight: Weight of the mask loss, used when the model predicts a mask (0 = off).
        masked: Penalized mask loss (Faceswap's default): compare ``face * mask`` with
            ``target * mask`` so nothing outside the target mask is learned or penalised.
        configs: Optional per-loss configs by name (e.g. ``{"ffl": FFLConfig(alpha=2)}``,
            ``{"mask": MaskLossConfig(kind="l1")}``); defaults otherwise.
    """

    def __init__(
        self,
        specs: Sequence[LossSpec] | str,
        mask_weight: float = 1.0,
        masked: bool = True,
        configs: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.specs = parse_losses(specs) if isinstance(specs, str) else tuple(specs)
        if not self.specs:
            raise ConfigError("losses: at least one loss is needed")
        if not math.isfinite(mask_weight) or mask_weight < 0:
            raise ConfigError(f"mask loss weight must be a finite number ≥ 0, got {mask_weight}")
        for s in self.specs:
            if s.name == "mask":
                raise ConfigError("losses: the mask loss is set with the mask loss weight")
        configs = dict(configs or {})
        self.mask_weight = float(mask_weight)
        self.masked = masked
        self.terms = nn.ModuleList(LOSSES.create(s.name, configs.get(s.name)) for s in self.specs)
        self.mask_loss = LOSSES.create("mask", configs.get("mask"))

    def forward(
        self, face: Tensor, mask: Tensor | None, batch: BatchLike
    ) -> tuple[Tensor, dict[str, float]]:
        """The training loss for one side.

        Args:
            face: Model output N×3×S×S in [0, 1] (any float dtype).
            mask: Predicted mask N×1×S×S in [0, 1], or None when the model learns no mask.
            batch: ``Batch`` with ``target`` N×3×S×S, ``mask`` N×1×S×S and ``weight``
                N×1×S×S (None allowed) float tensors.

        Returns:
            (total, parts): the float32 scalar to backpropagate, and floats for logging: each
            loss's weighted contribution under its name, ``"mask"`` when a mask is learned, and
            ``"total"``; the contributions sum to the total.
        """
        target = batch.target
        tmask = batch.mask.float()
        weight = getattr(batch, "weight", None)
        face32 = face.float()
        target32 = target.float()
        if self.masked:
            face32 = face32 * tmask
            target32 = target32 * tmask
        names: list[str] = []
        values: list[Tensor] = []
        for spec, term in zip(self.specs, self.terms):
            names.append(spec.name)
            values.append(spec.weight * term(face32, target32, weight))
        if mask is not None and self.mask_weight > 0:
            names.append("mask")
            values.append(self.mask_weight * self.mask_loss(mask, tmask))
        stacked = torch.stack(values)
        total = stacked.sum()
        logged = torch.cat((stacked.detach(), total.detach().view(1))).tolist()
        parts = dict(zip([*names, "total"], logged))
        return total, parts
