"""Cut aligned faces out of frames (frame → crop warps), shared by extraction and faceset jobs."""

from __future__ import annotations

import math

import cv2
import numpy as np

from faceplate.core.geometry import compose_affine, crop_matrix, invert_affine, matrix_scale, to_cv2
from faceplate.core.types import AlignedFace, Centering, FaceRecord
from faceplate.core.validate import check_image

#: Below this scale (crop pixels per frame pixel) the face's region of the frame is halved with
#: a Gaussian pyramid before the warp (see :func:`warp_to_crop`).
PYRAMID_BELOW = 0.4

#: One ``cv2.pyrDown`` level in the +0.5 pixel-centre convention: output pixel ``i`` is centred
#: on input pixel ``2i``, so ``x_out = x_in / 2 + 1/4``.
_PYR_DOWN = np.array([[0.5, 0.0, 0.25], [0.0, 0.5, 0.25]])


def warp_to_crop(image: np.ndarray, matrix: np.ndarray, size: int,
                 interpolation: int | None = None) -> np.ndarray:
    """Warp ``image`` (H×W or H×W×C, any dtype cv2 supports) into a ``size``×``size`` crop.

    With ``interpolation=None`` (the default) the resampling follows the matrix's scale ``s``
    (crop pixels per frame pixel), so the crop stays close to an area-correct resample (a warp
    at 4× the size, then area-averaged) at a fraction of a bicubic warp's cost:

    * ``s >= 1`` (the crop enlarges the face): bicubic;
    * ``PYRAMID_BELOW <= s < 1``: bilinear, which at these scales is both closer to the
      area-correct crop than bicubic (whose 4×4 kernel at a shrinking scale aliases) and
      about 5× cheaper;
    * ``s < PYRAMID_BELOW``: the region of the frame the crop covers (only that, with a margin)
      is halved with ``cv2.pyrDown`` until ``s >= PYRAMID_BELOW``, then warped bicubic (on the
      Gaussian-filtered region bicubic's sharper kernel is the closer one).

    Every path samples the frame at exactly the points ``matrix`` maps to the crop's pixel
    centres (the pyramid levels are composed into the matrix), so landmarks mapped with
    ``matrix`` fall on the same features whichever path ran.

    Args:
        image: The frame, top-left origin.
        matrix: 2×3 frame → crop matrix, pixel centres at +0.5 (as ``core.geometry`` builds).
        size: Crop side in pixels.
        interpolation: OpenCV interpolation flag for a plain warp of the whole frame, or None
            for the scale-aware resampling above.

    Returns:
        size×size(×C) array of the input dtype and channel layout; outside the frame is filled
        by edge replication (keeps borders from pulling the colour statistics of sort/train
        towards black).
    """
    if interpolation is None:
        out = _warp_scaled(image, np.asarray(matrix, np.float64), size)
    else:
        out = cv2.warpAffine(image, to_cv2(matrix), (size, size), flags=interpolation,
                             borderMode=cv2.BORDER_REPLICATE)
    return out if out.ndim == image.ndim else out[..., None]


def _warp_scaled(image: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    scale = matrix_scale(matrix)
    levels = 0
    while scale * 2**levels < PYRAMID_BELOW and levels < 8:
        levels += 1
    if levels == 0:
        return cv2.warpAffine(image, to_cv2(matrix), (size, size),
                              flags=cv2.INTER_CUBIC if scale >= 1.0 else cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)
    # The frame region the crop's square maps from, with room for the pyramid's 5-tap kernels
    # and the final warp's 4×4 kernel at every level.
    h, w = image.shape[:2]
    corners = np.array([[0.0, 0.0], [size, 0.0], [0.0, size], [size, size]])
    inv = invert_affine(matrix)
    src = corners @ inv[:, :2].T + inv[:, 2]
    margin = 2 ** (levels + 2) + 2
    x0 = min(max(math.floor(src[:, 0].min()) - margin, 0), w - 1)
    y0 = min(max(math.floor(src[:, 1].min()) - margin, 0), h - 1)
    x1 = max(min(math.ceil(src[:, 0].max()) + margin, w), x0 + 1)
    y1 = max(min(math.ceil(src[:, 1].max()) + margin, h), y0 + 1)
    region = image[y0:y1, x0:x1]
    to_region = np.array([[1.0, 0.0, -x0], [0.0, 1.0, -y0]])  # frame → region
    for _ in range(levels):
        if min(region.shape[:2]) < 2:
            break
        region = cv2.pyrDown(region, borderType=cv2.BORDER_REPLICATE)
        to_region = compose_affine(_PYR_DOWN, to_region)
    m = compose_affine(matrix, invert_affine(to_region))  # region → crop
    return cv2.warpAffine(region, to_cv2(m), (size, size), flags=cv2.INTER_CUBIC,
                          borderMode=cv2.BORDER_REPLICATE)


def aligned_face(rgb: np.ndarray, record: FaceRecord, size: int,
                 centering: Centering = "face") -> AlignedFace:
    """The aligned face for ``record`` cut from frame ``rgb`` (H×W×3 uint8 sRGB)."""
    check_image(rgb, "frame")
    m = crop_matrix(record.landmarks, size, centering)
    return AlignedFace(warp_to_crop(rgb, m, size), m, size, centering, record)
