"""Faceplate Swap's Python render (what the worker runs) with a real trained model.

The node must equal the converter's ``swap_frame`` on the same float frame, keep every pixel
outside the faces' mattes bit for bit (values above 1 and below 0 included), fail soft on a bad
model path, read faces from the alignments store at its own frame (Analyze Sequence), and honour
its output modes.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np
import pytest

from faceplate.convert.swap import ConvertConfig, make_predictor, swap_frame
from faceplate.core.colorspace import srgb_to_linear
from faceplate.io import samples
from faceplate.io.store import AlignmentsStore
from faceplate.ofx.effects import SWAP_ID
from faceplate.ofx.render import _detect, render, render_into
from tests.convert_model import tiny_model


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model(tmp_path_factory)


@pytest.fixture(scope="module")
def plate() -> np.ndarray:
    """obama.jpg as H×W×4 float32 scene-linear RGBA with HDR values in one corner."""
    bgr = cv2.imread(str(samples.path("obama.jpg")), cv2.IMREAD_COLOR)
    lin = srgb_to_linear(bgr[..., ::-1].astype(np.float32) / np.float32(255.0))
    rgba = np.concatenate([lin, np.ones(lin.shape[:2] + (1,), np.float32)], axis=2)
    rgba[:8, :8, :3] = 7.5
    rgba[-8:, -8:, :3] = -0.25
    return np.ascontiguousarray(rgba, dtype=np.float32)


def test_swap_equals_the_converter(plate, model_dir):
    res = render(SWAP_ID, plate, {"model": str(model_dir), "color": "rct"})
    assert res.status == "" and res.faces == 1
    faces = _detect(plate, "chain", "dlib68", ("extended",))
    want = swap_frame(plate, faces, make_predictor("torch", model_dir),
                      ConvertConfig(color="rct"), frame_is_linear=True)
    np.testing.assert_allclose(res.image, want.frame, atol=1e-6)
    changed = np.abs(res.image - plate).max(axis=2) > 0
    assert changed.mean() > 0.01  # the face was replaced
    matte = want.matte()
    np.testing.assert_array_equal(res.image[matte == 0], plate[matte == 0])
    assert (res.image[:8, :8, :3] == 7.5).all() and (res.image[-8:, -8:, :3] == -0.25).all()


def test_model_file_path_and_bad_model(plate, model_dir, tmp_path):
    via_file = render(SWAP_ID, plate, {"model": str(model_dir / "manifest.json")})
    assert via_file.faces == 1
    bad = render(SWAP_ID, plate, {"model": str(tmp_path / "nope")})
    assert bad.status.startswith("model:") and bad.faces == 0
    np.testing.assert_array_equal(bad.image, plate)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "manifest.json").write_text("{not json", encoding="utf-8")
    broken = render(SWAP_ID, plate, {"model": str(tmp_path / "broken")})
    assert broken.status.startswith("model:") and "manifest" in broken.status
    np.testing.assert_array_equal(broken.image, plate)


def test_output_modes(plate, model_dir):
    base = {"model": str(model_dir)}
    comp = render(SWAP_ID, plate, base).image
    only = render(SWAP_ID, plate, {**base, "output": "mask_only"}).image
    assert np.array_equal(only[..., 0], only[..., 3]) and 0 < only[..., 3].mean() < 0.5
    fm = render(SWAP_ID, plate, {**base, "output": "face_matte"}).image
    np.testing.assert_allclose(fm[..., 3], only[..., 3], atol=1e-6)
    inside = only[..., 3] == 1.0
    np.testing.assert_allclose(fm[inside][:, :3], comp[inside][:, :3], atol=1e-5)
    marks = render(SWAP_ID, plate, {"output": "landmarks"})  # no model needed to check tracks
    green = (marks.image[..., 1] > 0.99) & (marks.image[..., 0] < 0.01)
    assert marks.faces == 1 and green.sum() > 68


def test_analyze_then_render_reads_the_store_at_its_time(plate, model_dir, tmp_path):
    store = tmp_path / "shot.fpstore"
    params = {"model": str(model_dir), "alignments": str(store)}
    out = np.empty_like(plate)
    for t in (3.0, 4.0, 5.0):
        status, n = render_into(SWAP_ID, plate, params, out, time=t, action="analyze")
        assert (status, n) == ("", 1)
        np.testing.assert_array_equal(out, plate)
    render_into(SWAP_ID, plate, params, out, time=0.0, action="analyze_end")
    with AlignmentsStore.open(store, readonly=True) as st:
        # the host's frames are the store's frame numbers (positions follow analysis order)
        assert sorted(f.frame_number for f in st.frames()) == [3, 4, 5]
        # Move frame 4's face: a render at t=4 must follow the store, not detect again.
        faces4 = st.faces_at(4)
        assert faces4
        rec = faces4[0]
    with AlignmentsStore.open(store) as st:
        st.update_face(dataclasses.replace(rec, landmarks=rec.landmarks + np.array([40.0, 0.0])))
    full = {**params, "mask": "full"}  # a matte that follows the crop, not the stored mask
    at4 = render(SWAP_ID, plate, full, time=4.0)
    at5 = render(SWAP_ID, plate, full, time=5.0)
    assert at4.status == "" and at5.status == ""
    c4 = np.argwhere(np.abs(at4.image - plate).max(axis=2) > 0).mean(axis=0)
    c5 = np.argwhere(np.abs(at5.image - plate).max(axis=2) > 0).mean(axis=0)
    assert c4[1] - c5[1] > 20  # x moved with the stored landmarks
    # A frame that was not analysed falls back to detection and says so.
    at9 = render(SWAP_ID, plate, params, time=9.0)
    assert at9.faces == 1 and "not in the alignments store" in at9.status
    render_into(SWAP_ID, plate, params, out, action="clear")
    assert not store.exists()


def test_frame_without_face_passes_through(model_dir):
    rng = np.random.default_rng(5)
    frame = (rng.random((101, 99, 4), dtype=np.float32) * 0.3).astype(np.float32)
    res = render(SWAP_ID, frame, {"model": str(model_dir)})
    assert res.faces == 0 and res.status == "no face found"
    np.testing.assert_array_equal(res.image, frame)
