"""The aligner contract.

An aligner takes the ``uint8`` RGB frame and detections (boxes in dlib's frontal-face convention)
and returns one :class:`Alignment` per detection: 68 (x, y) points in iBUG order, in frame pixels,
x right, y down, pixel centres at +0.5.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from faceplate.core.registry import Registry
from faceplate.core.types import Detection


@dataclass(frozen=True, eq=False)
class Alignment:
    """Landmarks for one detection.

    Attributes:
        landmarks: 68×2 float32 frame pixels, iBUG order.
        confidence: Aligner confidence in [0, 1] (1.0 when the aligner gives none).
        mesh: Optional N×3 float32 dense mesh (x, y in frame pixels, z relative depth in the
            same pixel scale), e.g. mediapipe's 468 points.
    """

    landmarks: np.ndarray
    confidence: float = 1.0
    mesh: np.ndarray | None = field(default=None)


class Aligner(ABC):
    registry_name: str = ""

    def __init__(self, cfg: Any) -> None:
        self.cfg = cfg

    @abstractmethod
    def align(self, rgb: np.ndarray, detections: list[Detection]) -> list[Alignment]:
        """One alignment per detection, same order. H×W×3 uint8 RGB in."""


ALIGNERS: Registry[Aligner] = Registry("aligner")
