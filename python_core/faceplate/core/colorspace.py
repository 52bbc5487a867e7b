"""Colour space helpers: sRGB ⇄ scene-linear (IEC 61966-2-1 piecewise curve), sRGB ⇄ CIE
L*a*b* (D65), and alpha.

The transfer curve and the L*a*b* curve are written once here, with arithmetic operators and
``.clip`` only (``*_nonneg``, :func:`lab_f`, :func:`lab_finv`), so the same functions serve NumPy
arrays (the converter, evaluation) and torch tensors (the trainer's colour augmentation) alike;
each piecewise curve is written branch-free: the linear toe is the continuation of the curve at
its joint, ``curve(max(x, k)) + slope·(min(x, k) − k)``. The matrices and constants below are the
only copy of the D65 colourimetry in the project.

The NumPy functions take and return float32 arrays H×W×C (or any shape for the transfer curves),
RGB(A) channel order. Linear values may exceed 1.0 (scene-linear highlights); sRGB encodings of
values above 1.0 extend the curve's power segment rather than clipping, and negative values go
through the linear segment with their sign kept. L*a*b* is CIE 1976 relative to the D65 white of
sRGB (X, Y, Z = 0.95047, 1.0, 1.08883): L* 0..100, a* and b* roughly −128..127 for sRGB colours
(the scales of ``cv2.cvtColor(float32 RGB, cv2.COLOR_RGB2Lab)``); nothing is clipped.
"""

from __future__ import annotations

from typing import Any, TypeVar

import numpy as np

#: IEC 61966-2-1: encoded = (1 + A)·lin^(1/γ) − A above the knee, SLOPE·lin below it.
SRGB_A = 0.055
SRGB_GAMMA = 2.4
SRGB_SLOPE = 12.92
SRGB_KNEE_LINEAR = 0.0031308
SRGB_KNEE_ENCODED = 0.04045

#: Linear sRGB (D65 primaries) → XYZ with each row divided by the D65 white (white → 1, 1, 1).
RGB_TO_XYZN = (np.array([[0.4124564, 0.3575761, 0.1804375],
                         [0.2126729, 0.7151522, 0.0721750],
                         [0.0193339, 0.1191920, 0.9503041]])
               / np.array([0.95047, 1.0, 1.08883])[:, None])
XYZN_TO_RGB = np.linalg.inv(RGB_TO_XYZN)
#: (L*, a*, b*) = F_TO_LAB @ (fx, fy, fz) + LAB_OFFSET, f the L*a*b* curve of X/Xn, Y/Yn, Z/Zn.
F_TO_LAB = np.array([[0.0, 116.0, 0.0], [500.0, -500.0, 0.0], [0.0, 200.0, -200.0]])
LAB_TO_F = np.linalg.inv(F_TO_LAB)
LAB_OFFSET = np.array([-16.0, 0.0, 0.0])
#: The L*a*b* curve's joint: f(t) = t^(1/3) above DELTA³, linear below.
LAB_DELTA = 6.0 / 29.0

T = TypeVar("T")  # a float ndarray or a torch.Tensor: anything with operators and .clip


def srgb_decode_nonneg(x: T) -> T:
    """The sRGB transfer curve, encoded → linear, for ``x ≥ 0`` (ndarray or tensor)."""
    k = SRGB_KNEE_ENCODED
    a: Any = x
    return ((a.clip(min=k) + SRGB_A) / (1.0 + SRGB_A)) ** SRGB_GAMMA \
        + (a.clip(max=k) - k) / SRGB_SLOPE


def srgb_encode_nonneg(x: T) -> T:
    """The sRGB transfer curve, linear → encoded, for ``x ≥ 0`` (ndarray or tensor)."""
    k = SRGB_KNEE_LINEAR
    a: Any = x
    return (1.0 + SRGB_A) * a.clip(min=k) ** (1.0 / SRGB_GAMMA) - SRGB_A \
        + (a.clip(max=k) - k) * SRGB_SLOPE


def lab_f(t: T) -> T:
    """The L*a*b* curve of a normalised tristimulus value (any real ``t``; ndarray or tensor)."""
    k = LAB_DELTA ** 3
    a: Any = t
    return a.clip(min=k) ** (1.0 / 3.0) \
        + (a.clip(max=k) - k) / (3.0 * LAB_DELTA ** 2)


def lab_finv(f: T) -> T:
    """The inverse of :func:`lab_f` (any real ``f``; ndarray or tensor)."""
    a: Any = f
    return a.clip(min=LAB_DELTA) ** 3 \
        + 3.0 * LAB_DELTA ** 2 * (a.clip(max=LAB_DELTA) - LAB_DELTA)


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    """Decode sRGB-encoded values (float, nominal 0..1) to linear light, float32.

    Negative inputs map through the linear segment (sign kept).
    """
    x = np.asarray(x, dtype=np.float32)
    return np.copysign(srgb_decode_nonneg(np.abs(x)), x).astype(np.float32, copy=False)


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    """Encode linear light (float) to sRGB values, float32; the inverse of
    :func:`srgb_to_linear`. Negative inputs map through the linear segment (sign kept)."""
    x = np.asarray(x, dtype=np.float32)
    return np.copysign(srgb_encode_nonneg(np.abs(x)), x).astype(np.float32, copy=False)


def _mat(x: np.ndarray, m: np.ndarray) -> np.ndarray:
    """``m @ v`` for every 3-vector ``v`` on the last axis of ``x`` (float32)."""
    return np.matmul(x, m.T.astype(np.float32))


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB → L*a*b* (D65).

    Args:
        rgb: ...×3 float sRGB, nominal 0..1 (any shape whose last axis is R, G, B).

    Returns:
        Same shape, float32: L* (0..100 for in-gamut colours), a*, b*.
    """
    rgb = np.asarray(rgb, dtype=np.float32)
    f = lab_f(_mat(srgb_to_linear(rgb), RGB_TO_XYZN))
    return _mat(f, F_TO_LAB) + LAB_OFFSET.astype(np.float32)


def lab_to_srgb(lab: np.ndarray) -> np.ndarray:
    """L*a*b* (D65) → sRGB; the inverse of :func:`srgb_to_lab`.

    Args:
        lab: ...×3 float L*, a*, b*.

    Returns:
        Same shape, float32 sRGB, not clipped (out-of-gamut colours fall outside 0..1).
    """
    lab = np.asarray(lab, dtype=np.float32)
    f = _mat(lab - LAB_OFFSET.astype(np.float32), LAB_TO_F)
    return linear_to_srgb(_mat(lab_finv(f), XYZN_TO_RGB))


def premultiply(rgba: np.ndarray) -> np.ndarray:
    """RGBA straight → premultiplied (float32 H×W×4); alpha is unchanged."""
    rgba = np.asarray(rgba, dtype=np.float32)
    out = rgba.copy()
    out[..., :3] *= rgba[..., 3:4]
    return out


def unpremultiply(rgba: np.ndarray, eps: float = 1e-8) -> np.ndarray:
    """RGBA premultiplied → straight (float32 H×W×4); colour is 0 where alpha ≤ ``eps``."""
    rgba = np.asarray(rgba, dtype=np.float32)
    out = rgba.copy()
    a = rgba[..., 3:4]
    safe = np.where(a > eps, a, 1.0)
    out[..., :3] = np.where(a > eps, rgba[..., :3] / safe, 0.0)
    return out


_DISPLAY_LUT_SIZE = 65536
_display_lut: np.ndarray | None = None


def _display_lut_u8() -> np.ndarray:
    """uint8 sRGB code for each of 65536 evenly spaced linear values in [0, 1]."""
    global _display_lut
    if _display_lut is None:
        lin = np.linspace(0.0, 1.0, _DISPLAY_LUT_SIZE, dtype=np.float64)
        enc = linear_to_srgb(lin.astype(np.float32))
        _display_lut = (np.clip(enc, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return _display_lut


def linear_to_display_u8(linear: np.ndarray) -> tuple[np.ndarray, int]:
    """Scene-linear float RGB(A) → display sRGB ``uint8`` RGB for detection only.

    Non-finite values (NaN, ±Inf) are replaced (NaN → 0, +Inf → 1, −Inf → 0) before encoding,
    values are clipped to [0, 1]; alpha is dropped and grey is replicated to RGB. Encoding goes
    through a 65536-entry table (linear quantised to 1/65535: at most one code from the exact
    curve, and about 10× faster than evaluating it per sample).

    Returns:
        (H×W×3 uint8 image, number of non-finite samples replaced).
    """
    lin = np.asarray(linear, dtype=np.float32)
    if lin.ndim == 2:
        lin = lin[..., None]
    rgb = lin[..., :3] if lin.shape[2] >= 3 else np.repeat(lin[..., :1], 3, axis=2)
    n_bad = int(rgb.size - np.count_nonzero(np.isfinite(rgb)))
    if n_bad:
        rgb = np.nan_to_num(rgb, nan=0.0, posinf=1.0, neginf=0.0)
    scaled = np.clip(rgb, 0.0, 1.0) * np.float32(_DISPLAY_LUT_SIZE - 1) + np.float32(0.5)
    return _display_lut_u8()[scaled.astype(np.uint16)], n_bad
