"""The detector contract.

A detector takes one display-referred ``uint8`` RGB frame (H×W×3, top-left origin) and returns
:class:`~faceplate.core.types.Detection` objects whose boxes are in frame pixels (x right, y down,
pixel centres at +0.5) **and already mapped to the aligner box convention**: the box dlib's
frontal-face detector would draw (brows to chin, roughly ear to ear, square). Each detector draws
its box differently, so each one owns a calibrated mapping from its native box to that convention.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from faceplate.core.registry import Registry
from faceplate.core.types import Detection


class Detector(ABC):
    """Base class: subclasses implement :meth:`_detect`; the base validates input and output."""

    registry_name: str = ""

    def __init__(self, cfg: Any) -> None:
        self.cfg = cfg

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        """Detect faces in an H×W×3 ``uint8`` RGB frame; boxes in the aligner convention."""
        from faceplate.core.validate import check_image

        check_image(rgb, "frame")
        dets = self._detect(np.ascontiguousarray(rgb))
        return sorted(dets, key=lambda d: -d.score)

    @abstractmethod
    def _detect(self, rgb: np.ndarray) -> list[Detection]:
        """Subclass hook: contiguous H×W×3 uint8 RGB in, detections out."""


DETECTORS: Registry[Detector] = Registry("detector")
