"""Colour transfer (registry ``COLOR``): make the predicted face take the plate's colours.

Importing this package registers every method (names as in DeepFaceLab / Faceswap):

========== ============ ==========================================================
name       colour space what it matches (statistics from the masked pixels)
========== ============ ==========================================================
none       —            nothing (the model's output, clipped to [0, 1])
avg-color  sRGB         channel means
rct        L*a*b* (D65) per-channel mean and standard deviation (Reinhard)
lct        sRGB         mean and covariance (symmetric or Cholesky square root)
mkl        sRGB         mean and covariance, optimal-transport linear map
hist-match sRGB         per-channel CDFs (with Faceswap's threshold)
idt        sRGB         full 3-D distribution, iterative rotated 1-D matches
sot        sRGB         full 3-D distribution, sliced optimal transport
========== ============ ==========================================================

Use: ``COLOR.create("rct").apply(face, target, face_mask, target_mask)``; see
:class:`ColorTransfer` for the contract (float32 sRGB 0..1 crops, H×W masks, output clipped to
[0, 1], inputs untouched, ``strength`` blend).
"""

from faceplate.convert.color import distribution, linear, rct  # noqa: F401  (registers methods)
from faceplate.convert.color.base import COLOR, ColorConfig, ColorTransfer, Samples
from faceplate.convert.color.distribution import HistMatchConfig, IterativeConfig, SotConfig
from faceplate.convert.color.linear import LctConfig
from faceplate.convert.color.rct import RctConfig

__all__ = [
    "COLOR",
    "ColorConfig",
    "ColorTransfer",
    "HistMatchConfig",
    "IterativeConfig",
    "LctConfig",
    "RctConfig",
    "Samples",
    "SotConfig",
]
