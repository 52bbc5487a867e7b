"""Temporal smoothing on synthetic tracks: noise goes down, motion is kept, gaps are filled."""

from __future__ import annotations

import numpy as np
import pytest

from faceplate.core.geometry import MEAN_FACE_68
from faceplate.core.types import BBox, FaceRecord, FrameInfo
from faceplate.extract.smoothing import (
    build_tracks,
    compose,
    decompose,
    face_size,
    landmark_jitter,
    smooth_track,
)


def _face(cx: float, cy: float, size: float, angle_deg: float = 0.0) -> np.ndarray:
    """The mean face placed at (cx, cy), ``size`` pixels per template unit, rotated."""
    a = np.radians(angle_deg)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return (MEAN_FACE_68 - 0.5) @ rot.T * size + np.array([cx, cy])


def _track(n: int, speed: tuple[float, float] = (0.0, 0.0), spin: float = 0.0) -> np.ndarray:
    return np.stack([_face(200 + speed[0] * t, 150 + speed[1] * t, 80.0, spin * t)
                     for t in range(n)])


def test_decompose_compose_round_trip() -> None:
    rng = np.random.default_rng(0)
    lm = _face(321.5, 97.25, 63.0, 17.0) + rng.normal(0, 1.5, (68, 2))
    pose, shape = decompose(lm)
    np.testing.assert_allclose(compose(pose, shape), lm, atol=1e-9)
    assert np.exp(pose[2]) == pytest.approx(63.0, rel=0.05)
    assert np.degrees(pose[3]) == pytest.approx(17.0, abs=1.5)
    assert face_size(lm) == pytest.approx(63.0, rel=0.05)


def test_noisy_constant_track_gets_closer_to_the_constant() -> None:
    rng = np.random.default_rng(1)
    clean = _track(60)
    noisy = clean + rng.normal(0, 1.0, clean.shape)
    res = smooth_track(noisy, window=9, max_gap=0)
    err_before = np.abs(noisy - clean).mean()
    err_after = np.abs(res.landmarks - clean).mean()
    assert err_after < 0.6 * err_before
    assert landmark_jitter(res.landmarks) < 0.3 * landmark_jitter(noisy)
    assert not res.filled.any()


@pytest.mark.parametrize("order", [1, 2])
def test_linear_motion_is_kept_without_lag(order: int) -> None:
    clean = _track(40, speed=(3.0, -1.5), spin=0.5)
    res = smooth_track(clean, window=11, max_gap=0, order=order)
    # exact everywhere, the clip's two ends included: no phase lag, no edge shrinkage
    np.testing.assert_allclose(res.landmarks, clean, atol=0.05)


def test_plain_moving_average_would_lag_but_smoother_does_not() -> None:
    # a sanity check that the test above can fail: a one-sided (causal) mean lags by ~speed*k
    clean = _track(30, speed=(4.0, 0.0))
    causal = np.stack([clean[max(0, t - 4):t + 1].mean(axis=0) for t in range(30)])
    assert np.abs(causal - clean)[10:].mean() > 3.0  # 2 frames × 4 px in x
    res = smooth_track(clean, window=9, max_gap=0)
    assert np.abs(res.landmarks - clean)[10:].mean() < 0.05


def test_short_gaps_filled_long_gaps_not() -> None:
    clean = _track(40, speed=(2.0, 1.0))
    lm = clean.copy()
    lm[10:13] = np.nan  # 3-sample gap (fillable with max_gap=3)
    lm[25:30] = np.nan  # 5-sample gap (too long)
    res = smooth_track(lm, window=5, max_gap=3)
    assert res.filled[10:13].all()
    assert res.filled.sum() == 3
    np.testing.assert_allclose(res.landmarks[10:13], clean[10:13], atol=0.05)
    assert np.isnan(res.landmarks[25:30]).all()
    assert np.isfinite(res.landmarks[:25]).all() and np.isfinite(res.landmarks[30:]).all()
    # filled points lie between the neighbours
    for k in range(10, 13):
        lo = np.minimum(clean[9], clean[13]) - 1e-6
        hi = np.maximum(clean[9], clean[13]) + 1e-6
        assert np.all((res.landmarks[k] >= lo) & (res.landmarks[k] <= hi))


def test_no_filling_with_max_gap_zero_and_window_one_is_identity() -> None:
    rng = np.random.default_rng(2)
    lm = _track(12) + rng.normal(0, 1, (12, 68, 2))
    lm[5] = np.nan
    res = smooth_track(lm, window=1, max_gap=0)
    assert not res.filled.any()
    ok = np.isfinite(lm)
    np.testing.assert_allclose(res.landmarks[ok], lm[ok], atol=1e-9)


def test_angle_wraps_through_pi() -> None:
    # a face rotating through 180° must not spin the long way round when smoothed
    clean = np.stack([_face(100, 100, 50, 170 + 2 * t) for t in range(20)])
    res = smooth_track(clean, window=7, max_gap=0)
    np.testing.assert_allclose(res.landmarks, clean, atol=0.05)


def test_bad_shapes_raise() -> None:
    with pytest.raises(ValueError, match="T×68×2"):
        smooth_track(np.zeros((5, 5, 2)))


def _rec(fi: int, face_i: int, lm: np.ndarray) -> FaceRecord:
    return FaceRecord(frame_index=fi, frame_name=f"clip_{fi:06d}", face_index=face_i,
                      bbox=BBox.from_points(lm), landmarks=lm.astype(np.float32), score=1.0)


def _info(fi: int) -> FrameInfo:
    return FrameInfo(fi, f"clip_{fi:06d}", fi / 25.0, 640, 360, fi)


def test_build_tracks_follows_two_faces_and_bridges_short_gaps() -> None:
    frames = []
    for t in range(20):
        a = _face(150 + 2 * t, 150, 60)
        b = _face(450 - 2 * t, 160, 70)
        faces = []
        # face order in a frame swaps half way: tracking must not depend on the index
        pair = [(a, "a"), (b, "b")] if t < 10 else [(b, "b"), (a, "a")]
        for lm, who in pair:
            if who == "a" and t in (5, 6):
                continue  # a 2-frame gap in track a
            if who == "b" and 12 <= t <= 16:
                continue  # a 5-frame gap in track b
            faces.append(_rec(t, len(faces), lm))
        frames.append((_info(t), faces))
    tracks = build_tracks(frames, max_gap=3)
    assert len(tracks) == 3  # a (bridged), b before the long gap, b after
    ta, tb1, tb2 = tracks
    assert ta.start == 0 and len(ta.members) == 20 and ta.observed == 18
    assert ta.members[5] is None and ta.members[6] is None
    assert np.isnan(ta.landmarks[5]).all()
    # a is always the left face, whatever its index in the frame
    assert np.nanmax(ta.landmarks[..., 0].mean(axis=1)) < 300
    assert tb1.start == 0 and len(tb1.members) == 12
    assert tb2.start == 17 and len(tb2.members) == 3
    assert np.nanmin(tb2.landmarks[..., 0].mean(axis=1)) > 300


def test_jitter_scores_noise_not_motion() -> None:
    assert landmark_jitter(_track(10, speed=(5.0, 2.0))) == pytest.approx(0.0, abs=1e-9)
    rng = np.random.default_rng(3)
    noisy = _track(200) + rng.normal(0, 1.0, (200, 68, 2))
    # E|N(0, 6σ² I₂)| = sqrt(6)·σ·sqrt(π/2)... ≈ 3.07σ for 2-D Gaussian second differences
    assert landmark_jitter(noisy) == pytest.approx(3.07 / 80.0, rel=0.1)
