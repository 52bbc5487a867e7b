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
from faceplate.train.export import (
    _channels_last,
    _dcr_pixel_shuffles,
    check_onnx,
    check_same_face,
    export_onnx,
    face_only_graph,
    int8_psnr,
    onnx_session,
    ort_layout_graph,
    quantize_int8,
    quantize_qdq,
)
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
    # the face-only graph: face_out alone, the same faces, fewer nodes (no mask branch)
    only = face_only_graph(path, tmp_path / "face.onnx")
    small = onnx.load(str(only)).graph
    assert [o.name for o in small.output] == [ONNX_OUTPUTS[0]]
    assert len(small.node) < len(graph.node)
    assert check_same_face(path, only, faces(3, 64, seed=7).numpy(), tol=0.0) == 0.0
    # pixel shuffles in DCR order (the convolution's channels reordered): the same values
    full = onnx.load(str(path))
    crd = sum(n.op_type == "DepthToSpace" for n in full.graph.node)
    assert _dcr_pixel_shuffles(full) == crd > 0
    onnx.save(full, str(tmp_path / "dcr.onnx"))
    x = faces(2, 64, seed=8)
    for a, b in zip(_run(path, x), _run(tmp_path / "dcr.onnx", x), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6, rtol=0)


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



@pytest.mark.parametrize("name", MODELS.names())
def test_int8_graphs_are_channels_last_and_keep_the_values(name: str, tmp_path: Path) -> None:
    """Every registry model's int8 export: the channels-last pass changes no value; the
    face-only int8 graph keeps no DepthToSpace and no transpose between convolutions, and
    gives the full one's faces."""
    model = make(name, size=64).eval()
    path = export_onnx(model, tmp_path / "m.onnx")
    cal = faces(12, 64, seed=3).numpy()
    q, qf = tmp_path / "q.onnx", tmp_path / "qf.onnx"
    quantize_int8(path, q, cal, face_path=qf)
    graph = onnx.load(str(qf)).graph
    ops = [n.op_type for n in graph.node]
    assert "DepthToSpace" not in ops and "QLinearConv" in ops
    assert all(a.i == 1 for n in graph.node if n.op_type == "QLinearConv"
               for a in n.attribute if a.name == "channels_last")
    # transposes only at the boundaries: the input, the dense layers, the float heads
    assert ops.count("Transpose") <= 2 + 2 * ops.count("Reshape") // 3 + len(graph.output) + 1
    assert check_same_face(q, qf, cal, tol=0.0) == 0.0
    assert int8_psnr(path, q, cal)["psnr_db"] >= 30.0  # random weights: noise, still close
    # the pass itself, on onnxruntime's own layout graph of the QDQ model: bit for bit the
    # same outputs as that graph
    qdq = quantize_qdq(path, tmp_path / "qdq.onnx", cal)
    lay = ort_layout_graph(qdq, tmp_path / "lay.onnx")
    x = {ONNX_INPUT: faces(2, 64, seed=9).numpy()}
    before = onnx_session(lay).run(None, x)
    model_ = onnx.load(str(lay))
    counts = _channels_last(model_)
    assert counts["transposes_dropped"] > 0 and counts["depth_to_space_nhwc"] > 0
    onnx.save(model_, str(tmp_path / "cl.onnx"))
    after = onnx_session(tmp_path / "cl.onnx").run(None, x)
    for a, b in zip(before, after, strict=True):
        assert np.array_equal(a, b)
