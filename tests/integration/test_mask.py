"""``faceplate mask``: the learned occlusion mask on the woman's clip (issue 15).

The model is ``tests.occlusion_model``'s (30 labelled faces: 23 real hand labels and 7 landmark
hulls, trained once and cached); the test faces are 30 others of the clip with occluders from
other media (exact labels).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from faceplate.evaluate.masks import iou
from faceplate.extract.mask.occlusion import OcclusionPredictor
from faceplate.io.store import AlignmentsStore
from tests import occlusion_model as om

FACEPLATE = [sys.executable, "-m", "faceplate.cli.main"]
#: How far above the landmark hull's IoU the model's must be on the occluded test faces.
MARGIN = 0.05


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    return om.labelled_faceset(tmp_path_factory)


@pytest.fixture(scope="module")
def mask_model(tmp_path_factory):
    return om.trained_mask_model(tmp_path_factory)


def _ious(folder: Path, model: Path) -> tuple[float, float]:
    faces, truth, hull, _ = om.occluded_test_set(folder)
    pred = OcclusionPredictor(model).predict(faces) > 0.5
    return (float(np.mean([iou(p, t) for p, t in zip(pred, truth)])),
            float(np.mean([iou(h, t) for h, t in zip(hull, truth)])))


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_mask_excludes_occluders_it_never_saw(labelled, mask_model):
    """A model trained on 30 labelled faces cuts unseen occluders out of 30 other faces of the
    clip: its IoU is well above the landmark hull's (the IoU of a mask that ignores them)."""
    model_iou, hull_iou = _ious(labelled[0], mask_model)
    assert hull_iou < 0.82, hull_iou      # the occluders matter: a hull-like mask fails below
    assert model_iou >= hull_iou + MARGIN, (model_iou, hull_iou)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_iou_reaches_0_90_on_unseen_occluders(labelled, mask_model):
    """Issue 15's target: IoU ≥ 0.90 on the 30 faces with unseen occluders."""
    model_iou, hull_iou = _ious(labelled[0], mask_model)
    assert model_iou >= 0.90, (model_iou, hull_iou)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_eval_reports_model_beside_hull_on_real_hands(labelled, mask_model, tmp_path, capsys):
    """``faceplate mask eval`` on the labelled faces: JSON with the occlusion mask's IoU beside
    the hull's, over all faces and the occluded ones (these are the faces it was trained on:
    the cached model was trained on another copy of the store, so every face is evaluated;
    the demo's run measures faces held out of training)."""
    from faceplate.cli.main import main

    folder, _ = labelled
    report = tmp_path / "eval.json"
    assert main(["mask", "eval", str(mask_model), "--faces", str(folder), "--include-trained",
                 "--json", str(report)]) == 0
    doc = json.loads(report.read_text())
    assert doc["faces"] == 30 and doc["size"] == om.SIZE
    occ = doc["occluded"]
    assert occ["faces"] >= 15          # her hand covers ≥ 5 % of the face in most hand frames
    assert occ["occlusion"]["iou"]["mean"] > occ["hull"]["iou"]["mean"]
    assert "IoU" in capsys.readouterr().out


def _occlusion_masks(store: Path) -> dict[tuple[int, int], np.ndarray]:
    from faceplate.core.records import decode_mask

    out = {}
    with AlignmentsStore.open(store, readonly=True) as st:
        for _info, faces in st.iter_frames():
            for r in faces:
                m = r.masks.get("occlusion")
                if m is not None:
                    out[(r.frame_index, r.face_index)] = decode_mask(m)
    return out


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_apply_sigkill_then_resume_gives_the_same_masks(labelled, mask_model, tmp_path):
    """``faceplate mask apply`` killed halfway resumes where it stopped and ends with the masks
    of an uninterrupted run; every face gets one, with the model's crop and matrix."""
    folder, store = labelled
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    ref = tmp_path / "ref.fpstore"
    shutil.copyfile(store, ref)
    subprocess.run([*FACEPLATE, "mask", "apply", str(mask_model), "--alignments", str(ref)],
                   check=True, env=env, capture_output=True)
    run = tmp_path / "run.fpstore"
    shutil.copyfile(store, run)
    cmd = [*FACEPLATE, "mask", "apply", str(mask_model), "--alignments", str(run)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline, nxt = time.time() + 240, 0
    while time.time() < deadline and proc.poll() is None:
        try:
            con = sqlite3.connect(f"file:{run}?mode=ro", uri=True, timeout=1)
            row = con.execute("SELECT value FROM meta WHERE key='occlusion_apply'").fetchone()
            con.close()
            nxt = json.loads(row[0]).get("next_frame", 0) if row else 0
        except (sqlite3.Error, ValueError):
            nxt = 0
        if nxt > 0:
            break
        time.sleep(0.01)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = _occlusion_masks(run)
    assert 0 < len(partial) < 118
    second = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    assert "resuming:" in second.stdout
    want, got = _occlusion_masks(ref), _occlusion_masks(run)
    assert len(want) == 118 and sorted(want) == sorted(got)
    for key in want:
        np.testing.assert_array_equal(want[key], got[key])
    with AlignmentsStore.open(run, readonly=True) as st:
        rec = next(f for _i, faces in st.iter_frames() for f in faces)
        sm = rec.masks["occlusion"]
        assert sm.size == om.SIZE and sm.centering == "face"
        np.testing.assert_allclose(sm.affine, OcclusionPredictor(mask_model).crop_matrix(
            rec.landmarks), atol=1e-6)


def test_bad_labels_are_reported_not_imported_or_trained_on(tmp_path, tmp_path_factory):
    """Empty, all-white and wrong-size mask images are reported by ``import-labels``; a bad
    label already in the store is reported by the trainer and not trained on."""
    import dataclasses

    from faceplate.cli.main import main
    from faceplate.core.errors import InputError
    from faceplate.extract.mask.labels import mask_to_labels
    from faceplate.io.faceset import read_face_meta
    from faceplate.io.store import FaceChange
    from faceplate.train.occlusion_data import LabelledFaces, MaskDataConfig
    from tests.train_facesets import facesets

    a, _ = facesets(tmp_path_factory)
    faces = tmp_path / "a"
    faces.mkdir()
    names = sorted(p.name for p in a.glob("*.png"))[:5]
    for n in names:
        shutil.copyfile(a / n, faces / n)
    store = tmp_path / "a.fpstore"
    shutil.copyfile(a.parent / "a.fpstore", store)
    masks = tmp_path / "masks"
    masks.mkdir()
    s = read_face_meta(faces / names[0]).size
    good = np.zeros((s, s), np.uint8)
    cv2.circle(good, (s // 2, s // 2), s // 3, 255, -1)
    stems = [Path(n).stem for n in names]
    cv2.imwrite(str(masks / f"{stems[0]}.png"), good)
    cv2.imwrite(str(masks / f"{stems[1]}.png"), np.zeros((s, s), np.uint8))            # empty
    cv2.imwrite(str(masks / f"{stems[2]}.png"), np.full((s, s), 255, np.uint8))        # white
    cv2.imwrite(str(masks / f"{stems[3]}.png"), cv2.resize(good, (s, s // 2)))         # size
    cv2.imwrite(str(masks / "nobody.png"), good)
    (masks / f"{stems[4]}.png").write_bytes(b"not a png")
    out = subprocess.run([*FACEPLATE, "mask", "import-labels", str(faces), str(masks)],
                         capture_output=True, text=True, check=True)
    assert "1 faces labelled, 5 mask image(s) skipped" in out.stdout
    err = out.stderr
    for stem, why in ((stems[1], "empty"), (stems[2], "all white"), (stems[3], "wrong size"),
                      ("nobody", "no face PNG"), (stems[4], "not an image")):
        assert any(stem in line and why in line for line in err.splitlines()), (stem, err)
    with AlignmentsStore.open(store, readonly=True) as st:
        assert st.labelled_count() == 1
    # a bad label that reached the store another way (all white): reported, not trained on
    meta = read_face_meta(faces / names[1])
    with AlignmentsStore.open(store) as st:
        before = st.face_state(meta.record.frame_index, meta.record.face_index)
        white = mask_to_labels(np.full((s, s), 255, np.uint8), meta.matrix, meta.centering)
        st.edit("white", [FaceChange(meta.record.frame_index, meta.record.face_index, before,
                                     dataclasses.replace(before, labels=white))])
    data = LabelledFaces([faces], MaskDataConfig(), 64)
    assert len(data) == 1
    assert any(p.name == names[1] and "all white" in why for p, why in data.skipped)
    only_white = tmp_path / "white"
    only_white.mkdir()
    shutil.copyfile(faces / names[1], only_white / names[1])
    with pytest.raises(InputError, match="no usable labelled face.*all white"):
        LabelledFaces([only_white], MaskDataConfig(), 64)
    assert main(["mask", "train", "--faces", str(only_white), "--output",
                 str(tmp_path / "m")]) != 0
    assert not (tmp_path / "m" / "manifest.json").exists()


def test_prefetched_batches_are_the_same(labelled):
    """The trainer's batches made ahead on a worker thread are the ones made in line, from the
    first batch and from a resumed one."""
    import torch

    from faceplate.train.occlusion_data import LabelledFaces, MaskDataConfig, MaskLoader

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cfg = MaskDataConfig(**om.DATA_OPTIONS)
        faces = LabelledFaces([labelled[0]], cfg, 64)
        for start in (0, 5):
            plain = MaskLoader(faces, 4, cfg, seed=3, start=start)
            ahead = MaskLoader(faces, 4, cfg, seed=3, start=start, prefetch=True)
            try:
                for _ in range(3):
                    a, b = next(plain), next(ahead)
                    assert torch.equal(a.face, b.face) and torch.equal(a.label, b.label)
                assert ahead.k == start + 3
            finally:
                ahead.close()
    finally:
        torch.set_num_threads(threads)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_extract_and_convert_use_the_occlusion_mask(mask_model, tmp_path, tmp_path_factory,
                                                    capsys):
    """``extract --masks occlusion:MODEL_DIR`` stores it; ``convert --mask occlusion`` uses the
    stored one (the frames differ from the landmark hull's alone) and predicts it on the fly
    where a face lacks it (``--mask-model``), with nearly the same frames."""
    from faceplate.cli.main import main
    from tests.convert_model import sample_clip, tiny_model

    clip = tmp_path / "clip.mp4"
    sample_clip(clip, 3, audio=False)
    store = tmp_path / "clip.fpstore"
    assert main(["extract", str(clip), "-o", str(tmp_path / "faces"), "--alignments",
                 str(store), "--size", "128", "--masks", "extended",
                 f"occlusion:{mask_model}"]) == 0
    with AlignmentsStore.open(store, readonly=True) as st:
        recs = [f for _i, faces in st.iter_frames() for f in faces]
    assert len(recs) == 3
    for r in recs:
        sm = r.masks["occlusion"]
        assert sm.size == om.SIZE and sm.centering == "face"
    swap = tiny_model(tmp_path_factory)
    capsys.readouterr()
    for extra in ([], ["--mask-model", str(mask_model)]):
        out = tmp_path / f"out{len(extra)}"
        args = ["convert", "--model", str(swap), "--input", str(clip), "--output", str(out),
                "--format", "png8", "--mask", "extended", "occlusion", "--mask-combine", "min"]
        if extra:   # a store without occlusion masks: predicted on the fly
            bare = tmp_path / "bare.fpstore"
            assert main(["extract", str(clip), "-o", str(tmp_path / "bare"), "--alignments",
                         str(bare), "--size", "128", "--masks", "extended"]) == 0
            args += ["--alignments", str(bare)]
        else:
            args += ["--alignments", str(store)]
        code = main(args + extra)
        assert code == 0, capsys.readouterr().err
        assert len(list(out.glob("*.png"))) == 3
    # the occlusion mask changes what is pasted: not the landmark hull's convert
    hull_only = tmp_path / "hull_only"
    assert main(["convert", "--model", str(swap), "--input", str(clip), "--output",
                 str(hull_only), "--format", "png8", "--mask", "extended", "--alignments",
                 str(store)]) == 0, capsys.readouterr().err
    for a in sorted((tmp_path / "out0").glob("*.png")):
        occ = cv2.imread(str(a)).astype(np.int16)
        assert not np.array_equal(occ, cv2.imread(str(hull_only / a.name)).astype(np.int16)), \
            a.name
        live = cv2.imread(str(tmp_path / "out2" / a.name)).astype(np.int16)
        assert np.abs(occ - live).mean() < 1.0, a.name   # stored ≈ predicted on the fly


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_natron_mask_node_gives_the_occlusion_matte(mask_model):
    """Faceplate Mask with the ``occlusion`` source and a Mask model: her hand (frame 100) is
    cut out of the face's matte; without the model it says why and passes an empty matte."""
    from faceplate.core.colorspace import srgb_to_linear
    from faceplate.io import samples
    from faceplate.io.media import open_source
    from faceplate.ofx.render import render_mask

    with open_source(samples.path("WolfgangLanger_Pexels.mp4")) as src:
        rgb = src.read(100).rgb
    frame = np.concatenate([srgb_to_linear(rgb.astype(np.float32) / 255.0),
                            np.ones(rgb.shape[:2] + (1,), np.float32)], axis=2)
    hull = render_mask(frame, {"mask": "extended", "output": "matte"})[..., 0] > 0.5
    occ = render_mask(frame, {"mask": "occlusion", "mask_model": str(mask_model),
                              "output": "matte"})[..., 0] > 0.5
    assert hull.sum() > 1000
    inside = (occ & hull).sum() / hull.sum()
    assert 0.5 < inside < 0.97, inside      # most of the face, less her hand
    from faceplate.ofx.render import _SESSION, _render_mask

    res = _render_mask(frame, {"mask": "occlusion", "mask_model": ""}, _SESSION)
    assert "Mask model" in res.status or "mask model" in res.status
    assert not res.image[..., 3].any()


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_apply_to_facesets_then_train_with_the_occlusion_mask(mask_model, tmp_path,
                                                              tmp_path_factory, capsys):
    """``mask apply --faces`` gives the face PNGs the mask too, and ``faceplate train --mask
    occlusion`` trains on it (masked training and the mask loss)."""
    from faceplate.cli.main import main
    from faceplate.io.faceset import read_face_meta
    from tests.convert_model import TINY_ARGS
    from tests.train_facesets import facesets

    sides = []
    for src in facesets(tmp_path_factory):
        folder = tmp_path / src.name
        shutil.copytree(src, folder)
        store = tmp_path / f"{src.name}.fpstore"
        shutil.copyfile(src.parent / f"{src.name}.fpstore", store)
        assert main(["mask", "apply", str(mask_model), "--alignments", str(store), "--faces",
                     str(folder)]) == 0, capsys.readouterr().err
        pngs = sorted(folder.glob("*.png"))
        assert all("occlusion" in read_face_meta(p).record.masks for p in pngs)
        sides.append(folder)
    out = tmp_path / "model"
    code = main(["train", "--a", str(sides[0]), "--b", str(sides[1]), "--output", str(out),
                 "--mask", "occlusion", *TINY_ARGS])
    assert code == 0, capsys.readouterr().err
    assert (out / "manifest.json").is_file()
