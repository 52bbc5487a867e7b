"""Colour space helpers: sRGB ⇄ scene-linear (IEC 61966-2-1 piecewise curve) and alpha.

All functions take and return float32 arrays H×W×C (or any shape for the transfer curves),
RGB(A) channel order. Linear values may exceed 1.0 (scene-linear highlights); sRGB encodings of
values above 1.0 extend the curve's power segment rather than clipping.
"""

from __future__ import annotations

import numpy as np

_A = 0.055
_THRESH_LIN = 0.0031308
_THRESH_SRGB = 0.04045


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    """Decode sRGB-encoded values (float, nominal 0..1) to linear light, float32.

    Negative inputs map through the linear segment (sign kept).
    """
    x = np.asarray(x, dtype=np.float32)
    a = np.abs(x)
    lin = np.where(a <= _THRESH_SRGB, a / 12.92, ((a + _A) / (1.0 + _A)) ** 2.4)
    return (np.sign(x) * lin).astype(np.float32)


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    """Encode linear light (float) to sRGB values, float32; the exact inverse of
    :func:`srgb_to_linear`. Negative inputs map through the linear segment (sign kept)."""
    x = np.asarray(x, dtype=np.float32)
    a = np.abs(x)
    enc = np.where(a <= _THRESH_LIN, a * 12.92, (1.0 + _A) * np.power(a, 1.0 / 2.4) - _A)
    return (np.sign(x) * enc).astype(np.float32)


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
