"""Post filters on the swapped face: sharpen, blur, motion blur, and degrading to match the plate.

After Faceswap's scaling/sharpen options (box / gaussian / unsharp mask, amount 150 %, radius
0.3 %, threshold 5) and DeepFaceLab's merger (motion blur power, image denoise, bicubic degrade,
colour degrade).

Convention:
    Images are H×W×C float32 (C = 1, 3 or 4; RGB(A), top-left origin), usually the face crop in
    display sRGB in [0, 1] before it is pasted back; nothing here clips, so scene-linear values
    pass through. An alpha channel (C = 4) is passed through untouched. Radii are % of the face
    size ``S = max(H, W)`` (the crop side). Velocities are (dx, dy) in the pixels of the image
    being filtered, x right, y down. Every function returns a new float32 array and never
    modifies its input.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from faceplate.core.config import Config, option

SharpenMethod = Literal["none", "box", "gaussian", "unsharp"]


def _check(img: object, name: str = "image") -> np.ndarray:
    if not isinstance(img, np.ndarray) or img.dtype != np.float32 or img.ndim != 3 \
            or img.shape[2] not in (1, 3, 4) or img.shape[0] < 1 or img.shape[1] < 1:
        got = (img.dtype, img.shape) if isinstance(img, np.ndarray) else type(img).__name__
        raise ValueError(f"{name}: expected an H×W×C float32 array with C in (1, 3, 4), "
                         f"got {got}")
    return img


def _colour(img: np.ndarray) -> np.ndarray:
    """A contiguous copy of the colour channels (alpha dropped), H×W×C'."""
    return np.ascontiguousarray(img[..., :3] if img.shape[2] == 4 else img)


def _finish(img: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """Reattach ``img``'s alpha (if any) to the filtered colour channels."""
    colour = colour.reshape(*img.shape[:2], -1).astype(np.float32, copy=False)
    if img.shape[2] == 4:
        return np.concatenate([colour, img[..., 3:]], axis=2)
    return colour


def _radius_px(img: np.ndarray, percent: float) -> float:
    return percent / 100.0 * max(img.shape[0], img.shape[1])


def gaussian_blur(img: np.ndarray, radius: float) -> np.ndarray:
    """Gaussian blur with σ = ``radius`` % of the face size (reflected border)."""
    img = _check(img)
    sigma = _radius_px(img, radius)
    if sigma <= 0.0:
        return img.copy()
    out = cv2.GaussianBlur(_colour(img), (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    return _finish(img, out)


def sharpen(img: np.ndarray, method: SharpenMethod = "unsharp", amount: float = 150.0,
            radius: float = 0.3, threshold: float = 5.0) -> np.ndarray:
    """Sharpen: ``out = img + amount/100 · (img − low_pass(img))``.

    Args:
        img: H×W×C float32.
        method: ``box`` (box low-pass of width 2r+1), ``gaussian`` (σ = r), ``unsharp``
            (Gaussian, σ = r, but pixels whose local contrast ``|img − low_pass|`` is below
            ``threshold`` are left unchanged, per channel), or ``none``.
        amount: Strength in % (150 = add 1.5× the detail).
        radius: r, % of the face size (at least half a pixel).
        threshold: Minimum local contrast for ``unsharp``, in 8-bit code values (``/255`` of
            the 0–1 display range).
    """
    img = _check(img)
    if method == "none" or amount == 0.0:
        return img.copy()
    r = max(_radius_px(img, radius), 0.5)
    src = _colour(img)
    if method == "box":
        k = 2 * int(np.ceil(r)) + 1
        low = cv2.blur(src, (k, k), borderType=cv2.BORDER_REFLECT)
    elif method in ("gaussian", "unsharp"):
        low = cv2.GaussianBlur(src, (0, 0), r, borderType=cv2.BORDER_REFLECT)
    else:
        raise ValueError(f"method: {method!r} is not one of ('none', 'box', 'gaussian', "
                         "'unsharp')")
    low = low.reshape(src.shape)
    detail = src - low
    out = src + np.float32(amount / 100.0) * detail
    if method == "unsharp" and threshold > 0.0:
        out = np.where(np.abs(detail) < threshold / 255.0, src, out)
    return _finish(img, out)


def motion_kernel(velocity_px: tuple[float, float], strength: float = 1.0) -> np.ndarray | None:
    """The normalised line kernel of :func:`motion_blur`, or None when it would be a no-op.

    The line is centred, runs along ``velocity_px`` and is ``strength · |velocity|`` pixels
    long (anti-aliased: samples every 1/4 pixel splatted bilinearly), odd-sized, summing to 1.
    """
    dx, dy = float(velocity_px[0]), float(velocity_px[1])
    length = strength * float(np.hypot(dx, dy))
    if length < 1.0:
        return None
    ux, uy = dx / np.hypot(dx, dy), dy / np.hypot(dx, dy)
    half = int(np.ceil(length / 2.0)) + 1
    size = 2 * half + 1
    kernel = np.zeros((size, size), dtype=np.float64)
    n = int(np.ceil(length * 4)) + 1
    t = np.linspace(-length / 2.0, length / 2.0, n)
    xs, ys = half + t * ux, half + t * uy  # kernel pixel coordinates (integer centres)
    x0, y0 = np.floor(xs).astype(int), np.floor(ys).astype(int)
    fx, fy = xs - x0, ys - y0
    for ox, oy, wgt in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)),
                        (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        np.add.at(kernel, (y0 + oy, x0 + ox), wgt)
    return (kernel / kernel.sum()).astype(np.float32)


def motion_blur(img: np.ndarray, velocity_px: tuple[float, float],
                strength: float = 1.0) -> np.ndarray:
    """Blur along the face's motion, as a camera shutter would.

    Args:
        img: H×W×C float32.
        velocity_px: (dx, dy) the face moved between neighbouring frames, in ``img``'s pixels
            (the caller derives it from landmarks and maps it into crop pixels).
        strength: Kernel length as a fraction of the per-frame displacement (1 = a 360° shutter,
            0.5 = 180°); no blur below a 1-pixel kernel.
    """
    img = _check(img)
    kernel = motion_kernel(velocity_px, strength)
    if kernel is None:
        return img.copy()
    out = cv2.filter2D(_colour(img), -1, kernel, borderType=cv2.BORDER_REFLECT)
    return _finish(img, out)


def denoise(img: np.ndarray, strength: float) -> np.ndarray:
    """Edge-preserving smoothing (bilateral filter) to match a cleaner plate.

    ``strength`` in [0, 1]: spatial σ = 0.5 + 2.5·strength px, range σ = 0.15·strength in
    value units (the face's display range).
    """
    img = _check(img)
    if strength <= 0.0:
        return img.copy()
    src = _colour(img)  # 1 or 3 channels: what cv2.bilateralFilter takes
    sigma_space = 0.5 + 2.5 * strength
    d = 2 * int(np.ceil(2 * sigma_space)) + 1
    out = cv2.bilateralFilter(src if src.shape[2] == 3 else src[..., 0], d, 0.15 * strength,
                              sigma_space, borderType=cv2.BORDER_REFLECT)
    return _finish(img, out)


def bicubic_degrade(img: np.ndarray, amount: float) -> np.ndarray:
    """Lose detail like the plate: resize to ``(1 − amount)`` of the size and back, bicubic.

    ``amount`` in [0, 1); 0 is a no-op.
    """
    img = _check(img)
    if amount <= 0.0:
        return img.copy()
    if amount >= 1.0:
        raise ValueError(f"amount: expected 0 <= amount < 1, got {amount}")
    h, w = img.shape[:2]
    small = (max(1, round(w * (1.0 - amount))), max(1, round(h * (1.0 - amount))))
    src = _colour(img)
    down = cv2.resize(src, small, interpolation=cv2.INTER_CUBIC)
    up = cv2.resize(down, (w, h), interpolation=cv2.INTER_CUBIC)
    return _finish(img, up)


def quantize(img: np.ndarray, bits: int) -> np.ndarray:
    """Reduce the colour bit depth: values snap to multiples of ``1 / (2**bits − 1)``.

    Values in [0, 1] end up on ``2**bits`` levels; values outside keep the same step and are not
    clipped. ``bits`` in 1..16.
    """
    img = _check(img)
    if not 1 <= bits <= 16:
        raise ValueError(f"bits: expected 1..16, got {bits}")
    q = np.float32(2**bits - 1)
    out = np.round(_colour(img) * q) / q
    return _finish(img, out)


@dataclass(frozen=True)
class PostConfig(Config):
    """Post filters on the face crop, applied by :func:`apply` in this fixed order:
    blur → sharpen → motion blur → denoise → bicubic degrade → bit depth
    (first the model output's own softness, then the camera, then matching the plate)."""

    blur: float = option(0.0, "Gaussian blur σ, % of the face size (0 = off).",
                         minimum=0.0, maximum=10.0)
    sharpen: SharpenMethod = option("none", "Sharpening filter.")
    sharpen_amount: float = option(150.0, "Sharpen amount in %.", minimum=0.0, maximum=500.0)
    sharpen_radius: float = option(0.3, "Sharpen radius, % of the face size.",
                                   minimum=0.0, maximum=10.0)
    sharpen_threshold: float = option(5.0, "Unsharp-mask threshold in 8-bit code values.",
                                      minimum=0.0, maximum=255.0)
    motion_blur: float = option(0.0, "Motion blur length as a fraction of the face's motion "
                                "per frame (0 = off, 0.5 = 180° shutter).",
                                minimum=0.0, maximum=2.0)
    denoise: float = option(0.0, "Edge-preserving denoise strength (0 = off).",
                            minimum=0.0, maximum=1.0)
    bicubic: float = option(0.0, "Bicubic degrade: down-up resample to (1 − this) of the size.",
                            minimum=0.0, maximum=0.95)
    color_bits: int = option(0, "Quantise to this many bits per channel (0 = off).",
                             minimum=0, maximum=16)


def apply(img: np.ndarray, cfg: PostConfig | None = None, *,
          velocity_px: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """Run the configured post filters in :class:`PostConfig`'s order.

    Args:
        img: H×W×C float32 face (C = 1, 3 or 4; alpha passes through).
        cfg: The settings; defaults (everything off) when None.
        velocity_px: The face's motion per frame in ``img`` pixels, for the motion blur.

    Returns:
        A new H×W×C float32 array.
    """
    cfg = PostConfig() if cfg is None else cfg
    out = _check(img).copy()
    if cfg.blur > 0.0:
        out = gaussian_blur(out, cfg.blur)
    if cfg.sharpen != "none":
        out = sharpen(out, cfg.sharpen, cfg.sharpen_amount, cfg.sharpen_radius,
                      cfg.sharpen_threshold)
    if cfg.motion_blur > 0.0:
        out = motion_blur(out, velocity_px, cfg.motion_blur)
    if cfg.denoise > 0.0:
        out = denoise(out, cfg.denoise)
    if cfg.bicubic > 0.0:
        out = bicubic_degrade(out, cfg.bicubic)
    if cfg.color_bits > 0:
        out = quantize(out, cfg.color_bits)
    return out
