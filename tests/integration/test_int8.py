"""int8 conversion (issue 17): the int8 export, its integrity, and its quality guard on a
trained model (face PSNR, identity distance and colour ΔE of the composite within the bounds
of :mod:`faceplate.evaluate.precision`)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from faceplate.cli.main import main
from faceplate.convert.swap import ConvertConfig, make_predictor, model_id
from faceplate.core.errors import ConfigError, ModelError
from faceplate.evaluate import precision
from faceplate.io import samples
from faceplate.io.media import open_source
from faceplate.io.model_files import INT8, INT8_FACE, ONNX_FACE, model_digest, read_manifest
from faceplate.io.paths import sha256_file
from faceplate.io.store import AlignmentsStore
from faceplate.train.trainer import TrainConfig, export_int8
from tests.convert_model import TINY_ARGS, tiny_model, trained_model
from tests.train_facesets import facesets


@pytest.fixture(scope="module")
def sets(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return facesets(tmp_path_factory)


@pytest.fixture(scope="module")
def int8_tiny(tmp_path_factory: pytest.TempPathFactory, sets: tuple[Path, Path]) -> Path:
    """A copy of the tiny test model with its int8 export, made through the CLI."""
    m = tmp_path_factory.mktemp("int8") / "m"
    shutil.copytree(tiny_model(tmp_path_factory), m)
    code = main(["train", "--output", str(m), "--export-only", "--export-int8",
                 "--b", str(sets[1])])
    assert code == 0
    return m


def test_int8_export_is_recorded_verified_and_named_in_the_model_id(int8_tiny, tmp_path):
    m = tmp_path / "m"
    shutil.copytree(int8_tiny, m)
    manifest = read_manifest(m)
    entry = manifest.int8
    assert entry is not None and entry["file"] == INT8
    assert entry["sha256"] == sha256_file(m / INT8)
    assert entry["from_onnx"] == manifest.onnx["sha256"]
    assert entry["psnr_db"] >= entry["min_psnr_db"] == 40.0
    assert entry["calibration"]["faces"] > 0
    pred = make_predictor("torch", m, precision="int8")  # int8 runs on onnxruntime
    assert pred.precision == "int8" and pred.model_id == make_predictor("onnx", m).model_id
    x = np.random.default_rng(0).uniform(0, 1, (3, 64, 64, 3)).astype(np.float32)
    face, mask = pred.predict(x)
    assert face.shape == (3, 64, 64, 3) and face.dtype == np.float32
    assert face.min() >= 0.0 and face.max() <= 1.0 and mask is not None
    # the int8 file's digest is part of the model id: without it the id is the old one
    without = manifest.__class__(**{**manifest.to_dict(), "int8": None})
    assert model_digest(without) != model_digest(manifest)
    # a replaced int8 file is refused before onnxruntime reads it ...
    data = bytearray((m / INT8).read_bytes())
    data[-1] ^= 0xFF
    (m / INT8).write_bytes(bytes(data))
    with pytest.raises(ModelError, match="int8 file does not match the manifest's sha256"):
        make_predictor("torch", m, precision="int8")
    # ... and with its digest written into the manifest it is another model
    doc = json.loads((m / "manifest.json").read_text())
    doc["int8"]["sha256"] = sha256_file(m / INT8)
    (m / "manifest.json").write_text(json.dumps(doc))
    assert model_id(read_manifest(m), m) != pred.model_id
    doc["int8"]["file"] = "../model.int8.onnx"
    (m / "manifest.json").write_text(json.dumps(doc))
    with pytest.raises(ModelError, match="int8.file must be a plain file name"):
        read_manifest(m)


def test_face_only_graphs_run_without_the_mask_and_old_exports_still_load(int8_tiny, tmp_path):
    """Convert's default wants no learned mask: the ONNX and int8 predictors then run the
    face-only graphs (the mask branch pruned), which give the full graphs' faces; the files
    are verified like the others, and a manifest without them (an older export) still runs
    the full graph."""
    m = tmp_path / "m"
    shutil.copytree(int8_tiny, m)
    manifest = read_manifest(m)
    assert manifest.onnx is not None and manifest.int8 is not None
    for entry, name in ((manifest.onnx, ONNX_FACE), (manifest.int8, INT8_FACE)):
        assert entry["face_only"]["file"] == name
        assert entry["face_only"]["sha256"] == sha256_file(m / name)
    x = np.random.default_rng(1).uniform(0, 1, (2, 64, 64, 3)).astype(np.float32)
    faces = {}
    for prec, kind in (("int8", "torch"), ("fp32", "onnx")):
        pred = make_predictor(kind, m, precision=prec)
        assert pred.face_only
        alone, none = pred.predict(x, mask=False)
        both, learned = pred.predict(x, mask=True)  # loads the full graph on first use
        assert none is None and learned is not None and learned.shape == (2, 64, 64)
        np.testing.assert_allclose(alone, both, atol=1e-6, rtol=0)
        faces[prec] = alone
    ids = make_predictor("onnx", m).model_id
    # an export from before the face-only graphs: the full graph runs, the mask is dropped
    doc = json.loads((m / "manifest.json").read_text())
    old = json.loads(json.dumps(doc))
    del old["onnx"]["face_only"], old["int8"]["face_only"]
    (m / "manifest.json").write_text(json.dumps(old))
    pred = make_predictor("torch", m, precision="int8")
    assert not pred.face_only and pred.model_id != ids  # the face-only files are in the id
    face, none = pred.predict(x, mask=False)
    assert none is None
    np.testing.assert_allclose(face, faces["int8"], atol=1e-6, rtol=0)
    # the full graph, loaded by the first call that wants the mask, is verified then
    (m / "manifest.json").write_text(json.dumps(doc))
    pred = make_predictor("torch", m, precision="int8")
    good = (m / INT8).read_bytes()
    (m / INT8).write_bytes(good[:-1] + bytes([good[-1] ^ 0xFF]))
    with pytest.raises(ModelError, match="int8 file does not match"):
        pred.predict(x, mask=True)
    (m / INT8).write_bytes(good)
    # a replaced face-only file is refused before onnxruntime reads it
    data = bytearray((m / INT8_FACE).read_bytes())
    data[-1] ^= 0xFF
    (m / INT8_FACE).write_bytes(bytes(data))
    with pytest.raises(ModelError, match="face-only int8 file does not match"):
        make_predictor("torch", m, precision="int8")
    doc["onnx"]["face_only"]["file"] = "../x.onnx"
    (m / "manifest.json").write_text(json.dumps(doc))
    with pytest.raises(ModelError, match="onnx.face_only.file must be a plain file name"):
        read_manifest(m)


def test_a_new_onnx_export_drops_the_stale_int8_and_int8_needs_one(int8_tiny, tmp_path, sets):
    m = tmp_path / "m"
    shutil.copytree(int8_tiny, m)
    assert main(["train", "--output", str(m), "--export-only"]) == 0
    assert read_manifest(m).int8 is None
    with pytest.raises(ModelError, match="no int8 export.*--export-int8"):
        make_predictor("torch", m, precision="int8")
    doc = json.loads((m / "manifest.json").read_text())
    doc["onnx"] = None
    (m / "manifest.json").write_text(json.dumps(doc))
    with pytest.raises(ModelError, match="no ONNX export to quantise"):
        export_int8(m, sets[1])
    with pytest.raises(ConfigError, match="keep --export on"):
        TrainConfig(export=False, export_int8=True)
    # training with --export-int8 ends with both exports
    fresh = tmp_path / "fresh"
    assert main(["train", "--a", str(sets[0]), "--b", str(sets[1]), "--output", str(fresh),
                 *TINY_ARGS, "--export-int8"]) == 0
    made = read_manifest(fresh)
    assert made.onnx is not None and made.int8 is not None
    assert made.int8["from_onnx"] == made.onnx["sha256"]


@pytest.mark.slow
def test_int8_swap_stays_within_the_quality_bounds_on_a_trained_model(tmp_path_factory, sets):
    """The guard of issue 17 on a really trained model and the man's clip (every 12th frame):
    face PSNR against fp32 ≥ 40 dB, identity distance and skin ΔE of the composite within
    :mod:`faceplate.evaluate.precision`'s bounds."""
    m = tmp_path_factory.mktemp("int8_trained") / "m"
    shutil.copytree(trained_model(tmp_path_factory), m)
    entry = export_int8(m, sets[1])
    assert entry["psnr_db"] >= precision.PSNR_MIN_DB
    store = AlignmentsStore.open(sets[1].parent / "b.fpstore", readonly=True)

    def frames():
        with open_source(samples.path("single_face.mp4")) as src:
            for i, frame in enumerate(src):
                if i % 12 == 0:
                    yield frame.rgb, store.faces_at(src.number_of(i)) or []

    try:
        check = precision.compare_precisions(m, frames(), candidate="int8",
                                             cfg=ConvertConfig())
    finally:
        store.close()
    assert check.faces == 6
    assert check.within_bounds(), check.to_dict()
