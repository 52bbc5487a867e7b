"""``faceplate.convert.swap``: the per-frame swap on real frames, real faces and a real model.

Faces come from the shared store of ``single_face.mp4`` (built by ``tests.train_facesets`` with
the real extractor); the model is a tiny real ``original`` model (``tests.convert_model``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from faceplate.convert import swap as swap_mod
from faceplate.convert.blend import BLEND
from faceplate.convert.color import COLOR
from faceplate.convert.composite import face_box, paste_back
from faceplate.convert.swap import (
    ConvertConfig,
    OnnxPredictor,
    SwapContext,
    TorchPredictor,
    face_velocity,
    make_predictor,
    parse_frame_ranges,
    paste_matrix,
    select_faces,
    stored_mask_in_crop,
    swap_frame,
)
from faceplate.core.colorspace import srgb_to_linear
from faceplate.core.errors import ConfigError, InputError, ModelError
from faceplate.core.geometry import crop_matrix
from faceplate.io import samples
from faceplate.io.media import open_source
from faceplate.io.store import AlignmentsStore
from faceplate.provenance import watermark
from tests.convert_model import tiny_model, trained_model
from tests.train_facesets import facesets


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model(tmp_path_factory)


@pytest.fixture(scope="module")
def torch_pred(model_dir: Path) -> TorchPredictor:
    return TorchPredictor(model_dir)


@pytest.fixture(scope="module")
def trained_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A really trained model: its output is a face the watermark verifier finds."""
    return trained_model(tmp_path_factory)


@pytest.fixture(scope="module")
def plate(tmp_path_factory: pytest.TempPathFactory) -> tuple[np.ndarray, list, list, list]:
    """(frame 10 uint8 RGB, its faces, faces of frame 9, faces of frame 11)."""
    a, _ = facesets(tmp_path_factory)
    with AlignmentsStore.open(a.parent / "b.fpstore", readonly=True) as st:
        faces = [st.faces(i) for i in (9, 10, 11)]
    with open_source(samples.path("single_face.mp4")) as src:
        rgb = src.read(10).rgb
    assert len(faces[1]) == 1
    return rgb, faces[1], faces[0], faces[2]


def _changed(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.any(a != b, axis=2)


def _paste_box(face, pred, cfg, shape):
    m = crop_matrix(face.landmarks, pred.output_size, pred.centering, pred.coverage)
    return face_box(paste_matrix(m, pred.output_size, cfg), pred.output_size, shape, pad=4)


@pytest.mark.parametrize("blend", BLEND.names())
@pytest.mark.parametrize("color", COLOR.names())
def test_every_colour_and_blend_changes_only_the_face_box(plate, torch_pred, color, blend):
    rgb, faces, _, _ = plate
    before = rgb.copy()
    cfg = ConvertConfig(color=color, blend=blend, mask=("extended",))
    res = swap_frame(rgb, faces, torch_pred, cfg, frame_is_linear=False)
    assert np.array_equal(rgb, before), "input modified"
    assert res.frame.dtype == np.uint8 and res.frame.shape == rgb.shape
    assert res.faces_swapped == 1 and len(res.masks) == 1 and len(res.patches) == 1
    changed = _changed(res.frame, rgb)
    assert changed.sum() > 2000, "the face was not replaced"
    box = _paste_box(faces[0], torch_pred, cfg, rgb.shape)
    outside = np.ones(rgb.shape[:2], bool)
    outside[box.slices] = False
    assert not (changed & outside).any(), "pixels outside the face box changed"
    p = res.patches[0]
    assert p.face.dtype == np.float32 and p.face.shape == (64, 64, 3)
    assert p.face.min() >= 0.0 and p.face.max() <= 1.0
    assert p.mask.shape == (64, 64) and p.mask.min() >= 0.0 and p.mask.max() <= 1.0


def test_patch_face_carries_the_frame_mark(plate, torch_pred, monkeypatch):
    """The crop-space patch (what the patch writer exports) carries the mark the frame got,
    put on when the patch is first read."""
    rgb, faces, _, _ = plate
    cfg = ConvertConfig(mask=("extended",))
    marks: list[Any] = []
    real = swap_mod.mark_fitted

    def spy(*args: Any, **kwargs: Any) -> Any:
        got = real(*args, **kwargs)
        marks.append(got[0])
        return got

    monkeypatch.setattr(swap_mod, "mark_fitted", spy)
    res = swap_frame(rgb, faces, torch_pred, cfg, frame_is_linear=False)
    monkeypatch.setattr(swap_mod, "mark_fitted", _no_mark)
    plain = swap_frame(rgb, faces, torch_pred, cfg, frame_is_linear=False)
    (mark,) = marks
    p, q = res.patches[0], plain.patches[0]
    assert mark is not None and not np.array_equal(p.face, q.face)
    np.testing.assert_array_equal(p.face, watermark.mark_crop(q.face, mark, q.matrix))
    assert p.face is p.face  # marked once, then kept


def test_float_linear_frame_keeps_values_outside_0_1_exactly(plate, torch_pred):
    """Acceptance 2 (part): an EXR-like scene-linear frame with values > 1 and < 0 everywhere,
    odd size (H, W swapped would fail): every pixel outside the face's matte is bit-exact."""
    rgb, faces, _, _ = plate
    h, w = rgb.shape[0] + 1, rgb.shape[1] + 3  # 361 × 643
    rng = np.random.default_rng(7)
    frame = rng.uniform(-0.5, 4.0, (h, w, 3)).astype(np.float32)
    frame[: rgb.shape[0], : rgb.shape[1]] = srgb_to_linear(rgb.astype(np.float32) / 255.0)
    # Keep out-of-range values inside the face region too, in the hair/background corners.
    frame[::7, ::5] = np.float32(7.5)
    frame[3::11, 2::13] = np.float32(-2.25)
    before = frame.copy()
    for blend in ("overlay", "seamless"):
        cfg = ConvertConfig(blend=blend, color="rct", mask=("components",))
        res = swap_frame(frame, faces, torch_pred, cfg, frame_is_linear=True)
        assert np.array_equal(frame, before)
        out = res.frame
        assert out.dtype == np.float32 and out.shape == (h, w, 3)
        matte = res.matte()
        assert matte.shape == (h, w)
        outside = matte == 0.0
        assert np.array_equal(out[outside], frame[outside])
        assert (out[outside] > 1.0).sum() > 1000 and (out[outside] < 0.0).sum() > 1000
        inside = matte > 0.99
        assert inside.sum() > 2000
        assert not np.array_equal(out[inside], frame[inside])
        assert np.isfinite(out).all()


def test_rgba_float_raw_writes_the_matte_into_alpha(plate, torch_pred):
    rgb, faces, _, _ = plate
    frame = np.concatenate([rgb.astype(np.float32) / 255.0,
                            np.full(rgb.shape[:2] + (1,), 0.5, np.float32)], axis=2)
    res = swap_frame(frame, faces, torch_pred, ConvertConfig(blend="raw"),
                     frame_is_linear=False)
    alpha = res.frame[..., 3]
    np.testing.assert_allclose(alpha, res.matte(), atol=1e-6)
    assert alpha.max() == 1.0 and (alpha == 0).mean() > 0.8


def _no_mark(*args: object, **kwargs: object) -> tuple[watermark.Unmarked, bool]:
    return watermark.Unmarked("left out by the test"), True


@pytest.fixture
def unmarked(monkeypatch: pytest.MonkeyPatch) -> None:
    """``swap_frame`` without its watermark step, for tests that compare the swaps themselves
    (the mark is added on the final pixels and its QIM lattice choice may flip between two
    nearly equal hosts; the marks are checked separately)."""
    monkeypatch.setattr(swap_mod, "mark_fitted", _no_mark)


def _mark_of(frame: np.ndarray) -> Any:
    """The verifier's verdict on the frame's one face (watermark.detect_frame, from pixels)."""
    if frame.dtype != np.uint8:
        frame = (np.clip(frame, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    marks = watermark.detect_frame(frame)
    assert len(marks) == 1, marks
    return marks[0]


def _assert_marked(frame: np.ndarray, model_id: str) -> None:
    """The verifier finds the mark, and an id it decodes is the model's (it may fail its CRC,
    but a decoded id is never wrong)."""
    mark = _mark_of(frame)
    assert mark.detected and mark.payload in (None, watermark.payload_id(model_id)), mark


def _swap_pair(rgb, faces, pred_a, pred_b, cfg, float_b):
    """(a, b) swapped with pred_a on the uint8 frame and pred_b on it (or its float copy)."""
    a = swap_frame(rgb, faces, pred_a, cfg, frame_is_linear=False).frame
    fb = rgb.astype(np.float32) / 255.0 if float_b else rgb
    b = swap_frame(fb, faces, pred_b, cfg, frame_is_linear=False).frame
    return a, b


def test_uint8_and_float_srgb_frames_agree(plate, torch_pred, unmarked):
    rgb, faces, _, _ = plate
    cfg = ConvertConfig(color="avg-color", blend="overlay")
    a, b = _swap_pair(rgb, faces, torch_pred, torch_pred, cfg, True)
    assert np.abs(a.astype(np.float32) / 255.0 - b).max() <= 1.5 / 255.0


def test_uint8_and_float_srgb_frames_both_carry_the_mark(plate, trained_dir):
    rgb, faces, _, _ = plate
    pred = TorchPredictor(trained_dir)
    cfg = ConvertConfig(color="avg-color", blend="overlay")
    a, b = _swap_pair(rgb, faces, pred, pred, cfg, True)
    for f in (a, b):
        _assert_marked(f, pred.model_id)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(swap_mod, "mark_fitted", _no_mark)
        plain = _swap_pair(rgb, faces, pred, pred, cfg, True)
    assert not any(_mark_of(f).detected for f in plain)
    # The marks are the same size: a few 1/255 at most, never a different picture.
    assert np.abs(a.astype(np.float32) / 255.0 - b).max() <= 8.0 / 255.0


def test_torch_and_onnx_predictors_agree(plate, model_dir, torch_pred):
    rgb, faces, _, _ = plate
    onnx = make_predictor("onnx", model_dir)
    assert isinstance(onnx, OnnxPredictor)
    x = np.random.default_rng(0).uniform(0, 1, (3, 64, 64, 3)).astype(np.float32)
    ft, mt = torch_pred.predict(x)
    fo, mo = onnx.predict(x)
    assert ft.shape == fo.shape == (3, 64, 64, 3) and mt is not None and mo is not None
    assert np.abs(ft - fo).max() < 1e-4 and np.abs(mt - mo).max() < 1e-4
    cfg = ConvertConfig(mask=("learned", "extended"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(swap_mod, "mark_fitted", _no_mark)
        a, b = _swap_pair(rgb, faces, torch_pred, onnx, cfg, False)
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1
    assert onnx.model_id == torch_pred.model_id


def test_torch_and_onnx_swaps_both_carry_the_mark(plate, trained_dir):
    """With the mark: both engines' swaps verify, with the same id (the models' ids agree)."""
    rgb, faces, _, _ = plate
    pt, po = make_predictor("torch", trained_dir), make_predictor("onnx", trained_dir)
    assert pt.model_id == po.model_id
    cfg = ConvertConfig(mask=("learned", "extended"))
    for f in _swap_pair(rgb, faces, pt, po, cfg, False):
        _assert_marked(f, pt.model_id)


def test_bf16_predictor_is_close_to_fp32_and_onnx_refuses_it(model_dir, torch_pred):
    bf16 = make_predictor("torch", model_dir, precision="bf16")
    x = np.random.default_rng(3).uniform(0, 1, (2, 64, 64, 3)).astype(np.float32)
    f32, m32 = torch_pred.predict(x)
    f16, m16 = bf16.predict(x)
    assert f16.dtype == np.float32 and f16.shape == f32.shape
    # bf16 keeps 8 bits of mantissa: outputs in [0, 1] move by a few 1/256 steps at most
    assert 0 < np.abs(f16 - f32).max() < 0.05
    assert m16 is not None and m32 is not None and np.abs(m16 - m32).max() < 0.05
    with pytest.raises(ConfigError, match="bf16"):
        make_predictor("onnx", model_dir, precision="bf16")


def test_predict_without_the_mask(model_dir, torch_pred):
    # The torch predictor skips the mask branch (same faces); bf16 too; the ONNX graph computes
    # it anyway and drops it.
    x = np.random.default_rng(4).uniform(0, 1, (2, 64, 64, 3)).astype(np.float32)
    bf16 = make_predictor("torch", model_dir, precision="bf16")
    onnx = make_predictor("onnx", model_dir)
    for pred in (torch_pred, bf16, onnx):
        face, mask = pred.predict(x)
        face2, mask2 = pred.predict(x, mask=False)
        assert mask is not None and mask2 is None
        np.testing.assert_array_equal(face2, face)
    empty, none = torch_pred.predict(np.zeros((0, 64, 64, 3), np.float32), mask=False)
    assert empty.shape == (0, 64, 64, 3) and none is None


def test_frame_without_faces_passes_through(torch_pred):
    frame = np.random.default_rng(1).uniform(-1, 3, (99, 101, 3)).astype(np.float32)
    res = swap_frame(frame, [], torch_pred, ConvertConfig(), frame_is_linear=True)
    assert res.frame is frame and res.faces_swapped == 0 and res.patches == []


def test_mask_sources_and_combinations(plate, torch_pred):
    rgb, faces, _, _ = plate
    ops: dict[str, Any] = {"blur_kernel": 0.0, "threshold": 0.0}

    def area(**kw):
        cfg = ConvertConfig(**ops, **kw)
        return float(swap_frame(rgb, faces, torch_pred, cfg, frame_is_linear=False)
                     .masks[0].sum())

    full, comp, ext = area(mask=("full",)), area(mask=("components",)), area(mask=("extended",))
    assert full == 64 * 64 and 0 < comp < ext < full
    assert area(mask=("components", "full"), combine="multiply") == pytest.approx(comp)
    assert area(mask=("components", "full"), combine="max") == pytest.approx(full)
    assert area(mask=("components",), erode=5.0) < comp < area(mask=("components",), erode=-5.0)
    learned = area(mask=("learned",))
    assert 0 < learned <= full
    assert area(mask=("learned", "components")) <= min(learned, comp) + 1e-3
    with pytest.raises(InputError, match="no stored 'bisenet' mask"):
        area(mask=("bisenet",))


def test_stored_mask_maps_into_the_crop(plate):
    rgb, faces, _, _ = plate
    rec = faces[0]
    m = crop_matrix(rec.landmarks, 128, "face")  # the store's own mask geometry, at 128 px
    ours = stored_mask_in_crop(rec, "components", m, 128)
    from faceplate.core.records import decode_mask

    theirs = decode_mask(rec.masks["components"]).astype(np.float32) / 255.0
    assert np.abs(ours - theirs).mean() < 0.01


def test_face_scale_and_offset_move_the_paste(plate, torch_pred):
    rgb, faces, _, _ = plate

    def centroid_and_area(**kw):
        cfg = ConvertConfig(mask=("full",), **kw)
        res = swap_frame(rgb, faces, torch_pred, cfg, frame_is_linear=False)
        ys, xs = np.nonzero(res.matte() > 0.5)
        return np.array([xs.mean(), ys.mean()]), len(xs)

    c0, a0 = centroid_and_area()
    c1, _ = centroid_and_area(face_x=20.0)
    c2, _ = centroid_and_area(face_y=-20.0)
    _, a3 = centroid_and_area(face_scale=20.0)
    assert c1[0] - c0[0] > 10 and abs(c1[1] - c0[1]) < 0.3 * (c1[0] - c0[0])
    assert c0[1] - c2[1] > 10
    assert a3 / a0 == pytest.approx(1.44, rel=0.08)


def test_face_selection(plate, tmp_path):
    rgb, faces, _, _ = plate
    (rec,) = faces
    small = rec.__class__(**{**rec.__dict__, "face_index": 1,
                             "bbox": rec.bbox.__class__(0, 0, 10, 10),
                             "landmarks": rec.landmarks * 0.2})
    both = [rec, small]
    assert select_faces(rgb, both, ConvertConfig()) == both
    assert select_faces(rgb, both, ConvertConfig(select="largest")) == [rec]
    assert select_faces(rgb, both, ConvertConfig(select="index", face_index=1)) == [small]
    assert select_faces(rgb, both, ConvertConfig(select="index", face_index=5)) == []
    # Reference identity: a frame of the same man is a match, Obama is not.
    same = tmp_path / "same.png"
    with open_source(samples.path("single_face.mp4")) as src:
        cv2.imwrite(str(same), src.read(40).rgb[..., ::-1])
    for ref, want in ((same, [rec]), (samples.path("obama.jpg"), [])):
        cfg = ConvertConfig(select="reference", reference=(str(ref),))
        ctx = SwapContext.create(cfg)
        assert select_faces(rgb, [rec], cfg, ctx) == want


def test_motion_velocity_from_neighbouring_frames(plate):
    rgb, faces, prev, nxt = plate
    rec = faces[0]
    shifted = [rec.__class__(**{**rec.__dict__, "landmarks": rec.landmarks + [6.0, -2.0]})]
    before = [rec.__class__(**{**rec.__dict__, "landmarks": rec.landmarks - [6.0, -2.0]})]
    ctx = SwapContext.create(ConvertConfig())
    assert np.allclose(face_velocity(rec, ctx), 0.0)
    ctx.next_faces = shifted
    assert np.allclose(face_velocity(rec, ctx), [6.0, -2.0], atol=1e-4)
    ctx.prev_faces = before
    assert np.allclose(face_velocity(rec, ctx), [6.0, -2.0], atol=1e-4)
    ctx.prev_faces, ctx.next_faces = prev, nxt  # the real clip: a talking head, small motion
    assert np.linalg.norm(face_velocity(rec, ctx)) < 10.0


def test_motion_blur_softens_a_moving_face(plate, torch_pred):
    rgb, faces, _, _ = plate
    rec = faces[0]
    cfg = ConvertConfig(motion_blur=1.0, color="none", mask=("full",))
    ctx = SwapContext.create(cfg)
    still = swap_frame(rgb, faces, torch_pred, cfg, frame_is_linear=False, context=ctx)
    ctx.next_faces = [rec.__class__(**{**rec.__dict__, "landmarks": rec.landmarks + [25.0, 0]})]
    moving = swap_frame(rgb, faces, torch_pred, cfg, frame_is_linear=False, context=ctx)

    def hgrad(face):
        return float(np.abs(np.diff(face, axis=1)).mean())

    assert hgrad(moving.patches[0].face) < 0.8 * hgrad(still.patches[0].face)
    assert set(ctx.times) >= {"select", "crop", "predict", "color", "mask", "post", "paste"}


def test_config_validation():
    assert parse_frame_ranges(["10-50", "7"]) == [(10, 50), (7, 7)]
    for bad in (["a-b"], ["5-2"], ["1-2-3"], ["-3"]):
        with pytest.raises(ConfigError):
            ConvertConfig(frame_ranges=tuple(bad))
    cfg = ConvertConfig(frame_ranges=("2-3", "8"))
    assert [i for i in range(10) if cfg.in_ranges(i)] == [2, 3, 8]
    with pytest.raises(ConfigError):
        ConvertConfig(color="nope")
    with pytest.raises(ConfigError):
        ConvertConfig(select="reference")
    with pytest.raises(ConfigError):
        ConvertConfig(mask=())
    assert ConvertConfig(erode=3.0).mask_ops().erode == 3.0
    assert ConvertConfig(sharpen="box").post().sharpen == "box"


def test_missing_or_incompatible_model(tmp_path, model_dir):
    with pytest.raises(ModelError):
        make_predictor("torch", tmp_path / "nope")
    import shutil

    bad = tmp_path / "m"
    shutil.copytree(model_dir, bad)
    (bad / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(ModelError):
        make_predictor("torch", bad)
    (bad / "model.onnx").unlink()
    with pytest.raises(ModelError, match="ONNX"):
        make_predictor("onnx", bad)


def test_bad_frames_are_rejected(torch_pred):
    with pytest.raises(ValueError):
        swap_frame(np.zeros((10, 10), np.float32), [], torch_pred, ConvertConfig(),
                   frame_is_linear=False)
    with pytest.raises(ValueError):
        swap_frame(np.zeros((10, 10, 3), np.uint8), [], torch_pred, ConvertConfig(),
                   frame_is_linear=True)


def test_onnx_export_is_verified_and_named_in_the_model_id(tmp_path, model_dir):
    """Issue 16, point 2: the ONNX file is checked against the manifest's sha256 before it
    runs, its file name is sanitised like the weights', and the model id covers both files,
    so a replaced model.onnx is never attributed to the model it replaced."""
    import json
    import shutil

    from faceplate.convert.swap import model_id
    from faceplate.io.model_files import read_manifest

    m = tmp_path / "m"
    shutil.copytree(model_dir, m)
    torch_id = make_predictor("torch", m).model_id
    assert make_predictor("onnx", m).model_id == torch_id  # one model, one id, either engine
    manifest = json.loads((m / "manifest.json").read_text())
    assert manifest["onnx"]["sha256"]
    # a different ONNX graph (here: the file altered by one byte) is refused
    data = bytearray((m / "model.onnx").read_bytes())
    data[-1] ^= 0xFF
    (m / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(ModelError, match="does not match the manifest's sha256"):
        make_predictor("onnx", m)
    # ... and, with its digest written into the manifest, it is another model
    from faceplate.io.paths import sha256_file

    manifest["onnx"]["sha256"] = sha256_file(m / "model.onnx")
    (m / "manifest.json").write_text(json.dumps(manifest))
    assert model_id(read_manifest(m), m) != torch_id
    # a manifest naming a file outside the model folder is refused
    for bad in ("../model.onnx", "/etc/passwd", ".hidden.onnx"):
        manifest["onnx"]["file"] = bad
        (m / "manifest.json").write_text(json.dumps(manifest))
        with pytest.raises(ModelError, match="onnx.file must be a plain file name"):
            read_manifest(m)
    manifest["onnx"]["file"] = "model.onnx"
    manifest["onnx"].pop("sha256")
    (m / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match="no sha256"):
        make_predictor("onnx", m)


@pytest.mark.parametrize("frame_dtype", [np.uint8, np.float32])
@pytest.mark.parametrize("where", ["inside", "edge"])
def test_paste_box_equals_paste_back_on_the_whole_frame(frame_dtype: Any, where: str) -> None:
    """``swap_frame``'s paste converts only the box the mask's non-zero part reaches; the frame
    it gives equals ``paste_back`` run on the whole frame in float (the reference), bit for
    bit, for a mask eroded from below and to one side, in a 203×149 frame, with the face
    inside it or cut by its edge; a mask of zeros pastes nothing."""
    rng = np.random.default_rng(7)
    h, w, s = 149, 203, 64
    frame = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    if frame_dtype == np.float32:
        frame = frame.astype(np.float32) / np.float32(255.0)
    face = rng.random((s, s, 3), dtype=np.float32)
    mask = np.zeros((s, s), np.float32)
    mask[6:40, 10:58] = 1.0
    mask = cv2.GaussianBlur(mask, (0, 0), 3.0)
    mask[mask < 0.02] = 0.0
    ang, k = 0.3, 0.55  # frame → crop: rotated, scaled
    c, si = k * np.cos(ang), k * np.sin(ang)
    tx, ty = (-20.0, -30.0) if where == "inside" else (10.0, 40.0)
    matrix = np.array([[c, -si, tx], [si, c, ty]])
    if where == "edge":
        matrix[:, 2] -= matrix[:, :2] @ np.array([150.0, 0.0])
    cfg = ConvertConfig()
    blender = BLEND.create("overlay")
    out = frame.copy()
    placed = swap_mod._paste_box(out, face, mask, matrix, cfg, blender, False, None)
    assert placed is not None
    ref = paste_back(frame.astype(np.float32) / (np.float32(255.0) if frame.dtype == np.uint8
                                                 else np.float32(1.0)),
                     face, mask, matrix, blend=blender, interpolation=cfg.interpolation)
    if frame.dtype == np.uint8:
        ref = swap_mod._to_u8(ref)
    assert np.array_equal(out, ref)
    assert not np.array_equal(out, frame)
    empty = frame.copy()
    assert swap_mod._paste_box(empty, face, np.zeros_like(mask), matrix, cfg, blender, False,
                               None) is None
    assert np.array_equal(empty, frame)
