"""The one validator for arrays crossing a stage boundary.

Each check raises :class:`ValueError` with a message that names the argument, the expected
contract and what was received. Stages call these at their public entry points only.
"""

from __future__ import annotations

import numpy as np


def check_image(img: object, name: str = "image", *, dtypes: tuple[type, ...] = (np.uint8,),
                channels: tuple[int, ...] = (3,)) -> np.ndarray:
    """Check an H×W×C image array and return it.

    Args:
        img: The array.
        name: Argument name for messages.
        dtypes: Allowed dtypes.
        channels: Allowed channel counts.
    """
    if not isinstance(img, np.ndarray):
        raise ValueError(f"{name}: expected a NumPy array, got {type(img).__name__}")
    if img.ndim != 3 or img.shape[2] not in channels:
        raise ValueError(f"{name}: expected H×W×C with C in {channels}, got shape {img.shape}")
    if img.shape[0] < 1 or img.shape[1] < 1:
        raise ValueError(f"{name}: empty image of shape {img.shape}")
    if img.dtype.type not in dtypes:
        allowed = ", ".join(np.dtype(d).name for d in dtypes)
        raise ValueError(f"{name}: expected dtype {allowed}, got {img.dtype}")
    return img


def check_points(pts: object, n: int | None = 68, name: str = "landmarks") -> np.ndarray:
    """Check an N×2 array of finite (x, y) points and return it as float32."""
    arr = np.asarray(pts)
    if arr.ndim != 2 or arr.shape[1] != 2 or (n is not None and arr.shape[0] != n):
        want = f"{n}×2" if n is not None else "N×2"
        raise ValueError(f"{name}: expected {want} points, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: contains NaN or Inf")
    return arr.astype(np.float32, copy=False)


def check_matrix(m: object, name: str = "matrix") -> np.ndarray:
    """Check a finite 2×3 affine matrix and return it as float64."""
    arr = np.asarray(m, dtype=np.float64)
    if arr.shape != (2, 3) or not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: expected a finite 2×3 affine matrix, got shape {arr.shape}")
    return arr
