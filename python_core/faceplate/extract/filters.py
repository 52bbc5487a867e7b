"""Per-face filters applied after alignment: size, roll, landmark sanity, distance from the mean.

A face that fails a filter is neither stored nor written; the reason is counted so the run's
summary can say why faces were skipped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from faceplate.core.config import Config, option
from faceplate.core.geometry import (
    LEFT_EYE,
    MOUTH,
    NOSE,
    RIGHT_EYE,
    distance_from_mean,
    matrix_scale,
    roll_degrees,
    template_matrix,
)


@dataclass(frozen=True)
class FilterConfig(Config):
    """Which aligned faces to keep."""

    min_face: float = option(
        24.0, "Skip faces smaller than this many pixels (inner-face width in the frame).",
        minimum=0.0)
    max_roll: float = option(
        180.0, "Skip faces rolled more than this many degrees from upright (180 keeps all).",
        minimum=0.0, maximum=180.0)
    max_distance: float = option(
        0.22, "Skip faces whose landmarks lie further than this from the mean face after "
        "alignment (template units: 0.1 = 10% of the inner face); 0 disables.",
        minimum=0.0, maximum=1.0)
    sanity: bool = option(
        True, "Skip faces whose landmarks are not face-like (eyes above nose above mouth in "
        "the face's own frame).")


def face_width(landmarks: np.ndarray) -> float:
    """Inner-face width in frame pixels: the scale of the template fit (template width is 1)."""
    return 1.0 / matrix_scale(template_matrix(landmarks))


def sane(landmarks: np.ndarray) -> bool:
    """True when, in the face's upright frame, eyes are above the nose tip, which is above the
    mouth, and the left/right eyes are on their sides."""
    from faceplate.core.geometry import transform_points

    p = transform_points(landmarks, template_matrix(landmarks))
    eyes_y = min(p[RIGHT_EYE, 1].mean(), p[LEFT_EYE, 1].mean())
    nose_y = p[NOSE][3:4, 1].mean()  # point 30, nose tip
    mouth_y = p[MOUTH, 1].mean()
    lower_eye = max(p[RIGHT_EYE, 1].mean(), p[LEFT_EYE, 1].mean())
    return bool(eyes_y < nose_y < mouth_y and lower_eye < mouth_y
                and p[RIGHT_EYE, 0].mean() < p[LEFT_EYE, 0].mean())


def reject_reason(landmarks: np.ndarray, cfg: FilterConfig) -> str | None:
    """Why the face should be skipped (a short key for the summary), or ``None`` to keep it."""
    if not np.all(np.isfinite(landmarks)):
        return "non-finite landmarks"
    if face_width(landmarks) < cfg.min_face:
        return "too small"
    if cfg.sanity and not sane(landmarks):
        return "not face-like"
    if cfg.max_roll < 180.0 and abs(roll_degrees(landmarks)) > cfg.max_roll:
        return "roll limit"
    if cfg.max_distance > 0 and distance_from_mean(landmarks) > cfg.max_distance:
        return "far from mean face"
    return None
