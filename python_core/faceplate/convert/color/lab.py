"""sRGB ⇄ CIE L*a*b* (D65) in NumPy, float32.

Convention: RGB is display-referred sRGB (IEC 61966-2-1 transfer curve, D65 primaries), nominal
range 0..1, channel order R, G, B; L*a*b* is CIE 1976 relative to the D65 white of sRGB
(X, Y, Z = 0.95047, 1.0, 1.08883), L* in 0..100, a* and b* roughly −128..127 for sRGB colours.
The scales are those of ``cv2.cvtColor(float32 RGB, cv2.COLOR_RGB2Lab)`` (the tests compare the
two: OpenCV approximates the curves, so they agree to about 1 unit). Both directions accept any
real input: negative values go through the transfer curve's linear segment with their sign kept,
and the L*a*b* curve's linear segment extends below 0, so out-of-gamut round trips give no NaN.

Example:
    >>> import numpy as np
    >>> white = np.ones((1, 1, 3), np.float32)
    >>> np.round(srgb_to_lab(white), 2).tolist() == [[[100.0, 0.0, 0.0]]]
    True
"""

from __future__ import annotations

import cv2
import numpy as np

# Linear sRGB → XYZ (D65), IEC 61966-2-1; rows are X, Y, Z.
_RGB_TO_XYZ = np.array([[0.4124564, 0.3575761, 0.1804375],
                        [0.2126729, 0.7151522, 0.0721750],
                        [0.0193339, 0.1191920, 0.9503041]], dtype=np.float64)
_WHITE = np.array([0.95047, 1.0, 1.08883], dtype=np.float64)
_RGB_TO_XYZN = _RGB_TO_XYZ / _WHITE[:, None]  # XYZ already divided by the white point
# (L*, a*, b*) = _F_TO_LAB @ (fx, fy, fz) + _LAB_OFFSET
_F_TO_LAB = np.array([[0.0, 116.0, 0.0], [500.0, -500.0, 0.0], [0.0, 200.0, -200.0]])
_LAB_OFFSET = np.array([-16.0, 0.0, 0.0])

# 3×4 affine matrices for cv2.transform (per-pixel matrix product, no BLAS threads).
_M_RGB_TO_XYZN = np.hstack([_RGB_TO_XYZN, np.zeros((3, 1))]).astype(np.float32)
_M_XYZN_TO_RGB = np.hstack([np.linalg.inv(_RGB_TO_XYZN), np.zeros((3, 1))]).astype(np.float32)
_M_F_TO_LAB = np.hstack([_F_TO_LAB, _LAB_OFFSET[:, None]]).astype(np.float32)
_M_LAB_TO_F = np.hstack([np.linalg.inv(_F_TO_LAB),
                         -np.linalg.inv(_F_TO_LAB) @ _LAB_OFFSET[:, None]]).astype(np.float32)

_DELTA = 6.0 / 29.0
_F_SLOPE = np.float32(1.0 / (3.0 * _DELTA**2))  # slope of the linear segment of f
_F_OFFSET = np.float32(4.0 / 29.0)


def _to_linear(x: np.ndarray) -> np.ndarray:
    """sRGB transfer curve decode (any sign), float32."""
    a = np.abs(x)
    lin = ((a + np.float32(0.055)) * np.float32(1 / 1.055)) ** np.float32(2.4)
    np.copyto(lin, a * np.float32(1 / 12.92), where=a <= np.float32(0.04045))
    if x.size and x.min() < 0:
        np.copysign(lin, x, out=lin)
    return lin


def _to_srgb(x: np.ndarray) -> np.ndarray:
    """sRGB transfer curve encode (any sign), float32."""
    a = np.abs(x)
    enc = np.float32(1.055) * a ** np.float32(1 / 2.4) - np.float32(0.055)
    np.copyto(enc, a * np.float32(12.92), where=a <= np.float32(0.0031308))
    if x.size and x.min() < 0:
        np.copysign(enc, x, out=enc)
    return enc


def _transform(x: np.ndarray, m: np.ndarray) -> np.ndarray:
    """``m[:, :3] @ v + m[:, 3]`` for every 3-vector ``v`` of ``x`` (...×3 float32)."""
    flat = np.ascontiguousarray(x).reshape(-1, 1, 3)
    return cv2.transform(flat, m).reshape(x.shape)


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB → L*a*b* (D65).

    Args:
        rgb: ...×3 float sRGB, nominal 0..1 (any shape whose last axis is R, G, B).

    Returns:
        Same shape, float32: L* (0..100 for in-gamut colours), a*, b*.
    """
    rgb = np.asarray(rgb, dtype=np.float32)
    t = _transform(_to_linear(rgb), _M_RGB_TO_XYZN)
    f = np.cbrt(t)
    np.copyto(f, t * _F_SLOPE + _F_OFFSET, where=t <= np.float32(_DELTA**3))
    return _transform(f, _M_F_TO_LAB)


def lab_to_srgb(lab: np.ndarray) -> np.ndarray:
    """L*a*b* (D65) → sRGB; the inverse of :func:`srgb_to_lab`.

    Args:
        lab: ...×3 float L*, a*, b*.

    Returns:
        Same shape, float32 sRGB, not clipped (out-of-gamut colours fall outside 0..1).
    """
    lab = np.asarray(lab, dtype=np.float32)
    f = _transform(lab, _M_LAB_TO_F)
    t = f * f * f
    np.copyto(t, (f - _F_OFFSET) * np.float32(1 / _F_SLOPE), where=f <= np.float32(_DELTA))
    return _to_srgb(_transform(t, _M_XYZN_TO_RGB))
