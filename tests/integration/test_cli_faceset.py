"""`faceplate faceset JOB` end to end, in-process, on stores and facesets cut from real footage.

The fixtures run the real extraction stages (dlib HOG + dlib 68 points + landmark masks) on the
first 20 frames of ``single_face.mp4`` and on ``multi_face.jpg``, then every test works on its own
copy of the store and face folder.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from faceplate.cli.main import main
from faceplate.core.labels import validate_labels
from faceplate.core.types import BBox, FaceRecord, Rejection
from faceplate.extract.smoothing import INTERPOLATED, build_tracks, landmark_jitter
from faceplate.faceset.match import record_matches
from faceplate.io.faceset import (
    FaceMeta,
    face_filename,
    read_face_meta,
    read_face_png,
    scan_faceset,
    write_face_png,
)
from faceplate.io.media import open_source
from faceplate.io.store import AlignmentsStore, FaceChange, FaceState
from tests.store_fixtures import Built, build_faceset, copy_built

N_FRAMES = 20


@pytest.fixture(scope="module")
def clip_src(tmp_path_factory, media) -> Built:
    return build_faceset(media["single_face.mp4"], tmp_path_factory.mktemp("clip"), N_FRAMES)


@pytest.fixture(scope="module")
def multi_src(tmp_path_factory, media) -> Built:
    return build_faceset(media["multi_face.jpg"], tmp_path_factory.mktemp("multi"))


@pytest.fixture()
def clip(clip_src, tmp_path) -> Built:
    return copy_built(clip_src, tmp_path / "clip")


@pytest.fixture()
def multi(multi_src, tmp_path) -> Built:
    return copy_built(multi_src, tmp_path / "multi")


def fs(*args: object) -> int:
    return main(["faceset", *(str(a) for a in args)])


def store_faces(path: Path) -> dict[tuple[int, int], FaceRecord]:
    with AlignmentsStore.open(path, readonly=True) as st:
        return {(r.frame_index, r.face_index): r for r in st.iter_faces()}


def backups(b: Built) -> list[Path]:
    return sorted(b.store.parent.glob("*.bak.fpstore"))


def test_fixture_is_real(clip_src, multi_src):
    assert clip_src.frames == N_FRAMES and clip_src.n_faces == N_FRAMES  # one face a frame
    assert multi_src.n_faces >= 3
    good, bad = scan_faceset(clip_src.faces)
    assert len(good) == N_FRAMES and not bad


# --------------------------------------------------------------------------- remove-faces


def _shuffle_names(folder: Path, rng: np.random.Generator) -> None:
    """Rename every PNG to a meaningless name (as a sort tool would)."""
    files = sorted(folder.glob("*.png"))
    for i, n in enumerate(rng.permutation(len(files))):
        files[i].rename(folder / f"sorted_{n:03d}.png")


def test_remove_faces_drops_exactly_the_deleted_faces(clip, rng, capsys):
    _shuffle_names(clip.faces, rng)
    files = sorted(clip.faces.glob("*.png"))
    doomed = [files[2], files[9], files[15]]
    gone = {(read_face_meta(p).record.frame_index, read_face_meta(p).record.face_index)
            for p in doomed}
    for p in doomed:
        p.unlink()
    before = store_faces(clip.store)
    assert fs("remove-faces", "--alignments", clip.store, "--faces", clip.faces) == 0
    out = capsys.readouterr().out
    assert "removed 3" in out
    after = store_faces(clip.store)
    assert set(after) == set(before) - gone
    for k, rec in after.items():  # the others are untouched
        np.testing.assert_array_equal(rec.landmarks, before[k].landmarks)
    assert len(backups(clip)) == 1
    with AlignmentsStore.open(backups(clip)[0], readonly=True) as bk:
        assert bk.face_count() == N_FRAMES
    with AlignmentsStore.open(clip.store, readonly=True) as st:  # the frames stay processed
        assert st.frame_count() == N_FRAMES and st.face_count() == N_FRAMES - 3
    # a second run finds nothing to do and writes no backup
    assert fs("remove-faces", "--alignments", clip.store, "--faces", clip.faces) == 0
    assert "removed 0" in capsys.readouterr().out
    assert len(backups(clip)) == 1


def test_remove_faces_keeps_indices_by_default_and_reindexes_on_request(multi, tmp_path):
    victim = multi.faces / "multi_face_1.png"
    assert victim.exists()
    plain = copy_built(multi, tmp_path / "plain")
    (plain.faces / "multi_face_1.png").unlink()
    assert fs("remove-faces", "-a", plain.store, "-f", plain.faces) == 0
    n = multi.n_faces
    assert sorted(store_faces(plain.store)) == [(0, i) for i in range(n) if i != 1]

    victim.unlink()
    before = store_faces(multi.store)
    assert fs("remove-faces", "-a", multi.store, "-f", multi.faces, "--reindex") == 0
    after = store_faces(multi.store)
    assert sorted(after) == [(0, i) for i in range(n - 1)]
    for old in range(2, n):  # shifted down by one, same face
        np.testing.assert_array_equal(after[(0, old - 1)].landmarks, before[(0, old)].landmarks)
    # every PNG left carries the renumbered record and the canonical name
    good, bad = scan_faceset(multi.faces)
    assert not bad and len(good) == n - 1
    for path, meta in good:
        assert record_matches(meta.record, after[(0, meta.record.face_index)])
        assert path.name == face_filename(meta.record)


def test_remove_faces_refuses_a_foreign_folder(clip, multi, capsys):
    before = store_faces(clip.store)
    assert fs("remove-faces", "-a", clip.store, "-f", multi.faces) == 2
    assert "belongs to" in capsys.readouterr().err
    assert set(store_faces(clip.store)) == set(before)
    assert not backups(clip)


# --------------------------------------------------------------------------- rename


def test_rename_gives_canonical_names_without_overwriting(clip, multi, rng, capsys):
    _shuffle_names(clip.faces, rng)
    # a foreign file already holds one face's canonical name: it must survive untouched
    blocker = clip.faces / "single_face_000004_0.png"
    shutil.copyfile(multi.faces / "multi_face_0.png", blocker)
    blocker_bytes = blocker.read_bytes()
    assert fs("rename", "--faces", clip.faces, "--alignments", clip.store) == 0
    err = capsys.readouterr().err
    assert blocker.read_bytes() == blocker_bytes
    names = sorted(p.name for p in clip.faces.glob("*.png"))
    want = {f"single_face_{i:06d}_0.png" for i in range(N_FRAMES)}
    assert want <= set(names)
    leftovers = [n for n in names if n not in want]
    assert len(leftovers) == 1 and leftovers[0].startswith("sorted_")  # face 4 kept its name
    assert read_face_meta(clip.faces / leftovers[0]).record.frame_index == 4
    assert "not renamed" in err
    for name in want - {"single_face_000004_0.png"}:
        assert face_filename(read_face_meta(clip.faces / name).record) == name
    assert not list(clip.faces.glob(".faceplate-rename-*"))


# --------------------------------------------------------------------------- from-faces


def test_from_faces_rebuilds_the_store(clip, tmp_path):
    _shuffle_names(clip.faces, np.random.default_rng(5))
    new = tmp_path / "rebuilt.fpstore"
    assert fs("from-faces", "--faces", clip.faces, "--alignments", new) == 0
    orig, got = store_faces(clip.store), store_faces(new)
    assert set(got) == set(orig)
    for k, r in orig.items():
        g = got[k]
        np.testing.assert_array_equal(g.landmarks, r.landmarks)
        assert g.bbox == r.bbox and g.score == pytest.approx(r.score)
        assert g.frame_name == r.frame_name and g.timestamp == pytest.approx(r.timestamp)
        assert set(g.masks) == set(r.masks)
        for name, sm in r.masks.items():
            assert g.masks[name].data == sm.data
            np.testing.assert_allclose(g.masks[name].affine, sm.affine)
    with AlignmentsStore.open(clip.store, readonly=True) as a, \
            AlignmentsStore.open(new, readonly=True) as b:
        assert [(f.index, f.name, f.frame_number, f.width, f.height) for f in a.frames()] == \
            [(f.index, f.name, f.frame_number, f.width, f.height) for f in b.frames()]
        assert b.frame_numbers()[0] == 1  # a video's frames are numbered from 1
        assert b.get_meta("source") == a.get_meta("source")
        assert b.get_meta("fps") == pytest.approx(a.get_meta("fps"), rel=1e-3)
    # never overwrites
    assert fs("from-faces", "--faces", clip.faces, "--alignments", new) == 2


# --------------------------------------------------------------------------- extract


def test_extract_recuts_the_same_faces(clip, tmp_path):
    out = tmp_path / "recut"
    assert fs("extract", "--alignments", clip.store, "--input", clip.input, "-o", out,
              "--size", 128) == 0
    good, bad = scan_faceset(out)
    assert not bad and len(good) == N_FRAMES
    orig = store_faces(clip.store)
    for path, meta in good:
        assert record_matches(meta.record, orig[(meta.record.frame_index,
                                                 meta.record.face_index)])
        # the fixture cut the same crops: same pixels
        a, _ = read_face_png(path)
        b, _ = read_face_png(clip.faces / path.name)
        assert np.abs(a.astype(int) - b.astype(int)).mean() < 1.0
    head = tmp_path / "head"
    assert fs("extract", "-a", clip.store, "-i", clip.input, "-o", head, "--size", 64,
              "--centering", "head", "--frames", "0-4") == 0
    good, _ = scan_faceset(head)
    assert len(good) == 5 and all(m.centering == "head" and m.size == 64 for _, m in good)


def test_extract_refuses_the_wrong_clip(clip, media, tmp_path, capsys):
    code = fs("extract", "-a", clip.store, "-i", media["WolfgangLanger_Pexels.mp4"], "-o",
              tmp_path / "x")
    assert code == 2
    assert "not the clip the store was made from" in capsys.readouterr().err


# --------------------------------------------------------------------------- merge


def test_merge_a_faceset_with_itself_drops_every_duplicate(clip, tmp_path, capsys):
    out = tmp_path / "merged"
    assert fs("merge", "--faces", clip.faces, clip.faces, "-o", out, "--threshold", 0) == 0
    line = capsys.readouterr().out
    assert f"kept {N_FRAMES}" in line and f"same-frame {N_FRAMES}" in line
    assert sorted(p.name for p in out.glob("*.png")) == \
        sorted(p.name for p in clip.faces.glob("*.png"))
    # with the perceptual check on, near-static consecutive frames collapse too
    out2 = tmp_path / "merged2"
    assert fs("merge", "--faces", clip.faces, clip.faces, "-o", out2) == 0
    kept = len(list(out2.glob("*.png")))
    assert 1 <= kept < N_FRAMES


def test_merge_drops_perceptual_duplicates_and_resolves_names(clip, multi, tmp_path, capsys):
    other = tmp_path / "other"
    other.mkdir()
    # (a) the same pixels claiming another clip and frame: only the appearance hash can tell
    img, meta = read_face_png(clip.faces / "single_face_000003_0.png")
    rec = meta.record
    fake = dataclasses.replace(rec, frame_index=500, frame_name="elsewhere_000500")
    src = dict(meta.source, source="/elsewhere.mp4")
    write_face_png(other / "elsewhere_000500_0.png", img,
                   FaceMeta(fake, meta.matrix, meta.size, meta.centering, src))
    # (b) a different person under a name the first folder uses
    shutil.copyfile(multi.faces / "multi_face_0.png", other / "single_face_000000_0.png")
    out = tmp_path / "merged"
    assert fs("merge", "-f", clip.faces, other, "-o", out, "--threshold", 0.01) == 0
    line = capsys.readouterr().out
    assert f"kept {N_FRAMES + 1}" in line and "similar 1" in line and "renamed 1" in line
    moved = out / "single_face_000000_0_1.png"
    assert read_face_meta(moved).record.frame_name == "multi_face.jpg"
    assert not (out / "elsewhere_000500_0.png").exists()


def test_merge_stores_of_one_clip(clip, multi, tmp_path, capsys):
    half = tmp_path / "half.fpstore"
    shutil.copyfile(clip.store, half)
    with AlignmentsStore.open(half) as st:  # a second run that found a second face in frame 2
        info = st.frame(2)
        r0 = st.faces(2)[0]
        extra = dataclasses.replace(r0, face_index=1, landmarks=r0.landmarks + 150.0,
                                    bbox=BBox(r0.bbox.x + 150, r0.bbox.y + 150, r0.bbox.w,
                                              r0.bbox.h), masks={})
        st.put_frame(info, [r0, extra])
    out = tmp_path / "merged.fpstore"
    assert fs("merge", "--alignments", clip.store, half, "-o", out) == 0
    assert f"same-frame {N_FRAMES}" in capsys.readouterr().out
    got = store_faces(out)
    assert len(got) == N_FRAMES + 1 and (2, 1) in got
    # stores of different clips are refused
    assert fs("merge", "-a", clip.store, multi.store, "-o", tmp_path / "bad.fpstore") == 2
    assert not (tmp_path / "bad.fpstore").exists()


def test_merge_stores_carries_notes_and_rejections(clip, tmp_path, capsys):
    """A merge keeps what people and extraction wrote beside the faces: pins and mask labels
    follow a kept face to its new index (a dropped duplicate's go with it, and the report says
    so); rejected candidates are the union, less repeats and those a kept face now covers."""
    labels = {"version": 1, "size": 64, "centering": "face",
              "matrix": [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]],
              "shapes": [{"kind": "polygon", "mode": "include",
                          "points": [[4.0, 4.0], [60.0, 4.0], [32.0, 60.0]]}]}
    far = Rejection(BBox(900, 20, 60, 60), 0.6, "blazeface", "verify", "no second family")
    other = Rejection(BBox(20, 300, 50, 50), 0.4, "centerface", "size", "too small")
    half = tmp_path / "half.fpstore"
    shutil.copyfile(clip.store, half)
    with AlignmentsStore.open(clip.store) as st:
        st.put_frame(st.frame(5), st.faces(5), [far])
    with AlignmentsStore.open(half) as st:
        r0 = st.faces(2)[0]
        extra = dataclasses.replace(r0, face_index=1, landmarks=r0.landmarks + 150.0,
                                    bbox=BBox(r0.bbox.x + 150, r0.bbox.y + 150, r0.bbox.w,
                                              r0.bbox.h), masks={})
        st.put_frame(st.frame(2), [r0, extra])
        r4 = st.faces(4)[0]  # the first store's face of frame 4 covers this candidate
        covered = Rejection(r4.bbox, 0.3, "blazeface", "verify", "rejected in this run")
        st.put_frame(st.frame(4), st.faces(4), [covered])
        st.put_frame(st.frame(5), st.faces(5), [far, other])
        e, r3 = st.faces(2)[1], st.faces(3)[0]
        st.edit("label", [FaceChange(2, 1, FaceState(e), FaceState(e, True, labels)),
                          FaceChange(3, 0, FaceState(r3), FaceState(r3, True, None))])
    out = tmp_path / "merged.fpstore"
    assert fs("merge", "--alignments", clip.store, half, "-o", out) == 0
    err = capsys.readouterr().err
    assert f"{half}: frame 3 face 0: its pin" in err, err
    with AlignmentsStore.open(out, readonly=True) as st:
        pinned, got = st.notes()[(2, 1)]
        assert pinned and got == validate_labels(labels)
        assert (3, 0) not in st.notes()  # the first store's face 3 was kept, without a pin
        assert st.rejections(4) == []
        assert [r.reason for r in st.rejections(5)] == [far.reason, other.reason]
    assert not (tmp_path / "bad.fpstore").exists()


# --------------------------------------------------------------------------- audits


def test_audits_find_planted_cases(clip, multi, tmp_path, capsys):
    with AlignmentsStore.open(clip.store) as st:
        info7 = st.frame(7)
        st.put_frame(info7, [])  # a frame processed with no face
        r = st.faces(12)[0]
        twin = dataclasses.replace(r, face_index=1, landmarks=r.landmarks + 200.0,
                                   bbox=BBox(r.bbox.x + 200, r.bbox.y, r.bbox.w, r.bbox.h))
        st.put_frame(st.frame(12), [r, twin])
    capsys.readouterr()
    assert fs("no-faces", "--alignments", clip.store) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "single_face_000007" and out[1].startswith("no-faces:") and len(out) == 2

    # A frame whose candidates extraction dropped: each shown under it with its reason.
    why = "CenterFace does not see a face here (best 0.12 < 0.50)"
    with AlignmentsStore.open(clip.store) as st:
        st.put_frame(st.frame(7), [], [Rejection(BBox(100, 50, 80, 80), 0.71, "blazeface",
                                                 "verify", why)])
    assert fs("no-faces", "--alignments", clip.store) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "single_face_000007"
    assert out[1] == f"    blazeface 0.71 at (140, 90) 80×80 px: verify: {why}"
    assert out[2].startswith("no-faces:")

    lst = tmp_path / "multi.txt"
    assert fs("multi-faces", "-a", clip.store, "--output", lst) == 0
    assert lst.read_text().splitlines() == ["single_face_000012\t2"]

    miss = tmp_path / "missing.txt"
    assert fs("missing-frames", "-a", clip.store, "--input", clip.input, "-o", miss) == 0
    names = miss.read_text().splitlines()
    assert names == [f"single_face_{i:06d}" for i in range(N_FRAMES, 72)]

    # --move takes the face files of multi-face frames out of the folder (by record)
    moved = tmp_path / "moved"
    for i, p in enumerate(sorted(multi.faces.glob("*.png"))):
        p.rename(multi.faces / f"x{i}.png")
    assert fs("multi-faces", "-a", multi.store, "--faces", multi.faces, "--move", moved) == 0
    assert len(list(moved.glob("*.png"))) == multi.n_faces
    assert not list(multi.faces.glob("*.png"))


# --------------------------------------------------------------------------- draw


def test_draw_marks_landmarks_and_masks(clip, tmp_path):
    out = tmp_path / "drawn"
    assert fs("draw", "--alignments", clip.store, "--input", clip.input, "-o", out,
              "--frames", "0-4") == 0
    files = sorted(out.glob("*.png"))
    assert [p.name for p in files] == [f"single_face_{i:06d}.png" for i in range(5)]
    plain = tmp_path / "plain"
    assert fs("draw", "-a", clip.store, "-i", clip.input, "-o", plain, "--frames", "3",
              "--masks") == 0
    faces = store_faces(clip.store)
    with open_source(clip.input) as src:
        frame = src.read(3).rgb
    drawn = cv2.cvtColor(cv2.imread(str(out / "single_face_000003.png")), cv2.COLOR_BGR2RGB)
    nomask = cv2.cvtColor(cv2.imread(str(plain / "single_face_000003.png")), cv2.COLOR_BGR2RGB)
    assert drawn.shape == frame.shape
    rec = faces[(3, 0)]
    diff = np.abs(nomask.astype(int) - frame.astype(int)).sum(axis=2)
    # every landmark pixel is painted
    for x, y in rec.landmarks:
        assert diff[int(y), int(x)] > 30
    # far from the face nothing changes
    assert diff[:20, :20].max() == 0 and diff[-20:, -20:].max() == 0
    # the stored "components" mask tints the cheeks (inside the mask, away from the lines)
    cheek = ((rec.landmarks[2] + rec.landmarks[31] + rec.landmarks[48]) / 3).astype(int)
    tinted = np.abs(drawn.astype(int) - nomask.astype(int)).sum(axis=2)
    assert tinted[cheek[1], cheek[0]] > 20
    assert tinted[:20, :20].max() == 0


# --------------------------------------------------------------------------- smooth


def _track_landmarks(store: Path) -> np.ndarray:
    with AlignmentsStore.open(store, readonly=True) as st:
        frames = list(st.iter_frames())
    tracks = build_tracks(frames, 3)
    assert len(tracks) == 1
    return tracks[0].landmarks


def test_smooth_reduces_jitter_on_a_real_clip(clip, capsys):
    before = _track_landmarks(clip.store)
    assert fs("smooth", "--alignments", clip.store) == 0
    line = capsys.readouterr().out
    assert "tracks 1" in line and "interpolated 0" in line
    after = _track_landmarks(clip.store)
    j0, j1 = landmark_jitter(before), landmark_jitter(after)
    assert j1 < 0.5 * j0
    # smoothing, not replacement: points move by about a pixel, not more
    assert np.abs(after - before).mean() < 1.5
    assert len(backups(clip)) == 1
    with AlignmentsStore.open(clip.store, readonly=True) as st:
        meta = st.get_meta("smoothing")
        meta = json.loads(meta) if isinstance(meta, str) else meta
        assert meta["smoothed"] == N_FRAMES and meta["jitter_after"] < meta["jitter_before"]


def test_smooth_fills_a_planted_gap_with_interpolated_faces(clip):
    with AlignmentsStore.open(clip.store) as st:
        for fi in (8, 9, 10):
            st.put_frame(st.frame(fi), [])
        lm7 = st.faces(7)[0].landmarks.astype(np.float64)
        lm11 = st.faces(11)[0].landmarks.astype(np.float64)
    assert fs("smooth", "-a", clip.store, "--window", 1, "--max-gap", 3) == 0
    got = store_faces(clip.store)
    assert len(got) == N_FRAMES
    lo, hi = np.minimum(lm7, lm11) - 1.0, np.maximum(lm7, lm11) + 1.0
    prev_c = lm7.mean(axis=0)
    for fi in (8, 9, 10):
        rec = got[(fi, 0)]
        assert rec.detector == INTERPOLATED and rec.score == 0.0
        lm = rec.landmarks.astype(np.float64)
        inside = np.all((lm >= lo) & (lm <= hi), axis=1)
        assert inside.mean() > 0.95
        c = lm.mean(axis=0)
        # the centroid advances monotonically from frame 7's towards frame 11's
        assert np.dot(c - prev_c, lm11.mean(axis=0) - lm7.mean(axis=0)) >= 0
        prev_c = c
        assert set(rec.masks) == {"components"}
    # a 4-frame gap is longer than --max-gap 3: not filled
    with AlignmentsStore.open(clip.store) as st:
        for fi in (13, 14, 15, 16):
            st.put_frame(st.frame(fi), [])
    assert fs("smooth", "-a", clip.store, "--max-gap", 3) == 0
    got = store_faces(clip.store)
    assert not any((fi, 0) in got for fi in (13, 14, 15, 16))


# --------------------------------------------------------------------------- JSON


def test_export_import_json_round_trip(clip, tmp_path):
    out = tmp_path / "a.json"
    assert fs("export-json", clip.store, out) == 0
    doc = json.loads(out.read_text())
    assert len(doc["frames"]) == N_FRAMES
    new = tmp_path / "imported.fpstore"
    assert fs("import-json", out, "--alignments", new, "--input", clip.input) == 0
    a, b = store_faces(clip.store), store_faces(new)
    assert set(a) == set(b)
    for k in a:
        np.testing.assert_array_equal(a[k].landmarks, b[k].landmarks)
        assert a[k].bbox == b[k].bbox
    with AlignmentsStore.open(new, readonly=True) as st:
        assert st.get_meta("width") == 640 and st.get_meta("source") == str(clip.input)
    # importing again into the now non-empty store backs it up first
    assert fs("import-json", out, "-a", new) == 0
    assert list(tmp_path.glob("imported.*.bak.fpstore"))
