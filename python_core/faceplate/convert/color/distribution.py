"""Colour transfers that match whole distributions: ``hist-match``, ``idt``, ``sot``.

All three work in display-referred sRGB (0..1) and are built on one primitive,
:func:`match_1d`: the monotone 1-D map that sends the masked face's empirical distribution along
one axis onto the target's (quantile matching, ``F_t⁻¹ ∘ F_f``), applied to every face pixel.

* ``hist-match`` (Faceswap's ``match-hist``, DFL's hist-match mode): one 1-D match per R, G, B
  channel, on every masked pixel (exact empirical CDFs). ``threshold`` scales the face's CDF
  before looking it up in the target's, as Faceswap does (0.99 by default: the top 1 % of the
  plate's values is not used, which keeps specular highlights from spreading).
* ``idt`` (iterative distribution transfer, Pitié, Kokaram & Dahyot 2005, DFL's ``idt``): each
  iteration turns the colour space by an orthonormal rotation (the identity first, then random
  ones), matches the three rotated axes independently, and turns back. It converges to the full
  3-D distribution, correlations included.
* ``sot`` (sliced optimal transport, Rabin et al. 2011, DFL's ``sot``): each iteration draws
  ``projections`` random unit directions, computes the 1-D transport displacement of every pixel
  along each, and moves the pixels by their average (scaled by min(1, 3/projections), so a step
  moves the full displacement in expectation — E[d dᵀ] = I/3 for uniform directions).

Randomness (rotations, directions and the pixel subsets for ``idt``/``sot`` statistics) comes only
from ``seed``: the same inputs give the same output on every call, so consecutive frames are
transformed by the same rotations (no added flicker).

Speed: ``match_1d`` sorts the samples (NumPy's SIMD sort), keeps ``nodes`` quantiles, and
evaluates the resulting piecewise-linear map through a uniform 4096-entry table with ``np.take``
(about 20× faster than ``np.interp`` on unsorted queries). Values beyond the face samples' range
(pixels outside the mask) continue with slope 1 (shifted like the nearest quantile) rather than
being clamped, so a background pixel brighter than any face pixel stays brighter.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from faceplate.convert.color.base import COLOR, ColorConfig, ColorTransfer, Samples, seeded_subset
from faceplate.core.config import option

LUT_SIZE = 4096


def match_1d(x: np.ndarray, src: np.ndarray, tgt: np.ndarray, nodes: int = 0,
             threshold: float = 1.0) -> np.ndarray:
    """Map values ``x`` by the quantile transfer from samples ``src`` to samples ``tgt``.

    The face sample at rank level ℓ (midpoint ranks, ties share their average target value) is
    sent to the target quantile at ``threshold`` · ℓ; values between samples are interpolated
    linearly and values outside the sample range continue with slope 1.

    Args:
        x: 1-D float32 values to map (the face pixels along one axis).
        src: 1-D face samples defining the face distribution (usually a subset of ``x``).
        tgt: 1-D target samples.
        nodes: Number of quantile levels kept (0 = one per face sample: exact).
        threshold: Scale on the face's CDF before the target lookup, in (0, 1].

    Returns:
        1-D float32 mapped values, same length as ``x``.
    """
    s = np.sort(src)
    t = np.sort(tgt)
    k = len(s) if nodes <= 0 else min(nodes, len(s))
    levels = (np.arange(k, dtype=np.float64) + 0.5) / k
    sq = s[np.minimum((levels * len(s)).astype(np.int64), len(s) - 1)]
    tq = t[np.minimum((levels * threshold * len(t)).astype(np.int64), len(t) - 1)]
    first = np.empty(k, dtype=bool)  # sq is sorted: a run of equal values is a tie
    first[0] = True
    np.not_equal(sq[1:], sq[:-1], out=first[1:])
    xs = sq[first].astype(np.float64)
    if len(xs) < k:  # ties: a repeated face value goes to the mean target value of its ranks
        group = np.cumsum(first) - 1
        ys = np.bincount(group, weights=tq) / np.bincount(group)
    else:
        ys = tq.astype(np.float64)
    return piecewise_linear(x, xs, ys)


def piecewise_linear(x: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Evaluate the polyline through (xs, ys) (xs strictly increasing) at ``x``, slope 1 outside.

    Goes through a uniform :data:`LUT_SIZE`-entry table over [min, max] of ``x`` and ``xs``;
    the table error is below (slope change) · range / (4 · LUT_SIZE) at the nodes.
    """
    lo = float(min(x.min(), xs[0]))
    hi = float(max(x.max(), xs[-1]))
    if len(xs) == 1 or hi - lo <= 1e-12:
        shift = float(np.interp(0.5 * (lo + hi), xs, ys)) - 0.5 * (lo + hi)
        return (x + np.float32(shift)).astype(np.float32, copy=False)
    grid = np.linspace(lo, hi, LUT_SIZE)
    table = np.interp(grid, xs, ys)
    table += np.minimum(grid - xs[0], 0.0) + np.maximum(grid - xs[-1], 0.0)
    table32 = table.astype(np.float32)
    step = np.append(np.diff(table32), np.float32(0.0))  # u = LUT_SIZE − 1 reads the last entry
    u = (x - np.float32(lo)) * np.float32((LUT_SIZE - 1) / (hi - lo))  # in [0, LUT_SIZE − 1]
    i = u.astype(np.intp)
    u -= i
    u *= np.take(step, i)
    u += np.take(table32, i)
    return u


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly random 3×3 orthogonal matrix (QR of a Gaussian matrix, signs fixed)."""
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    q *= np.sign(np.diag(r))
    return q


@dataclass(frozen=True)
class HistMatchConfig(ColorConfig):
    threshold: float = option(0.99, "Fraction of the plate's histogram used (Faceswap's 99 %: "
                                    "the brightest 1 % is left out).", minimum=0.5, maximum=1.0)


@COLOR.register("hist-match", config=HistMatchConfig)
class HistMatch(ColorTransfer):
    """Per-channel histogram (CDF) matching in RGB (Faceswap's match-hist)."""

    cfg: HistMatchConfig

    def transfer(self, samples: Samples) -> np.ndarray:
        h, w = samples.face.shape[:2]
        tgt = cv2.split(samples.target.reshape(-1, 1, 3))
        out = []
        for c, plane in enumerate(cv2.split(samples.face)):
            x = plane.ravel()
            mapped = match_1d(x, np.take(x, samples.face_index), tgt[c].ravel(),
                              threshold=self.cfg.threshold)
            out.append(mapped.reshape(h, w))
        return cv2.merge(out)


@dataclass(frozen=True)
class IterativeConfig(ColorConfig):
    iterations: int = option(10, "Number of iterations.", minimum=1, maximum=200)
    seed: int = option(0, "Seed of the random rotations/directions and pixel subsets.",
                       minimum=0)
    samples: int = option(16384, "Pixels drawn from each mask for the statistics (0 = all).",
                          minimum=0)
    nodes: int = option(512, "Quantile levels per 1-D match.", minimum=16, maximum=65536)


class _Iterative(ColorTransfer):
    """Shared set-up of idt and sot: P×1×3 pixel arrays and seeded statistic subsets.

    Pixels stay interleaved (P×1×3) so rotations and projections go through ``cv2.transform``
    (a per-pixel matrix product that does not start BLAS threads for a 3×3 matrix).
    """

    cfg: IterativeConfig

    def _setup(self, samples: Samples
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.random.Generator]:
        rng = np.random.default_rng(self.cfg.seed)
        pixels = samples.face.reshape(-1, 1, 3).copy()
        face_idx = seeded_subset(samples.face_index, self.cfg.samples, self.cfg.seed)
        tgt_idx = seeded_subset(np.arange(len(samples.target)), self.cfg.samples,
                                self.cfg.seed + 1)
        target = np.take(samples.target, tgt_idx, axis=0).reshape(-1, 1, 3)
        return pixels, face_idx, target, rng


@COLOR.register("idt", config=IterativeConfig)
class IterativeDistributionTransfer(_Iterative):
    """Iterative distribution transfer: 1-D matches along rotated axes, repeated (Pitié 2005)."""

    def transfer(self, samples: Samples) -> np.ndarray:
        pixels, face_idx, target, rng = self._setup(samples)
        for it in range(self.cfg.iterations):
            rot = (np.eye(3) if it == 0 else _random_rotation(rng)).astype(np.float32)
            axes = [a.ravel() for a in cv2.split(cv2.transform(pixels, rot))]
            tgt = cv2.split(cv2.transform(target, rot))
            for a in range(3):
                src = np.take(axes[a], face_idx)
                axes[a] = match_1d(axes[a], src, tgt[a].ravel(), self.cfg.nodes)
            pixels = cv2.transform(cv2.merge([a.reshape(-1, 1) for a in axes]), rot.T.copy())
        return pixels.reshape(samples.face.shape)


@dataclass(frozen=True)
class SotConfig(IterativeConfig):
    iterations: int = option(15, "Number of iterations.", minimum=1, maximum=200)
    projections: int = option(4, "Random directions per iteration.", minimum=1, maximum=64)
    step: float = option(1.0, "Fraction of the averaged displacement applied per iteration.",
                         minimum=0.05, maximum=1.0)


@COLOR.register("sot", config=SotConfig)
class SlicedOptimalTransport(_Iterative):
    """Sliced optimal transport: averaged 1-D transport along random directions (Rabin 2011)."""

    cfg: SotConfig

    def transfer(self, samples: Samples) -> np.ndarray:
        pixels, face_idx, target, rng = self._setup(samples)
        d = self.cfg.projections
        gain = self.cfg.step * min(1.0, 3.0 / d)
        for _ in range(self.cfg.iterations):
            dirs = rng.standard_normal((d, 3))
            dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
            dirs32 = dirs.astype(np.float32)
            proj = cv2.split(cv2.transform(pixels, dirs32))
            tgt = cv2.split(cv2.transform(target, dirs32))
            disp = []
            for k in range(d):
                x = proj[k].ravel()
                moved = match_1d(x, np.take(x, face_idx), tgt[k].ravel(), self.cfg.nodes)
                moved -= x
                disp.append(moved.reshape(-1, 1))
            back = np.ascontiguousarray(dirs.T * gain, dtype=np.float32)
            pixels += cv2.transform(cv2.merge(disp) if d > 1 else disp[0][..., None], back)
        return pixels.reshape(samples.face.shape)
