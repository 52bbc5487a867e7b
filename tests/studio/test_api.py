"""The Studio's JSON API against the real server, a real store and real face PNGs."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from faceplate.faceset.sort_keys import SORT_KEYS, load_faceset
from faceplate.io.faceset import read_face_meta
from faceplate.io.store import AlignmentsStore
from tests.store_fixtures import Built
from tests.studio.conftest import Running


def _face_png(shot: Built, frame: int, face: int = 0) -> Path:
    for p in sorted(shot.faces.glob("*.png")):
        r = read_face_meta(p).record
        if (r.frame_index, r.face_index) == (frame, face):
            return p
    raise AssertionError(f"no PNG for frame {frame} face {face}")


def test_documents_and_sort_use_the_sort_keys(studio: Running, shot: Built) -> None:
    status, docs = studio.get("/api/docs")
    assert status == 200
    assert [s["path"] for s in docs["stores"]] == [str(shot.store.resolve())]
    assert [f["path"] for f in docs["facesets"]] == [str(shot.faces.resolve())]
    status, fs = studio.get("/api/faceset/0")
    assert status == 200 and fs["count"] == shot.n_faces
    assert fs["columns"]["store"] == [0] * shot.n_faces  # linked to the open store
    status, out = studio.post("/api/faceset/0/sort", {"key": "yaw"})
    faces, _ = load_faceset(shot.faces)
    key = SORT_KEYS.create("yaw")
    assert out["order"] == key.order(key.measure_all(faces)).tolist()
    status, thumb = studio.get("/api/faceset/0/thumb/0")
    assert status == 200 and thumb[:3] == b"\xff\xd8\xff"


def test_trash_undo_redo_survive_a_restart(shot: Built) -> None:
    run = Running([shot.store.parent])
    try:
        names = sorted(p.name for p in shot.faces.glob("*.png"))
        status, out = run.post("/api/faceset/0/trash", {"ids": [0, 2, 4]})
        assert status == 200 and out["moved"] == 3
        assert sorted(p.name for p in (shot.faces / ".trash").glob("*.png")) == \
            [names[0], names[2], names[4]]
        status, out = run.post("/api/faceset/0/undo")
        assert out["label"] == "delete 3 face(s)"
        assert sorted(p.name for p in shot.faces.glob("*.png")) == names
    finally:
        run.close()
    run = Running([shot.store.parent])  # a restart: the history is on disk
    try:
        status, out = run.post("/api/faceset/0/redo")
        assert status == 200 and out["label"] == "delete 3 face(s)"
        assert len(list(shot.faces.glob("*.png"))) == len(names) - 3
        status, fs = run.get("/api/faceset/0")
        assert sum(fs["columns"]["trashed"]) == 3
    finally:
        run.close()


def test_moving_landmarks_pins_the_face_and_rewrites_its_png(studio: Running,
                                                            shot: Built) -> None:
    status, fr = studio.get("/api/store/0/frame/3")
    face = fr["faces"][0]
    lm = np.asarray(face["landmarks"])
    lm[30] += (4.0, -3.0)  # the nose tip
    status, out = studio.post("/api/store/0/frame/3/face/0/landmarks",
                              {"landmarks": lm.tolist(), "etag": face["etag"]})
    assert status == 200, out
    with AlignmentsStore.open(shot.store, readonly=True) as st:
        rec = st.get_face(3, 0)
        np.testing.assert_allclose(rec.landmarks[30], lm[30], atol=1e-3)
        assert st.pinned_faces() == {(3, 0)}
    png = read_face_meta(_face_png(shot, 3))
    np.testing.assert_allclose(png.record.landmarks[30], lm[30], atol=1e-3)
    # undo puts back the store and the PNG
    status, out = studio.post("/api/store/0/undo")
    assert out["label"] == "move landmarks"
    png = read_face_meta(_face_png(shot, 3))
    np.testing.assert_allclose(png.record.landmarks, np.asarray(face["landmarks"]), atol=2e-3)
    # the stale etag of the first view is now a conflict, nothing written
    status, out = studio.post("/api/store/0/frame/3/face/0/landmarks",
                              {"landmarks": lm.tolist(), "etag": "0" * 16})
    assert status == 409 and "changed since" in out["error"]


def test_a_drawn_box_gets_landmarks_from_the_aligner(studio: Running, shot: Built) -> None:
    status, fr = studio.get("/api/store/0/frame/5")
    x, y, w, h = fr["faces"][0]["bbox"]
    status, out = studio.post("/api/store/0/frame/5/faces", {"bbox": [x, y, w, h]})
    assert status == 200, out
    with AlignmentsStore.open(shot.store, readonly=True) as st:
        faces = st.faces(5)
        assert len(faces) == 2
        new = faces[out["face"]]
        # the aligner found the same face again: landmarks close to the detected ones
        d = np.linalg.norm(new.landmarks - faces[0].landmarks, axis=1).mean()
        assert d < 0.05 * w
    assert _face_png(shot, 5, out["face"]).exists()


def test_conflict_with_a_cli_job_writing_the_store(studio: Running, shot: Built) -> None:
    status, fr = studio.get("/api/store/0/frame/2")
    face = fr["faces"][0]
    r = subprocess.run([sys.executable, "-m", "faceplate.cli.main", "faceset", "smooth",
                        "--alignments", str(shot.store)], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    lm = np.asarray(face["landmarks"]) + 1.0
    status, out = studio.post("/api/store/0/frame/2/face/0/landmarks",
                              {"landmarks": lm.tolist(), "etag": face["etag"]})
    assert status == 409 and "reload" in out["error"]
    with AlignmentsStore.open(shot.store, readonly=True) as st:
        assert st.history_counts() == (0, 0)  # nothing written by the refused edit


def test_labels_export_and_import(studio: Running, shot: Built) -> None:
    status, fr = studio.get("/api/store/0/frame/1")
    f = fr["faces"][0]
    crop = f["crop"]
    labels = {"size": crop["size"], "centering": crop["centering"], "matrix": crop["matrix"],
              "shapes": [{"kind": "polygon", "mode": "include",
                          "points": [[40, 40], [216, 40], [216, 230], [40, 230]]},
                         {"kind": "polygon", "mode": "exclude",
                          "points": [[60, 150], [200, 150], [200, 200], [60, 200]]}]}
    status, out = studio.post("/api/store/0/frame/1/face/0/labels",
                              {"labels": labels, "etag": f["etag"]})
    assert status == 200, out
    status, out = studio.post("/api/store/0/labels/export")
    assert out["written"] == 1
    folder = Path(out["folder"])
    assert len(list(folder.glob("*.png"))) == 1
    status, out = studio.post("/api/store/0/frame/1/face/0/labels",
                              {"labels": None, "etag": studio.get("/api/store/0/frame/1")[1]
                               ["faces"][0]["etag"]})
    status, out = studio.post("/api/store/0/labels/import")
    assert out["imported"] == 1
    with AlignmentsStore.open(shot.store, readonly=True) as st:
        assert st.labelled_count() == 1
        (_, lab), = [v for v in st.notes().values()]
        assert {s["mode"] for s in lab["shapes"]} == {"include", "exclude"}


# --------------------------------------------------------------------------- security


def test_token_host_and_origin_are_required(studio: Running) -> None:
    assert studio.get("/api/docs", token=False)[0] == 403
    assert studio.get(f"/api/docs?token={'x' * 32}", token=False)[0] == 403
    assert studio.get(f"/api/docs?token={studio.server.token}", token=False)[0] == 200
    # DNS rebinding: another Host name
    assert studio.get("/api/docs", headers={"Host": "evil.example:80"})[0] == 403
    # a change with the cookie/query token but without the header (a cross-site form)
    status, out = studio.request("POST", f"/api/faceset/0/trash?token={studio.server.token}",
                                 {"ids": [0]}, token=False)
    assert status == 403 and "header" in out["error"]
    status, out = studio.post("/api/faceset/0/trash", {"ids": [0]},
                              headers={"Origin": "http://evil.example"})
    assert status == 403 and "cross-site" in out["error"]
    status, fs = studio.get("/api/faceset/0")
    assert not any(fs["columns"]["trashed"])  # nothing moved


def test_only_the_given_paths_are_reachable(studio: Running) -> None:
    for path in ("/static/..%2F..%2Fserver.py", "/static/%2e%2e/%2e%2e/etc/passwd",
                 "/static/server.py", "/api/faceset/0/../../../etc/passwd", "/etc/passwd"):
        status, _ = studio.get(path)
        assert status in (404, 400), path
    status, out = studio.get("/api/faceset/7")
    assert status == 400 and "no faceset 7" in out["error"]
    status, out = studio.get("/api/store/0/frame/999")
    assert status == 400 and "not in the store" in out["error"]


# --------------------------------------------------------------------------- bad input


def test_a_store_that_is_not_one_is_refused_untouched(tmp_path: Path) -> None:
    bad = tmp_path / "notes.fpstore"
    bad.write_bytes(b"this is not a database" * 50)
    before = bad.read_bytes()
    r = subprocess.run([sys.executable, "-m", "faceplate.cli.main", "studio", str(bad),
                        "--no-browser"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert str(bad) in r.stderr and "not an SQLite database" in r.stderr
    assert bad.read_bytes() == before


def test_corrupt_pngs_and_an_undecodable_video(shot: Built, tmp_path: Path) -> None:
    victim = sorted(shot.faces.glob("*.png"))[1]
    data = bytearray(victim.read_bytes())
    data[200:260] = b"\0" * 60  # pixel data damaged: the record chunk still reads
    victim.write_bytes(bytes(data))
    (shot.faces / "junk.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage")
    with AlignmentsStore.open(shot.store) as st:  # the clip is replaced by a broken file
        broken = tmp_path / "broken.mp4"
        broken.write_bytes(b"\0\0\0\x18ftypmp42" + b"\x01" * 5000)
        st.set_meta("source", str(broken))
    run = Running([shot.store.parent])
    try:
        status, fs = run.get("/api/faceset/0")
        assert [n for n, _ in fs["bad"]] == ["junk.png"]
        status, out = run.get("/api/faceset/0/thumb/1")
        assert status == 400 and victim.name in out["error"]
        status, out = run.get("/api/store/0/frame/0/image")
        assert status == 400 and "broken.mp4" in out["error"]
        status, fr = run.get("/api/store/0/frame/0")  # the alignments are still there
        assert status == 200 and len(fr["faces"]) == 1
    finally:
        run.close()
    assert victim.exists() and (shot.faces / "junk.png").exists()  # nothing lost


def test_folder_search_skips_backups_and_names_bad_stores(shot: Built) -> None:
    extra = shot.store.parent / "other.fpstore"
    extra.write_bytes(b"garbage" * 100)
    run = Running([shot.store.parent])
    try:
        docs = run.get("/api/docs")[1]
        assert len(docs["stores"]) == 1
        assert any("other.fpstore" in p for p in docs["problems"])
    finally:
        run.close()
    shutil.rmtree(shot.faces / ".trash", ignore_errors=True)


@pytest.mark.parametrize("body", [{"landmarks": [[1, 2]] * 67, "etag": None},
                                  {"landmarks": "nope"},
                                  {"landmarks": [[float("nan"), 1.0]] * 68}])
def test_bad_landmarks_are_refused(studio: Running, body: dict) -> None:
    import json

    status, out = studio.request("POST", "/api/store/0/frame/0/face/0/landmarks",
                                 headers={"Content-Type": "application/json"},
                                 body=json.loads(json.dumps(body).replace("NaN", "1e999")))
    assert status == 400 and "landmarks" in out["error"]


def test_the_command_prints_its_url_and_stops_cleanly_on_ctrl_c(shot: Built) -> None:
    import json
    import os
    import signal
    import urllib.request

    proc = subprocess.Popen([sys.executable, "-m", "faceplate.cli.main", "studio",
                             str(shot.store.parent), "--no-browser"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    try:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        assert line.startswith("Faceplate Studio: http://127.0.0.1:"), line
        url = line.split(": ", 1)[1].strip()
        base, token = url.split("/?token=")
        with urllib.request.urlopen(urllib.request.Request(
                base + "/api/docs", headers={"X-Faceplate-Token": token}), timeout=30) as r:
            assert len(json.loads(r.read())["stores"]) == 1
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert "stopped" in err
    finally:
        if proc.poll() is None:
            proc.kill()
    with AlignmentsStore.open(shot.store, readonly=True) as st:  # closed cleanly, readable
        assert st.face_count() == shot.n_faces


def test_thumbnails_in_one_batch(shot: Built) -> None:

    victim = sorted(shot.faces.glob("*.png"))[2]
    data = bytearray(victim.read_bytes())
    data[200:260] = b"\0" * 60
    victim.write_bytes(bytes(data))
    studio = Running([shot.store.parent])
    try:
        _batch_checks(studio)
    finally:
        studio.close()


def _batch_checks(studio: Running) -> None:
    import urllib.request

    req = urllib.request.Request(studio.base + "/api/faceset/0/thumbs?ids=0,1,2,3",
                                 headers={"X-Faceplate-Token": studio.server.token})
    with urllib.request.urlopen(req, timeout=60) as r:
        body, sizes = r.read(), [int(v) for v in r.headers["X-Thumb-Sizes"].split(",")]
    assert len(sizes) == 4 and sizes[2] == 0 and sum(sizes) == len(body)
    assert body[:2] == b"\xff\xd8" and body[sizes[0]:sizes[0] + 2] == b"\xff\xd8"
    assert body[:sizes[0]] == studio.get("/api/faceset/0/thumb/0")[1]
    assert studio.get("/api/faceset/0/thumbs?ids=" + ",".join(["0"] * 601))[0] == 400


def test_occlusion_masks_from_mask_apply_are_shown(occluded_shot: Built) -> None:
    """Every face's stored masks are served, ``occlusion`` (written by ``faceplate mask apply``)
    beside the extraction's: its outlines (outer contours and holes, in frame pixels), mapped
    back into the mask's crop and filled, give the stored mask."""
    from faceplate.core.geometry import transform_points
    from faceplate.core.records import decode_mask
    from faceplate.evaluate.masks import iou

    run = Running([occluded_shot.store.parent])
    try:
        with AlignmentsStore.open(occluded_shot.store, readonly=True) as st:
            for fi in range(occluded_shot.frames):
                status, fr = run.get(f"/api/store/0/frame/{fi}")
                assert status == 200, fr
                (face,), (rec,) = fr["faces"], st.faces(fi)
                assert set(face["mask_outlines"]) == {"components", "extended", "occlusion"}
                sm = rec.masks["occlusion"]
                stored = decode_mask(sm, str(occluded_shot.store)) > 127
                assert 0 < stored.sum() < stored.size
                polys = [np.round(transform_points(np.asarray(p, np.float64), sm.affine)
                                  - 0.5).astype(np.int32)
                         for p in face["mask_outlines"]["occlusion"]]
                drawn = np.zeros(stored.shape, np.uint8)
                cv2.fillPoly(drawn, polys, 1)
                assert iou(drawn.astype(bool), stored) > 0.9, fi
                assert face["mask_outlines"]["occlusion"] != face["mask_outlines"]["extended"]
    finally:
        run.close()
