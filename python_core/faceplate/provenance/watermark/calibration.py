"""The detector's calibrated null: the score's tail on unmarked faces and the thresholds.

The marker score is N(0, 1) at one alignment on an unmarked face; the search takes the best of
many correlated alignments, so its null is calibrated on unmarked faces with random stand-in
markers (``tools/calibrate_watermark_null.py``, :func:`~.detect.null_scores`): ``NULL_TAIL``
holds P(score ≥ x), ``SCORE_THRESHOLD`` sits where it is below ``FP_TARGET``, and a face's
confidence is ``1 − null_tail(score)``. Recalibrate whenever the sampling or the search
changes.

A verifier that tries several landmark fix points (:mod:`.landmarks`; the default model
profile tries dlib68 and mesh68, so that marks made under either profile are found) thresholds
the best of its tries, whose null is higher: :func:`verify_thresholds` raises both thresholds
by ``FIX_POINT_RAISE`` per extra fix point, and :func:`null_tail` shifts the tail by as much,
so the false-positive rate per face stays where a single fix point puts it.
"""

from __future__ import annotations

import math

import numpy as np

#: Allowed false-positive rate per unmarked face.
FP_TARGET = 1e-3


def _q(x: float) -> float:
    """Upper tail of the standard normal."""
    return 0.5 * math.erfc(x / math.sqrt(2.0))


#: The calibrated null: (score, fraction of unmarked searches scoring at least that), from
#: 33,792 searches (66 unmarked faces of the two sample videos × 512 random stand-in markers:
#: ``tools/calibrate_watermark_null.py``; mean 3.57, s.d. 0.385).
NULL_TAIL: tuple[tuple[float, float], ...] = (
    (2.5, 0.997), (3.0, 0.939), (3.25, 0.81), (3.5, 0.571), (3.75, 0.309), (4.0, 0.129),
    (4.25, 0.0436), (4.5, 0.0126), (4.75, 0.00349), (5.0, 0.000681), (5.25, 0.000148),
    (5.5, 2.96e-05))
#: Beyond the table the tail is taken as N_EFFECTIVE·Q(score) (the best of N_EFFECTIVE
#: independent N(0, 1) alignments), matched to the table's last point.
N_EFFECTIVE: float = 1559.0
#: Score at or above which a face is "detected": the calibrated tail there is 1.5e-4, kept
#: well under FP_TARGET because unmarked photos and other people score a little higher than
#: the calibration faces (at 5.1 one of the 634 faces of the sample media, 0.16 %, passed).
SCORE_THRESHOLD: float = 5.25
#: The threshold for the second pass's extra candidates (:func:`detect_frame`): its tail is
#: 4e-5, so a face with up to two extra candidates stays ≤ 2.3e-4 in all (≤ FP_TARGET).
SECOND_PASS_THRESHOLD: float = 5.45


#: How much the thresholds rise for each fix point the verifier tries beyond the first
#: (``tools/calibrate_watermark_null.py --fix-points dlib68,mesh68 --markers 512``, 66 faces:
#: per marker the best of the dlib68 and the mesh68 search has a tail of 2.4e-4 at 5.375, the
#: dlib68 search alone the same 2.4e-4 at 5.25; mesh68 alone has the same null as dlib68:
#: mean 3.68, s.d. 0.35 for both).
FIX_POINT_RAISE: float = 0.125


def verify_thresholds(fix_points: int = 1) -> tuple[float, float]:
    """(``SCORE_THRESHOLD``, ``SECOND_PASS_THRESHOLD``) for a verifier that tries
    ``fix_points`` landmark fix points on each face (the best score counts)."""
    lift = FIX_POINT_RAISE * max(0, fix_points - 1)
    return SCORE_THRESHOLD + lift, SECOND_PASS_THRESHOLD + lift


def null_tail(score: float, fix_points: int = 1) -> float:
    """P(score ≥ ``score``) on an unmarked face (log-linear in the calibrated table), for the
    best of ``fix_points`` fix points' searches."""
    score -= FIX_POINT_RAISE * max(0, fix_points - 1)
    pts = NULL_TAIL
    if score <= pts[0][0]:
        return 1.0
    if score >= pts[-1][0]:
        return min(pts[-1][1], N_EFFECTIVE * _q(score))
    xs = [p[0] for p in pts]
    logs = [math.log(p[1]) for p in pts]
    return float(math.exp(np.interp(score, xs, logs)))
