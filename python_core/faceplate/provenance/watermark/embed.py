"""Embedding: the informed (QIM) mark on a face crop or on the frame's final pixels.

Spread-transform dither modulation: the detector's statistic for bit ``k`` is the projection
``c_k = <d_k, Y>`` of the canonical luma divided by its brightness (:func:`~.scheme._gain`).
The face's own projections are far larger than anything invisible, so blind additive spread
spectrum cannot work at the energy budget; the embedder sees the host face and moves each
``c_k`` to the nearest point of the lattice ``Δ·(j + b_k/2) + dither_k`` for its bit ``b_k``.
The cost is ``Δ²/12`` per bit on average whatever the host, and the luma change
``w = Σ δc_k d_k`` (the minimum-norm change, exact for the orthonormal detector) is added
equally to R, G and B. A face whose move would cost more than ``PSNR_FLOOR`` allows is
scaled down to it.

:func:`embed_in_frame` (called by ``swap_frame`` after every face is pasted) marks the frame's
final pixels, where the verifier will look: the canonical frame comes from landmarks re-found
on the pasted face (:mod:`.landmarks`), the host projections are measured on the frame's own
display luma exactly as the detector samples it (:mod:`.sampling`), the change is multiplied
by the face's matte (the frame stays bit-exact where the matte is 0) and added in display sRGB
(a scene-linear box is converted, marked and converted back only where the matte is > 0).
``EMBED_PASSES`` passes re-measure and correct in canonical space (the matte's attenuation).
A ``raw`` paste (matte left to the user) is aligned and measured on the composite it will
become and marked without the matte. :func:`mark_crop` puts the same mark on the crop-space
patch; :func:`embed_face` (marking a crop before the paste with the plate's landmarks) is kept
for callers without a frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from faceplate.core.colorspace import srgb_to_linear
from faceplate.core.geometry import compose_affine, invert_affine, matrix_scale, to_cv2
from faceplate.core.validate import check_image, check_matrix, check_points
from faceplate.provenance.watermark.landmarks import (
    _box_from_landmarks,
    _shape_predictor,
    refine_landmarks,
)
from faceplate.provenance.watermark.sampling import (
    _area_factor,
    _display_region,
    _luma,
    _source,
    _to_canonical,
    _translate,
    _warp_box,
)
from faceplate.provenance.watermark.scheme import (
    _FRAME_DTYPES,
    AA_SIGMA,
    CANON_SIZE,
    PATTERN_SETS,
    _bank,
    _gain,
    canonical_matrix,
    payload_bits,
)


def prepare() -> None:
    """Build the pattern bank and load the landmark model now (otherwise the first face marked
    pays for both, ~0.3 s): converters call this once before their first frame."""
    for ps in PATTERN_SETS:
        _bank(ps.name)
    _shape_predictor()


# --------------------------------------------------------------------------------------------
# Embedding


def embed_face(face: np.ndarray, canon_to_crop: np.ndarray, model_id: str) -> np.ndarray:
    """Mark a swapped face crop before it is pasted.

    Args:
        face: S×S×3 float32 display sRGB, roughly [0, 1] (the model's crop after colour and
            post). Never modified.
        canon_to_crop: 2×3 canonical → crop matrix (:func:`canon_to_crop`).
        model_id: The model's sha256 hex digest or its :func:`payload_id`.

    Returns:
        A new S×S×3 float32 array: ``face`` plus the same luma change on R, G and B (at most
        ~1.5/255 RMS over the face); pixels inside [0, 1] stay inside it.
    """
    if not isinstance(face, np.ndarray) or face.ndim != 3 or face.shape[2] != 3 \
            or face.dtype != np.float32 or face.shape[0] < 8 or face.shape[1] < 8:
        got = (face.dtype, face.shape) if isinstance(face, np.ndarray) else type(face).__name__
        raise ValueError(f"face: expected an S×S×3 float32 array (S ≥ 8), got {got}")
    m = check_matrix(canon_to_crop, "canon_to_crop")
    bank = _bank()
    bits = payload_bits(model_id)
    host = _to_canonical(_luma(face), m)
    g = _gain(host, bank.window)
    c = bank.patterns @ host.ravel() / g
    # Nearest point of bit b's coset Δ·(j + b/2) + dither.
    u = (c - bank.dither) / bank.delta - bits * 0.5
    move = (np.round(u) - u) * bank.delta
    coeff = (move * g).astype(np.float32)
    w = coeff @ bank.patterns  # minimum-norm change giving exactly these moves
    energy = float(w @ w)
    if energy > bank.max_energy:
        w *= np.float32(math.sqrt(bank.max_energy / energy))
    n = CANON_SIZE
    h, wd = face.shape[:2]
    wc = cv2.warpAffine(w.reshape(n, n), to_cv2(m), (wd, h), flags=cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    out = face + wc[..., None]
    np.clip(out, np.minimum(face, 0.0), np.maximum(face, 1.0), out=out)
    return out


@dataclass(frozen=True, eq=False)
class FrameMark:
    """What :func:`embed_in_frame` added to one face.

    Attributes:
        landmarks: 68×2 float64 frame landmarks the canonical frame was built from (re-found
            on the pasted face with the profile's landmark fix point; the record's own when that
            failed).
        to_canon: 2×3 float64 frame → canonical matrix (:func:`canonical_matrix` of them).
        change: ``CANON_SIZE``×``CANON_SIZE`` float32, the luma change in canonical pixels
            (display-sRGB units, added equally to R, G and B), before the matte.
        refined: Whether the landmarks were re-found (False: the aligner failed, the record's
            landmarks were used).
        cover: The matte's mean over the patterns' area, weighted as the detector weights it
            (the window), in [0, 1]: 1 when the matte covers the whole area; below that (a
            mouth-only mask, heavy erosion, a face cut by the frame's edge) the mark may be
            too weak to detect, which :func:`~faceplate.provenance.watermark.mark_detectable`
            checks.
        span: The patterns' area's smaller side in frame pixels (a small face's mark is also
            checked by :func:`~faceplate.provenance.watermark.mark_detectable`).
        pattern_set: The :class:`~.scheme.PatternSet` the mark was embedded with (``cover``
            and ``span`` are over its area).
    """

    landmarks: np.ndarray
    to_canon: np.ndarray
    change: np.ndarray
    refined: bool
    cover: float = 1.0
    span: float = math.inf
    pattern_set: str = "full"


#: Passes of the informed embedding: each re-measures the projections on the frame's final
#: pixels (after the matte, clipping and uint8 rounding) and moves them the rest of the way.
EMBED_PASSES = 2
#: A further pass is skipped when what it could still move (a bound, see
#: :func:`embed_in_frame`) is below this fraction of Δ (the usual case: the matte is 1 under
#: the patterns, and uint8 rounding and resampling leave more than that either way).
PASS_SKIP = 0.01


#: Why :func:`mark_face` left a face without the mark (the frame is unchanged then).
UNMARKED_OUTSIDE = "the mark's area lies outside the frame or the pasted box"
UNMARKED_SMALL = "face too small for the mark"
UNMARKED_MATTE = "matte does not reach the mark's area"


#: Below this :attr:`FrameMark.cover` the face is not marked at all (nothing to carry it).
MIN_COVER = 1e-3


@dataclass(frozen=True)
class Unmarked:
    """A face :func:`mark_face` could not mark; ``reason`` is one of the ``UNMARKED_*`` texts."""

    reason: str


def embed_in_frame(frame: np.ndarray, box: tuple[int, int, int, int], matte_box: np.ndarray,
                   landmarks: np.ndarray, model_id: str, *, frame_is_linear: bool,
                   seed_box: Any = None, seen: np.ndarray | None = None,
                   by_hand: bool = False, pattern_set: str = "full") -> FrameMark | None:
    """:func:`mark_face`, with None for a face it could not mark."""
    res = mark_face(frame, box, matte_box, landmarks, model_id, frame_is_linear=frame_is_linear,
                    seed_box=seed_box, seen=seen, by_hand=by_hand, pattern_set=pattern_set)
    return res if isinstance(res, FrameMark) else None


def mark_face(frame: np.ndarray, box: tuple[int, int, int, int], matte_box: np.ndarray,
              landmarks: np.ndarray, model_id: str, *, frame_is_linear: bool,
              seed_box: Any = None, seen: np.ndarray | None = None,
              by_hand: bool = False, pattern_set: str = "full") -> FrameMark | Unmarked:
    """Mark a face on the frame's final pixels, in place, where the verifier will look.

    The canonical frame comes from landmarks re-found on the pasted face
    (:func:`refine_landmarks`, seeded with ``seed_box``), the host projections are measured on
    the frame's own pixels (display sRGB luma, exactly as the detector warps them), and the
    luma change, multiplied by the matte, is added to R, G and B; ``EMBED_PASSES`` passes
    re-measure and correct (matte, clipping, uint8 rounding).

    Args:
        frame: H×W×3/4 ``uint8`` display sRGB, or ``float32`` display sRGB or scene-linear
            (``frame_is_linear``: the box is converted to display sRGB, marked, and converted
            back only where the matte is > 0). Alpha is never touched. Modified in place.
        box: (x0, y0, x1, y1) half-open frame pixels of ``matte_box``.
        matte_box: (y1 − y0)×(x1 − x0) float32 in [0, 1], the face's matte in the frame: the
            frame is bit-exact wherever it is 0.
        landmarks: The face's 68×2 (x, y) frame landmarks (the record's; the fallback).
        model_id: The model's sha256 hex digest or its :func:`payload_id`.
        frame_is_linear: Whether a float frame is scene-linear (False for uint8).
        seed_box: The record's detector box (:class:`faceplate.core.types.BBox`, dlib
            convention) to re-align from; when None, a box fitted to ``landmarks``.
        seen: The box's pixels as they will be seen, (y1 − y0)×(x1 − x0)×3 float32 in the
            frame's colour space (display [0, 1] for a uint8 frame): measured instead of the
            frame's own (with ``by_hand``, the composite over the plate; ``swap_frame``
            passes nothing else). None: the frame's pixels, as the verifier reads them.
        by_hand: The paste leaves the matte to the user (the ``raw`` blend: the box holds the
            straight face wherever the matte is > 0, and ``seen`` is the composite): the mark
            is aligned and measured on ``seen`` and added *without* the matte (compositing by
            hand multiplies by it), so the composite carries the default blend's mark.
        pattern_set: The :class:`~.scheme.PatternSet` to embed with (``"full"``; ``"upper"``
            for a face whose matte leaves the full set's area partly uncovered:
            :func:`~.detect.mark_fitted` chooses).

    Returns:
        A :class:`FrameMark`, or an :class:`Unmarked` saying why the face could not be marked
        (the frame is unchanged then): the patterns' area lies outside the frame or the pasted
        box, the face is too small for them (less than 4 area blocks across), or its matte is
        0 everywhere the patterns would go (a mouth-only mask, heavy erosion).
    """
    check_image(frame, "frame", dtypes=_FRAME_DTYPES, channels=(3, 4))
    if frame.dtype == np.uint8 and frame_is_linear:
        raise ValueError("frame: a uint8 frame is display sRGB; frame_is_linear must be False")
    bits = payload_bits(model_id)
    lm0 = check_points(landmarks, 68).astype(np.float64)
    h, w = frame.shape[:2]
    bx0, by0, bx1, by1 = (int(v) for v in box)
    bx0, by0, bx1, by1 = max(bx0, 0), max(by0, 0), min(bx1, w), min(by1, h)
    matte = np.asarray(matte_box, np.float32)
    if matte.shape != (int(box[3]) - int(box[1]), int(box[2]) - int(box[0])):
        raise ValueError(f"matte_box: expected shape {(box[3] - box[1], box[2] - box[0])}, "
                         f"got {matte.shape}")
    matte = matte[by0 - int(box[1]):by1 - int(box[1]), bx0 - int(box[0]):bx1 - int(box[0])]
    if bx1 <= bx0 or by1 <= by0:
        return Unmarked(UNMARKED_OUTSIDE)
    if seen is not None and seen.shape[:2] != matte_box.shape:
        raise ValueError(f"seen: expected {matte_box.shape} pixels, got {seen.shape[:2]}")
    if by_hand and seen is None:
        raise ValueError("by_hand: needs the composite as `seen`")
    seed = seed_box if seed_box is not None else _box_from_landmarks(lm0)
    bxy = (int(box[0]), int(box[1]), int(box[2]), int(box[3]))
    # A uint8 frame already holds the 8-bit rendering of `seen` (unless composited by hand).
    lm = refine_landmarks(frame, seed, frame_is_linear=frame_is_linear,
                          patch=(bxy, seen) if by_hand and seen is not None else None)
    refined = lm is not None
    if lm is None:
        lm = lm0
    bank = _bank(pattern_set)
    to_canon = canonical_matrix(lm)
    to_src = invert_affine(to_canon)
    # The work region: the matte's box ∩ the patterns' support, plus the reach of the area
    # blocks, their grid alignment, the residual low-pass and the bicubic kernel.
    f = _area_factor(to_src)
    u0, v0, u1, v1 = bank.box
    corners = np.array([[u0, v0], [u1, v0], [u0, v1], [u1, v1]], np.float64)
    pts = corners @ to_src[:, :2].T + to_src[:, 2]
    pad = f * (4 + int(math.ceil(3.0 * AA_SIGMA * matrix_scale(to_src) / f)))
    rx0 = max(bx0, int(math.floor(pts[:, 0].min())) - pad)
    ry0 = max(by0, int(math.floor(pts[:, 1].min())) - pad)
    rx1 = min(bx1, int(math.ceil(pts[:, 0].max())) + pad)
    ry1 = min(by1, int(math.ceil(pts[:, 1].max())) + pad)
    span = float(min(np.ptp(pts[:, 0]), np.ptp(pts[:, 1])))
    if span < 4 * f:
        return Unmarked(UNMARKED_SMALL)
    if rx1 - rx0 < 4 * f or ry1 - ry0 < 4 * f:
        return Unmarked(UNMARKED_OUTSIDE)
    view = frame[ry0:ry1, rx0:rx1, :3]
    mat = matte[ry0 - by0:ry1 - by0, rx0 - bx0:rx1 - bx0]
    if not mat.any():  # nothing of the face where the mark would go
        return Unmarked(UNMARKED_MATTE)
    # The detector's view of the host: display luma in [0, 1], sampled as the detector
    # samples it (:func:`_source`).
    base = None if view.dtype == np.uint8 else _display_region(view, frame_is_linear)
    if seen is not None:
        part = seen[ry0 - bxy[1]:ry1 - bxy[1], rx0 - bxy[0]:rx1 - bxy[0], :3]
        lin = frame_is_linear and frame.dtype != np.uint8
        luma0 = _luma(np.clip(_display_region(part, lin), 0.0, 1.0))
    elif base is None:
        luma0 = _luma(view)
    else:
        luma0 = _luma(np.clip(base, 0.0, 1.0))
    src, canon_to_img = _source(luma0, (rx0, ry0), to_src)
    host = _warp_box(src, canon_to_img, bank).ravel()
    canon_to_region = compose_affine(_translate(-rx0, -ry0), to_src)
    # The matte seen from canonical space (the change lands multiplied by it).
    matte_c = _warp_box(mat, canon_to_region, bank, cv2.INTER_LINEAR).ravel()
    wb = bank.window_box
    cover = float(np.dot(wb, np.clip(matte_c, 0.0, 1.0)) / max(float(wb.sum()), 1e-12))
    if cover < MIN_COVER:  # the matte is (next to) 0 everywhere the detector looks
        return Unmarked(UNMARKED_MATTE)
    pb = bank.patterns_box
    total = np.zeros(pb.shape[1], np.float32)
    target: np.ndarray | None = None
    for _ in range(max(1, EMBED_PASSES)):
        # The host plus the change so far, as the detector will measure it (the change is the
        # same on R, G and B and the luma weights sum to 1; a band-limited change survives
        # the canonical → frame → canonical round trip; clipping and uint8 rounding are far
        # below Δ). Products by einsum: single-threaded, no BLAS thread start-up.
        cur = host + total * matte_c
        g = _gain(cur, bank.window_box)
        c = np.einsum("kp,p->k", pb, cur) / g
        if target is None:
            # Nearest point of bit b's coset Δ·(j + b/2) + dither.
            u = (c - bank.dither) / bank.delta - bits * 0.5
            target = (np.round(u) + bits * 0.5) * bank.delta + bank.dither
        coeff = ((target - c) * g).astype(np.float32)
        total = total + np.einsum("k,kp->p", coeff, pb)
        energy = float(np.dot(total, total))
        if energy > bank.max_energy:
            total *= np.float32(math.sqrt(bank.max_energy / energy))
            continue  # capped: the next pass re-measures what the cap left
        # What this pass left: exactly −P·((1 − matte)·total)/g (P's rows orthonormal,
        # ``total`` in their span), so at most ‖(1 − matte)·total‖/g. A matte that is 1
        # under the patterns leaves nothing worth another pass.
        if float(np.linalg.norm((1.0 - matte_c) * total)) / g < PASS_SKIP * bank.delta:
            break
    n = CANON_SIZE
    change = np.zeros((n, n), np.float32)
    change[v0:v1, u0:u1] = total.reshape(v1 - v0, u1 - u0)
    d = _change_in_region(change, canon_to_region, (rx1 - rx0, ry1 - ry0), f)
    weight = (mat > 0.0).astype(np.float32) if by_hand else mat
    if base is None:
        # k/255 + d clipped to [0, 1] and rounded: q = 255·d·matte rounded to an integer and
        # added to the bytes with saturation; d·matte = 0 (matte 0) gives k back exactly. As
        # two saturating byte operations (faster than one in 16 bits): add max(q, 0), then
        # subtract max(−q, 0) (OpenCV saturates each product to [0, 255] with the same
        # round-to-nearest, and at most one of the two is non-zero at a pixel).
        up = cv2.multiply(d, weight, scale=255.0, dtype=cv2.CV_8U)
        down = cv2.multiply(d, weight, scale=-255.0, dtype=cv2.CV_8U)
        up3, down3 = cv2.merge([up, up, up]), cv2.merge([down, down, down])
        if view.strides[1] == 3:  # packed RGB rows: OpenCV writes into the frame itself
            cv2.add(view, up3, dst=view)
            cv2.subtract(view, down3, dst=view)
        else:  # RGBA: the RGB channels are not a matrix OpenCV can write in place
            view[...] = cv2.subtract(cv2.add(view, up3), down3)
    else:
        d = d * weight
        new_disp = base + d[..., None]
        np.clip(new_disp, np.minimum(base, 0.0), np.maximum(base, 1.0), out=new_disp)
        out = srgb_to_linear(new_disp) if frame_is_linear else new_disp
        np.copyto(view, out, where=(mat > 0.0)[..., None])
    return FrameMark(lm, to_canon, change, refined, cover, span, bank.name)


def _change_in_region(change: np.ndarray, canon_to_region: np.ndarray, size: tuple[int, int],
                      f: int) -> np.ndarray:
    """The canonical change (n×n float32) resampled onto a frame region of ``size`` (w, h).

    Bilinear; with ``f`` > 1 it is sampled on the region's f×f block grid and bilinearly
    enlarged (the change is band-limited to wavelengths of ≥ 12 canonical ≥ 12·f region
    pixels, so the two agree to about a percent, for a fraction of the cost).
    """
    w, h = size
    if f <= 1:
        return cv2.warpAffine(change, to_cv2(invert_affine(canon_to_region)), (w, h),
                              flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    sw, sh = -(-w // f), -(-h // f)
    k = 1.0 / f
    to_small = compose_affine(np.array([[k, 0.0, 0.0], [0.0, k, 0.0]]), canon_to_region)
    small = cv2.warpAffine(change, to_cv2(invert_affine(to_small)), (sw, sh),
                           flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    big = cv2.resize(small, (sw * f, sh * f), interpolation=cv2.INTER_LINEAR)
    return big[:h, :w]


def mark_crop(face: np.ndarray, mark: FrameMark, frame_to_crop: np.ndarray) -> np.ndarray:
    """The same mark on a crop-space face (e.g. the patch a patch writer exports), so that
    pasting it with its matte gives the marked frame.

    Args:
        face: S×S×3 float32 display sRGB crop. Never modified.
        mark: What :func:`embed_in_frame` returned for this face.
        frame_to_crop: 2×3 frame → crop matrix the face is pasted with.

    Returns:
        A new S×S×3 float32 array (values inside [0, 1] stay inside it).
    """
    m = compose_affine(check_matrix(frame_to_crop, "frame_to_crop"), invert_affine(mark.to_canon))
    hh, ww = face.shape[:2]
    wc = cv2.warpAffine(mark.change, to_cv2(m), (ww, hh), flags=cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    out = face + wc[..., None]
    np.clip(out, np.minimum(face, 0.0), np.maximum(face, 1.0), out=out)
    return out
