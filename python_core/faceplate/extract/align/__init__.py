"""Landmark aligners (registry ``ALIGNERS``): 68 iBUG points per detection."""

from faceplate.extract.align.base import ALIGNERS, Aligner, Alignment

__all__ = ["ALIGNERS", "Aligner", "Alignment"]
