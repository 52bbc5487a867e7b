"""The video verdict: a face's score pooled with the same face in neighbouring frames."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from faceplate.core.profile import active_profile
from faceplate.provenance.watermark.calibration import null_tail, verify_thresholds
from faceplate.provenance.watermark.detect import FaceMark
from faceplate.provenance.watermark.scheme import PATTERN_SETS

#: The video verdict (:func:`pool_tracks`): neighbouring checked frames on each side whose
#: scores are pooled, and the least box overlap (intersection over union) that makes a face in
#: a neighbouring frame the same face.
TRACK_RADIUS = 2
TRACK_MIN_IOU = 0.3


def pool_tracks(frames: Sequence[Sequence[FaceMark]], radius: int = TRACK_RADIUS,
                min_iou: float = TRACK_MIN_IOU) -> list[list[FaceMark]]:
    """The video verdict: each face's score pooled with the same face in neighbouring frames.

    Codec noise hits single frames: at 640×360 after H.264 CRF 23 a few marked faces score
    just under the threshold between neighbours that score well above it. Here a face's
    *track window* is itself plus, in each of the ``radius`` checked frames before and after
    it, the face whose box overlaps its own the most (IoU ≥ ``min_iou``); the face is also
    detected when the window's mean score of one pattern set reaches that set's threshold
    (each set pooled on its own: :attr:`FaceMark.set_scores`; a mark without them counts as
    the ``full`` set's ``score``), the active profile's verifier's
    (:func:`verify_thresholds`).

    False positives stay bounded without a new calibration: a mean at or above a set's
    threshold needs at least one member at or above it, i.e. a face detected on its own, so
    an unmarked face is detected through its track with probability at most (2·radius + 1)
    times the per-face rate over every set (:func:`~.calibration.combined_rate`: 5 × 1.5e-4 =
    7.5e-4 ≤ ``FP_TARGET`` with the defaults); its confidence is 1 − that union bound at the
    mean, (window size) × (sets) × :func:`null_tail`.
    The payload stays the face's own (None unless its own id bits pass the CRC).

    Args:
        frames: Per checked frame, in order, its faces' marks (:func:`detect_frame`).
        radius: Checked frames pooled on each side (0: the marks come back unchanged).
        min_iou: Least box overlap for a neighbouring face to be the same face.

    Returns:
        The same structure of new :class:`FaceMark` values, ``track_score`` and ``by_track`` set.
    """
    from faceplate.core.types import BBox

    fix_points = len(active_profile().verify_landmarks)  # as detect_frame's marks
    thresholds = {ps.name: verify_thresholds(fix_points, ps.name)[0] for ps in PATTERN_SETS}
    boxes = [[BBox(*(float(v) for v in m.box)) for m in marks] for marks in frames]
    out: list[list[FaceMark]] = []
    n = len(frames)
    for t, marks in enumerate(frames):
        row: list[FaceMark] = []
        for m, box in zip(marks, boxes[t]):
            window = [m]
            for u in range(max(0, t - radius), min(n, t + radius + 1)):
                if u == t or not frames[u]:
                    continue
                overlaps = [box.iou(b) for b in boxes[u]]
                j = int(np.argmax(overlaps))  # the most overlapping face (the first on a tie)
                if overlaps[j] >= min_iou:
                    window.append(frames[u][j])
            if len(window) < 2:
                row.append(m)
                continue
            # Per set: (mean score, threshold, name); the full set first.
            means = []
            for k, ps in enumerate(PATTERN_SETS):
                got = [_set_score(w, k) for w in window]
                vals = [v for v in got if v is not None]
                if len(vals) == len(window):
                    means.append((float(np.mean(vals)), thresholds[ps.name], ps.name))
            hits = [x for x in means if x[0] >= x[1]]
            mean, _, name = (min(hits, key=lambda x: null_tail(x[0], x[2], fix_points))
                             if hits else next((x for x in means if x[2] == m.pattern_set),
                                               means[0]))
            if m.detected or not hits:
                row.append(replace(m, track_score=mean))
                continue
            p = min(1.0, len(window) * len(PATTERN_SETS) * null_tail(mean, name, fix_points))
            row.append(replace(m, detected=True, by_track=True, track_score=mean,
                               confidence=max(m.confidence, 1.0 - p)))
        out.append(row)
    return out


def _set_score(m: FaceMark, k: int) -> float | None:
    """Pattern set k's score of a face (a mark without ``set_scores``: the full set's only)."""
    if m.set_scores:
        return m.set_scores[k] if k < len(m.set_scores) else None
    return m.score if k == 0 else None
