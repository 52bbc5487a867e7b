"""Registration: the alignment search that finds where the marker fits best.

The embedder's and the verifier's landmarks still differ a little (more after a downscale),
which moves the host's projections by more than Δ/4, so the detector searches: a coarse grid
of exact similarity warps (shift, rotation, scale about the nose) with a first-order fine grid
around each, keeping, per marker code, the alignment that fits it best. Each bit gives
``s_k = cos(2π(c_k − dither_k)/Δ)`` (+1 for a 0 bit, −1 for a 1) and the marker score is
``Σ_marker ±s_k / sqrt(MARKER_BITS/2)``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import cv2
import numpy as np

from faceplate.core.geometry import compose_affine
from faceplate.provenance.watermark.sampling import _warp_box
from faceplate.provenance.watermark.scheme import MARKER_BITS, _Bank, _bank, _gain

#: The registration search (canonical units): coarse exact warps, then a linearised fine grid
#: around each. Shifts in pixels, rotations in degrees, scales as factors − 1.
COARSE_SHIFTS: tuple[float, ...] = (-1.0, 0.0, 1.0)
COARSE_ROTS: tuple[float, ...] = (-1.5, 0.0, 1.5)
COARSE_SCALES: tuple[float, ...] = (-0.02, 0.0, 0.02)
FINE_SHIFTS: tuple[float, ...] = (-0.4, -0.2, 0.0, 0.2, 0.4)
FINE_ROTS: tuple[float, ...] = (-0.6, 0.0, 0.6)
FINE_SCALES: tuple[float, ...] = (-0.008, 0.0, 0.008)


def _similarity(cx: float, cy: float, dx: float, dy: float, rot_deg: float,
                scale: float) -> np.ndarray:
    """2×3 canonical → canonical map: rotate by ``rot_deg`` and scale by 1 + ``scale`` about
    (cx, cy), then shift by (dx, dy)."""
    r = math.radians(rot_deg)
    k = 1.0 + scale
    a, b = k * math.cos(r), k * math.sin(r)
    return np.array([[a, -b, cx - a * cx + b * cy + dx], [b, a, cy - b * cx - a * cy + dy]])


@functools.cache
def _fine_grid() -> np.ndarray:
    """F×4 (dx, dy, rotation in radians, scale) of the linearised search."""
    g = [(dx, dy, math.radians(r), sc) for dx in FINE_SHIFTS for dy in FINE_SHIFTS
         for r in FINE_ROTS for sc in FINE_SCALES]
    return np.array(g, np.float64)


def _coarse_grid() -> list[tuple[float, float, float, float]]:
    """Every (dx, dy, rotation in degrees, scale) of the coarse search."""
    return [(dx, dy, rot, sc) for dx in COARSE_SHIFTS for dy in COARSE_SHIFTS
            for rot in COARSE_ROTS for sc in COARSE_SCALES]


#: The coarse search reduced to its centre: the fine grid around the landmarks' own alignment
#: (1/27 of the full search). Its best score is never above the full search's (a subset of
#: the same candidates), so a mark it finds the full search finds too.
CENTRE_ONLY: tuple[tuple[float, float, float, float], ...] = ((0.0, 0.0, 0.0, 0.0),)


def _search(src: np.ndarray, to_src: np.ndarray, markers: np.ndarray, bank: _Bank | None = None,
            coarse: Sequence[tuple[float, float, float, float]] | None = None
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Find the alignment that best fits each marker.

    Args:
        src: Source luma (float32), already area-averaged and low-passed (:func:`_source`).
        to_src: 2×3 canonical → source matrix from the landmarks.
        markers: R×MARKER_BITS 0/1 marker codes to score (row 0 is normally the real one).
        bank: The pattern set's bank (default: the full set's).
        coarse: The coarse alignments (dx, dy px; rotation °; scale − 1) to search around
            (default: the whole coarse grid, what the verifier searches; :data:`CENTRE_ONLY`
            for a quick lower bound of its score).

    Returns:
        (R best scores, R×4 best fine parameters, the K projections at row 0's best).
    """
    bank = _bank() if bank is None else bank
    c0 = bank.centre  # the window's centre (the full set's: about the nose)
    x0, y0, x1, y1 = bank.box
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32) + np.float32(0.5)
    rx, ry = xx - np.float32(c0[0]), yy - np.float32(c0[1])
    pm = bank.patterns_box[:MARKER_BITS]
    signs = 1.0 - 2.0 * markers.astype(np.float64)  # R×M
    norm = math.sqrt(MARKER_BITS / 2.0)
    fine = _fine_grid()
    best = np.full(len(markers), -np.inf)
    best_p = np.zeros((len(markers), 4))
    for dx, dy, rot, sc in (_coarse_grid() if coarse is None else coarse):
        aln = compose_affine(to_src, _similarity(*c0, dx, dy, rot, sc))
        z = _warp_box(src, aln, bank)
        g = _gain(z, bank.window_box)
        # The support box has a 1 px margin where the patterns are ~0, so the gradients' own
        # border handling does not matter.
        gx = cv2.Sobel(z, cv2.CV_32F, 1, 0, ksize=3, scale=0.125)
        gy = cv2.Sobel(z, cv2.CV_32F, 0, 1, ksize=3, scale=0.125)
        # d z(p + u)/dθ for θ = (dx, dy, rotation, scale) about the centre.
        jac = np.stack([gx, gy, -ry * gx + rx * gy, rx * gx + ry * gy])
        cm = (pm @ z.ravel()).astype(np.float64) / g
        jm = (pm @ jac.reshape(4, -1).T).astype(np.float64) / g  # M×4
        cc = cm[None, :] + fine @ jm.T  # F×M
        s = np.cos(2.0 * np.pi * (cc - bank.dither[:MARKER_BITS]) / bank.delta)
        scores = (s @ signs.T) / norm  # F×R
        idx = np.argmax(scores, axis=0)
        top = scores[idx, np.arange(len(markers))]
        better = top > best
        best[better] = top[better]
        base = np.array([dx, dy, math.radians(rot), sc])
        best_p[better] = base + fine[idx[better]]
    # Row 0's projections at its best alignment, all K bits (first-order around its warp).
    p = best_p[0]
    aln = compose_affine(to_src, _similarity(*c0, p[0], p[1], math.degrees(p[2]), p[3]))
    z = _warp_box(src, aln, bank)
    c = (bank.patterns_box.astype(np.float64) @ z.ravel().astype(np.float64)
         / _gain(z, bank.window_box))
    return best, best_p, c


def _soft_bits(c: np.ndarray, bank: _Bank) -> np.ndarray:
    """Per-bit cos(2π(c − dither)/Δ): +1 at a 0-bit lattice point, −1 at a 1-bit one."""
    return np.cos(2.0 * np.pi * (c - bank.dither) / bank.delta)
