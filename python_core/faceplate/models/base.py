"""The swap-model contract: :class:`SwapModel`, :class:`ModelConfig`, the :data:`MODELS` registry.

A swap model is an autoencoder with one shared encoder and a way to decode for each side:

* side ``"a"``: the person whose face we want to produce (the source identity, DFL's "src");
* side ``"b"``: the person in the footage (DFL's "dst").

Training reconstructs each side from its own warped faces (``model(x_a, "a")``,
``model(x_b, "b")``); converting runs B's faces through A's decoder (``model(x_b, "a")``, the
``"b2a"`` direction). Tensors are NCHW float32 RGB, display-referred sRGB in [0, 1]; masks are
N×1×H×W in [0, 1] (1 = face).

To add a model, copy ``original.py`` (the documented template).
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
from torch import Tensor, nn

from faceplate.core.config import Config, option
from faceplate.core.errors import ConfigError, InputError
from faceplate.core.registry import Registry

Side = Literal["a", "b"]
Direction = Literal["b2a", "a2b"]
SIDES: tuple[Side, Side] = ("a", "b")


def decoder_side(direction: Direction) -> Side:
    """The side whose decoder renders a swap: ``"b2a"`` (B's faces made A's) → ``"a"``."""
    if direction == "b2a":
        return "a"
    if direction == "a2b":
        return "b"
    raise ConfigError(f"direction: {direction!r} is not one of b2a, a2b")


@dataclass(frozen=True)
class ModelConfig(Config):
    """Options every model has. Subclasses add their own fields and may override the defaults.

    ``size`` is the training resolution: the face crop side in pixels the model outputs.
    """

    size: int = option(64, "Output resolution in pixels (square face crop).", minimum=64,
                       maximum=512)
    learn_mask: bool = option(True, "Also predict a face mask (used as the 'predicted' mask at "
                              "convert).")

    #: ``size`` must be a multiple of this (subclasses set it; may depend on flags: see
    #: :meth:`size_step`).
    SIZE_STEP: ClassVar[int] = 16

    def __post_init__(self) -> None:
        super().__post_init__()
        step = self.size_step()
        if self.size % step:
            lower = max(step, self.size // step * step)
            raise ConfigError(
                f"size: {self.size} is not a multiple of {step} for this model "
                f"(try {lower} or {lower + step})"
            )

    def size_step(self) -> int:
        """The multiple ``size`` must be; override when flags change it (DFL ``-d``: 32)."""
        return self.SIZE_STEP


class SwapModel(nn.Module):
    """Base class of every swap model; subclasses implement :meth:`forward`.

    Attributes:
        registry_name: The name the model is registered under (set by :data:`MODELS`).
        cfg: The model's frozen config.
    """

    registry_name: ClassVar[str] = ""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg

    @property
    def input_size(self) -> int:
        """Side in pixels of the square faces :meth:`forward` takes."""
        return int(self.cfg.size)

    @property
    def output_size(self) -> int:
        """Side in pixels of the faces and masks :meth:`forward` returns."""
        return int(self.cfg.size)

    @property
    def learn_mask(self) -> bool:
        """Whether :meth:`forward` returns a predicted mask (else ``None``)."""
        return bool(self.cfg.learn_mask)

    @abstractmethod
    def forward(self, x: Tensor, side: Side, mask: bool = True) -> tuple[Tensor, Tensor | None]:
        """Encode ``x`` and decode it as ``side``'s face.

        Args:
            x: N×3×input_size×input_size float32 RGB in [0, 1].
            side: ``"a"`` or ``"b"``: whose decoder (or code, for LIAE) renders the output.
            mask: False skips the mask branch (a converter that does not use the learned mask:
                DFL's default decoder spends ~6 % of a face's work on it).

        Returns:
            ``(face, mask)``: face N×3×output_size² in [0, 1]; mask N×1×output_size² in [0, 1],
            or ``None`` when :attr:`learn_mask` is off or ``mask`` is False.
        """

    def forward_pair(
        self, x_a: Tensor, x_b: Tensor
    ) -> tuple[tuple[Tensor, Tensor | None], tuple[Tensor, Tensor | None]]:
        """One training step's forward for both sides: ``(forward(x_a,"a"), forward(x_b,"b"))``.

        Models with a shared encoder override this to encode both batches in one pass (same
        results, fewer and larger kernels).
        """
        return self.forward(x_a, "a"), self.forward(x_b, "b")

    def check_input(self, x: Tensor) -> None:
        """Raise :class:`InputError` unless ``x`` is N×3×input_size×input_size floating point.

        Skipped while tracing (TorchScript/legacy ONNX export), where shapes are symbolic.
        """
        if torch.jit.is_tracing():
            return
        if x.dim() != 4 or x.shape[1] != 3 or x.shape[2] != x.shape[3] or (
            x.shape[2] != self.input_size
        ):
            raise InputError(
                f"{self.registry_name} model takes N×3×{self.input_size}×{self.input_size} "
                f"faces, got {tuple(x.shape)}"
            )
        if not x.is_floating_point():
            raise InputError(f"{self.registry_name} model takes float faces, got {x.dtype}")

    def inference(self, direction: Direction = "b2a", *, mask: bool = True) -> nn.Module:
        """A module for export and convert: ``forward(x) -> (face, mask)``.

        ``direction="b2a"`` decodes with A's side (turns the footage's B faces into A), ``"a2b"``
        with B's. The mask is the predicted mask, or ones (N×1×S×S) when the model does not
        learn one, so exported graphs always have the two outputs ``face`` and ``mask``.
        ``mask=False``: a face-only module (its mask is None, the mask branch never runs).
        The module shares this model's parameters (no copy).
        """
        return SwapInference(self, decoder_side(direction), mask=mask)

    def param_count(self) -> int:
        """Number of trainable parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)


class SwapInference(nn.Module):
    """Inference wrapper from :meth:`SwapModel.inference`: x N×3×S×S → (face, mask)."""

    def __init__(self, model: SwapModel, side: Side, *, mask: bool = True) -> None:
        super().__init__()
        self.model = model
        self.side: Side = side
        self.with_mask = mask

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        face, mask = self.model(x, self.side, self.with_mask)
        if mask is None and self.with_mask:
            mask = torch.ones_like(face[:, :1])
        return face, mask


MODELS: Registry[SwapModel] = Registry("model")


def build_model(name: str, cfg: ModelConfig | None = None) -> SwapModel:
    """Create model ``name`` with ``cfg`` (its default config when None); ``ConfigError`` for an
    unknown name or a config of the wrong class."""
    return MODELS.create(name, cfg)
