"""Cut aligned faces out of frames (frame → crop warps), shared by extraction and faceset jobs."""

from __future__ import annotations

import cv2
import numpy as np

from faceplate.core.geometry import crop_matrix, to_cv2
from faceplate.core.types import AlignedFace, Centering, FaceRecord
from faceplate.core.validate import check_image


def warp_to_crop(image: np.ndarray, matrix: np.ndarray, size: int,
                 interpolation: int = cv2.INTER_CUBIC) -> np.ndarray:
    """Warp ``image`` (H×W×C, any dtype cv2 supports) into a ``size``×``size`` crop.

    Args:
        image: The frame, top-left origin.
        matrix: 2×3 frame → crop matrix, pixel centres at +0.5 (as ``core.geometry`` builds).
        size: Crop side in pixels.
        interpolation: OpenCV interpolation flag.

    Returns:
        size×size×C array of the input dtype; outside the frame is filled by edge replication
        (keeps borders from pulling the colour statistics of sort/train towards black).
    """
    out = cv2.warpAffine(image, to_cv2(matrix), (size, size), flags=interpolation,
                         borderMode=cv2.BORDER_REPLICATE)
    return out if out.ndim == image.ndim else out[..., None]


def aligned_face(rgb: np.ndarray, record: FaceRecord, size: int,
                 centering: Centering = "face") -> AlignedFace:
    """The aligned face for ``record`` cut from frame ``rgb`` (H×W×3 uint8 sRGB)."""
    check_image(rgb, "frame")
    m = crop_matrix(record.landmarks, size, centering)
    return AlignedFace(warp_to_crop(rgb, m, size), m, size, centering, record)
