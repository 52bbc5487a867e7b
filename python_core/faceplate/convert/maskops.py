"""Mask operations of the merge step: combine, erode/dilate (overall and per side), blur, threshold.

After DeepFaceLab's merger (mask modes, erode, blur) and Faceswap's mask-blend options
(gaussian / normalized blur with passes, erosion overall plus top/bottom/left/right, threshold).

Convention:
    Masks are crop-space float32 arrays, h×w or h×w×1, in [0, 1] (1 = face), top-left origin,
    x right, y down. Sizes are given as a percentage of the crop side ``S = max(h, w)`` so the
    same settings work at any model resolution. Outside the crop counts as 0 (a pasted mask is 0
    there), so erosion and blur treat the crop border as background. Every function returns a
    new float32 array of the input's shape and never modifies its input.

Erosion design:
    * Overall erosion/dilation by ``r`` pixels is grayscale morphology with the flat Euclidean
      disc ``dx² + dy² <= r²``: the minimum (maximum) of the mask over the disc around each
      pixel. A binary mask loses exactly the pixels within ``r`` of the background (the same
      as thresholding a Euclidean distance transform), and a soft edge moves inward with its
      profile intact. The disc is decomposed into horizontal chords (repeated 1×3 row passes
      give every chord width, then the chords are combined at their row offsets): exact and
      O(r) cheap passes, instead of an O(r²) 2-D kernel.
    * Per-side erosion moves one edge only: eroding the top by ``r`` is the grayscale minimum over
      the ``r`` pixels *above* each pixel, i.e. the mask intersected with itself shifted down by
      ``r``: the top edge moves down by ``r``; the bottom edge does not move, and the left and
      right edges move only where the outline slopes (an ellipse's upper shoulders). Dilating
      the top (negative amount) is the maximum over the pixels *below*: the union with the mask
      shifted up. Bottom/left/right are the mirror images. Straight line kernels make this exact
      for soft masks and cheap (separable 1-D filters).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from faceplate.core.config import Config, option

CombineMode = Literal["multiply", "min", "max", "add"]
BlurType = Literal["none", "gaussian", "normalized"]


def _check_mask(mask: object, name: str = "mask") -> np.ndarray:
    """Return the h×w float32 view of an h×w or h×w×1 float32 mask (validated)."""
    if not isinstance(mask, np.ndarray) or mask.dtype != np.float32:
        got = mask.dtype if isinstance(mask, np.ndarray) else type(mask).__name__
        raise ValueError(f"{name}: expected a float32 array, got {got}")
    m = mask[..., 0] if mask.ndim == 3 and mask.shape[2] == 1 else mask
    if m.ndim != 2 or m.shape[0] < 1 or m.shape[1] < 1:
        raise ValueError(f"{name}: expected an h×w or h×w×1 array, got shape {mask.shape}")
    if np.isnan(m).any():
        raise ValueError(f"{name}: contains NaN")
    return m


def _like(result: np.ndarray, mask: np.ndarray) -> np.ndarray:
    out = np.clip(result, 0.0, 1.0).astype(np.float32, copy=False)
    return out.reshape(mask.shape)


def pixels(mask: np.ndarray, percent: float) -> float:
    """``percent`` of the mask's side ``max(h, w)``, in pixels."""
    return abs(percent) / 100.0 * max(mask.shape[0], mask.shape[1])


def combine(masks: Sequence[np.ndarray], mode: CombineMode = "multiply") -> np.ndarray:
    """Combine several same-shape masks (e.g. the learned mask and a landmark mask).

    Modes (DeepFaceLab's mask combinations): ``multiply`` — the product (``prd*dst``);
    ``min`` — intersection; ``max`` — union; ``add`` — the sum clipped to 1 (``prd+dst``).

    Returns:
        float32 in [0, 1], the shape of the first mask.
    """
    if not masks:
        raise ValueError("masks: need at least one mask")
    ms = [_check_mask(m, f"masks[{i}]") for i, m in enumerate(masks)]
    if any(m.shape != ms[0].shape for m in ms):
        raise ValueError(f"masks: shapes differ: {[m.shape for m in ms]}")
    ops = {"multiply": np.multiply, "min": np.minimum, "max": np.maximum, "add": np.add}
    if mode not in ops:
        raise ValueError(f"mode: {mode!r} is not one of {tuple(ops)}")
    out = ms[0].astype(np.float32, copy=True)
    for m in ms[1:]:
        ops[mode](out, m, out=out)
    return _like(out, masks[0])


def _disc_morphology(m: np.ndarray, r: float, shrink: bool) -> np.ndarray:
    """Grayscale erosion (``shrink``) or dilation of ``m`` by the disc ``dx² + dy² <= r²``.

    The disc is split into horizontal chords: row minima (maxima) over half-widths 0..⌊r⌋ are
    built by repeated 1×3 passes, then each chord's row is combined at its vertical offset.
    Exact for soft masks, O(r) passes over the mask. Zero padding: outside the crop is
    background.
    """
    ri = int(np.floor(r))
    if ri < 1:
        return m.astype(np.float32, copy=True)
    op = cv2.erode if shrink else cv2.dilate
    combine_rows = np.minimum if shrink else np.maximum
    src = np.pad(m.astype(np.float32), ri)
    k3 = np.ones((1, 3), dtype=np.uint8)
    rows: list[np.ndarray] = [src]
    for _ in range(ri):
        rows.append(op(rows[-1], k3, borderType=cv2.BORDER_CONSTANT, borderValue=0))
    out = rows[ri].copy()
    for dy in range(1, ri + 1):
        chord = rows[int(np.floor(np.sqrt(max(r * r - dy * dy, 0.0)) + 1e-9))]
        combine_rows(out[dy:], chord[:-dy], out=out[dy:])
        combine_rows(out[:-dy], chord[dy:], out=out[:-dy])
    return out[ri:-ri, ri:-ri]


def erode(mask: np.ndarray, percent: float) -> np.ndarray:
    """Erode (``percent > 0``) or dilate (``< 0``) by a disc of ``|percent|`` % of the side.

    Grayscale morphology with the flat disc ``dx² + dy² <= r²`` (see the module docstring):
    a binary mask loses (gains) exactly the pixels within ``r`` of the background (foreground),
    a soft edge keeps its profile.
    """
    m = _check_mask(mask)
    r = pixels(m, percent)
    if r < 1.0 or not (m > 0).any():
        return _like(m.copy(), mask)
    return _like(_disc_morphology(m, r, shrink=percent > 0), mask)


def erode_sides(mask: np.ndarray, top: float = 0.0, bottom: float = 0.0, left: float = 0.0,
                right: float = 0.0) -> np.ndarray:
    """Move single edges of the mask: positive erodes (the edge moves inward), negative dilates.

    Amounts are % of the mask's side, rounded to whole pixels. See the module docstring.
    """
    m = _check_mask(mask)
    out: np.ndarray = m.astype(np.float32, copy=True)
    for amount, axis, towards_start in ((top, 0, True), (bottom, 0, False),
                                        (left, 1, True), (right, 1, False)):
        r = int(round(pixels(m, amount)))
        if r == 0:
            continue
        shape = (r + 1, 1) if axis == 0 else (1, r + 1)
        kernel = np.ones(shape, dtype=np.uint8)
        # Erosion of the top looks upward (towards row 0); dilation of the top looks downward.
        look_back = towards_start == (amount > 0)
        anchor_along = r if look_back else 0
        anchor = (0, anchor_along) if axis == 0 else (anchor_along, 0)
        op = cv2.erode if amount > 0 else cv2.dilate
        out = op(out, kernel, anchor=anchor, borderType=cv2.BORDER_CONSTANT, borderValue=0)
    return _like(out, mask)


def blur(mask: np.ndarray, kind: BlurType = "normalized", percent: float = 2.4,
         passes: int = 4) -> np.ndarray:
    """Soften the mask's edge with a kernel of ``percent`` % of its side, ``passes`` times.

    ``gaussian``: a Gaussian of that kernel width (σ = width / 6) per pass; ``normalized``:
    Faceswap's box blend, a normalised box filter of that width per pass (four passes of a box
    approach a Gaussian). The crop border counts as background (zero padding), so a mask
    that fills the crop fades out at its edge; away from the border the mask's sum is kept.
    """
    m = _check_mask(mask)
    width = pixels(m, percent)
    if kind == "none" or width < 1.0 or passes < 1:
        return _like(m.copy(), mask)
    k = max(3, int(round(width)) | 1)
    out: np.ndarray = m.astype(np.float32, copy=True)
    for _ in range(passes):
        if kind == "gaussian":
            out = cv2.GaussianBlur(out, (k, k), width / 6.0, borderType=cv2.BORDER_CONSTANT)
        elif kind == "normalized":
            out = cv2.blur(out, (k, k), borderType=cv2.BORDER_CONSTANT)
        else:
            raise ValueError(f"kind: {kind!r} is not one of ('none', 'gaussian', 'normalized')")
    return _like(out, mask)


def threshold(mask: np.ndarray, t: float) -> np.ndarray:
    """Snap near-black to 0, near-white to 1: ``m < t → 0``, ``m > 1 − t → 1``; t in [0, 0.5)."""
    m = _check_mask(mask)
    if not 0.0 <= t < 0.5:
        raise ValueError(f"t: expected 0 <= t < 0.5, got {t}")
    out = m.astype(np.float32, copy=True)
    if t > 0.0:
        out[out < t] = 0.0
        out[out > 1.0 - t] = 1.0
    return _like(out, mask)


@dataclass(frozen=True)
class MaskOpsConfig(Config):
    """The merge step's mask settings, applied by :func:`apply` in this order:
    combine → erode (overall) → erode per side → blur → threshold."""

    combine: CombineMode = option("multiply", "How several masks (learned, landmark) combine.")
    erode: float = option(0.0, "Erode (+) or dilate (−) the mask, % of the face crop side.",
                          minimum=-50.0, maximum=50.0)
    erode_top: float = option(0.0, "Move the top edge down (+) or up (−), % of the crop side.",
                              minimum=-50.0, maximum=50.0)
    erode_bottom: float = option(0.0, "Move the bottom edge up (+) or down (−), % of the crop "
                                 "side.", minimum=-50.0, maximum=50.0)
    erode_left: float = option(0.0, "Move the left edge right (+) or left (−), % of the crop "
                               "side.", minimum=-50.0, maximum=50.0)
    erode_right: float = option(0.0, "Move the right edge left (+) or right (−), % of the crop "
                                "side.", minimum=-50.0, maximum=50.0)
    blur_type: BlurType = option("normalized", "Edge blur: Gaussian or normalised box passes.")
    blur_kernel: float = option(2.4, "Blur kernel width, % of the crop side (3 px at 128 px).",
                                minimum=0.0, maximum=50.0)
    blur_passes: int = option(4, "Blur passes.", minimum=1, maximum=10)
    threshold: float = option(0.04, "Values below this become 0 and above 1 − this become 1.",
                              minimum=0.0, maximum=0.49)


def apply(masks: np.ndarray | Sequence[np.ndarray], cfg: MaskOpsConfig | None = None
          ) -> np.ndarray:
    """Run the configured mask operations (order in :class:`MaskOpsConfig`).

    Args:
        masks: One crop-space mask (h×w or h×w×1 float32 in [0, 1]) or several to combine.
        cfg: The settings; defaults when None.

    Returns:
        A new float32 mask of the (first) input's shape, in [0, 1].
    """
    cfg = MaskOpsConfig() if cfg is None else cfg
    m = combine([masks] if isinstance(masks, np.ndarray) else list(masks), cfg.combine)
    if cfg.erode:
        m = erode(m, cfg.erode)
    if cfg.erode_top or cfg.erode_bottom or cfg.erode_left or cfg.erode_right:
        m = erode_sides(m, cfg.erode_top, cfg.erode_bottom, cfg.erode_left, cfg.erode_right)
    m = blur(m, cfg.blur_type, cfg.blur_kernel, cfg.blur_passes)
    return threshold(m, cfg.threshold)
