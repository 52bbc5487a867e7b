"""The store's hand-edit layer (schema 2): notes, the edit log, undo/redo, conflicts, pinned
faces in smoothing, and mask labels to and from images."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from faceplate.core.errors import RecordError, StoreConflictError
from faceplate.core.geometry import MEAN_FACE_68, crop_matrix
from faceplate.core.labels import validate_labels
from faceplate.core.types import FaceRecord, FrameInfo
from faceplate.extract.mask.labels import labels_to_mask, mask_to_labels
from faceplate.extract.smoothing import SmoothConfig, smooth_store
from faceplate.io.store import AlignmentsStore, FaceChange, FaceState
from tests.unit.test_store import frame_info, make_face


def _store(tmp_path: Path, rng: np.random.Generator, n: int = 12) -> Path:
    path = tmp_path / "clip.fpstore"
    with AlignmentsStore.open(path, create=True) as st:
        for i in range(n):  # one 100 px face moving slowly right, with a little noise
            info = frame_info(i, 640, 480)
            lm = MEAN_FACE_68 * 100.0 + [200 + 2.0 * i, 150]
            lm = lm + rng.normal(0, 0.8, lm.shape)
            rec = dataclasses.replace(make_face(rng, info, 0), landmarks=lm.astype(np.float32))
            st.put_frame(info, [rec])
    return path


def _moved(rec: FaceRecord, dx: float) -> FaceRecord:
    return dataclasses.replace(rec, landmarks=(np.asarray(rec.landmarks) + dx).astype(np.float32))


def test_edit_undo_redo_survive_reopening(tmp_path: Path, rng: np.random.Generator) -> None:
    path = _store(tmp_path, rng)
    with AlignmentsStore.open(path) as st:
        before = st.face_state(3, 0)
        assert before is not None and not before.pinned
        after = FaceState(_moved(before.record, 5.0), True, None)
        rev = st.revision()
        st.edit("move", [FaceChange(3, 0, before, after)])
        assert st.revision() != rev
        assert st.pinned_faces() == {(3, 0)}
        assert st.history_counts() == (1, 0)
    with AlignmentsStore.open(path) as st:  # a restart: the log is in the file
        entry = st.undo()
        assert entry is not None and entry.label == "move"
        np.testing.assert_array_equal(st.get_face(3, 0).landmarks, before.record.landmarks)
        assert st.pinned_faces() == set()
        assert st.history_counts() == (0, 1)
    with AlignmentsStore.open(path) as st:
        assert st.redo() is not None
        np.testing.assert_array_equal(st.get_face(3, 0).landmarks, after.record.landmarks)
        assert st.redo() is None


def test_add_and_delete_faces_are_undoable(tmp_path: Path, rng: np.random.Generator) -> None:
    path = _store(tmp_path, rng, 3)
    with AlignmentsStore.open(path) as st:
        new = dataclasses.replace(st.get_face(1, 0), face_index=1)
        st.edit("add", [FaceChange(1, 1, None, FaceState(new, True, None))])
        assert len(st.faces(1)) == 2
        st.edit("delete", [FaceChange(1, 0, st.face_state(1, 0), None)])
        assert [f.face_index for f in st.faces(1)] == [1]
        st.undo()
        st.undo()
        assert [f.face_index for f in st.faces(1)] == [0]
        st.redo()
        assert len(st.faces(1)) == 2
        # a new edit ends the redo history
        st.edit("move", [FaceChange(2, 0, st.face_state(2, 0),
                                    FaceState(_moved(st.get_face(2, 0), 1.0), True, None))])
        assert st.history_counts() == (2, 0)


def test_stale_before_is_a_conflict_and_writes_nothing(tmp_path: Path,
                                                       rng: np.random.Generator) -> None:
    path = _store(tmp_path, rng, 3)
    with AlignmentsStore.open(path) as st, AlignmentsStore.open(path) as other:
        seen = st.face_state(0, 0)
        # another program rewrites the frame meanwhile
        other.put_frame(frame_info(0, 640, 480), [_moved(other.get_face(0, 0), 3.0)])
        now = st.get_face(0, 0)
        with pytest.raises(StoreConflictError, match="changed by another program"):
            st.edit("move", [FaceChange(0, 0, seen, FaceState(_moved(seen.record, 9.0)))])
        np.testing.assert_array_equal(st.get_face(0, 0).landmarks, now.landmarks)
        assert st.history_counts() == (0, 0)
        # and an undo whose faces were changed since is refused the same way
        cur = st.face_state(0, 0)
        st.edit("move", [FaceChange(0, 0, cur, FaceState(_moved(cur.record, 1.0), True))])
        other.put_frame(frame_info(0, 640, 480), [_moved(other.get_face(0, 0), 2.0)])
        with pytest.raises(StoreConflictError):
            st.undo()
        assert st.history_counts() == (1, 0)


def test_put_frames_with_a_stale_revision_is_refused(tmp_path: Path,
                                                     rng: np.random.Generator) -> None:
    path = _store(tmp_path, rng, 3)
    with AlignmentsStore.open(path) as st:
        rev = st.revision()
        batch = [(st.frame(0), st.faces(0))]
        cur = st.face_state(1, 0)
        st.edit("move", [FaceChange(1, 0, cur, FaceState(_moved(cur.record, 1.0), True))])
        with pytest.raises(StoreConflictError, match="nothing was written"):
            st.put_frames(batch, expect_revision=rev)
        st.put_frames(batch, expect_revision=st.revision())


def test_smooth_keeps_pinned_faces_and_smooths_around_them(tmp_path: Path,
                                                           rng: np.random.Generator) -> None:
    path = _store(tmp_path, rng, 15)
    with AlignmentsStore.open(path) as st:
        cur = st.face_state(7, 0)
        edited = _moved(cur.record, 6.0)  # a hand fix well off the track
        st.edit("move", [FaceChange(7, 0, cur, FaceState(edited, True, None))])
        neighbour_before = np.asarray(st.get_face(6, 0).landmarks, np.float64)
        rep = smooth_store(st, SmoothConfig(window=7))
        assert rep.pinned == 1
        np.testing.assert_array_equal(st.get_face(7, 0).landmarks, edited.landmarks)
        assert st.pinned_faces() == {(7, 0)}  # the note survives put_frames
        # the neighbour is pulled towards the pinned face (smoothed around it)
        pulled = np.asarray(st.get_face(6, 0).landmarks, np.float64) - neighbour_before
        assert float(pulled.mean()) > 1.0


def test_labels_validate_and_round_trip_through_a_mask(tmp_path: Path,
                                                       rng: np.random.Generator) -> None:
    path = _store(tmp_path, rng, 1)
    with AlignmentsStore.open(path) as st:
        rec = st.get_face(0, 0)
    m = crop_matrix(rec.landmarks, 128, "face")
    labels = validate_labels({"size": 128, "centering": "face", "matrix": m.tolist(), "shapes": [
        {"kind": "polygon", "mode": "include",
         "points": [[20, 20], [108, 20], [108, 108], [20, 108]]},
        {"kind": "stroke", "mode": "exclude", "radius": 6, "points": [[30, 64], [98, 64]]}]})
    mask = labels_to_mask(labels, 128, m)
    assert mask[40, 64] == 255 and mask[64, 64] == 0 and mask[5, 5] == 0
    # a bigger crop of the same face: the shapes scale with it (vector labels)
    big = labels_to_mask(labels, 256, crop_matrix(rec.landmarks, 256, "face"))
    assert abs(int((big > 0).sum()) - 4 * int((mask > 0).sum())) < 0.03 * 4 * (mask > 0).sum()
    back = mask_to_labels(mask, m, "face")
    again = labels_to_mask(back, 128, m)
    assert np.mean(again != mask) < 0.02  # polygon simplification (0.75 px) at the edges
    for bad in ({"size": 128, "centering": "face", "matrix": m.tolist(),
                 "shapes": [{"kind": "polygon", "mode": "include", "points": [[1, 1], [2, 2]]}]},
                {"size": 128, "centering": "nope", "matrix": m.tolist(), "shapes": []},
                {"size": 128, "centering": "face", "matrix": [[0, 0, 0], [0, 0, 0]],
                 "shapes": []}):
        with pytest.raises(RecordError, match="mask labels"):
            validate_labels(bad)


def test_notes_follow_reindexing_deletes(tmp_path: Path, rng: np.random.Generator) -> None:
    path = tmp_path / "c.fpstore"
    with AlignmentsStore.open(path, create=True) as st:
        info = FrameInfo(0, "f0", None, 64, 64, 0)
        recs = [dataclasses.replace(make_face(rng, info, i)) for i in range(3)]
        st.put_frame(info, recs)
        cur = st.face_state(0, 2)
        st.edit("pin", [FaceChange(0, 2, cur, FaceState(cur.record, True, None))])
        st.delete_face(0, 0, reindex=True)
        assert st.pinned_faces() == {(0, 1)}
