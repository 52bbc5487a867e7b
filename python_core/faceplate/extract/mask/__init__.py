"""Face maskers (registry ``MASKERS``)."""

from faceplate.extract.mask.base import MASKERS, Masker

__all__ = ["MASKERS", "Masker"]
