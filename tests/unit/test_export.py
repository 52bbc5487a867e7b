"""ONNX export (checked with onnxruntime) and safetensors round trips of every swap model.

Tolerance: the exported graph must match torch within ``TOL`` = 1e-4 (max abs difference on
[0, 1] outputs); on CPU the measured difference is ~1e-6.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from safetensors.torch import load_file, save_file

from faceplate.core.errors import ModelError, OutputError
from faceplate.io.model_files import ONNX_INPUT, ONNX_OUTPUTS
from faceplate.models import MODELS
from faceplate.train.export import check_onnx, export_onnx, onnx_session
from tests.contract.test_models import faces, make

TOL = 1e-4


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _run(path: Path, x: torch.Tensor) -> list[np.ndarray]:
    return list(onnx_session(path).run(None, {ONNX_INPUT: x.numpy()}))


@pytest.mark.parametrize("name", MODELS.names())
def test_export_matches_torch_with_dynamic_batch(name: str, tmp_path: Path) -> None:
    model = make(name, size=64)
    model.train()
    path = export_onnx(model, tmp_path / f"{name}.onnx")
    assert model.training  # export restored the mode
    graph = onnx.load(str(path)).graph
    assert [i.name for i in graph.input] == [ONNX_INPUT]
    assert tuple(o.name for o in graph.output) == ONNX_OUTPUTS
    diff = check_onnx(model, path, tol=TOL)
    assert 0.0 <= diff <= TOL
    model.eval()
    for n in (1, 5):  # the export example had batch 2
        x = faces(n, 64, seed=n)
        face, mask = _run(path, x)
        with torch.no_grad():
            ref_face, ref_mask = model(x, "a")
        assert ref_mask is not None
        assert face.shape == (n, 3, 64, 64) and mask.shape == (n, 1, 64, 64)
        np.testing.assert_allclose(face, ref_face.numpy(), atol=TOL, rtol=0)
        np.testing.assert_allclose(mask, ref_mask.numpy(), atol=TOL, rtol=0)


@pytest.mark.parametrize(
    ("name", "flags"),
    [("liae", ("likeness_u", "double_res_d", "deeper_t")), ("df", ("double_res_d",))],
)
def test_export_variants_a2b_and_no_mask(
    name: str, flags: tuple[str, ...], tmp_path: Path
) -> None:
    model = make(name, flags, size=64, learn_mask=False).eval()
    path = export_onnx(model, tmp_path / "m.onnx", direction="a2b")
    assert check_onnx(model, path, tol=TOL, direction="a2b") <= TOL
    x = faces(3, 64, seed=20)
    face, mask = _run(path, x)
    with torch.no_grad():
        ref, none = model(x, "b")
    assert none is None
    np.testing.assert_allclose(face, ref.numpy(), atol=TOL, rtol=0)
    assert np.array_equal(mask, np.ones((3, 1, 64, 64), np.float32))


def test_torchscript_exporter_also_matches(tmp_path: Path) -> None:
    model = make("liae", ("deeper_t",), size=64)
    path = export_onnx(model, tmp_path / "ts.onnx", exporter="torchscript")
    assert check_onnx(model, path, tol=TOL, batch=4) <= TOL


def test_check_onnx_catches_a_mismatch(tmp_path: Path) -> None:
    model = make("df", size=64)
    path = export_onnx(model, tmp_path / "df.onnx")
    with torch.no_grad():
        model.decoder_a.face[-1].conv.bias.add_(0.5)  # type: ignore[index,union-attr]
    with pytest.raises(ModelError, match="differs from torch"):
        check_onnx(model, path, tol=TOL)
    with pytest.raises(ModelError, match="differs"):
        check_onnx(make("df", size=64, seed=1), path, tol=TOL, direction="a2b")


def test_export_errors_name_the_file(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_bytes(b"x")
    with pytest.raises(OutputError, match="file"):
        export_onnx(make("original", size=64), blocker / "sub" / "m.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx")
    with pytest.raises(ModelError, match="bad.onnx"):
        check_onnx(make("original", size=64), bad)


@pytest.mark.parametrize("name", MODELS.names())
def test_safetensors_round_trip(name: str, tmp_path: Path) -> None:
    model = make(name, ("likeness_u",) if name != "original" else (), size=64, seed=0).eval()
    save_file(model.state_dict(), str(tmp_path / "w.safetensors"))
    other = make(name, ("likeness_u",) if name != "original" else (), size=64, seed=99).eval()
    x = faces(2, 64, seed=30)
    with torch.no_grad():
        want = model(x, "a")[0], model(x, "b")[0]
        assert not torch.equal(other(x, "a")[0], want[0])  # different init: the load matters
        other.load_state_dict(load_file(str(tmp_path / "w.safetensors")), strict=True)
        got = other(x, "a")[0], other(x, "b")[0]
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
