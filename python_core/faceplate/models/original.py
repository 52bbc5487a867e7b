"""``original``: the first deepfakes autoencoder (as in Faceswap), and THE template to copy.

This file is deliberately over-explained: to add a model, copy it to ``models/<name>.py``, rename
the classes, change the layers, and import the new module in ``models/__init__.py`` (that import is
what runs the ``@MODELS.register`` decorator). Nothing else in Faceplate needs to change: the CLI
flags, the trainer, ONNX export, the manifest and the contract tests all read the registry.

The architecture (at the default 64 px and ``dims=128``)::

    face 3×64×64 ─ shared encoder ─────────────────────────────────────────────┐
      Downscale 5×5/2 → 128×32×32 → 256×16×16 → 512×8×8 → 1024×4×4            │
      flatten (16384) → Dense(encoder_dim=1024) → Dense(4·4·1024) → 1024×4×4   │
      Upscale → 512×8×8  ═══ the shared latent map ══════════════════════════════┘
                 │                                   │
           decoder_a                            decoder_b          (one per side)
      Upscale → 256×16² → 128×32² → 64×64²    (same layout)
      face head: conv 5×5 → 3 channels → sigmoid          → face 3×64×64 in [0, 1]
      mask branch (learn_mask): its own Upscale ×3 (mask_dims×(2, 1, 1/2) = 128, 64, 32) and a
      5×5 conv → 1 channel → sigmoid                      → mask 1×64×64 in [0, 1]

Training feeds A's warped faces through ``decoder_a`` and B's through ``decoder_b``; because the
encoder is shared it must learn an identity-agnostic code (pose, expression, lighting), so at
convert time feeding B's face through ``decoder_a`` renders A with B's expression: the swap.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from faceplate.core.config import option
from faceplate.core.errors import ConfigError
from faceplate.models.base import MODELS, ModelConfig, Side, SwapModel
from faceplate.models.layers import (
    DenseToMap,
    Downscale,
    OutputHead,
    Upscale,
    init_weights,
)


# -- Step 1: the config. ------------------------------------------------------------------------
# A frozen dataclass inheriting ModelConfig (which brings ``size`` and ``learn_mask``). Every field
# is declared with option(default, help, minimum=..., maximum=..., choices=...): the CLI flags
# (``faceplate train --model original --encoder-dim 512``), the OFX params and the docs are
# generated from it, and Config validates the ranges on construction. Override a base field to
# change its default or range. Cross-field rules go in __post_init__ (call super() first), and
# ``SIZE_STEP`` says which multiple ``size`` must be (the base class checks it).
@dataclass(frozen=True)
class OriginalConfig(ModelConfig):
    """Options of the ``original`` model (Faceswap's original: 64 px in and out)."""

    size: int = option(64, "Input and output resolution in pixels (Faceswap's original: 64).",
                       minimum=64, maximum=256)
    encoder_dim: int = option(1024, "Width of the dense bottleneck (Faceswap: 1024; 512 for "
                              "low memory).", minimum=64, maximum=4096)
    dims: int = option(128, "Base channel count: encoder convs use dims×(1, 2, 4, 8), the "
                       "decoders dims×(2, 1, 1/2).", minimum=16, maximum=512)
    mask_dims: int = option(64, "Base channel count of the mask branch: its upscales use "
                            "mask_dims×(2, 1, 1/2) (Faceswap's original: dims, full width).",
                            minimum=8, maximum=512)

    # The encoder halves the size four times and the dense layer rebuilds a size/16 map.
    SIZE_STEP = 16

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("dims", "mask_dims"):
            if getattr(self, name) % 2:
                raise ConfigError(f"{name}: {getattr(self, name)} must be even (the last "
                                  f"decoder stage uses {name}/2 channels)")


# -- Step 2: register the class under its CLI name with its config class. ------------------------
# The registry sets ``registry_name`` and takes the first docstring line as the summary shown by
# ``faceplate train --help``. ``build_model("original", OriginalConfig(...))`` creates it.
@MODELS.register("original", config=OriginalConfig)
class OriginalModel(SwapModel):
    """Faceswap's original autoencoder: shared encoder, one decoder per side, 64 px."""

    cfg: OriginalConfig

    # -- Step 3: build the layers from the config in __init__. -----------------------------------
    # Name the parts the way users know them (encoder, decoder_a, decoder_b): the names become
    # the safetensors keys of the checkpoint ("encoder.down.0.conv.weight", ...), which the
    # manifest records, so renaming a layer later breaks old model folders.
    def __init__(self, cfg: OriginalConfig) -> None:
        super().__init__(cfg)
        d = cfg.dims
        low = cfg.size // 16  # side of the smallest map (4 at 64 px)
        self.encoder = nn.Sequential(
            Downscale(3, d),
            Downscale(d, d * 2),
            Downscale(d * 2, d * 4),
            Downscale(d * 4, d * 8),
            nn.Flatten(),
            nn.Linear(d * 8 * low * low, cfg.encoder_dim),
            DenseToMap(cfg.encoder_dim, d * 8, low),
            Upscale(d * 8, d * 4),
        )
        mask_dims = cfg.mask_dims if cfg.learn_mask else None
        self.decoder_a = _Decoder(d * 4, d, mask_dims)
        self.decoder_b = _Decoder(d * 4, d, mask_dims)
        # Step 4: initialise. init_weights applies ICNR to every Upscale, He-uniform to the
        # LeakyReLU convs and Glorot to dense layers and output heads. Call it last.
        init_weights(self)

    # -- Step 5: the forward contract. ----------------------------------------------------------
    # forward(x, side) takes N×3×input_size² float RGB in [0, 1] and returns (face, mask):
    # face N×3×output_size² in [0, 1] and mask N×1×output_size² in [0, 1], or None when
    # learn_mask is off or ``mask`` is False (the mask branch skipped: a converter that does
    # not use it). ``side`` picks the decoder. Keep it branch-free on data (only on
    # ``side``, a Python string), with no per-sample loops, so it exports to ONNX and runs
    # batched. ``check_input`` gives a clear InputError for a wrong shape. Nothing else is
    # needed: SwapModel.inference(direction) wraps forward for export (it returns a module whose
    # forward(x) gives (face, mask) with a ones mask when learn_mask is off), and
    # ``input_size``/``output_size`` default to cfg.size (override them when they differ, as a
    # model that takes 64 px and outputs 128 px would).
    def forward(self, x: Tensor, side: Side, mask: bool = True) -> tuple[Tensor, Tensor | None]:
        self.check_input(x)
        return self._decoder(side)(self.encoder(x), mask)

    # Optional: forward_pair runs the shared encoder once over both sides' batches (larger, fewer
    # kernels: faster). It must give the same results as two forward() calls.
    def forward_pair(
        self, x_a: Tensor, x_b: Tensor
    ) -> tuple[tuple[Tensor, Tensor | None], tuple[Tensor, Tensor | None]]:
        self.check_input(x_a)
        self.check_input(x_b)
        code_a, code_b = self.encoder(torch.cat([x_a, x_b])).split([len(x_a), len(x_b)])
        return self.decoder_a(code_a), self.decoder_b(code_b)

    def _decoder(self, side: Side) -> _Decoder:
        return self.decoder_a if side == "a" else self.decoder_b


class _Decoder(nn.Module):
    """One side's decoder: latent (4·dims)×(S/8)² → face 3×S² and, optionally, mask 1×S².

    Step 6, the mask head: a separate branch from the latent with the same three upscales as
    the face branch, ``mask_dims`` wide, and a 1-channel sigmoid output (Faceswap's
    ``learn_mask``). A separate branch keeps the mask from competing with the face for the
    decoder's channels; a mask is smooth, so it can be narrower (DFL uses about a third of the
    decoder width; here mask_dims=64 vs dims=128 costs a quarter of the face branch). When
    learn_mask is off (``mask_dims=None``) the branch is not built at all, so the model has no
    unused parameters and returns None for the mask.
    """

    def __init__(self, in_ch: int, d: int, mask_dims: int | None) -> None:
        super().__init__()
        self.face = nn.Sequential(
            Upscale(in_ch, d * 2), Upscale(d * 2, d), Upscale(d, d // 2), OutputHead(d // 2, 3, 5)
        )
        self.mask: nn.Sequential | None = None
        if mask_dims is not None:
            m = mask_dims
            self.mask = nn.Sequential(
                Upscale(in_ch, m * 2), Upscale(m * 2, m), Upscale(m, m // 2),
                OutputHead(m // 2, 1, 5),
            )

    def forward(self, z: Tensor, mask: bool = True) -> tuple[Tensor, Tensor | None]:
        return self.face(z), (None if self.mask is None or not mask else self.mask(z))
