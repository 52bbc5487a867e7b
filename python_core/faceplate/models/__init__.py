"""Swap-model registry: ``original``, ``df``, ``liae`` (see ``original.py`` to add one).

Importing this package registers every model in :data:`MODELS`.
"""

from faceplate.models import dfl, original
from faceplate.models.base import (
    MODELS,
    SIDES,
    Direction,
    ModelConfig,
    Side,
    SwapInference,
    SwapModel,
    build_model,
    decoder_side,
)
from faceplate.models.dfl import DFConfig, DFLConfig, DFModel, LIAEConfig, LIAEModel
from faceplate.models.original import OriginalConfig, OriginalModel

__all__ = [
    "MODELS",
    "SIDES",
    "DFConfig",
    "DFLConfig",
    "DFModel",
    "Direction",
    "LIAEConfig",
    "LIAEModel",
    "ModelConfig",
    "OriginalConfig",
    "OriginalModel",
    "Side",
    "SwapInference",
    "SwapModel",
    "build_model",
    "decoder_side",
    "dfl",
    "original",
]
