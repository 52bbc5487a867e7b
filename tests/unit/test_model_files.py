"""The model directory format: atomic writes, manifest validation, loading without pickle."""

from __future__ import annotations

import dataclasses
import errno
import json
from pathlib import Path

import pytest
import torch

from faceplate.core.errors import ModelError, OutputError, SchemaVersionError
from faceplate.io import model_files as mf
from faceplate.models import MODELS, build_model

#: A hand-written pickle opcode stream (protocol 2, ``{"a": 1}``): what a renamed pickled
#: checkpoint starts like. Written as bytes: no pickle module is involved.
PICKLE_BYTES = b"\x80\x02}q\x00X\x01\x00\x00\x00aq\x01K\x01s."
#: The start of a torch.save zip archive (a pickled checkpoint in a zip).
ZIP_BYTES = b"PK\x03\x04" + b"\x14\x00\x00\x00\x08\x00" + bytes(64)


def tiny_model() -> torch.nn.Module:
    cfg = MODELS.config_class("original")(size=64, encoder_dim=64, dims=16)
    torch.manual_seed(3)
    return build_model("original", cfg)


def manifest_for(model) -> mf.Manifest:
    return mf.Manifest(
        architecture="original",
        model_config={k: list(v) if isinstance(v, tuple) else v
                      for k, v in dataclasses.asdict(model.cfg).items()},
        size=64, input_size=model.input_size, output_size=model.output_size, centering="face",
        coverage=1.0, learn_mask=model.learn_mask, weights={"file": mf.WEIGHTS},
        training=mf.training_stats(10, 320, 16, {"a_total": 0.5}))


@pytest.fixture()
def model_dir(tmp_path: Path) -> Path:
    model = tiny_model()
    d = tmp_path / "model"
    d.mkdir()
    mf.save_model(d, model.state_dict(), manifest_for(model))
    return d


def test_atomic_write_round_trip_and_no_temp_left(tmp_path: Path) -> None:
    p = mf.write_json_atomic(tmp_path / "x.json", {"a": [1, 2]})
    assert json.loads(p.read_text()) == {"a": [1, 2]}
    mf.write_bytes_atomic(p, b"{}")
    assert p.read_bytes() == b"{}"
    assert [q.name for q in tmp_path.iterdir()] == ["x.json"]


def test_failing_tensor_write_keeps_the_old_file(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "w.safetensors"
    old = {"w": torch.arange(6, dtype=torch.float32)}
    mf.save_tensors_atomic(path, old)
    before = path.read_bytes()

    def half_then_enospc(tensors, tmp, metadata):  # a disk that fills up mid-write
        Path(tmp).write_bytes(b"\x00" * 100)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(mf, "_save_file", half_then_enospc)
    with pytest.raises(OutputError, match="disk is full") as err:
        mf.save_tensors_atomic(path, {"w": torch.zeros(1000)})
    assert str(path) in str(err.value)
    assert path.read_bytes() == before
    assert torch.equal(mf.load_tensors(path)["w"], old["w"])
    assert [q.name for q in tmp_path.iterdir()] == ["w.safetensors"]


def test_manifest_round_trip_and_inference_load(model_dir: Path) -> None:
    man = mf.read_manifest(model_dir)
    assert man.architecture == "original" and man.color_space == "srgb"
    assert man.weights["sha256"] and man.format_version == mf.FORMAT_VERSION
    model, man2 = mf.load_inference_model(model_dir)
    assert man2 == man
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    ref = tiny_model().eval()
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        got, want = model(x, "a"), ref(x, "a")
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])


@pytest.mark.parametrize("payload", [PICKLE_BYTES, ZIP_BYTES], ids=["pickle", "torch-zip"])
def test_pickle_renamed_to_safetensors_is_refused(model_dir: Path, payload: bytes) -> None:
    w = model_dir / mf.WEIGHTS
    w.write_bytes(payload)
    with pytest.raises(ModelError, match="safetensors") as err:
        mf.load_tensors(w)
    assert str(w) in str(err.value)
    # through the manifest the sha256 already differs: refused before any parsing
    with pytest.raises(ModelError) as err2:
        mf.load_inference_model(model_dir)
    assert str(w) in str(err2.value)


def test_altered_weights_are_refused(model_dir: Path) -> None:
    w = model_dir / mf.WEIGHTS
    raw = bytearray(w.read_bytes())
    raw[-1] ^= 1
    w.write_bytes(bytes(raw))
    with pytest.raises(ModelError, match="sha256"):
        mf.load_inference_model(model_dir)


def _edit(model_dir: Path, **changes) -> Path:
    p = model_dir / mf.MANIFEST
    doc = json.loads(p.read_text())
    doc.update(changes)
    p.write_text(json.dumps(doc))
    return p


def test_newer_format_version_is_a_schema_error(model_dir: Path) -> None:
    p = _edit(model_dir, format_version=mf.FORMAT_VERSION + 1)
    with pytest.raises(SchemaVersionError, match="newer") as err:
        mf.read_manifest(model_dir)
    assert str(p) in str(err.value)


@pytest.mark.parametrize(("changes", "match"), [
    ({"format": "something-else"}, "not a Faceplate model"),
    ({"format_version": 0}, "invalid format_version"),
    ({"centering": "sideways"}, "centering"),
    ({"color_space": "acescg"}, "colour space"),
    ({"size": "big"}, "wrong type"),
    ({"weights": {"file": "../elsewhere.safetensors"}}, "plain file name"),
])
def test_invalid_manifest_fields(model_dir: Path, changes: dict, match: str) -> None:
    _edit(model_dir, **changes)
    with pytest.raises(ModelError, match=match):
        mf.read_manifest(model_dir)


def test_incompatible_model_config_and_architecture(model_dir: Path) -> None:
    doc = json.loads((model_dir / mf.MANIFEST).read_text())
    cfg = dict(doc["model_config"], future_option=3)
    _edit(model_dir, model_config=cfg)
    with pytest.raises(ModelError, match="incompatible version"):
        mf.load_inference_model(model_dir)
    _edit(model_dir, model_config=doc["model_config"], architecture="nosuchnet")
    with pytest.raises(ModelError, match="unknown model architecture"):
        mf.load_inference_model(model_dir)


def test_weights_that_do_not_fit_the_architecture(model_dir: Path) -> None:
    doc = json.loads((model_dir / mf.MANIFEST).read_text())
    _edit(model_dir, model_config=dict(doc["model_config"], dims=32))
    with pytest.raises(ModelError, match="do not fit"):
        mf.load_inference_model(model_dir)


def test_missing_pieces(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="no such folder"):
        mf.read_manifest(tmp_path / "nope")
    with pytest.raises(ModelError, match="missing"):
        mf.read_manifest(tmp_path)
    (tmp_path / mf.MANIFEST).write_text("[1, 2")
    with pytest.raises(ModelError, match="not valid JSON"):
        mf.read_manifest(tmp_path)


def test_inference_model_holds_the_file_weights_in_float32(tmp_path: Path) -> None:
    # The model is built on the meta device and takes the file's tensors: every parameter must
    # be a real CPU tensor, equal to the file's, in the layer's float32 even when the file holds
    # half precision.
    model = tiny_model()
    half = {k: v.half() for k, v in model.state_dict().items()}
    d = tmp_path / "half"
    d.mkdir()
    mf.save_model(d, half, manifest_for(model))
    loaded, _ = mf.load_inference_model(d)
    got = loaded.state_dict()
    assert set(got) == set(half)
    for k, v in got.items():
        assert v.device.type == "cpu" and not v.is_meta, k
        assert v.dtype == torch.float32, k
        assert torch.equal(v, half[k].float()), k
    x = torch.rand(1, 3, 64, 64)
    with torch.inference_mode():
        face, mask = loaded.inference("b2a")(x)
    assert torch.isfinite(face).all() and torch.isfinite(mask).all()
