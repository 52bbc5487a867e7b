"""Batch augmentation for training, vectorised in torch over the whole batch.

Every function here works on a whole batch at once (no per-sample Python), except
:func:`apply_clahe`, which runs OpenCV's CLAHE per chosen image on ``uint8`` data before the batch
is converted to float (OpenCV's tile histogram equalisation has no cheap torch equivalent; it costs
~0.1 ms per 160 px face).

Conventions:
    * Images are N×C×H×W float32 display-referred sRGB in [0, 1], RGB order; masks N×1×H×W in
      [0, 1]; uint8 images for :func:`apply_clahe` are N×H×W×3 RGB.
    * Points are (x, y) pixels of the image they refer to, x right, y down, pixel centres at +0.5
      (``faceplate.core.geometry``'s convention). Point sets are N×K×2 float32.
    * A "sampling matrix" is an N×2×3 affine mapping *output* pixel coordinates to *source* pixel
      coordinates (what ``grid_sample`` needs); a "forward matrix" maps source → output.
    * Offsets (warp fields) are N×H×W×2 (dx, dy) in output pixels: the warped image at ``p`` takes
      what the unwarped one shows at ``p + offset(p)``.

Numbers are Faceswap's defaults (rotation ±10°, zoom ±5 %, shift ±5 %, flip 50 %, warp scale
5/256 of the size on a 5×5 grid, L*a*b* jitter L ±30 %, a/b ±8 %, CLAHE 50 %).
"""

from __future__ import annotations

from typing import NamedTuple

import cv2
import numpy as np
import torch
import torch.nn.functional as nnf
from torch import Tensor

from faceplate.core import colorspace
from faceplate.core.geometry import LEFT_EYE, MIRROR_68, MOUTH, RIGHT_EYE

# --------------------------------------------------------------------------- random parameters


class AugParams(NamedTuple):
    """Random draws for one batch (all tensors on the CPU, first dimension N).

    Attributes:
        angle: N float32 rotation in degrees (counter-clockwise on screen).
        zoom: N float32 scale factor (1 = none).
        shift: N×2 float32 translation as a fraction of the output size.
        flip: N bool horizontal flip.
        warp: N×2×G×G float32 grid-warp control offsets as a fraction of the output size.
        lab: N×3 float32 L*, a*, b* jitter in [-1, 1] (scaled by the configured amounts).
        clahe: N bool apply CLAHE.
        clahe_grid: N int64 CLAHE tile grid side.
        other: N float32 in [0, 1): picks the other side's face for warp-to-landmarks.
    """

    angle: Tensor
    zoom: Tensor
    shift: Tensor
    flip: Tensor
    warp: Tensor
    lab: Tensor
    clahe: Tensor
    clahe_grid: Tensor
    other: Tensor


def draw_params(n: int, g: torch.Generator, *, rotation: float, zoom: float, shift: float,
                flip: float, warp_scale: float, lightness: float, ab: float,
                clahe_chance: float, clahe_base: int = 1, warp_grid: int = 5) -> AugParams:
    """Draw every random number one batch needs, in a fixed order (deterministic for ``g``).

    Args:
        n: Batch size.
        g: The generator (its state advances).
        rotation: Largest rotation in degrees (uniform in ±rotation).
        zoom: Largest relative zoom (uniform scale in 1 ± zoom).
        shift: Largest shift as a fraction of the size (uniform, each axis).
        flip: Chance of a horizontal flip, 0..1.
        warp_scale: Standard deviation of the grid-warp control offsets, fraction of the size.
        lightness: Largest L* jitter fraction (0.3 = ±30 %).
        ab: Largest a*/b* jitter fraction.
        clahe_chance: Chance of CLAHE per image.
        clahe_base: Smallest CLAHE grid side (Faceswap: size // 128, at least 1).
        warp_grid: Control grid side (5).
    """
    def u(*shape: int) -> Tensor:
        return torch.rand(*shape, generator=g) * 2.0 - 1.0

    angle = u(n) * rotation
    zm = 1.0 + u(n) * zoom
    sh = u(n, 2) * shift
    fl = torch.rand(n, generator=g) < flip
    wp = torch.randn(n, 2, warp_grid, warp_grid, generator=g) * warp_scale
    lab = u(n, 3) * torch.tensor([lightness, ab, ab])
    ch = torch.rand(n, generator=g) < clahe_chance
    grid = clahe_base + torch.randint(0, 5, (n,), generator=g) * max(1, clahe_base // 2)
    other = torch.rand(n, generator=g)
    return AugParams(angle, zm, sh, fl, wp, lab, ch, grid, other)


def slice_params(p: AugParams, start: int, stop: int) -> AugParams:
    """The draws of samples ``start:stop`` (a DDP rank's share of a global batch)."""
    return AugParams(*(t[start:stop] for t in p))


# --------------------------------------------------------------------------- geometry


def affine_matrices(p: AugParams, size: int) -> Tensor:
    """N×3×3 float32 forward matrices (crop → augmented crop) for the draws in ``p``.

    The face is flipped about the crop's vertical centre line, then rotated and zoomed about the
    crop centre, then shifted: ``out = c + zoom·R(angle)·(flip(in) − c) + shift·size``.
    """
    n = p.angle.shape[0]
    c = size / 2.0
    th = torch.deg2rad(p.angle.to(torch.float64))
    z = p.zoom.to(torch.float64)
    cos, sin = torch.cos(th) * z, torch.sin(th) * z
    fx = torch.where(p.flip, -1.0, 1.0).to(torch.float64)
    m = torch.zeros(n, 3, 3, dtype=torch.float64)
    # y is down, so a counter-clockwise rotation on screen is [[cos, sin], [-sin, cos]].
    m[:, 0, 0] = cos * fx
    m[:, 0, 1] = sin
    m[:, 1, 0] = -sin * fx
    m[:, 1, 1] = cos
    lin = m[:, :2, :2]
    centre = torch.tensor([c, c], dtype=torch.float64)
    shift = p.shift.to(torch.float64) * size
    m[:, :2, 2] = centre + shift - (lin @ centre)
    m[:, 2, 2] = 1.0
    return m.to(torch.float32)


def transform_points(pts: Tensor, m: Tensor) -> Tensor:
    """Apply N×3×3 (or N×2×3) affines to N×K×2 points."""
    return pts @ m[:, :2, :2].transpose(1, 2) + m[:, None, :2, 2]


def mirror_order(pts: Tensor, flip: Tensor) -> Tensor:
    """Reorder flipped samples' 68 landmarks so index i is again the subject's iBUG point i."""
    perm = torch.as_tensor(MIRROR_68)
    return torch.where(flip[:, None, None], pts[:, perm], pts)


def pixel_grid(size: int, n: int = 1) -> Tensor:
    """n×size×size×2 float32 output pixel centres (x, y) = (j + 0.5, i + 0.5)."""
    r = torch.arange(size, dtype=torch.float32) + 0.5
    yy, xx = torch.meshgrid(r, r, indexing="ij")
    return torch.stack([xx, yy], dim=-1).expand(n, size, size, 2)


def sample(src: Tensor, coords: Tensor, padding: str = "border") -> Tensor:
    """Bilinear lookup of ``src`` (N×C×Hs×Ws) at source pixel coordinates ``coords`` (N×H×W×2).

    Coordinates use the pixel-centre-at-+0.5 convention; ``padding`` is ``grid_sample``'s
    ("border" replicates the edge, "zeros" fills 0).
    """
    hs, ws = src.shape[-2:]
    scale = torch.tensor([2.0 / ws, 2.0 / hs], dtype=coords.dtype)
    grid = coords * scale - 1.0
    return nnf.grid_sample(src, grid, mode="bilinear", padding_mode=padding, align_corners=False)


def source_coords(inv: Tensor, size: int, offset: Tensor | None = None) -> Tensor:
    """N×size×size×2 source coordinates for sampling matrices ``inv`` (N×2×3 or N×3×3).

    ``offset`` (N×size×size×2 output pixels) displaces the output grid before the affine.
    """
    p = pixel_grid(size, inv.shape[0])
    if offset is not None:
        p = p + offset
    n = inv.shape[0]
    return transform_points(p.reshape(n, -1, 2), inv).reshape(n, size, size, 2)


def grid_warp_offsets(warp: Tensor, size: int) -> Tensor:
    """Smooth random warp field from control offsets.

    Args:
        warp: N×2×G×G control offsets as a fraction of the size (see :func:`draw_params`).
        size: Output side.

    Returns:
        N×size×size×2 float32 offsets in pixels, bicubic-interpolated between the control
        points (which sit evenly from edge to edge).
    """
    field = nnf.interpolate(warp * size, size=(size, size), mode="bicubic", align_corners=True)
    return field.permute(0, 2, 3, 1).contiguous()


def _tps_kernel(r2: Tensor) -> Tensor:
    return 0.5 * r2 * torch.log(r2.clamp_min(1e-12))   # r² log r


def tps_offsets(src: Tensor, dst: Tensor, size: int, *, coarse: int = 32,
                reg: float = 1e-3) -> Tensor:
    """Thin-plate-spline warp field that moves points ``src`` to ``dst`` (batched).

    The returned field ``d`` satisfies ``dst_k + d(dst_k) ≈ src_k``, so sampling the image at
    ``p + d(p)`` shows what was at ``src_k`` at ``dst_k``. Eight border anchors (corners and edge
    midpoints) stay fixed. The spline is solved in units of the size with Tikhonov
    regularisation ``reg`` (robust to duplicate points), evaluated on a ``coarse``×``coarse``
    grid and upsampled bilinearly (the field is smooth).

    Args:
        src: N×K×2 points in the unwarped image (pixels).
        dst: N×K×2 where they should appear in the warped image (pixels).
        size: Image side.

    Returns:
        N×size×size×2 float32 offsets in pixels.
    """
    n = src.shape[0]
    s = float(size)
    a = torch.tensor([[0, 0], [0.5, 0], [1, 0], [0, 0.5], [1, 0.5], [0, 1], [0.5, 1], [1, 1]],
                     dtype=torch.float32)
    ctrl = torch.cat([dst / s, a.expand(n, -1, -1)], dim=1)           # N×M×2
    vals = torch.cat([src / s, a.expand(n, -1, -1)], dim=1) - ctrl    # displacement
    m = ctrl.shape[1]
    k = _tps_kernel(torch.cdist(ctrl, ctrl).square()) + reg * torch.eye(m)
    ones = torch.ones(n, m, 1)
    pm = torch.cat([ones, ctrl], dim=2)                                # N×M×3
    top = torch.cat([k, pm], dim=2)
    bottom = torch.cat([pm.transpose(1, 2), torch.zeros(n, 3, 3)], dim=2)
    lhs = torch.cat([top, bottom], dim=1).to(torch.float64)
    rhs = torch.cat([vals, torch.zeros(n, 3, 2)], dim=1).to(torch.float64)
    coef = torch.linalg.solve(lhs, rhs).to(torch.float32)             # N×(M+3)×2
    q = pixel_grid(coarse, n).reshape(n, -1, 2) / coarse               # cell centres in [0,1]
    u = _tps_kernel(torch.cdist(q, ctrl).square())                    # N×Q×M
    pq = torch.cat([torch.ones(n, q.shape[1], 1), q], dim=2)
    d = (u @ coef[:, :m] + pq @ coef[:, m:]) * s                       # N×Q×2 pixels
    d = d.reshape(n, coarse, coarse, 2).permute(0, 3, 1, 2)
    d = nnf.interpolate(d, size=(size, size), mode="bilinear", align_corners=False)
    return d.permute(0, 2, 3, 1).contiguous()


# --------------------------------------------------------------------------- weight maps


def _grown(pts: np.ndarray, factor: float) -> np.ndarray:
    c = pts.mean(axis=0, keepdims=True)
    return c + (pts - c) * factor


def region_maps(landmarks: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Eye and mouth regions of one face, for the eye/mouth loss priority.

    Eyes: each eye's six points grown 1.5× about their centre (takes in the lids); mouth: the
    twelve outer lip points grown 1.1×. Filled with OpenCV at 1/16 px precision.

    Args:
        landmarks: 68×2 (x, y) pixels of the ``size``×``size`` image, centres at +0.5.

    Returns:
        (eyes, mouth): size×size uint8, 255 inside, 0 outside.
    """
    lm = np.asarray(landmarks, dtype=np.float64)

    def fill(polys: list[np.ndarray]) -> np.ndarray:
        out = np.zeros((size, size), np.uint8)
        fixed = [np.round((q - 0.5) * 16.0).astype(np.int32) for q in polys]
        cv2.fillPoly(out, fixed, 255, lineType=cv2.LINE_8, shift=4)
        return out

    eyes = fill([_grown(lm[RIGHT_EYE], 1.5), _grown(lm[LEFT_EYE], 1.5)])
    mouth = fill([_grown(lm[MOUTH][:12], 1.1)])
    return eyes, mouth


def priority_weights(eyes: Tensor, mouth: Tensor, eye_weight: float,
                     mouth_weight: float) -> Tensor:
    """``1 + (eye_weight − 1)·eyes + (mouth_weight − 1)·mouth`` (N×1×H×W region maps in [0, 1])."""
    return 1.0 + (eye_weight - 1.0) * eyes + (mouth_weight - 1.0) * mouth


# --------------------------------------------------------------------------- colour

# The colourimetry (matrices, transfer curve, L*a*b* curve) is faceplate.core.colorspace's, the
# one copy: its curves are written with operators and .clip only, so they run on tensors here.
_RGB2XYZN, _XYZN2RGB = colorspace.RGB_TO_XYZN, colorspace.XYZN_TO_RGB
_F2LAB, _LAB2F, _LAB_OFF = colorspace.F_TO_LAB, colorspace.LAB_TO_F, colorspace.LAB_OFFSET
_LAB_LO = np.array([0.0, -128.0, -128.0])
_LAB_HI = np.array([100.0, 127.0, 127.0])


def _t(a: np.ndarray) -> Tensor:
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))


#: linear light of each 8-bit sRGB code
_SRGB_LUT = _t(colorspace.srgb_decode_nonneg(np.arange(256, dtype=np.float64) / 255.0))


def _srgb_decode(x: Tensor) -> Tensor:
    return colorspace.srgb_decode_nonneg(x.clamp_min(0.0))


def _srgb_encode(lin: Tensor) -> Tensor:
    return colorspace.srgb_encode_nonneg(lin.clamp_min(0.0))


_lab_f = colorspace.lab_f
_lab_finv = colorspace.lab_finv


def _mix(m: np.ndarray, x: Tensor) -> Tensor:
    """Apply a fixed 3×3 matrix to N×3×P planar colours."""
    return torch.einsum("ij,njp->nip", _t(m), x)


def srgb_to_lab(rgb: Tensor) -> Tensor:
    """sRGB (N×3×H×W, [0, 1], D65) → CIE L*a*b* (N×3×H×W): L* in [0, 100], a*/b* ≈ ±128."""
    n, _, h, w = rgb.shape
    f = _lab_f(_mix(_RGB2XYZN, _srgb_decode(rgb.reshape(n, 3, -1))))
    return (_mix(_F2LAB, f) + _t(_LAB_OFF)[None, :, None]).reshape(n, 3, h, w)


def lab_to_srgb(lab: Tensor) -> Tensor:
    """CIE L*a*b* (N×3×H×W) → sRGB (N×3×H×W); out-of-gamut colours are clipped to [0, 1]."""
    n, _, h, w = lab.shape
    f = _mix(_LAB2F, lab.reshape(n, 3, -1) - _t(_LAB_OFF)[None, :, None])
    lin = _mix(_XYZN2RGB, _lab_finv(f)).clamp_(0.0, 1.0)
    return _srgb_encode(lin).clamp_(0.0, 1.0).reshape(n, 3, h, w)


def jitter_lab(lab: Tensor, r: Tensor) -> Tensor:
    """Push each L*a*b* channel towards its top (r > 0) or bottom (r < 0) by the fraction |r|.

    Faceswap's rule in true L*a*b* units: L* over [0, 100], a*/b* over [−128, 127].

    Args:
        lab: N×3×H×W L*a*b*.
        r: N×3 fractions in [−1, 1].
    """
    alpha, beta = _jitter_affine(r)
    return lab * alpha[:, :, None, None] + beta[:, :, None, None]


def _jitter_affine(r: Tensor) -> tuple[Tensor, Tensor]:
    """Per-image L*a*b* affine (α, β), N×3 each: ``lab' = α·lab + β``."""
    a = r.abs()
    ends = torch.where(r >= 0, _t(_LAB_HI), _t(_LAB_LO))
    return 1.0 - a, ends * a


def color_jitter(rgb: Tensor, r: Tensor) -> Tensor:
    """L*a*b* jitter of sRGB images (N×3×H×W float in [0, 1], or N×H×W×3 ``uint8``).

    Equal to ``lab_to_srgb(jitter_lab(srgb_to_lab(rgb), r))`` but fused: the jitter is an affine
    map of L*a*b*, which is linear in the ``f(X/Xn)…`` space, so each image needs one 3×3
    matrix there; uint8 input is linearised with a 256-entry table.

    Args:
        rgb: N×3×H×W float32 sRGB in [0, 1], or N×H×W×3 uint8 sRGB.
        r: N×3 jitter fractions (see :func:`jitter_lab`).

    Returns:
        N×3×H×W float32 sRGB in [0, 1].
    """
    if rgb.dtype == torch.uint8:
        n, h, w = rgb.shape[:3]
        planar = rgb.permute(0, 3, 1, 2).reshape(n, 3, -1)
        lin = _SRGB_LUT[planar.long()]
    else:
        n, _, h, w = rgb.shape
        lin = _srgb_decode(rgb.reshape(n, 3, -1))
    f = _lab_f(_mix(_RGB2XYZN, lin))
    alpha, beta = _jitter_affine(r)
    f2l, l2f, off = _t(_F2LAB), _t(_LAB2F), _t(_LAB_OFF)
    # f' = LAB2F·(α ⊙ (F2LAB·f + off) + β − off) = M·f + c, per image
    m = l2f @ (alpha[:, :, None] * f2l)                                       # N×3×3
    c = ((off * alpha + beta - off) @ l2f.T)[:, :, None]                      # N×3×1
    f = torch.baddbmm(c, m, f)
    lin = _mix(_XYZN2RGB, _lab_finv(f)).clamp_(0.0, 1.0)
    return _srgb_encode(lin).clamp_(0.0, 1.0).reshape(n, 3, h, w)


def apply_clahe(images: np.ndarray, which: np.ndarray, grids: np.ndarray,
                clip_limit: float = 2.0) -> None:
    """CLAHE on the L channel (OpenCV L*a*b*) of the chosen images, in place.

    Args:
        images: N×H×W×3 uint8 RGB (modified in place).
        which: N bool.
        grids: N int tile grid sides.
        clip_limit: OpenCV's contrast clip limit.
    """
    for i in np.flatnonzero(which):
        g = int(grids[i])
        lab = cv2.cvtColor(images[i], cv2.COLOR_RGB2LAB)
        clahe = cv2.createCLAHE(clipLimit=clip_limit, tileGridSize=(g, g))
        lab[..., 0] = clahe.apply(np.ascontiguousarray(lab[..., 0]))
        images[i] = cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)


# --------------------------------------------------------------------------- sampling


def yaw_bins(yaw: np.ndarray, bins: int) -> np.ndarray:
    """Bin index per face (N int64) for ``bins`` equal-width bins over [min yaw, max yaw]."""
    yaw = np.asarray(yaw, dtype=np.float64)
    lo, hi = float(yaw.min()), float(yaw.max())
    if hi - lo < 1e-9:
        return np.zeros(len(yaw), dtype=np.int64)
    return np.minimum(((yaw - lo) / (hi - lo) * bins).astype(np.int64), bins - 1)


def uniform_bin_sample(bin_ids: np.ndarray, n: int, g: torch.Generator) -> Tensor:
    """``n`` face indices: a non-empty bin uniformly, then a face uniformly within it.

    The histogram of the drawn faces' bins is flat whatever the faceset's skew.
    """
    ids = torch.as_tensor(bin_ids)
    order = torch.argsort(ids, stable=True)
    uniq, counts = torch.unique_consecutive(ids[order], return_counts=True)
    starts = torch.cumsum(counts, 0) - counts
    b = torch.randint(0, len(uniq), (n,), generator=g)
    j = (torch.rand(n, generator=g) * counts[b]).long().clamp_max(counts[b] - 1)
    return order[starts[b] + j]


def mix_seed(*parts: int) -> int:
    """A 63-bit seed from integers (splitmix64 chain): independent streams per (seed, side, k)."""
    x = 0x9E3779B97F4A7C15
    mask = (1 << 64) - 1
    for v in parts:
        x = (x ^ (int(v) & mask)) & mask
        x = (x + 0x9E3779B97F4A7C15) & mask
        z = x
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        x = z ^ (z >> 31)
    return x & ((1 << 63) - 1)


def generator(*parts: int) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with :func:`mix_seed` of ``parts``."""
    g = torch.Generator()
    g.manual_seed(mix_seed(*parts))
    return g
