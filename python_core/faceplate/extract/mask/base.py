"""The masker contract.

A masker draws a ``uint8`` mask (0 outside, 255 inside) of ``size``×``size`` pixels in the aligned
crop space given by a frame → crop matrix. Landmark maskers only need the 68 points; mesh maskers
may use the dense mesh when the aligner supplied one, or run the mesh on the aligned crop.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from faceplate.core.registry import Registry


class Masker(ABC):
    registry_name: str = ""

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


MASKERS: Registry[Masker] = Registry("masker")
