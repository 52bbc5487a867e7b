"""Storing masks with their geometry, and mapping them back into the frame.

A mask is drawn in an aligned crop's pixel space. :func:`make_stored_mask` packs it with the
frame → crop matrix and the crop's centering into a :class:`StoredMask` (zlib, see
``faceplate.core.records.encode_mask``), optionally resampled to a smaller storage size as
Faceswap does (it keeps 128 px masks). :func:`mask_to_frame` warps a stored mask back onto the
frame with the inverse of that matrix: this is what ``faceset draw`` and convert use.
"""

from __future__ import annotations

import cv2
import numpy as np

from faceplate.core.geometry import compose_affine, to_cv2
from faceplate.core.records import decode_mask, encode_mask
from faceplate.core.types import CENTERINGS, Centering, StoredMask
from faceplate.core.validate import check_matrix


def make_stored_mask(name: str, mask_u8: np.ndarray, matrix: np.ndarray, centering: Centering,
                     storage_size: int | None = None) -> StoredMask:
    """Pack a crop-space mask into a :class:`StoredMask`.

    Args:
        name: Masker registry name.
        mask_u8: size×size ``uint8`` mask (0 outside, 255 inside) in the crop's pixels.
        matrix: 2×3 frame → crop matrix of that crop (pixel centres at +0.5 on both sides).
        centering: The crop's centering ("face", "whole_face" or "head").
        storage_size: Store at this side instead (area-resampled when smaller, linear when
            larger); the stored matrix is scaled to match. ``None`` keeps the mask's size.

    Returns:
        The stored mask; ``affine`` maps frame pixels to stored-mask pixels.
    """
    m = check_matrix(matrix)
    if not isinstance(mask_u8, np.ndarray) or mask_u8.dtype != np.uint8 or mask_u8.ndim != 2 \
            or mask_u8.shape[0] != mask_u8.shape[1] or mask_u8.shape[0] < 1:
        got = mask_u8.shape if isinstance(mask_u8, np.ndarray) else type(mask_u8).__name__
        raise ValueError(f"mask_u8: expected a square size×size uint8 array, got {got}")
    if centering not in CENTERINGS:
        raise ValueError(f"centering: expected one of {CENTERINGS}, got {centering!r}")
    size = int(mask_u8.shape[0])
    data = mask_u8
    if storage_size is not None and storage_size != size:
        if storage_size < 1:
            raise ValueError(f"storage_size must be positive, got {storage_size}")
        interp = cv2.INTER_AREA if storage_size < size else cv2.INTER_LINEAR
        data = cv2.resize(mask_u8, (storage_size, storage_size), interpolation=interp)
        k = storage_size / size  # a pure scale: edges map to edges under +0.5 centres
        m = compose_affine(np.array([[k, 0.0, 0.0], [0.0, k, 0.0]]), m)
        size = storage_size
    return StoredMask(name=name, data=encode_mask(np.ascontiguousarray(data)), size=size,
                      affine=m.astype(np.float64), centering=centering)


def mask_to_frame(sm: StoredMask, frame_size: tuple[int, int]) -> np.ndarray:
    """Warp a stored mask back into frame space.

    Args:
        sm: The stored mask (``sm.affine`` maps frame pixels to mask pixels).
        frame_size: (height, width) of the frame in pixels.

    Returns:
        height×width ``float32`` mask in [0, 1], 0 outside the stored crop; bilinear sampling.
    """
    h, w = (int(v) for v in frame_size)
    if h < 1 or w < 1:
        raise ValueError(f"frame_size: expected positive (height, width), got {frame_size}")
    mask = decode_mask(sm)
    # With WARP_INVERSE_MAP the matrix maps destination (frame) → source (mask) pixels, which is
    # exactly the stored affine once converted to OpenCV's integer pixel centres.
    out = cv2.warpAffine(mask, to_cv2(sm.affine), (w, h),
                         flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return out.astype(np.float32) / np.float32(255.0)
