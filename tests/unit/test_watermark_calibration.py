"""Issue 16, point 3: the detector's thresholds hold on faces they were not fitted on.

Each pattern set's null (``watermark.NULLS``) is fitted by ``tools/calibrate_watermark_null.py``
on one half of the calibration faces; here it is measured on faces outside the calibration
entirely (other frames of the two calibration clips, two photos): the score of many random
stand-in markers per face (``watermark.null_scores``) samples the null there. Fails if a table
was fitted on every calibration face, if a threshold sits too low for faces it was not fitted
on, or if the table does not describe them.
"""

from __future__ import annotations

import numpy as np
import pytest

from faceplate.io import samples
from faceplate.io.media import open_source, read_image
from faceplate.provenance import watermark as wm
from faceplate.provenance.watermark.calibration import (
    CALIBRATION_CLIPS,
    FIT_HALF,
    calibration_frame,
    calibration_half,
)

#: Held-out frames (never calibration frames) of the two calibration clips, and photos.
HELD_OUT = {"single_face.mp4": (2, 31, 61), "WolfgangLanger_Pexels.mp4": (5, 155, 305, 455)}
PHOTOS = ("obama2.jpg", "biden.jpg")
MARKERS = 160


@pytest.fixture(scope="module")
def held_out_faces() -> list[tuple[np.ndarray, np.ndarray]]:
    """(frame, its one face's landmarks) of every held-out frame and photo."""
    out = []
    for clip, frames in HELD_OUT.items():
        with open_source(samples.path(clip)) as src:
            for i in frames:
                rgb = src.read(i).rgb
                (lm,) = wm.frame_landmarks(rgb)
                out.append((rgb, lm))
    for name in PHOTOS:
        rgb = read_image(samples.path(name)).rgb
        (lm,) = wm.frame_landmarks(rgb)
        out.append((rgb, lm))
    return out


def test_the_nulls_are_fitted_on_one_half_and_the_measured_faces_are_outside_it() -> None:
    """The shipped tables say they come from the fitting half, the halves are disjoint and
    alternate, and the faces measured below are not calibration frames at all."""
    for null in wm.NULLS.values():
        assert null.fitted_on == FIT_HALF
    halves = [calibration_half(p) for p in range(66)]
    assert halves.count("fit") == halves.count("held_out") == 33
    assert all(a != b for a, b in zip(halves, halves[1:]))
    assert {c for c, _ in CALIBRATION_CLIPS} == set(HELD_OUT)
    for clip, frames in HELD_OUT.items():
        assert not any(calibration_frame(clip, i) for i in frames)
        assert calibration_frame(clip, 0)


def test_thresholds_hold_on_held_out_faces(held_out_faces: list[tuple[np.ndarray, np.ndarray]]
                                           ) -> None:
    """On held-out unmarked faces no pattern set's search reaches its threshold more often
    than its table allows, and the table's tail matches what these faces give further down
    (where it expects dozens of searches above): a threshold fitted too low, or a table that
    does not describe faces it was not fitted on, fails here."""
    rng = np.random.default_rng(16)
    markers = rng.integers(0, 2, (len(held_out_faces), MARKERS, wm.MARKER_BITS)).astype(np.uint8)
    any_set = np.zeros(len(held_out_faces) * MARKERS, bool)
    for ps in wm.PATTERN_SETS:
        null = wm.NULLS[ps.name]
        scores = np.concatenate([wm.null_scores(rgb, lm, m, ps.name)
                                 for (rgb, lm), m in zip(held_out_faces, markers)])
        n = scores.size
        assert n == len(held_out_faces) * MARKERS
        at = scores >= null.threshold
        any_set |= at
        # Expected n × tail ≈ 0.1 at the threshold.
        assert int(at.sum()) <= 1, (ps.name, float(scores.max()))
        # Further down the table: the first point where ≥ 25 searches are expected.
        x, p = next((x, p) for x, p in reversed(null.tail) if n * p >= 25)
        got = int((scores >= x).sum())
        assert n * p / 2.5 <= got <= n * p * 2.5, (ps.name, x, n * p, got)
    # Both sets searched together (what the verifier does): still at most one.
    assert int(any_set.sum()) <= 1
    assert wm.combined_rate() <= 1.6e-4
