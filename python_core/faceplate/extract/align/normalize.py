"""Aligner-input normalisation: contrast fixes applied only to the crop an aligner sees.

The frame itself is never modified; the aligner base class cuts a crop around each detection,
passes it through :func:`normalize_crop` and hands the result to the aligner. Landmarks are
geometric, so the output needs no inverse step.

Methods (faceswap's ``-O`` choices):
    * ``none``: the crop as it is.
    * ``hist``: global histogram equalisation of the luma (Y of YCrCb); chroma untouched.
    * ``clahe``: contrast-limited adaptive histogram equalisation of the luma (clip limit 2,
      8×8 tiles); chroma untouched.
    * ``mean``: per-channel mean/standard-deviation normalisation, each channel mapped to mean
      127.5 and standard deviation 64 (clipped to 0..255).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, get_args

import cv2
import numpy as np

from faceplate.core.validate import check_image

Normalization = Literal["none", "hist", "clahe", "mean"]
NORMALIZATIONS: tuple[str, ...] = get_args(Normalization)

_MEAN_TARGET = 127.5
_STD_TARGET = 64.0


def _luma_op(rgb: np.ndarray, op: cv2.CLAHE | None) -> np.ndarray:
    ycc = cv2.cvtColor(rgb, cv2.COLOR_RGB2YCrCb)
    y = np.ascontiguousarray(ycc[:, :, 0])
    ycc[:, :, 0] = cv2.equalizeHist(y) if op is None else op.apply(y)
    return cv2.cvtColor(ycc, cv2.COLOR_YCrCb2RGB)


def _mean_norm(rgb: np.ndarray) -> np.ndarray:
    f = rgb.astype(np.float32)
    mean = f.reshape(-1, 3).mean(axis=0)
    std = f.reshape(-1, 3).std(axis=0)
    out = (f - mean) / np.maximum(std, 1.0) * _STD_TARGET + _MEAN_TARGET
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _clahe(rgb: np.ndarray) -> np.ndarray:
    return _luma_op(rgb, cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8)))


_METHODS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "none": lambda rgb: rgb.copy(),
    "hist": lambda rgb: _luma_op(rgb, None),
    "clahe": _clahe,
    "mean": _mean_norm,
}


def normalize_crop(rgb: np.ndarray, method: str) -> np.ndarray:
    """Normalise an aligner input crop.

    Args:
        rgb: H×W×3 ``uint8`` RGB crop (display-referred sRGB). Not modified.
        method: One of :data:`NORMALIZATIONS`.

    Returns:
        A new H×W×3 ``uint8`` RGB array of the same shape (a copy even for ``none``).

    Raises:
        ValueError: ``rgb`` is not an H×W×3 uint8 image or ``method`` is unknown.
    """
    check_image(rgb, "crop")
    fn = _METHODS.get(method)
    if fn is None:
        raise ValueError(f"normalization: {method!r} is not one of {', '.join(NORMALIZATIONS)}")
    return fn(rgb)
