"""The SQLite alignments store: round trips, validation on read, migrations, durability."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from faceplate.core.errors import (
    InputError,
    OutputError,
    RecordError,
    SchemaVersionError,
    StoreError,
)
from faceplate.core.geometry import MEAN_FACE_68, crop_matrix
from faceplate.core.records import decode_mask, encode_mask
from faceplate.core.types import BBox, FaceRecord, FrameInfo, Rejection, StoredMask
from faceplate.io.store import (
    APPLICATION_ID,
    STORE_SUFFIX,
    AlignmentsStore,
    default_store_path,
    export_json,
    import_json,
    retire_store,
)


def make_face(rng: np.random.Generator, info: FrameInfo, face_index: int, *,
              full: bool = True) -> FaceRecord:
    """A plausible face inside ``info``'s frame (mean face scaled/shifted, noisy)."""
    scale = rng.uniform(20, 40)
    lm = (MEAN_FACE_68 * scale + rng.uniform(5, 50, 2)
          + rng.normal(0, 0.5, (68, 2))).astype(np.float32)
    masks = {}
    if full:
        for name, size in (("components", 64), ("extended", 32)):
            m = np.zeros((size, size), np.uint8)
            cv2.circle(m, (size // 2, size // 2), size // 3, 255, -1)
            m[rng.integers(0, size), :] = 255
            masks[name] = StoredMask(name, encode_mask(m), size, crop_matrix(lm, size), "face")
    v = rng.normal(0, 1, 128).astype(np.float32)
    return FaceRecord(
        frame_index=info.index, frame_name=info.name, face_index=face_index,
        bbox=BBox.from_points(lm), landmarks=lm, score=float(rng.uniform(0.3, 1)),
        yaw=float(rng.uniform(-30, 30)), pitch=-5.0, roll=2.5, detector="blazeface",
        aligner="dlib", masks=masks, identity=v / np.linalg.norm(v) if full else None,
        thumbnail=cv2.imencode(".jpg", np.full((8, 8, 3), face_index * 40, np.uint8))[1]
        .tobytes() if full else None,
        timestamp=info.timestamp,
    )


def frame_info(i: int, width: int = 101, height: int = 99) -> FrameInfo:
    return FrameInfo(index=i, name=f"clip_{i:06d}", timestamp=i / 24.0, width=width,
                     height=height, frame_number=i)


def assert_face_equal(a: FaceRecord, b: FaceRecord) -> None:
    assert (a.frame_index, a.frame_name, a.face_index, a.bbox) == (
        b.frame_index, b.frame_name, b.face_index, b.bbox)
    np.testing.assert_array_equal(a.landmarks, b.landmarks)
    assert b.landmarks.dtype == np.float32
    assert (a.score, a.yaw, a.pitch, a.roll, a.detector, a.aligner, a.thumbnail,
            a.timestamp) == (b.score, b.yaw, b.pitch, b.roll, b.detector, b.aligner,
                             b.thumbnail, b.timestamp)
    assert a.masks.keys() == b.masks.keys()
    for k, ma in a.masks.items():
        mb = b.masks[k]
        assert (ma.size, ma.centering, ma.data) == (mb.size, mb.centering, mb.data)
        np.testing.assert_array_equal(ma.affine, mb.affine)
        np.testing.assert_array_equal(decode_mask(ma), decode_mask(mb))
    if a.identity is None:
        assert b.identity is None
    else:
        np.testing.assert_array_equal(a.identity, b.identity)


@pytest.fixture
def filled(tmp_path: Path) -> tuple[Path, dict[int, list[FaceRecord]]]:
    """A store with 6 frames: 0-2 faces each, frame 4 without masks/identity."""
    rng = np.random.default_rng(11)
    path = tmp_path / "clip.fpstore"
    written: dict[int, list[FaceRecord]] = {}
    with AlignmentsStore.open(path, create=True) as st:
        st.set_meta("source", "/media/clip.mp4")
        st.set_meta("width", 101)
        st.set_meta("height", 99)
        for i in range(6):
            info = frame_info(i)
            n = [1, 2, 0, 1, 2, 1][i]
            faces = [make_face(rng, info, j, full=(i != 4)) for j in range(n)]
            st.put_frame(info, faces)
            written[i] = faces
    return path, written


# --------------------------------------------------------------------------- basics

def test_default_store_path(tmp_path: Path) -> None:
    assert default_store_path(tmp_path / "shots" / "clip.mp4") == tmp_path / "shots" / \
        "clip.fpstore"
    seq = tmp_path / "seq"
    seq.mkdir()
    assert default_store_path(seq) == seq / "alignments.fpstore"
    assert STORE_SUFFIX == ".fpstore"


def test_round_trip(filled: tuple[Path, dict[int, list[FaceRecord]]]) -> None:
    path, written = filled
    with AlignmentsStore.open(path, readonly=True) as st:
        assert st.frame_count() == 6
        assert st.face_count() == sum(len(v) for v in written.values())
        assert st.done_frame_indices() == set(range(6))
        infos = st.frames()
        assert [f.index for f in infos] == list(range(6))
        assert infos[3] == frame_info(3)  # width 101 / height 99 not swapped
        assert st.frame(2) == frame_info(2) and st.frame(99) is None
        assert st.frame_by_name("clip_000005") == frame_info(5)
        assert st.faces(2) == [] and st.faces(99) == []
        for i, faces in written.items():
            got = st.faces(i)
            assert [f.face_index for f in got] == list(range(len(faces)))
            for a, b in zip(faces, got, strict=True):
                assert_face_equal(a, b)
        streamed = list(st.iter_frames())
        assert [info.index for info, _ in streamed] == list(range(6))
        for info, faces in streamed:
            for a, b in zip(written[info.index], faces, strict=True):
                assert_face_equal(a, b)
        all_faces = list(st.iter_faces())
        assert [(f.frame_index, f.face_index) for f in all_faces] == [
            (i, j) for i in range(6) for j in range(len(written[i]))]
        g = st.get_face(4, 1)
        assert g is not None and g.masks == {} and g.identity is None
        assert_face_equal(written[4][1], g)
        assert st.get_face(4, 7) is None and st.get_face(77, 0) is None
        assert st.get_meta("source") == "/media/clip.mp4"
        assert st.get_meta("missing", 42) == 42
        assert st.get_meta("schema_version") == AlignmentsStore.SCHEMA_VERSION
        assert str(st.get_meta("created_by")).startswith("faceplate ")


def test_sqlite_settings(filled: tuple[Path, dict[int, list[FaceRecord]]]) -> None:
    path, _ = filled
    with AlignmentsStore.open(path) as st:
        c = st._c
        assert c.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert c.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
        assert c.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert c.execute("PRAGMA user_version").fetchone()[0] == AlignmentsStore.SCHEMA_VERSION
        assert c.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        tables = {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert {"meta", "frames", "faces", "masks", "rejections"} <= tables


def test_put_frame_replaces_and_marks_empty_frames(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    with AlignmentsStore.open(tmp_path / "a.fpstore", create=True) as st:
        info = frame_info(7)
        st.put_frame(info, [make_face(rng, info, 0), make_face(rng, info, 1)])
        assert st.face_count() == 2
        assert st._c.execute("SELECT count(*) FROM masks").fetchone()[0] == 4
        new = make_face(rng, info, 0, full=False)
        st.put_frame(info, [new])
        assert st.face_count() == 1
        assert st._c.execute("SELECT count(*) FROM masks").fetchone()[0] == 0  # cascaded
        assert_face_equal(new, st.faces(7)[0])
        st.put_frame(info, [])
        assert st.faces(7) == [] and st.done_frame_indices() == {7}


def test_put_frames_is_all_or_nothing(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    with AlignmentsStore.open(tmp_path / "a.fpstore", create=True) as st:
        good = [(frame_info(i), [make_face(rng, frame_info(i), 0)]) for i in range(3)]
        bad_face = make_face(rng, frame_info(3), 0)
        lm = bad_face.landmarks.copy()
        lm[5, 0] = np.inf
        batch = [*good, (frame_info(3), [replace(bad_face, landmarks=lm)])]
        with pytest.raises(RecordError, match=r"a\.fpstore: frame 3 face 0: landmarks"):
            st.put_frames(batch)
        assert st.frame_count() == 0 and st.face_count() == 0
        st.put_frames(good)
        assert st.done_frame_indices() == {0, 1, 2}


def test_put_frames_with_notes_and_rejections(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    rej = Rejection(BBox(1, 2, 30, 30), 0.5, "centerface", "verify", "one family only")
    with AlignmentsStore.open(tmp_path / "a.fpstore", create=True) as st:
        good = [(frame_info(i), [make_face(rng, frame_info(i), 0)]) for i in range(3)]
        with pytest.raises(RecordError, match=r"frame 1 face 4: a note for a face"):
            st.put_frames(good, notes={(1, 4): (True, None)})
        assert st.frame_count() == 0  # all or nothing
        st.put_frames(good, notes={(1, 0): (True, None), (2, 0): (False, None)},
                      rejections={2: [rej]})
        assert st.notes() == {(1, 0): (True, None)}
        assert st.rejections(2) == [rej] and st.rejections(1) == []
        st.put_frames(good[2:], rejections={})  # a frame not named keeps its rejections
        assert st.rejections(2) == [rej]


def test_put_frame_rejects_inconsistent_records(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    with AlignmentsStore.open(tmp_path / "a.fpstore", create=True) as st:
        info = frame_info(1)
        other = make_face(rng, frame_info(2), 0)
        with pytest.raises(RecordError, match="belongs to frame 2"):
            st.put_frame(info, [other])
        f = make_face(rng, info, 0)
        with pytest.raises(RecordError, match="duplicate face_index"):
            st.put_frame(info, [f, f])
        with pytest.raises(RecordError, match="width"):
            st.put_frame(replace(info, width=0), [])
        with pytest.raises(RecordError, match="plain file name"):
            st.put_frame(replace(info, name="a/b"), [])
        st.put_frame(info, [f])
        with pytest.raises(StoreError, match="UNIQUE"):  # name already used by frame 1
            st.put_frame(replace(frame_info(5), name=info.name), [])
        assert st.frame_count() == 1


def test_update_and_delete_faces(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    with AlignmentsStore.open(tmp_path / "a.fpstore", create=True) as st:
        info = frame_info(0)
        faces = [make_face(rng, info, j) for j in range(4)]
        st.put_frame(info, faces)
        moved = replace(faces[2], bbox=BBox(1.0, 2.0, 3.0, 4.0), score=0.25, masks={})
        st.update_face(moved)
        assert_face_equal(moved, st.get_face(0, 2))  # type: ignore[arg-type]
        with pytest.raises(StoreError, match="not in the store"):
            st.update_face(replace(moved, frame_index=9, frame_name="clip_000009"))
        st.delete_face(0, 0)
        assert [f.face_index for f in st.faces(0)] == [1, 2, 3]
        st.delete_face(0, 1, reindex=True)
        got = st.faces(0)
        assert [f.face_index for f in got] == [0, 1]
        assert_face_equal(replace(moved, face_index=0), got[0])
        assert_face_equal(replace(faces[3], face_index=1), got[1])  # masks followed the face
        assert {r[0] for r in st._c.execute("SELECT face_idx FROM masks")} == {1}
        with pytest.raises(StoreError, match="no such face"):
            st.delete_face(0, 5)


def test_meta_values(tmp_path: Path) -> None:
    with AlignmentsStore.open(tmp_path / "m.fpstore", create=True) as st:
        cfg = {"detector": "blazeface", "size": 512, "nested": [1, 2.5, None]}
        st.set_meta("extract", cfg)
        st.set_meta("fps", 23.976)
        assert st.get_meta("extract") == cfg and st.get_meta("fps") == 23.976
        st.set_meta("fps", 25)
        assert st.get_meta("fps") == 25
        with pytest.raises(ValueError, match="not JSON"):
            st.set_meta("bad", float("nan"))
        with pytest.raises(ValueError, match="not JSON"):
            st.set_meta("bad", object())
        with pytest.raises(ValueError, match="invalid key"):
            st.set_meta("schema_version", 5)
        assert set(st.meta()) >= {"extract", "fps", "schema_version", "created_by"}


# --------------------------------------------------------------------------- opening

def test_open_errors_name_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.fpstore"
    with pytest.raises(InputError, match=r"nope\.fpstore: alignments store not found"):
        AlignmentsStore.open(missing)
    assert not missing.exists()
    with pytest.raises(InputError, match="folder"):
        AlignmentsStore.open(tmp_path)
    with pytest.raises(OutputError, match="folder does not exist"):
        AlignmentsStore.open(tmp_path / "no" / "dir.fpstore", create=True)

    junk = tmp_path / "junk.fpstore"
    junk.write_bytes(b"this is not a database, just some text " * 40)
    before = junk.read_bytes()
    for kw in ({}, {"create": True}, {"readonly": True}):
        with pytest.raises(StoreError, match=r"junk\.fpstore: not an SQLite database"):
            AlignmentsStore.open(junk, **kw)
    assert junk.read_bytes() == before

    foreign = tmp_path / "other.fpstore"
    c = sqlite3.connect(foreign)
    c.execute("CREATE TABLE t (x)")
    c.commit()
    c.close()
    with pytest.raises(StoreError, match=r"other\.fpstore: an SQLite file but not a Faceplate"):
        AlignmentsStore.open(foreign, create=True)

    empty = tmp_path / "empty.fpstore"
    empty.touch()
    with pytest.raises(StoreError, match="empty file"):
        AlignmentsStore.open(empty)
    with AlignmentsStore.open(empty, create=True) as st:  # an empty file may become a store
        assert st.frame_count() == 0
    with pytest.raises(ValueError):
        AlignmentsStore.open(empty, create=True, readonly=True)


def test_paths_with_uri_characters(tmp_path: Path) -> None:
    odd = tmp_path / "my shots #1?x=%20" / "clip 1.fpstore"
    odd.parent.mkdir()
    with AlignmentsStore.open(odd, create=True) as st:
        st.put_frame(frame_info(0), [])
    with AlignmentsStore.open(odd, readonly=True) as st:
        assert st.done_frame_indices() == {0}
    assert sorted(p.name for p in odd.parent.iterdir()) == ["clip 1.fpstore"]


def test_reader_sees_commits_while_writer_is_open(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    path = tmp_path / "live.fpstore"
    writer = AlignmentsStore.open(path, create=True)
    writer.put_frame(frame_info(0), [make_face(rng, frame_info(0), 0)])
    reader = AlignmentsStore.open(path, readonly=True)
    assert reader.done_frame_indices() == {0}
    writer.put_frame(frame_info(1), [])
    assert reader.done_frame_indices() == {0, 1}  # WAL: readers see each commit
    writer.close()  # the reader still holds the file: it stays in WAL mode, still readable
    assert reader.face_count() == 1
    reader.close()
    with AlignmentsStore.open(path) as st:
        assert st.frame_count() == 2
    # the last writer to close leaves no -wal/-shm files beside the store
    assert sorted(p.name for p in tmp_path.iterdir()) == ["live.fpstore"]


def test_readonly_refuses_writes(filled: tuple[Path, dict[int, list[FaceRecord]]]) -> None:
    path, written = filled
    with AlignmentsStore.open(path, readonly=True) as st:
        with pytest.raises(StoreError, match="read-only"):
            st.put_frame(frame_info(9), [])
        with pytest.raises(StoreError, match="read-only"):
            st.set_meta("x", 1)
        with pytest.raises(StoreError, match="read-only"):
            st.delete_face(0, 0)
        assert st.face_count() == sum(len(v) for v in written.values())
    st.close()
    with pytest.raises(StoreError, match="closed"):
        st.frames()


def test_newer_schema_is_refused_and_untouched(tmp_path: Path) -> None:
    path = tmp_path / "future.fpstore"
    with AlignmentsStore.open(path, create=True) as st:
        st.put_frame(frame_info(0), [])
    c = sqlite3.connect(path)
    c.execute("PRAGMA journal_mode = DELETE")
    c.execute("PRAGMA user_version = 7")
    c.close()
    before = path.read_bytes()
    old = time.time() - 3600
    os.utime(path, (old, old))
    mtime = path.stat().st_mtime_ns
    for kw in ({}, {"create": True}, {"readonly": True}):
        with pytest.raises(SchemaVersionError, match=r"future\.fpstore: store schema version 7 "
                                                     r"is newer"):
            AlignmentsStore.open(path, **kw)
    assert path.read_bytes() == before
    assert path.stat().st_mtime_ns == mtime
    assert sorted(p.name for p in tmp_path.iterdir()) == ["future.fpstore"]


def _migrate_next(conn: sqlite3.Connection) -> None:
    conn.execute("ALTER TABLE faces ADD COLUMN quality REAL NOT NULL DEFAULT 0.5")


class _StoreNext(AlignmentsStore):
    """Test-only: the current schema plus one appended migration."""

    MIGRATIONS = (*AlignmentsStore.MIGRATIONS, _migrate_next)


def test_forward_migration(filled: tuple[Path, dict[int, list[FaceRecord]]]) -> None:
    path, written = filled
    nxt = AlignmentsStore.SCHEMA_VERSION + 1
    assert nxt == _StoreNext.SCHEMA_VERSION
    with pytest.raises(StoreError, match="open it writable once"):
        _StoreNext.open(path, readonly=True)
    with _StoreNext.open(path) as st:
        c = st._c
        assert c.execute("PRAGMA user_version").fetchone()[0] == nxt
        assert st.get_meta("schema_version") == nxt
        cols = {r[1] for r in c.execute("PRAGMA table_info(faces)")}
        assert "quality" in cols
        for i, faces in written.items():  # data survived
            for a, b in zip(faces, st.faces(i), strict=True):
                assert_face_equal(a, b)
    backups = sorted(path.parent.glob("clip.*.bak.fpstore"))
    assert len(backups) == 1  # the old layout was backed up before migrating
    with AlignmentsStore.open(backups[0], readonly=True) as old:
        assert old.face_count() == sum(len(v) for v in written.values())
    # the old code now refuses the upgraded file
    with pytest.raises(SchemaVersionError):
        AlignmentsStore.open(path)
    # a brand-new file runs every migration from version 0
    with _StoreNext.open(path.parent / "new.fpstore", create=True) as st:
        assert st._c.execute("PRAGMA user_version").fetchone()[0] == nxt


# --------------------------------------------------------------------------- frame numbers

class _StoreV1(AlignmentsStore):
    """Test-only: the store as schema version 1 wrote it (frames found by position)."""

    MIGRATIONS = AlignmentsStore.MIGRATIONS[:1]


def _v1_store(path: Path, kind: str | None, numbers: list[int],
              rng: np.random.Generator) -> dict[int, list[FaceRecord]]:
    written = {}
    with _StoreV1.open(path, create=True) as st:
        if kind is not None:
            st.set_meta("kind", kind)
        for i in range(len(numbers)):
            info = FrameInfo(index=i, name=f"f_{i:04d}.png", timestamp=None, width=101,
                             height=99, frame_number=i)
            written[i] = [make_face(rng, info, 0, full=False)]
            st.put_frame(info, written[i])
        for i, n in enumerate(numbers):  # version 1 did not keep numbers unique
            st._c.execute("UPDATE frames SET frame_number = ? WHERE idx = ?", (n, i))
    assert _StoreV1.SCHEMA_VERSION == 1
    return written


@pytest.mark.parametrize(("kind", "numbers", "expected"), [
    ("video", [0, 1, 2, 3], [1, 2, 3, 4]),           # videos are numbered from 1 since v2
    ("sequence", [1001, 1002, 1003], [1001, 1002, 1003]),
    ("sequence", [7, 7, 9], [0, 1, 2]),              # repeated numbers: by position
    (None, [0, 1, 2], [0, 1, 2]),
])
def test_v1_stores_migrate_to_frame_numbers(tmp_path: Path, rng: np.random.Generator,
                                            kind: str | None, numbers: list[int],
                                            expected: list[int]) -> None:
    path = tmp_path / "old.fpstore"
    written = _v1_store(path, kind, numbers, rng)
    with pytest.raises(StoreError, match="open it writable once"):
        AlignmentsStore.open(path, readonly=True)
    with AlignmentsStore.open(path, readonly=True, upgrade=True) as st:  # migrates, then reads
        assert st.frame_numbers() == expected
        for i, n in enumerate(expected):
            info = st.frame_at(n)
            assert info is not None and info.index == i
            got = st.faces_at(n)
            assert got is not None
            assert_face_equal(written[i][0], got[0])
        assert st.frame_at(max(expected) + 1) is None and st.faces_at(-5) is None
        unique = [r for r in st._c.execute("PRAGMA index_list(frames)") if r[2]]
        assert any("frame_number" in [c[2] for c in st._c.execute(f"PRAGMA index_info({r[1]})")]
                   for r in unique)
    assert len(list(tmp_path.glob("old.*.bak.fpstore"))) == 1  # the v1 file was kept


def test_frame_numbers_are_unique(tmp_path: Path, rng: np.random.Generator) -> None:
    with AlignmentsStore.open(tmp_path / "s.fpstore", create=True) as st:
        a = FrameInfo(index=0, name="a.exr", timestamp=None, width=64, height=48,
                      frame_number=1001)
        st.put_frame(a, [make_face(rng, a, 0)])
        b = FrameInfo(index=1, name="b.exr", timestamp=None, width=64, height=48,
                      frame_number=1001)
        with pytest.raises(RecordError, match=r"frame number 1001 belongs to frame 0"):
            st.put_frame(b, [])
        # negative numbers are frames too (a host may start anywhere)
        c = FrameInfo(index=st.next_index(), name="host_-3", timestamp=None, width=64,
                      height=48, frame_number=-3)
        st.put_frame(c, [])
        assert st.frame_numbers() == [-3, 1001] and st.next_index() == 2
        assert st.faces_at(-3) == [] and st.faces_at(0) is None


def test_retire_store_keeps_a_copy(filled: tuple[Path, dict[int, list[FaceRecord]]]) -> None:
    path, written = filled
    with AlignmentsStore.open(path) as st:  # leaves -wal/-shm while open
        st.set_meta("note", "x")
        kept = retire_store(path)
    assert not path.exists()
    assert not path.with_name(path.name + "-wal").exists()
    assert kept.parent == path.parent and kept.name.endswith(".bak.fpstore")
    with AlignmentsStore.open(kept, readonly=True) as bk:
        assert bk.get_meta("note") == "x"
        assert bk.face_count() == sum(len(v) for v in written.values())


def test_retire_store_refuses_other_files(tmp_path: Path) -> None:
    other = tmp_path / "notes.fpstore"
    other.write_text("my notes")
    db = tmp_path / "app.db"
    c = sqlite3.connect(db)
    c.execute("CREATE TABLE t (x)")
    c.commit()
    c.close()
    for p in (other, db):
        before = p.read_bytes()
        with pytest.raises(StoreError):
            retire_store(p)
        assert p.read_bytes() == before
    with pytest.raises(InputError, match="not found"):
        retire_store(tmp_path / "missing.fpstore")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app.db", "notes.fpstore"]


def test_rejections_round_trip_and_survive_face_edits(tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    rej = [Rejection(BBox(10.5, 20.0, 30.0, 31.5), 0.71, "blazeface", "verify",
                     "CenterFace does not see a face here (best 0.12 < 0.50)"),
           Rejection(BBox(1.0, 2.0, 3.0, 4.0), 0.9, "chain", "filter", "too small")]
    with AlignmentsStore.open(tmp_path / "r.fpstore", create=True) as st:
        st.put_frame(frame_info(0), [], rej)
        st.put_frame(frame_info(1), [make_face(rng, frame_info(1), 0)])
        assert st.rejections(0) == rej
        assert st.rejections(1) == [] and st.rejections(99) == []
        assert st.rejection_counts() == {0: 2}
        # Editing the faces (no rejections given) keeps the extraction's record ...
        st.put_frame(frame_info(0), [make_face(rng, frame_info(0), 0)])
        assert st.rejections(0) == rej
        # ... a new extraction of the frame replaces it.
        st.put_frame(frame_info(0), [], [])
        assert st.rejections(0) == []
        with pytest.raises(RecordError, match="rejection 0: box and score must be finite"):
            st.put_frame(frame_info(2), [], [Rejection(BBox(0, 0, float("nan"), 1), 0.5,
                                                       "x", "verify", "y")])
        assert st.frame(2) is None  # nothing of the failed frame was written


class _StoreV3(AlignmentsStore):
    """Test-only: the store as schema version 3 wrote it (before rejections were kept)."""

    MIGRATIONS = AlignmentsStore.MIGRATIONS[:3]


def test_version_3_store_gains_rejections_and_keeps_its_faces(tmp_path: Path) -> None:
    rng = np.random.default_rng(12)
    path = tmp_path / "old.fpstore"
    faces = [make_face(rng, frame_info(0), 0)]
    with _StoreV3.open(path, create=True) as st:
        st.put_frame(frame_info(0), faces, [Rejection(BBox(0, 0, 5, 5), 0.6, "centerface",
                                                      "verify", "kept nowhere")])
        assert st._c.execute("PRAGMA user_version").fetchone()[0] == 3
        assert st.rejections(0) == []  # that layout has no table for them
    with AlignmentsStore.open(path) as st:
        assert st.get_meta("schema_version") == AlignmentsStore.SCHEMA_VERSION == 4
        assert_face_equal(faces[0], st.faces(0)[0])
        assert st.rejections(0) == []
        st.put_frame(frame_info(1), [], [Rejection(BBox(0, 0, 5, 5), 0.6, "centerface",
                                                   "verify", "why")])
        assert len(st.rejections(1)) == 1


def test_backup_is_consistent_copy(filled: tuple[Path, dict[int, list[FaceRecord]]]) -> None:
    path, written = filled
    with AlignmentsStore.open(path) as st:
        b1 = st.backup()
        b2 = st.backup()
    assert b1 != b2 and b1.parent == path.parent
    assert b1.name.startswith("clip.") and b1.name.endswith(".bak.fpstore")
    with AlignmentsStore.open(b1, readonly=True) as bk:
        assert bk.done_frame_indices() == set(range(6))
        for i, faces in written.items():
            for a, b in zip(faces, bk.faces(i), strict=True):
                assert_face_equal(a, b)
    assert not list(path.parent.glob("*.tmp"))


# --------------------------------------------------------------------------- tampering

TAMPER = [
    ("UPDATE faces SET landmarks = substr(landmarks, 1, 100)", "landmarks.*544-byte"),
    ("UPDATE faces SET landmarks = ?", "landmarks.*NaN"),
    ("UPDATE faces SET score = 'high'", "score.*number"),
    ("UPDATE faces SET score = 3.0", "score"),
    ("UPDATE faces SET identity = x'00'", "identity.*512-byte"),
    ("UPDATE faces SET thumbnail = x'00112233'", "thumbnail"),
    ("UPDATE masks SET data = x'789c0300'", "data.*64×64"),
    ("UPDATE masks SET size = 65", "data.*65×65"),
    ("UPDATE masks SET centering = 'legacy'", "unknown centering"),
    ("UPDATE masks SET affine = x'0000'", "affine.*48-byte"),
    ("UPDATE faces SET x = 'abc'", "bbox.x"),
]


@pytest.mark.parametrize(("sql", "pattern"), TAMPER)
def test_tampered_rows_are_refused(tmp_path: Path, sql: str, pattern: str) -> None:
    rng = np.random.default_rng(9)
    path = tmp_path / "t.fpstore"
    info = frame_info(4)
    with AlignmentsStore.open(path, create=True) as st:
        st.put_frame(info, [make_face(rng, info, 0)])
    c = sqlite3.connect(path)
    where = " WHERE name = 'components'" if "masks" in sql else ""
    nan_lm = np.full((68, 2), np.nan, "<f4").tobytes()
    c.execute(sql + where, (nan_lm,) if "?" in sql else ())
    c.commit()
    c.close()
    with AlignmentsStore.open(path, readonly=True) as st:
        for read in (lambda: st.faces(4), lambda: st.get_face(4, 0),
                     lambda: list(st.iter_faces())):
            with pytest.raises(RecordError, match=rf"t\.fpstore: frame 4 face 0: .*{pattern}"):
                read()


def test_tampered_frame_row(tmp_path: Path) -> None:
    path = tmp_path / "t.fpstore"
    with AlignmentsStore.open(path, create=True) as st:
        st.put_frame(frame_info(1), [])
    c = sqlite3.connect(path)
    c.execute("UPDATE frames SET width = -3")
    c.commit()
    c.close()
    with AlignmentsStore.open(path) as st, pytest.raises(RecordError, match="frame 1: width"):
        st.frames()


# --------------------------------------------------------------------------- JSON

def test_json_export_format_and_round_trip(
        filled: tuple[Path, dict[int, list[FaceRecord]]], tmp_path: Path) -> None:
    path, written = filled
    out = tmp_path / "export.json"
    with AlignmentsStore.open(path, readonly=True) as st:
        n = export_json(st, out)
    assert n == sum(len(v) for v in written.values())
    doc = json.loads(out.read_text())
    assert isinstance(doc["frames"], list) and len(doc["frames"]) == 6
    for fr, i in zip(doc["frames"], range(6), strict=True):
        assert {"index", "name", "faces"} <= fr.keys()
        assert fr["index"] == i and fr["name"] == f"clip_{i:06d}"
        assert fr["timestamp"] == i / 24.0
        assert len(fr["faces"]) == len(written[i])
        for fc, rec in zip(fr["faces"], written[i], strict=True):
            assert set(fc) == {"bbox", "landmarks", "score"}
            assert fc["bbox"] == list(rec.bbox.as_tuple())
            assert len(fc["landmarks"]) == 68 and all(len(p) == 2 for p in fc["landmarks"])
            np.testing.assert_array_equal(np.array(fc["landmarks"], np.float32), rec.landmarks)
            assert fc["score"] == rec.score

    path2 = tmp_path / "re.fpstore"
    with AlignmentsStore.open(path2, create=True) as st2:
        assert import_json(out, st2) == n
        assert st2.done_frame_indices() == set(range(6))
        f = st2.get_face(1, 1)
        assert f is not None and f.masks == {} and f.identity is None
        assert st2.frame(3) == frame_info(3)
        out2 = tmp_path / "export2.json"
        export_json(st2, out2)
    d2 = json.loads(out2.read_text())
    d2["source"] = doc["source"]  # the new store has no source meta
    assert d2 == doc


def test_import_uses_frame_size_for_minimal_json(tmp_path: Path) -> None:
    lm = (MEAN_FACE_68 * 30 + 10).tolist()
    doc = {"frames": [{"index": 0, "name": "a.png", "faces": [
        {"bbox": [5, 5, 40, 40], "landmarks": lm, "score": 1}]}]}
    src = tmp_path / "min.json"
    src.write_text(json.dumps(doc))
    with AlignmentsStore.open(tmp_path / "s.fpstore", create=True) as st:
        with pytest.raises(RecordError, match=r"min\.json: frame 0 \('a\.png'\): frame size"):
            import_json(src, st)
        assert import_json(src, st, frame_size=(101, 99)) == 1
        info = st.frame(0)
        assert info is not None and (info.width, info.height) == (101, 99)
        assert st.faces(0)[0].bbox == BBox(5.0, 5.0, 40.0, 40.0)


@pytest.mark.parametrize(("mutate", "error", "pattern"), [
    (lambda d: d["frames"][1]["faces"][0].update(landmarks=[[1, 2]] * 67), RecordError,
     r"frame 1 \('clip_000001'\): face 0: landmarks"),
    (lambda d: d["frames"][1]["faces"][0].update(score=7), RecordError,
     r"frame 1 \('clip_000001'\) face 0: score"),
    (lambda d: d["frames"][0]["faces"][0].update(bbox=[1, 2, 3]), RecordError, "bbox"),
    (lambda d: d["frames"][0]["faces"][0].pop("score"), RecordError, "score"),
    (lambda d: d["frames"][2].update(index=1), RecordError, "listed twice"),
    (lambda d: d["frames"][2].update(name="../x"), RecordError, "plain file name"),
    (lambda d: d.pop("frames"), RecordError, '"frames" list'),
    (lambda d: d.update(version=9), SchemaVersionError, "newer"),
])
def test_import_rejections_name_file_and_frame(
        filled: tuple[Path, dict[int, list[FaceRecord]]], tmp_path: Path, mutate: object,
        error: type[Exception], pattern: str) -> None:
    path, _ = filled
    good = tmp_path / "good.json"
    with AlignmentsStore.open(path, readonly=True) as st:
        export_json(st, good)
    doc = json.loads(good.read_text())
    mutate(doc)  # type: ignore[operator]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    with AlignmentsStore.open(tmp_path / "dst.fpstore", create=True) as st:
        with pytest.raises(error, match=rf"bad\.json: .*{pattern}"):
            import_json(bad, st)
        assert st.frame_count() == 0  # nothing half-imported


def test_import_rejects_nan_and_non_json(tmp_path: Path) -> None:
    with AlignmentsStore.open(tmp_path / "s.fpstore", create=True) as st:
        p = tmp_path / "nan.json"
        p.write_text('{"frames": [{"index": 0, "name": "a", "faces": [{"bbox": [NaN, 1, 2, 3],'
                     ' "landmarks": [], "score": 1}]}]}')
        with pytest.raises(InputError, match=r"nan\.json: .*NaN"):
            import_json(p, st)
        q = tmp_path / "junk.json"
        q.write_bytes(b"\x00\xff garbage")
        with pytest.raises(InputError, match=r"junk\.json"):
            import_json(q, st)
        with pytest.raises(InputError, match="not found"):
            import_json(tmp_path / "none.json", st)


def test_export_to_unwritable_location(filled: tuple[Path, dict[int, list[FaceRecord]]],
                                       tmp_path: Path) -> None:
    path, _ = filled
    with AlignmentsStore.open(path, readonly=True) as st, \
            pytest.raises(OutputError, match=r"x\.json"):
        export_json(st, tmp_path / "missing_dir" / "x.json")


# --------------------------------------------------------------------------- durability

_WRITER = textwrap.dedent("""
    import sys
    import numpy as np
    from faceplate.core.geometry import MEAN_FACE_68, crop_matrix
    from faceplate.core.records import encode_mask
    from faceplate.core.types import BBox, FaceRecord, FrameInfo, Rejection, StoredMask
    from faceplate.io.store import AlignmentsStore

    path, batch = sys.argv[1], int(sys.argv[2])
    rng = np.random.default_rng(0)
    mask = np.zeros((96, 96), np.uint8)
    mask[20:80, 16:70] = 255
    st = AlignmentsStore.open(path, create=True)
    i = 0
    while True:
        items = []
        for _ in range(batch):
            info = FrameInfo(i, f"f_{i:06d}", i / 25.0, 640, 360, i)
            faces = []
            for j in range(2):
                lm = (MEAN_FACE_68 * 90 + rng.uniform(50, 400, 2)).astype(np.float32)
                ms = {n: StoredMask(n, encode_mask(mask), 96, crop_matrix(lm, 96), "face")
                      for n in ("components", "extended")}
                faces.append(FaceRecord(i, info.name, j, BBox.from_points(lm), lm, 0.9,
                                        masks=ms, identity=rng.normal(size=128)
                                        .astype(np.float32)))
            items.append((info, faces))
            i += 1
        st.put_frames(items)
        print(i, flush=True)
""")


@pytest.mark.parametrize(("batch", "kill_after"), [(1, 3), (1, 40), (4, 25)])
def test_sigkill_leaves_valid_store(tmp_path: Path, batch: int, kill_after: int) -> None:
    path = tmp_path / "killed.fpstore"
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(path), str(batch)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    committed = 0
    try:
        assert proc.stdout is not None
        while committed < kill_after:
            line = proc.stdout.readline()
            assert line, proc.stderr.read() if proc.stderr else "writer died"
            committed = int(line)
        time.sleep(float(np.random.default_rng(kill_after).uniform(0, 0.02)))
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
        if proc.stdout:
            proc.stdout.close()
        if proc.stderr:
            proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    assert Path(f"{path}-wal").exists()  # killed with a live WAL: reopening must recover it
    for readonly in (True, False):
        with AlignmentsStore.open(path, readonly=readonly) as st:
            done = st.done_frame_indices()
            assert len(done) >= committed
            assert done == set(range(len(done)))  # a prefix: no gaps
            assert len(done) % batch == 0  # batches are all or nothing
            n = 0
            for info, faces in st.iter_frames():  # validates every row
                assert info.index in done
                assert [f.face_index for f in faces] == [0, 1]
                assert all(set(f.masks) == {"components", "extended"} for f in faces)
                assert all(f.identity is not None for f in faces)
                n += 1
            assert n == len(done) == st.frame_count()
            assert st.face_count() == 2 * n
            assert st._c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            assert st._c.execute("PRAGMA foreign_key_check").fetchall() == []


def test_face_reads_are_one_snapshot_while_a_writer_commits(tmp_path: Path,
                                                             rng: np.random.Generator) -> None:
    """A reader never sees a face of one write with the masks of another (issue 16, point 12):
    the writer alternates the masks' names with the score, the reader checks they agree."""
    import threading

    path = tmp_path / "busy.fpstore"
    info = frame_info(0)

    def version(k: int) -> list[FaceRecord]:
        faces = []
        for j in range(3):
            rec = make_face(np.random.default_rng(j), info, j)
            name = "extended" if k % 2 else "components"
            sm = next(iter(rec.masks.values()))
            faces.append(replace(rec, score=0.25 + 0.5 * (k % 2),
                                 masks={name: replace(sm, name=name)}))
        return faces

    with AlignmentsStore.open(path, create=True) as st:
        st.put_frame(info, version(0))
    stop = threading.Event()
    errors: list[BaseException] = []

    def write() -> None:
        try:
            with AlignmentsStore.open(path) as w:
                k = 1
                while not stop.is_set():
                    w.put_frame(info, version(k))
                    k += 1
        except BaseException as err:  # reported below
            errors.append(err)

    writer = threading.Thread(target=write)
    writer.start()
    seen = set()
    try:
        with AlignmentsStore.open(path, readonly=True) as r:
            for _ in range(400):
                for getter in (lambda: r.faces(0), lambda: r.faces_at(0),
                               lambda: next(r.iter_frames())[1]):
                    faces = getter()
                    assert faces is not None and len(faces) == 3
                    for f in faces:
                        want = "extended" if f.score > 0.5 else "components"
                        assert list(f.masks) == [want], (f.score, list(f.masks))
                        seen.add(want)
    finally:
        stop.set()
        writer.join()
    assert not errors, errors
    assert seen == {"extended", "components"}  # the writer really was writing meanwhile


def test_the_cli_readers_migrate_an_older_store(tmp_path: Path, rng: np.random.Generator
                                                ) -> None:
    """A store from an earlier Faceplate is migrated on first use by the commands that only
    read it too (here `faceplate faceset export-json`; convert, evaluate and merge open their
    stores the same way), with the backup beside it, instead of being refused."""
    from faceplate.cli.main import main

    path = tmp_path / "old.fpstore"
    _v1_store(path, "sequence", [1001, 1002], rng)
    out = tmp_path / "faces.json"
    assert main(["faceset", "export-json", str(path), str(out)]) == 0
    assert out.is_file()
    with AlignmentsStore.open(path, readonly=True) as st:  # now current: no refusal
        assert st.frame_numbers() == [1001, 1002]
    assert len(list(tmp_path.glob("old.*.bak.fpstore"))) == 1  # the v1 file, kept
