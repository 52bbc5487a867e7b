"""Does a faster inference precision change the swap? A precision (int8, bf16) against fp32 on
real frames: the model's faces, and the composites ``swap_frame`` makes from them.

For each face of each frame given:

* **face PSNR**: the candidate predictor's face against the fp32 torch predictor's, on the same
  input crop (:func:`faceplate.convert.swap.model_inputs`), faces in [0, 1];
* **identity distance**: dlib's 128-d embedding of the candidate's composite against that of the
  fp32 composite, at the face's landmarks (dlib calls < 0.6 the same person; re-encoding one
  image as JPEG moves it by a few hundredths);
* **colour ΔE**: the mean CIEDE2000 difference, pixel by pixel, between the two composites over
  the face's skin (:func:`faceplate.evaluate.metrics.face_regions`; ΔE ≈ 1 is about the smallest
  difference an observer notices side by side).

The bounds the int8 model is held to are :data:`PSNR_MIN_DB`, :data:`IDENTITY_BOUND` and
:data:`DELTA_E_BOUND`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from faceplate.convert.swap import (
    ConvertConfig,
    Predictor,
    SwapContext,
    make_predictor,
    model_inputs,
    swap_frame,
)
from faceplate.core.types import FaceRecord
from faceplate.evaluate.metrics import delta_e_2000, face_regions, to_lab
from faceplate.extract.identity.embed import IdentityEncoder, identity_distance

#: The faster precision's faces against fp32's: mean PSNR at least this (dB).
PSNR_MIN_DB = 40.0
#: Largest identity distance between the two composites of a face (a quarter of dlib's 0.6
#: same-person bound; bf16 moves the trained test model's composites by up to 0.10).
IDENTITY_BOUND = 0.15
#: Largest mean CIEDE2000 between the two composites over a face's skin.
DELTA_E_BOUND = 1.0


@dataclass(frozen=True)
class PrecisionCheck:
    """What :func:`compare_precisions` measured (see the module docstring).

    Attributes:
        candidate: The precision compared ("int8", "bf16").
        faces: Faces compared.
        psnr_db: Mean face PSNR against fp32, dB (100 for identical faces).
        psnr_db_min: The worst face's.
        identity_distance_mean: Mean identity distance between the composites.
        identity_distance_max: The largest.
        delta_e_mean: Mean over faces of the mean skin ΔE2000 between the composites.
        delta_e_max: The largest face's mean.
    """

    candidate: str
    faces: int
    psnr_db: float
    psnr_db_min: float
    identity_distance_mean: float
    identity_distance_max: float
    delta_e_mean: float
    delta_e_max: float

    def within_bounds(self) -> bool:
        """PSNR, identity and colour all within the module's bounds (and faces compared)."""
        return (self.faces > 0 and self.psnr_db >= PSNR_MIN_DB
                and self.identity_distance_max <= IDENTITY_BOUND
                and self.delta_e_max <= DELTA_E_BOUND)

    def to_dict(self) -> dict[str, Any]:
        """The figures with the bounds and the verdict (JSON values)."""
        return {**asdict(self), "bounds": {"psnr_db_min_mean": PSNR_MIN_DB,
                                           "identity_distance_max": IDENTITY_BOUND,
                                           "delta_e_max": DELTA_E_BOUND},
                "within_bounds": self.within_bounds()}


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 100.0 if mse <= 1e-10 else 10.0 * math.log10(1.0 / mse)


def _skin_delta_e(a: np.ndarray, b: np.ndarray, rec: FaceRecord) -> float:
    regions = face_regions(rec.landmarks, a.shape)
    if not regions.skin.any():
        return float("nan")
    la = to_lab(a[regions.slices][..., :3])[regions.skin]
    lb = to_lab(b[regions.slices][..., :3])[regions.skin]
    return float(np.mean(delta_e_2000(la, lb)))


def compare_precisions(model_dir: str | Path,
                       frames: Iterable[tuple[np.ndarray, Sequence[FaceRecord]]], *,
                       candidate: str = "int8", cfg: ConvertConfig | None = None,
                       reference: Predictor | None = None,
                       encoder: IdentityEncoder | None = None) -> PrecisionCheck:
    """Compare ``candidate`` with fp32 on ``frames`` (see the module docstring).

    Args:
        model_dir: The model directory (with an int8 export for ``candidate="int8"``).
        frames: ``(frame, faces)`` pairs: H×W×3 ``uint8`` display-sRGB frames and their faces
            (store records, landmarks in frame pixels).
        candidate: "int8" or "bf16".
        cfg: The swap settings of both composites (defaults when None; ``precision`` is
            set for each side).
        reference: A loaded fp32 torch predictor to reuse (else one is loaded).
        encoder: A loaded identity encoder to reuse.

    Raises:
        ModelError: the model (or its int8 export) is missing or fails verification.
    """
    base = cfg or ConvertConfig()
    ref = reference or make_predictor("torch", model_dir, precision="fp32")
    cand = make_predictor(base.predictor, model_dir, precision=candidate)
    enc = encoder or IdentityEncoder()
    cfg_ref = base.replace(precision="fp32", predictor="torch")
    cfg_cand = base.replace(precision=candidate)
    ctx_ref, ctx_cand = SwapContext.create(cfg_ref), SwapContext.create(cfg_cand)
    psnr: list[float] = []
    ident: list[float] = []
    delta: list[float] = []
    for frame, faces in frames:
        faces = list(faces)
        if not faces:
            continue
        x = model_inputs(frame, faces, ref)
        f_ref, _ = ref.predict(x, mask=False)
        f_cand, _ = cand.predict(x, mask=False)
        psnr += [_psnr(f_cand[i], f_ref[i]) for i in range(len(faces))]
        a = swap_frame(frame, faces, ref, cfg_ref, frame_is_linear=False, context=ctx_ref).frame
        b = swap_frame(frame, faces, cand, cfg_cand, frame_is_linear=False,
                       context=ctx_cand).frame
        lms = [r.landmarks.astype(np.float32) for r in faces]
        ea, eb = enc.embed_many(a[..., :3], lms), enc.embed_many(b[..., :3], lms)
        ident += [identity_distance(ea[i], eb[i]) for i in range(len(faces))]
        delta += [_skin_delta_e(a, b, r) for r in faces]
    finite = [d for d in delta if math.isfinite(d)]
    n = len(psnr)
    return PrecisionCheck(
        candidate=candidate, faces=n,
        psnr_db=float(np.mean(psnr)) if n else float("nan"),
        psnr_db_min=float(np.min(psnr)) if n else float("nan"),
        identity_distance_mean=float(np.mean(ident)) if n else float("nan"),
        identity_distance_max=float(np.max(ident)) if n else float("nan"),
        delta_e_mean=float(np.mean(finite)) if finite else float("nan"),
        delta_e_max=float(np.max(finite)) if finite else float("nan"))
