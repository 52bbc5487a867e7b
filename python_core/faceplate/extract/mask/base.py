"""The masker contract.

A masker draws a ``uint8`` mask (0 outside, 255 inside) of ``size``×``size`` pixels in the aligned
crop space given by a frame → crop matrix. Landmark maskers only need the 68 points; mesh maskers
may use the dense mesh when the aligner supplied one, or run the mesh on the aligned crop; the
``occlusion`` masker runs a trained segmenter on the crop's pixels and wants a crop of its own
geometry (:meth:`Masker.crop_geometry`).

A mask *spec* names a masker, optionally with an argument: ``extended``, or
``occlusion:MODEL_DIR``, where the argument sets the config field the masker class names in
``spec_field`` (:func:`create_masker`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np

from faceplate.core.errors import ConfigError
from faceplate.core.registry import Registry
from faceplate.core.types import Centering


def blank_crop(size: int) -> np.ndarray:
    """A read-only size×size×3 ``uint8`` crop of zeros that allocates no pixels (a broadcast
    view), for maskers that do not read pixels (:attr:`Masker.reads_pixels`)."""
    return np.broadcast_to(np.zeros((1, 1, 3), np.uint8), (size, size, 3))


class Masker(ABC):
    registry_name: str = ""
    #: Config field a spec's ``:argument`` sets (empty: the masker takes no argument).
    spec_field: ClassVar[str] = ""
    #: False when :meth:`mask` reads only the crop's shape, never its pixels (the landmark
    #: hulls): the extractor then hands it :func:`blank_crop` instead of cutting the face out
    #: of the frame (the contract tests check the mask is the same either way).
    reads_pixels: ClassVar[bool] = True

    def __init__(self, cfg: Any) -> None:
        self.cfg = cfg

    @abstractmethod
    def mask(self, crop: np.ndarray, landmarks: np.ndarray, matrix: np.ndarray,
             mesh: np.ndarray | None = None) -> np.ndarray:
        """Draw the mask.

        Args:
            crop: size×size×3 uint8 RGB aligned face (the crop the mask belongs to).
            landmarks: 68×2 float32 frame-pixel landmarks.
            matrix: 2×3 float64 frame → crop matrix.
            mesh: Optional N×3 dense mesh in frame pixels (from the aligner).

        Returns:
            size×size uint8 mask, 0 outside, 255 inside.
        """

    def crop_geometry(self) -> tuple[int, Centering, float] | None:
        """``(size, centering, coverage)`` of the crop this masker wants to be given (the
        extractor then cuts one for it from the frame and stores the mask at that geometry), or
        None for the extractor's shared mask crop (``mask_size``, the store's centering)."""
        return None

    def spec(self) -> str:
        """The spec that recreates this masker (``name`` or ``name:argument``), as stored in
        a store's extraction settings."""
        return self.registry_name


MASKERS: Registry[Masker] = Registry("masker")


def split_mask_spec(spec: str) -> tuple[str, str | None]:
    """``"occlusion:/models/m"`` → ``("occlusion", "/models/m")``; ``"extended"`` →
    ``("extended", None)``."""
    name, sep, arg = str(spec).partition(":")
    return name, (arg if sep else None)


def create_masker(spec: str, cfg: Any = None) -> Masker:
    """The masker a spec names, with ``cfg`` (its defaults when None) and the spec's argument.

    Raises:
        ConfigError: unknown masker, an argument given to a masker that takes none, or an
            empty argument.
    """
    name, arg = split_mask_spec(spec)
    entry = MASKERS.entry(name)
    if arg is not None:
        field = getattr(entry.cls, "spec_field", "")
        if not field:
            raise ConfigError(f"masks: {name!r} takes no argument (got {spec!r})")
        if not arg.strip():
            raise ConfigError(f"masks: {spec!r} needs its argument after the colon")
        cfg = (cfg if cfg is not None else entry.config()).replace(**{field: arg})
    return MASKERS.create(name, cfg)
