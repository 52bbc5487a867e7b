"""Face tracks (extract/track.py): predictions, linking, forgetting, and the replay window."""

from __future__ import annotations

import numpy as np
import pytest

from faceplate.core.types import BBox
from faceplate.extract.track import FaceTracks, TrackWindow, links


def box(cx: float, cy: float, s: float) -> BBox:
    return BBox(cx - s / 2, cy - s / 2, s, s)


def test_constant_velocity_and_growth_are_extrapolated() -> None:
    t = FaceTracks(max_gap=2)
    t.update(0, [box(100, 200, 50)])
    t.update(1, [box(110, 195, 55)])
    (p,) = t.predict(2)
    assert p.age == 1
    np.testing.assert_allclose(p.box.center, (120, 190), atol=1e-9)
    assert p.box.size == pytest.approx(55 * 1.1)
    # Frames skipped (every-nth extraction): the step scales with the index gap.
    (p3,) = t.predict(3)
    np.testing.assert_allclose(p3.box.center, (130, 185), atol=1e-9)


def test_growth_per_frame_is_limited() -> None:
    t = FaceTracks()
    t.update(0, [box(0, 0, 20)])
    t.update(1, [box(0, 0, 30)])  # would be ×1.5 a frame
    (p,) = t.predict(2)
    assert p.box.size == pytest.approx(30 * 1.25)


def test_two_faces_keep_their_tracks_and_a_lost_one_is_forgotten() -> None:
    t = FaceTracks(max_gap=2)
    t.update(0, [box(100, 100, 40), box(400, 100, 40)])
    t.update(1, [box(402, 101, 40), box(101, 100, 40)])  # order of boxes does not matter
    preds = {p.track: p for p in t.predict(2)}
    assert set(preds) == {0, 1}
    assert preds[0].box.center[0] == pytest.approx(102)
    assert preds[1].box.center[0] == pytest.approx(404)
    t.update(2, [box(103, 100, 40)])  # face 1 missed once ...
    t.update(3, [box(104, 100, 40)])  # ... twice ...
    assert {p.track for p in t.predict(4)} == {0, 1}
    t.update(4, [box(105, 100, 40)])  # ... three times: gone
    assert {p.track for p in t.predict(5)} == {0}
    t.update(5, [box(106, 100, 40), box(400, 300, 40)])  # a new face gets a new id
    assert {p.track for p in t.predict(6)} == {0, 2}


def test_frames_must_come_in_order() -> None:
    t = FaceTracks()
    t.update(5, [])
    with pytest.raises(ValueError, match="in order"):
        t.update(5, [])
    assert t.predict(4) == []
    with pytest.raises(ValueError):
        FaceTracks(max_gap=0)


def test_links_needs_overlap_and_similar_size() -> None:
    a = box(100, 100, 50)
    assert links(a, box(120, 100, 60))
    assert not links(a, box(130, 100, 50))  # centre 0.6 sizes away
    assert not links(a, box(100, 100, 90))  # 1.8× the size


def test_window_predictions_equal_incremental_tracks() -> None:
    """The window replays its frames into fresh tracks: the same predictions as tracks fed
    frame by frame (what makes a resumed extraction predict what the first run predicted)."""
    rng = np.random.default_rng(5)
    t, w = FaceTracks(max_gap=2), TrackWindow(max_gap=2)
    cx = 300.0
    for i in range(30):
        cx += 4.0
        faces = [box(cx + rng.normal(0, 1), 200, 80)] if rng.uniform() > 0.3 else []
        got_w = [(p.box, p.age) for p in w.predict(i)]
        got_t = [(p.box, p.age) for p in t.predict(i)]
        assert got_w == got_t
        t.update(i, faces)
        w.add(i, faces)
    assert w.frames.maxlen == 6
