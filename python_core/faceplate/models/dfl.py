"""``df`` and ``liae``: DeepFaceLab SAEHD's two architectures, with the -u, -d, -t flags.

Both share one encoder (downscale convs, 5×5 stride 2, ``e_dims``×(1, 2, 4, 8) channels, then a
flatten to a latent vector). They differ after it:

* **DF** (``df``): one shared *inter* (Dense ``ae_dims`` → Dense to an ``ae_dims``×R×R map →
  upscale) and two decoders, ``decoder_a`` and ``decoder_b``. ``forward(x, side)`` =
  ``decoder_<side>(inter(encoder(x)))``. DF keeps more of the source's identity.
* **LIAE** (``liae``): two inters, ``inter_ab`` (shared by both sides) and ``inter_b`` (B only),
  each producing a 2·``ae_dims`` map, and ONE decoder over their concatenation (4·``ae_dims``
  channels)::

      side "a": code = concat(inter_ab(e), inter_ab(e))     e = encoder(x)
      side "b": code = concat(inter_b(e),  inter_ab(e))

  Training reconstructs A with the first code and B with the second, whatever face goes in. The
  swap B→A (``"b2a"``, converting the footage) therefore encodes B's face and decodes
  ``concat(inter_ab(e), inter_ab(e))``: **the destination-to-source direction uses inter_ab
  only** (DFL's ``src_dst`` code), and inter_b is used only for B's own reconstruction (and the
  ``"a2b"`` direction). LIAE follows the destination's lighting and expression more closely.

Flags (DFL's archi suffixes, combinable as in ``liae-udt``):

* ``likeness_u`` (``-u``): pixel-normalise the flattened encoder output (unit mean square per
  sample) before the inter: better likeness to the source, steadier training.
* ``double_res_d`` (``-d``): the model still takes and returns ``size``×``size`` faces, but its
  decoders (and inter maps) work at half that resolution and the last layer turns each decoded
  pixel into 2×2 output pixels (a 3×3 conv to 12 channels + pixel shuffle; DFL uses four separate
  convs, the same thing). About the cost of a ``size/2`` model for a ``size`` output; ``size``
  must then be a multiple of 32. The mask branch gets one extra upscale.
* ``deeper_t`` (``-t``): a fifth downscale and residual blocks in the encoder (after the first and
  the last downscale), no upscale in the inter, and a fourth upscale + residual stage in the
  decoder: a deeper, more expressive model of similar width.

Dims (DFL SAEHD defaults at 128 px: ae 256, e 64, d 64, d_mask 22). Faceswap's ``dfl-sae``
multiplies its ``encoder``/``decoder`` dims by the 3 input channels and uses two residual blocks
per decoder stage: its defaults (encoder 42, decoder 21, ae 512) are ``e_dims=126, d_dims=63,
d_mask_dims=21, ae_dims=512, res_blocks=2`` here (DF; Faceswap's LIAE defaults to ae 256).

Resolution 64–512 in steps of 16 (32 with ``-d``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from faceplate.core.config import option
from faceplate.models.base import MODELS, ModelConfig, Side, SwapModel
from faceplate.models.layers import (
    DenseToMap,
    Downscale,
    OutputHead,
    ResidualBlock,
    Upscale,
    init_weights,
    pixel_norm,
)


@dataclass(frozen=True)
class DFLConfig(ModelConfig):
    """Options shared by ``df`` and ``liae`` (DFL SAEHD's)."""

    size: int = option(128, "Input and output resolution in pixels (a multiple of 16; of 32 "
                       "with -d).", minimum=64, maximum=512)
    ae_dims: int = option(256, "Autoencoder (bottleneck) dims.", minimum=32, maximum=1024)
    e_dims: int = option(64, "Encoder dims: the downscales use e_dims×(1, 2, 4, 8) channels.",
                         minimum=16, maximum=256)
    d_dims: int = option(64, "Decoder dims: the upscales use d_dims×(8, 4, 2) channels.",
                         minimum=16, maximum=256)
    d_mask_dims: int = option(22, "Mask decoder dims: d_mask_dims×(8, 4, 2) channels.",
                              minimum=8, maximum=256)
    likeness_u: bool = option(False, "-u: pixel-normalise the latent (better likeness).",
                              flag="--u")
    double_res_d: bool = option(False, "-d: decoders work at half resolution and double it at "
                                "the end (size must be a multiple of 32).", flag="--d")
    deeper_t: bool = option(False, "-t: deeper encoder and decoder (extra downscale, upscale "
                            "and residual blocks).", flag="--t")
    res_blocks: int = option(1, "Residual blocks per decoder stage (DFL SAEHD: 1, Faceswap "
                             "dfl-sae: 2).", minimum=1, maximum=4)

    def size_step(self) -> int:
        return 32 if self.double_res_d else 16

    @property
    def archi(self) -> str:
        """DFL's archi suffix, e.g. ``"-ud"`` (empty without flags)."""
        flags = "".join(
            c for c, on in (("u", self.likeness_u), ("d", self.double_res_d),
                            ("t", self.deeper_t)) if on
        )
        return f"-{flags}" if flags else ""


@dataclass(frozen=True)
class DFConfig(DFLConfig):
    """Options of the ``df`` model."""


@dataclass(frozen=True)
class LIAEConfig(DFLConfig):
    """Options of the ``liae`` model."""


def _latent_res(cfg: DFLConfig) -> int:
    """Side of the map the inter's dense layer builds (DFL's ``lowest_dense_res``)."""
    return cfg.size // (32 if cfg.double_res_d else 16)


class _Encoder(nn.Module):
    """Shared encoder: N×3×S×S → N×F latent vectors (F = 8·e_dims·(S/16)², (S/32)² with -t)."""

    def __init__(self, cfg: DFLConfig) -> None:
        super().__init__()
        e = cfg.e_dims
        layers: list[nn.Module]
        if cfg.deeper_t:
            layers = [
                Downscale(3, e), ResidualBlock(e), Downscale(e, e * 2), Downscale(e * 2, e * 4),
                Downscale(e * 4, e * 8), Downscale(e * 8, e * 8), ResidualBlock(e * 8),
            ]
            res = cfg.size
            for _ in range(5):
                res = (res + 1) // 2  # stride-2 "same" conv: ceil
        else:
            layers = [Downscale(3, e), Downscale(e, e * 2), Downscale(e * 2, e * 4),
                      Downscale(e * 4, e * 8)]
            res = cfg.size // 16
        self.down = nn.Sequential(*layers)
        self.out_features = e * 8 * res * res
        self.pixel_norm = cfg.likeness_u

    def forward(self, x: Tensor) -> Tensor:
        z = self.down(x).flatten(1)
        return pixel_norm(z) if self.pixel_norm else z


class _Inter(nn.Module):
    """Dense ``ae_dims`` → dense to an ``out_ch``×R×R map → upscale (none with -t).

    N×F → N×out_ch×2R×2R (N×out_ch×R×R with -t), R = S/16 (S/32 with -d).
    """

    def __init__(self, cfg: DFLConfig, in_features: int, out_ch: int) -> None:
        super().__init__()
        res = _latent_res(cfg)
        layers: list[nn.Module] = [nn.Linear(in_features, cfg.ae_dims),
                                   DenseToMap(cfg.ae_dims, out_ch, res)]
        if not cfg.deeper_t:
            layers.append(Upscale(out_ch, out_ch))
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z)


class _Decoder(nn.Module):
    """Latent map in_ch×(S/8)² (S/16 with -d) → face 3×S×S and mask 1×S×S (sigmoid, [0, 1])."""

    def __init__(self, cfg: DFLConfig, in_ch: int) -> None:
        super().__init__()
        d, m = cfg.d_dims, cfg.d_mask_dims
        chans = [d * 8, d * 8, d * 4, d * 2] if cfg.deeper_t else [d * 8, d * 4, d * 2]
        face: list[nn.Module] = []
        last = in_ch
        for ch in chans:
            face.append(Upscale(last, ch))
            face.extend(ResidualBlock(ch) for _ in range(cfg.res_blocks))
            last = ch
        # -d: one 3×3 conv to 4×3 channels + pixel shuffle doubles the resolution at the end.
        face.append(
            OutputHead(last, 3, 3, shuffle=True) if cfg.double_res_d else OutputHead(last, 3, 1)
        )
        self.face = nn.Sequential(*face)
        self.mask: nn.Sequential | None = None
        if cfg.learn_mask:
            mchans = [m * 8, m * 8, m * 4, m * 2] if cfg.deeper_t else [m * 8, m * 4, m * 2]
            if cfg.double_res_d:
                mchans.append(m)
            mask: list[nn.Module] = []
            last = in_ch
            for ch in mchans:
                mask.append(Upscale(last, ch))
                last = ch
            mask.append(OutputHead(last, 1, 1))
            self.mask = nn.Sequential(*mask)

    def forward(self, code: Tensor, mask: bool = True) -> tuple[Tensor, Tensor | None]:
        return self.face(code), (None if self.mask is None or not mask else self.mask(code))


@MODELS.register("df", config=DFConfig)
class DFModel(SwapModel):
    """DeepFaceLab DF: shared encoder and inter, one decoder per side (best source likeness)."""

    cfg: DFConfig

    def __init__(self, cfg: DFConfig) -> None:
        super().__init__(cfg)
        self.encoder = _Encoder(cfg)
        self.inter = _Inter(cfg, self.encoder.out_features, cfg.ae_dims)
        self.decoder_a = _Decoder(cfg, cfg.ae_dims)
        self.decoder_b = _Decoder(cfg, cfg.ae_dims)
        init_weights(self)

    def forward(self, x: Tensor, side: Side, mask: bool = True) -> tuple[Tensor, Tensor | None]:
        self.check_input(x)
        decoder = self.decoder_a if side == "a" else self.decoder_b
        return decoder(self.inter(self.encoder(x)), mask)

    def forward_pair(
        self, x_a: Tensor, x_b: Tensor
    ) -> tuple[tuple[Tensor, Tensor | None], tuple[Tensor, Tensor | None]]:
        self.check_input(x_a)
        self.check_input(x_b)
        code = self.inter(self.encoder(torch.cat([x_a, x_b])))
        code_a, code_b = code.split([len(x_a), len(x_b)])
        return self.decoder_a(code_a), self.decoder_b(code_b)


@MODELS.register("liae", config=LIAEConfig)
class LIAEModel(SwapModel):
    """DeepFaceLab LIAE: shared encoder, inter_ab + inter_b, one decoder (follows dst lighting)."""

    cfg: LIAEConfig

    def __init__(self, cfg: LIAEConfig) -> None:
        super().__init__(cfg)
        self.encoder = _Encoder(cfg)
        self.inter_ab = _Inter(cfg, self.encoder.out_features, cfg.ae_dims * 2)
        self.inter_b = _Inter(cfg, self.encoder.out_features, cfg.ae_dims * 2)
        self.decoder = _Decoder(cfg, cfg.ae_dims * 4)
        init_weights(self)

    def _code(self, z: Tensor, side: Side) -> Tensor:
        ab = self.inter_ab(z)
        # Side "a" (and so the b2a swap) sees only the shared inter; side "b" adds inter_b.
        first = ab if side == "a" else self.inter_b(z)
        return torch.cat([first, ab], dim=1)

    def forward(self, x: Tensor, side: Side, mask: bool = True) -> tuple[Tensor, Tensor | None]:
        self.check_input(x)
        return self.decoder(self._code(self.encoder(x), side), mask)

    def forward_pair(
        self, x_a: Tensor, x_b: Tensor
    ) -> tuple[tuple[Tensor, Tensor | None], tuple[Tensor, Tensor | None]]:
        self.check_input(x_a)
        self.check_input(x_b)
        n = len(x_a)
        z = self.encoder(torch.cat([x_a, x_b]))
        ab = self.inter_ab(z)
        code_a = torch.cat([ab[:n], ab[:n]], dim=1)
        code_b = torch.cat([self.inter_b(z[n:]), ab[n:]], dim=1)
        face, mask = self.decoder(torch.cat([code_a, code_b]))
        face_a, face_b = face.split([n, len(x_b)])
        if mask is None:
            return (face_a, None), (face_b, None)
        mask_a, mask_b = mask.split([n, len(x_b)])
        return (face_a, mask_a), (face_b, mask_b)
