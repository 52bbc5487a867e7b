"""Colour transfers that fit one affine map in RGB: ``none``, ``avg-color``, ``lct``, ``mkl``.

All work in display-referred sRGB (0..1) on pixel vectors ``x`` (R, G, B): the map is
``x' = T (x − μ_face) + μ_target`` with the means and (population) covariances taken over the
masked pixels, and it is applied to every face pixel. Variances below :data:`MIN_VARIANCE`
(half an 8-bit code value as a standard deviation) are raised to it, so a flat-coloured face or
plate gives a finite map instead of a division by zero.

* ``avg-color`` (Faceswap's default): T = I, the channel means move to the target's.
* ``lct`` (linear colour transfer, as DeepFaceLab's ``linear_color_transfer``): any T with
  T Σ_face Tᵀ = Σ_target. Mode ``pca`` (default, DFL's default) uses symmetric square roots,
  T = Σ_t^½ Σ_f^-½ (the maps in the eigenbases of both covariances); mode ``chol`` uses Cholesky
  factors, T = L_t L_f⁻¹. Both match mean and covariance exactly; they differ in how they rotate
  the colours (``chol`` depends on the channel order, ``pca`` does not).
* ``mkl`` (Monge–Kantorovich linear, Pitié & Kokaram 2007): the unique symmetric positive T with
  T Σ_f T = Σ_t, T = Σ_f^-½ (Σ_f^½ Σ_t Σ_f^½)^½ Σ_f^-½ — the optimal-transport map between the two
  Gaussians, i.e. the covariance match that moves colours the least.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from faceplate.convert.color.base import COLOR, ColorConfig, ColorTransfer, Samples
from faceplate.core.config import option

MIN_VARIANCE = (0.5 / 255.0) ** 2
"""Eigenvalue floor for covariance square roots (sRGB 0..1 units squared)."""


def mean_cov(px: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (3,) and population covariance (3×3) of N×3 pixels, both float64."""
    flags = cv2.COVAR_NORMAL | cv2.COVAR_ROWS | cv2.COVAR_SCALE
    cov, mu = cv2.calcCovarMatrix(np.ascontiguousarray(px, dtype=np.float32), None, flags,
                                  ctype=cv2.CV_64F)  # type: ignore[call-overload]
    return mu.reshape(3).astype(np.float64), cov


def sqrtm_psd(cov: np.ndarray, power: float = 0.5, floor: float = MIN_VARIANCE) -> np.ndarray:
    """``cov`` to ``power`` (±½) for a symmetric PSD 3×3, eigenvalues floored at ``floor``."""
    w, v = np.linalg.eigh(cov)
    w = np.maximum(w, floor) ** power
    return (v * w) @ v.T


def apply_affine(face: np.ndarray, t: np.ndarray, mu_f: np.ndarray,
                 mu_t: np.ndarray) -> np.ndarray:
    """``T (x − μ_f) + μ_t`` for every pixel of H×W×3 ``face``; float32 H×W×3."""
    m = np.hstack([t, (mu_t - t @ mu_f)[:, None]]).astype(np.float32)
    return cv2.transform(face.reshape(-1, 1, 3), m).reshape(face.shape)


@COLOR.register("none", config=ColorConfig)
class NoColor(ColorTransfer):
    """No colour change: the model's output as it is (clipped to [0, 1])."""

    def transfer(self, samples: Samples) -> np.ndarray:
        return samples.face


@COLOR.register("avg-color", config=ColorConfig)
class AvgColor(ColorTransfer):
    """Shift each RGB channel so the masked face mean equals the masked target mean."""

    def transfer(self, samples: Samples) -> np.ndarray:
        shift = (samples.target.mean(axis=0, dtype=np.float64)
                 - samples.face_pixels.mean(axis=0, dtype=np.float64)).astype(np.float32)
        return samples.face + shift


@dataclass(frozen=True)
class LctConfig(ColorConfig):
    mode: Literal["pca", "chol"] = option(
        "pca", "Square root used to match the covariances: symmetric (pca) or Cholesky (chol).")


@COLOR.register("lct", config=LctConfig)
class LinearColorTransfer(ColorTransfer):
    """Linear colour transfer: match the RGB mean and covariance (DeepFaceLab's lct)."""

    cfg: LctConfig

    def transfer(self, samples: Samples) -> np.ndarray:
        mu_f, cov_f = mean_cov(samples.face_pixels)
        mu_t, cov_t = mean_cov(samples.target)
        if self.cfg.mode == "pca":
            t = sqrtm_psd(cov_t) @ sqrtm_psd(cov_f, -0.5)
        else:
            eye = np.eye(3) * MIN_VARIANCE
            l_f = np.linalg.cholesky(cov_f + eye)
            l_t = np.linalg.cholesky(cov_t + eye)
            t = l_t @ np.linalg.inv(l_f)
        return apply_affine(samples.face, t, mu_f, mu_t)


@COLOR.register("mkl", config=ColorConfig)
class MongeKantorovich(ColorTransfer):
    """Monge–Kantorovich linear transfer: the optimal linear map between the two Gaussians."""

    def transfer(self, samples: Samples) -> np.ndarray:
        mu_f, cov_f = mean_cov(samples.face_pixels)
        mu_t, cov_t = mean_cov(samples.target)
        f_half = sqrtm_psd(cov_f)
        f_inv_half = sqrtm_psd(cov_f, -0.5)
        middle = sqrtm_psd(f_half @ cov_t @ f_half, floor=0.0)
        t = f_inv_half @ middle @ f_inv_half
        return apply_affine(samples.face, t, mu_f, mu_t)
