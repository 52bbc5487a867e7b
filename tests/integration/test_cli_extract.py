"""`faceplate extract` end to end: real models, real SQLite, real PyAV, real PNG records."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from faceplate.cli.main import main
from faceplate.io import samples
from faceplate.io.faceset import read_face_meta, scan_faceset
from faceplate.io.store import AlignmentsStore

FACEPLATE = [sys.executable, "-m", "faceplate.cli.main"]


def _store_faces(path: Path) -> dict[tuple[int, int], np.ndarray]:
    with AlignmentsStore.open(path, readonly=True) as st:
        return {(r.frame_index, r.face_index): r.landmarks for r in st.iter_faces()}


def test_extract_still_folder_writes_faces_and_store(tmp_path, media, capsys):
    src = tmp_path / "stills"
    src.mkdir()
    for name in ("obama.jpg", "biden.jpg", "multi_face.jpg"):
        (src / name).write_bytes(media[name].read_bytes())
    out = tmp_path / "faces"
    assert main(["extract", str(src), "-o", str(out), "--size", "256"]) == 0
    printed = capsys.readouterr().out
    assert "extract: 3 frames, 7 faces" in printed
    store = src / "alignments.fpstore"
    assert store.exists()
    faces, bad = scan_faceset(out)
    assert not bad and len(faces) == 7
    by_frame: dict[str, int] = {}
    for path, meta in faces:
        assert meta.size == 256 and meta.record.landmarks.shape == (68, 2)
        assert set(meta.record.masks) == {"components", "extended"}
        by_frame[meta.record.frame_name] = by_frame.get(meta.record.frame_name, 0) + 1
        img = cv2.imread(str(path))
        assert img.shape == (256, 256, 3)
    assert by_frame == {"obama.jpg": 1, "biden.jpg": 1, "multi_face.jpg": 5}
    # faces of multi_face are numbered left to right
    multi = sorted((m.record.face_index, m.record.bbox.x) for _, m in faces
                   if m.record.frame_name == "multi_face.jpg")
    xs = [x for _, x in multi]
    assert xs == sorted(xs)


def test_extract_cartoon_finds_nothing(tmp_path, media, capsys):
    clip = media["no_face.mp4"]
    code = main(["extract", str(clip), "-o", str(tmp_path / "f"), "--alignments",
                 str(tmp_path / "a.fpstore"), "--every-n", "10"])
    assert code == 1
    assert "no face found" in capsys.readouterr().err
    assert not list((tmp_path / "f").glob("*.png"))


@pytest.mark.parametrize("bad", ["missing", "readonly", "textfile", "empty"])
def test_extract_bad_input_is_a_clear_error(tmp_path, media, capsys, bad):
    out = tmp_path / "faces"
    if bad == "missing":
        inp = tmp_path / "nope.mp4"
        expect = "nope.mp4"
    elif bad == "readonly":
        if os.geteuid() == 0:
            # root ignores permission bits; a path under a regular file cannot be a folder
            blocker = tmp_path / "file"
            blocker.write_text("x")
            out = blocker / "faces"
        else:
            out.mkdir()
            out.chmod(0o500)
        inp = media["obama.jpg"]
        expect = "cannot write the output folder"
    elif bad == "textfile":
        inp = tmp_path / "notes.txt"
        inp.write_text("hello")
        expect = "notes.txt"
    else:
        inp = tmp_path / "emptydir"
        inp.mkdir()
        expect = "emptydir"
    code = main(["extract", str(inp), "-o", str(out), "--alignments", str(tmp_path / "s.fpstore")])
    err = capsys.readouterr().err
    assert code == 2 and expect in err and "Traceback" not in err


@pytest.mark.slow
def test_sigkill_halfway_then_resume_gives_the_same_faces(tmp_path):
    """Acceptance 2: a 1080p video extract killed with SIGKILL halfway resumes to the same end."""
    clip = samples.upscaled_clip("single_face.mp4", 48)
    env = dict(os.environ, PYTHONUNBUFFERED="1")

    ref_dir, ref_store = tmp_path / "ref_faces", tmp_path / "ref.fpstore"
    subprocess.run([*FACEPLATE, "extract", str(clip), "-o", str(ref_dir), "--alignments",
                    str(ref_store), "--size", "256"], check=True, env=env, capture_output=True)

    faces, store = tmp_path / "faces", tmp_path / "run.fpstore"
    cmd = [*FACEPLATE, "extract", str(clip), "-o", str(faces), "--alignments", str(store),
           "--size", "256"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    done = 0
    while time.time() < deadline and proc.poll() is None:
        if store.exists():
            try:
                con = sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=1)
                done = con.execute("SELECT COUNT(*) FROM frames WHERE processed=1").fetchone()[0]
                con.close()
            except sqlite3.Error:
                done = 0
        if done >= 20:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = _store_faces(store)
    assert 0 < len(partial) < 48

    second = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    assert "resuming:" in second.stdout

    ref, got = _store_faces(ref_store), _store_faces(store)
    assert sorted(ref) == sorted(got) and len(ref) == 48
    for key in ref:
        np.testing.assert_array_equal(ref[key], got[key])
    ref_files = sorted(p.name for p in ref_dir.glob("*.png"))
    assert ref_files == sorted(p.name for p in faces.glob("*.png"))
    for name in ref_files:
        a, b = read_face_meta(ref_dir / name), read_face_meta(faces / name)
        np.testing.assert_array_equal(a.record.landmarks, b.record.landmarks)
        np.testing.assert_array_equal(cv2.imread(str(ref_dir / name)),
                                      cv2.imread(str(faces / name)))


def test_extract_float_exr_sequence_with_mesh_aligner_and_mesh_masks(tmp_path, media, capsys):
    """Scene-linear EXR frames (one with NaN/Inf) through the mesh aligner and mesh masks."""
    import OpenImageIO as oiio

    from faceplate.core.colorspace import srgb_to_linear

    seq = tmp_path / "seq"
    seq.mkdir()
    rgb = cv2.cvtColor(cv2.imread(str(media["astronaut.png"])), cv2.COLOR_BGR2RGB)
    lin = srgb_to_linear(rgb.astype(np.float32) / 255.0)
    for i in range(3):
        frame = lin.copy()
        if i == 1:
            frame[0:4, 0:4, 0] = np.nan
            frame[10, 10, 1] = np.inf
        spec = oiio.ImageSpec(frame.shape[1], frame.shape[0], 3, oiio.FLOAT)
        out = oiio.ImageOutput.create(str(seq / f"shot_{i + 1:04d}.exr"))
        assert out.open(str(seq / f"shot_{i + 1:04d}.exr"), spec)
        assert out.write_image(frame)
        out.close()
    faces = tmp_path / "faces"
    code = main(["extract", str(seq), "-o", str(faces), "--size", "128", "--aligner", "mesh68",
                 "--masks", "mesh_oval", "mesh_eyes", "components"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "frame 1: 17 NaN/Inf samples replaced for detection" in captured.err
    got, bad = scan_faceset(faces)
    assert not bad and len(got) == 3
    for _, meta in got:
        assert meta.record.aligner == "mesh68"
        assert set(meta.record.masks) == {"mesh_oval", "mesh_eyes", "components"}
        assert meta.record.frame_name.startswith("shot_000")
    # the same face in three identical frames: identical landmarks (NaNs only touch a corner)
    lms = [m.record.landmarks for _, m in sorted(got, key=lambda pm: pm[1].record.frame_index)]
    np.testing.assert_allclose(lms[0], lms[2], atol=1e-4)


def test_reference_filter_keeps_only_the_chosen_person(tmp_path, media, capsys):
    src = tmp_path / "stills"
    src.mkdir()
    for name in ("obama2.jpg", "obama3.jpg", "biden.jpg"):
        (src / name).write_bytes(media[name].read_bytes())
    out = tmp_path / "faces"
    code = main(["extract", str(src), "-o", str(out), "--size", "128",
                 "--filter", str(media["obama.jpg"])])
    printed = capsys.readouterr().out
    assert code == 0
    assert "skipped (identity filter) 1" in printed
    kept = {m.record.frame_name for _, m in scan_faceset(out)[0]}
    assert kept == {"obama2.jpg", "obama3.jpg"}
    for _, meta in scan_faceset(out)[0]:
        assert meta.record.identity is not None and meta.record.identity.shape == (128,)


def test_size_filter_and_every_n(tmp_path, media, capsys):
    out = tmp_path / "faces"
    assert main(["extract", str(media["multi_face.jpg"]), "-o", str(out), "--alignments",
                 str(tmp_path / "m.fpstore"), "--min-face", "60"]) == 0
    printed = capsys.readouterr().out
    kept = len(scan_faceset(out)[0])
    assert 0 < kept < 5 and f"skipped (too small) {5 - kept}" in printed
    out2 = tmp_path / "video"
    assert main(["extract", str(media["single_face.mp4"]), "-o", str(out2), "--alignments",
                 str(tmp_path / "v.fpstore"), "--every-n", "10", "--size", "64"]) == 0
    frames = sorted(m.record.frame_index for _, m in scan_faceset(out2)[0])
    assert frames == list(range(0, 72, 10))


def test_tiny_image_and_newer_store_are_clear_errors(tmp_path, media, capsys):
    tiny = tmp_path / "tiny.png"
    cv2.imwrite(str(tiny), np.zeros((1, 1, 3), np.uint8))
    assert main(["extract", str(tiny), "-o", str(tmp_path / "f")]) == 2
    err = capsys.readouterr().err
    assert "tiny.png" in err and "too small to contain a face (1×1" in err

    store = tmp_path / "future.fpstore"
    with AlignmentsStore.open(store, create=True) as st:
        st.set_meta("source", "x")
    con = sqlite3.connect(store)
    con.execute("PRAGMA journal_mode = DELETE")
    con.execute("PRAGMA user_version = 99")
    con.close()
    before = store.read_bytes()
    assert main(["extract", str(media["obama.jpg"]), "-o", str(tmp_path / "g"),
                 "--alignments", str(store)]) == 2
    err = capsys.readouterr().err
    assert "future.fpstore" in err and "newer" in err
    assert store.read_bytes() == before
    assert not list((tmp_path / "g").glob("*.png"))


def test_corrupt_file_in_a_folder_is_reported_and_the_rest_extracted(tmp_path, media, capsys):
    src = tmp_path / "stills"
    src.mkdir()
    (src / "a_obama.jpg").write_bytes(media["obama.jpg"].read_bytes())
    (src / "b_broken.jpg").write_bytes(media["biden.jpg"].read_bytes()[:200])
    (src / "c_biden.jpg").write_bytes(media["biden.jpg"].read_bytes())
    out = tmp_path / "faces"
    assert main(["extract", str(src), "-o", str(out), "--size", "96"]) == 0
    captured = capsys.readouterr()
    assert "b_broken.jpg" in captured.err and "skipped" in captured.err
    assert "1 skipped" in captured.out
    assert {m.record.frame_name for _, m in scan_faceset(out)[0]} == {"a_obama.jpg", "c_biden.jpg"}
