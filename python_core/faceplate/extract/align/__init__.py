"""Landmark aligners (registry ``ALIGNERS``): 68 iBUG points per detection."""

from faceplate.extract.align import dlib68, mesh68
from faceplate.extract.align.base import ALIGNERS, Aligner, AlignerConfig, Alignment

__all__ = ["ALIGNERS", "Aligner", "AlignerConfig", "Alignment", "dlib68", "mesh68"]
