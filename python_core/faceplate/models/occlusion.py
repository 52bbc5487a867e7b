"""The occlusion segmenter: which pixels of an aligned face crop are face (registry
:data:`MASK_MODELS`).

A mask model takes N×3×S×S float32 RGB display-referred sRGB in [0, 1] (an aligned face, the
crop the model was trained on: its centering and coverage are in the model's manifest) and returns
N×1×S×S float32 in [0, 1], 1 = face, 0 = not face (occluder: hands, hair, glasses, microphones;
or background). It is trained per shot from a few labelled faces (``faceplate mask train``) and
applied as the ``occlusion`` masker (:mod:`faceplate.extract.mask.occlusion`).

The one architecture, ``lite_unet`` (why it is this small)::

    face 3×S² ─ stem: conv 3×3/2 → w0×(S/2)², conv 3×3 ───────────────────── skip 0 (S/2)
       level i = 1..4: conv 3×3/2 → wi×(S/2^(i+1))², conv 3×3 ─────────────── skip i
       bottleneck w4×(S/32)² (8×8 at 256 px: every cell sees the whole face)
    decoder, i = 3..0: 1×1 conv → wi, bilinear ×2, + 1×1 projection of skip i, conv 3×3
    head: 1×1 conv → 1 channel at S/2, bilinear ×2 → S, sigmoid

Every conv is followed by BatchNorm and ReLU (BatchNorm folds into the convolution in the ONNX
graph, so inference pays nothing for it). At 256 px with the default widths (16, 32, 64, 96, 128)
that is 0.64 M parameters and 0.73 GFLOP a face. The target it was sized for is apply ≥ 50 faces
a second at 256 px on two CPU cores (``benchmarks/mask.py``), and a shot-specific model trained in
minutes on a CPU: the whole network runs at half resolution or less (an occluder's edge needs
about a pixel, not texture at full resolution), the decoder adds skips instead of concatenating
them (half the decoder's cost), and five stride-2 stages give the bottleneck a receptive field
larger than the face, which is what tells a hand from a cheek of the same colour: context, not
colour. The mask comes out at half size and is upsampled bilinearly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn
from torch.nn import functional as F  # noqa: N812  (the PyTorch convention)

from faceplate.core.config import Config, option
from faceplate.core.errors import ConfigError, InputError
from faceplate.core.registry import Registry


@dataclass(frozen=True)
class MaskNetConfig(Config):
    """Options every mask model has."""

    size: int = option(256, "Input and output side in pixels (the aligned face crop).",
                       minimum=64, maximum=1024)

    #: ``size`` must be a multiple of this.
    SIZE_STEP: ClassVar[int] = 32

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.size % self.SIZE_STEP:
            lower = max(self.SIZE_STEP, self.size // self.SIZE_STEP * self.SIZE_STEP)
            raise ConfigError(f"size: {self.size} is not a multiple of {self.SIZE_STEP} "
                              f"(try {lower} or {lower + self.SIZE_STEP})")


class MaskModel(nn.Module):
    """Base class of the mask models; subclasses implement :meth:`logits`.

    Attributes:
        registry_name: The name the model is registered under.
        cfg: Its frozen config.
    """

    registry_name: ClassVar[str] = ""

    def __init__(self, cfg: MaskNetConfig) -> None:
        super().__init__()
        self.cfg = cfg

    @property
    def size(self) -> int:
        """Side in pixels of the faces it takes and the masks it returns."""
        return int(self.cfg.size)

    def check_input(self, x: Tensor) -> None:
        """Raise :class:`InputError` unless ``x`` is N×3×size×size floating point (skipped while
        tracing, where shapes are symbolic)."""
        if torch.jit.is_tracing() or torch.compiler.is_compiling():
            return
        if x.dim() != 4 or x.shape[1] != 3 or tuple(x.shape[2:]) != (self.size, self.size):
            raise InputError(f"{self.registry_name} mask model takes N×3×{self.size}×{self.size} "
                             f"faces, got {tuple(x.shape)}")
        if not x.is_floating_point():
            raise InputError(f"{self.registry_name} mask model takes float faces, got {x.dtype}")

    def logits(self, x: Tensor) -> Tensor:
        """N×3×S×S sRGB [0, 1] → N×1×S×S logits (the loss works on these)."""
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        """N×3×S×S float32 sRGB in [0, 1] → N×1×S×S float32 in [0, 1] (1 = face)."""
        return torch.sigmoid(self.logits(x))

    def param_count(self) -> int:
        """Number of trainable parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)


MASK_MODELS: Registry[MaskModel] = Registry("mask model")


def _cbr(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


def _up2(x: Tensor) -> Tensor:
    return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)


@dataclass(frozen=True)
class LiteUNetConfig(MaskNetConfig):
    """Options of ``lite_unet``."""

    widths: tuple[int, ...] = option(
        (16, 32, 64, 96, 128), "Channels of the stem and of each of the four stride-2 levels.",
        minimum=4, maximum=512)

    def __post_init__(self) -> None:
        super().__post_init__()
        if len(self.widths) != 5:
            raise ConfigError(f"widths: expected 5 channel counts (stem + 4 levels), got "
                              f"{len(self.widths)}")
        if any(float(v) != int(v) for v in self.widths):
            raise ConfigError(f"widths: expected whole numbers, got {self.widths}")
        # the command line hands numbers over as floats: keep them as the ints they are
        object.__setattr__(self, "widths", tuple(int(v) for v in self.widths))


@MASK_MODELS.register("lite_unet", config=LiteUNetConfig)
class LiteUNet(MaskModel):
    """A small U-Net at half resolution with additive skips (0.7 GFLOP a 256 px face)."""

    cfg: LiteUNetConfig

    def __init__(self, cfg: LiteUNetConfig) -> None:
        super().__init__(cfg)
        w = [int(v) for v in cfg.widths]
        self.stem = nn.Sequential(_cbr(3, w[0], 2), _cbr(w[0], w[0]))
        self.down = nn.ModuleList(nn.Sequential(_cbr(w[i], w[i + 1], 2), _cbr(w[i + 1], w[i + 1]))
                                  for i in range(4))
        self.reduce = nn.ModuleList(nn.Conv2d(w[i + 1], w[i], 1) for i in range(4))
        self.skip = nn.ModuleList(nn.Conv2d(w[i], w[i], 1) for i in range(4))
        self.fuse = nn.ModuleList(_cbr(w[i], w[i]) for i in range(4))
        self.head = nn.Conv2d(w[0], 1, 1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def logits(self, x: Tensor) -> Tensor:
        self.check_input(x)
        skips = [self.stem(x)]
        for stage in self.down:
            skips.append(stage(skips[-1]))
        y = skips[4]
        for i in (3, 2, 1, 0):
            y = self.fuse[i](_up2(self.reduce[i](y)) + self.skip[i](skips[i]))
        return _up2(self.head(y))


def build_mask_model(name: str, cfg: MaskNetConfig | None = None) -> MaskModel:
    """Create mask model ``name`` with ``cfg`` (its defaults when None)."""
    return MASK_MODELS.create(name, cfg)


__all__ = ["MASK_MODELS", "LiteUNet", "LiteUNetConfig", "MaskModel", "MaskNetConfig",
           "build_mask_model"]
