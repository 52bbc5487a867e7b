"""Measuring a conversion (``faceplate evaluate``): identity, landmark error, colour ΔE2000,
seam score and temporal jitter, per frame and overall.

* :mod:`faceplate.evaluate.metrics` — the metrics as pure functions on NumPy arrays.
* :mod:`faceplate.evaluate.run` — :class:`Evaluator`: INPUT and OUTPUT frames in lockstep,
  faces detected (or read from the input's store), paired and scored.
* :mod:`faceplate.evaluate.report` — :class:`Report`: per-frame scores, overall statistics, JSON
  and a PNG plot.
"""

from faceplate.evaluate.metrics import (
    ColourDelta,
    FaceRegions,
    Seam,
    colour_delta,
    delta_e_2000,
    face_regions,
    gradient_energy,
    gradient_magnitude,
    inter_ocular,
    jitter_per_frame,
    landmark_error,
    seam_score,
)
from faceplate.evaluate.report import METRICS, FaceScores, FrameScores, Report
from faceplate.evaluate.run import EvaluateConfig, Evaluator, evaluate, pair_faces

__all__ = [
    "METRICS",
    "ColourDelta",
    "EvaluateConfig",
    "Evaluator",
    "FaceRegions",
    "FaceScores",
    "FrameScores",
    "Report",
    "Seam",
    "colour_delta",
    "delta_e_2000",
    "evaluate",
    "face_regions",
    "gradient_energy",
    "gradient_magnitude",
    "inter_ocular",
    "jitter_per_frame",
    "landmark_error",
    "pair_faces",
    "seam_score",
]
