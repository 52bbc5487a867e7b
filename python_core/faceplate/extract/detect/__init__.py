"""Face detectors (registry ``DETECTORS``). Importing this package registers every detector."""

from faceplate.extract.detect.base import DETECTORS, Detector

__all__ = ["DETECTORS", "Detector"]
