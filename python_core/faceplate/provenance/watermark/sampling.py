"""How both sides read a face: luma, the canonical warp and the frame-grid area sampling.

The embedder and the detector sample the frame's display-sRGB luma into the canonical crop the
same way (:func:`_source`: f×f block means on the frame's own pixel grid, a residual low-pass,
then a bicubic warp), because the informed embedding must re-measure the host's projections to a
small fraction of Δ. Images are H×W float32 luma in [0, 1] (display sRGB); matrices map
canonical pixels → source pixels.
"""

from __future__ import annotations

import cv2
import numpy as np

from faceplate.core.colorspace import linear_to_srgb
from faceplate.core.geometry import compose_affine, matrix_scale, to_cv2
from faceplate.provenance.watermark.scheme import (
    AA_FROM,
    AA_SIGMA,
    CANON_SIZE,
    INTERP,
    LUMA,
    _Bank,
)


def _finite(x: np.ndarray) -> np.ndarray:
    """``x`` with NaN → 0, +inf → 1, −inf → 0 (the array itself when all finite: one pass)."""
    if np.isfinite(x).all():
        return x
    return np.nan_to_num(x, nan=0.0, posinf=1.0, neginf=0.0)


_LUMA_U8 = (LUMA / np.float32(255.0)).reshape(1, 3)
_LUMA_F = LUMA.reshape(1, 3)


def _luma(rgb: np.ndarray) -> np.ndarray:
    """H×W float32 luma in [0, 1]-ish from H×W×C uint8 or float display sRGB (C ≥ 3)."""
    x = rgb[..., :3]
    if x.dtype == np.uint8:
        xf, m = x.astype(np.float32), _LUMA_U8
    else:
        xf, m = np.ascontiguousarray(_finite(x.astype(np.float32, copy=False))), _LUMA_F
    y: np.ndarray = cv2.transform(xf, m)  # OpenCV's SIMD per-pixel dot product
    return y[..., 0] if y.ndim == 3 else y


def _antialias(luma: np.ndarray, canon_to_src: np.ndarray) -> np.ndarray:
    """Low-pass a source luma image that is sampled more coarsely by the canonical crop."""
    scale = matrix_scale(canon_to_src)  # source pixels per canonical pixel
    if scale > AA_FROM:
        return cv2.GaussianBlur(luma, (0, 0), AA_SIGMA * scale, borderType=cv2.BORDER_REPLICATE)
    return luma


def _area_factor(canon_to_frame: np.ndarray) -> int:
    """The block side f (frame pixels) a source is area-averaged over before the canonical
    warp: ⌊frame pixels per canonical pixel⌋, at least 1."""
    return max(1, int(matrix_scale(canon_to_frame) + 1e-9))


def _source(luma: np.ndarray, origin: tuple[int, int], canon_to_frame: np.ndarray
            ) -> tuple[np.ndarray, np.ndarray]:
    """The image the canonical crop is sampled from, and the canonical → image matrix.

    Args:
        luma: H×W float32 piece of the frame's luma whose pixel (0, 0) is frame pixel
            ``origin`` (x, y).
        canon_to_frame: 2×3 canonical → frame matrix.

    A face f ≥ 2 frame pixels per canonical pixel (:func:`_area_factor`) is first
    area-averaged over f×f blocks of the *frame's* pixel grid (blocks start at frame
    coordinates that are multiples of f, whatever piece of the frame ``luma`` is, so the
    embedder's region and the detector's larger one give the same block values; a block
    average has zeros at the frequencies that would alias into the pattern band); what is
    left of the scale (< 2) is low-passed as before (:func:`_antialias`). Embedder and
    detector both sample through here, on the same float luma.
    """
    ox, oy = int(origin[0]), int(origin[1])
    to_local = compose_affine(_translate(-ox, -oy), canon_to_frame)
    f = _area_factor(canon_to_frame)
    if f > 1:
        ax, ay = -ox % f, -oy % f  # the first whole block aligned to the frame grid
        h, w = luma.shape
        nw, nh = (w - ax) // f, (h - ay) // f
        if nw >= 4 and nh >= 4:
            luma = cv2.resize(luma[ay:ay + nh * f, ax:ax + nw * f], (nw, nh),
                              interpolation=cv2.INTER_AREA)
            k = 1.0 / f
            to_local = compose_affine(np.array([[k, 0.0, -ax * k], [0.0, k, -ay * k]]),
                                      to_local)
    return _antialias(luma, to_local), to_local


def _warp(src: np.ndarray, canon_to_src: np.ndarray) -> np.ndarray:
    n = CANON_SIZE
    return cv2.warpAffine(src, to_cv2(canon_to_src), (n, n),
                          flags=INTERP | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)


def _warp_box(src: np.ndarray, canon_to_src: np.ndarray, bank: _Bank,
              interpolation: int = INTERP) -> np.ndarray:
    """The canonical crop's support box (``bank.box``) sampled from ``src``: (y1 − y0)×(x1 − x0)
    float32, the same pixels as ``_warp(src, canon_to_src)[y0:y1, x0:x1]``."""
    x0, y0, x1, y1 = bank.box
    m = compose_affine(canon_to_src, _translate(x0, y0))
    return cv2.warpAffine(src, to_cv2(m), (x1 - x0, y1 - y0),
                          flags=interpolation | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)


def _to_canonical(luma: np.ndarray, canon_to_src: np.ndarray) -> np.ndarray:
    """Warp a source luma image into the canonical crop (low-passed first when larger).

    ``canon_to_src`` maps canonical pixels → source pixels.
    """
    return _warp(_antialias(luma, canon_to_src), canon_to_src)



def _translate(dx: float, dy: float) -> np.ndarray:
    return np.array([[1.0, 0.0, dx], [0.0, 1.0, dy]])


def _display_region(region: np.ndarray, frame_is_linear: bool) -> np.ndarray:
    """An H×W×3 frame region → float32 display sRGB (finite; not clipped)."""
    if region.dtype == np.uint8:
        return region.astype(np.float32) * np.float32(1.0 / 255.0)
    x = _finite(region.astype(np.float32, copy=False))
    return linear_to_srgb(x) if frame_is_linear else x


def _u8_rgb(frame: np.ndarray) -> np.ndarray:
    rgb = frame[..., :3]
    if rgb.dtype != np.uint8:
        rgb = (np.clip(np.nan_to_num(rgb), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return np.ascontiguousarray(rgb)
