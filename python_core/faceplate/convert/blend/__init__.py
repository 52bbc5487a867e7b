"""Blending the face into the plate (registry ``BLEND``).

Importing this package registers every blender: ``overlay`` (feathered alpha), ``seamless``
(Poisson image editing), ``seamless-hist`` (histogram match, then Poisson) and ``raw`` (the face
and its matte, for compositing by hand). Blenders work on box-sized arrays; ``convert.composite
.paste_back`` warps the face into the box and calls them.
"""

from faceplate.convert.blend import overlay, seamless  # noqa: F401  (registers the blenders)
from faceplate.convert.blend.base import BLEND, AlphaMode, Blender, check_box_inputs
from faceplate.convert.blend.seamless import match_histograms, poisson_solve

__all__ = ["BLEND", "AlphaMode", "Blender", "check_box_inputs", "match_histograms",
           "poisson_solve"]
