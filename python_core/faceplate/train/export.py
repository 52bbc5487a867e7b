"""ONNX export of a swap model's inference graph, and its check against torch with onnxruntime.

The exported graph of a swap model is ``model.inference(direction)``:

* input ``face``: N×3×S×S float32 RGB, display-referred sRGB in [0, 1] (S = ``model.input_size``);
* outputs ``face_out`` (N×3×S'×S' in [0, 1], S' = ``model.output_size``) and ``mask``
  (N×1×S'×S' in [0, 1]; all ones when the model does not learn a mask).

A mask model (:mod:`faceplate.models.occlusion`) exports the same way through
:func:`export_graph`: input ``face``, output ``mask`` (N×1×S×S in [0, 1]).

ONNX value names are unique in a graph, so the output face cannot share the input's name
``face``: it is ``face_out``. The batch axis is dynamic.

:func:`quantize_int8` turns that graph into an int8 one (``--precision int8`` at convert):
onnxruntime's static quantisation in QDQ form, activations uint8 per tensor and weights int8 per
output channel, with ranges calibrated (min/max) on the model's own training faces; onnxruntime
then runs its convolutions as integer kernels (VNNI where the CPU has it). The output heads
(the last convolution and sigmoid of each branch) stay float, so the face and mask come out with
their full precision rather than in 1/255 steps. :func:`int8_psnr` measures it against the
float graph. Export uses torch's dynamo-based exporter
(``torch.onnx.export(..., dynamo=True)``, onnxscript) and falls back to the TorchScript exporter
if that fails; both reproduce torch to ~1e-6 on CPU.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from faceplate.core.errors import ModelError, OutputError
from faceplate.io.model_files import ONNX_INPUT, ONNX_OUTPUTS
from faceplate.models.base import Direction, SwapModel

DEFAULT_OPSET = 18
#: Default tolerance of :func:`check_onnx` (max abs difference on [0, 1] outputs).
DEFAULT_TOL = 1e-4
_SINGLE_FILE_LIMIT = 1_800_000_000  # protobuf's 2 GiB cap, with margin: above it, external data
#: Faces of faceset B that calibrate the int8 ranges, and faces (others) that check it.
INT8_CALIBRATION_FACES = 48
INT8_CHECK_FACES = 16
#: Smallest mean PSNR (dB) of the int8 graph's faces against the float graph's on the check
#: faces; an int8 export below it is refused.
INT8_MIN_PSNR = 40.0


def export_onnx(
    model: SwapModel,
    path: str | Path,
    direction: Direction = "b2a",
    opset: int = DEFAULT_OPSET,
    exporter: Literal["auto", "dynamo", "torchscript"] = "auto",
) -> Path:
    """Write ``model.inference(direction)`` as an ONNX file with a dynamic batch axis.

    Args:
        model: Any registered swap model (put in eval mode for the export; its mode is restored).
        path: The ``.onnx`` file to write (parent folders are created).
        direction: ``"b2a"`` (B's faces rendered as A: what convert uses) or ``"a2b"``.
        opset: ONNX opset (18 by default; the TorchScript fallback uses min(opset, 17)).
        exporter: ``"auto"`` tries the dynamo exporter, then the TorchScript one; or force one.

    Returns:
        The path written.

    Raises:
        OutputError: The file cannot be written.
        ModelError: Neither exporter could convert the model.
    """
    return export_graph(model.inference(direction), model, model.input_size, path,
                        outputs=ONNX_OUTPUTS, opset=opset, exporter=exporter)


def export_graph(net: torch.nn.Module, owner: torch.nn.Module, size: int, path: str | Path, *,
                 outputs: tuple[str, ...], opset: int = DEFAULT_OPSET,
                 exporter: Literal["auto", "dynamo", "torchscript"] = "auto") -> Path:
    """Write ``net`` (one input ``face``: N×3×size×size float32, a dynamic batch axis, the
    outputs named ``outputs``) as an ONNX file: the swap models' and the mask models' export.

    Args:
        net: The module to export (``forward(x)``).
        owner: The module holding its parameters (put in eval mode; its mode is restored).
        size: Side of the input faces.
        path: The ``.onnx`` file to write (parent folders are created).
        outputs: The graph's output names, in the order ``net`` returns them.
        opset: ONNX opset (the TorchScript fallback uses min(opset, 17)).
        exporter: ``"auto"`` tries the dynamo exporter, then the TorchScript one; or force one.

    Raises:
        OutputError: The file cannot be written.
        ModelError: Neither exporter could convert the model.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError(f"cannot create the folder: {err.strerror}", path.parent) from err
    example = torch.rand(2, 3, size, size)
    was_training = owner.training
    param_bytes = sum(p.numel() * p.element_size() for p in owner.parameters())
    owner.eval()
    errors: list[str] = []
    try:
        with torch.no_grad():
            for fn in _EXPORTERS[exporter]:
                try:
                    fn(net, example, path, opset, param_bytes > _SINGLE_FILE_LIMIT, outputs)
                    return path
                except OSError as err:
                    raise OutputError(f"cannot write the ONNX file: {err}", path) from err
                except Exception as err:  # try the other exporter, report both
                    errors.append(f"{fn.__name__}: {type(err).__name__}: {err}")
    finally:
        owner.train(was_training)
    raise ModelError(f"ONNX export failed ({'; '.join(errors)})", path)


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence the exporter's warnings and log lines (e.g. "torchvision is not installed")."""
    log = logging.getLogger("torch.onnx")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        log.setLevel(level)


def _export_dynamo(
    net: torch.nn.Module, example: torch.Tensor, path: Path, opset: int, external: bool,
    outputs: tuple[str, ...] = ONNX_OUTPUTS,
) -> None:
    batch = torch.export.Dim("batch", min=1, max=65536)
    with _quiet_exporter():
        torch.onnx.export(
            net,
            (example,),
            str(path),
            input_names=[ONNX_INPUT],
            output_names=list(outputs),
            dynamic_shapes={"x": {0: batch}},
            opset_version=opset,
            dynamo=True,
            external_data=external,
            verbose=False,
        )


def _export_torchscript(
    net: torch.nn.Module, example: torch.Tensor, path: Path, opset: int, external: bool,
    outputs: tuple[str, ...] = ONNX_OUTPUTS,
) -> None:
    del external  # the TorchScript exporter decides by itself
    axes = {name: {0: "batch"} for name in (ONNX_INPUT, *outputs)}
    with _quiet_exporter():
        torch.onnx.export(
            net,
            (example,),
            str(path),
            input_names=[ONNX_INPUT],
            output_names=list(outputs),
            dynamic_axes=axes,
            opset_version=min(opset, 17),
            dynamo=False,
        )


_EXPORTERS = {
    "auto": (_export_dynamo, _export_torchscript),
    "dynamo": (_export_dynamo,),
    "torchscript": (_export_torchscript,),
}


def onnx_session(path: str | Path) -> Any:
    """An onnxruntime CPU session for ``path`` (quiet logging); ``ModelError`` if it won't load."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises its own untyped errors
        raise ModelError(f"onnxruntime cannot load the model: {err}", path) from err


def check_onnx(
    model: SwapModel,
    path: str | Path,
    tol: float = DEFAULT_TOL,
    *,
    direction: Direction = "b2a",
    batch: int = 3,
    seed: int = 0,
) -> float:
    """Run the ONNX file and torch on the same random faces; return the max abs difference.

    Args:
        model: The model ``path`` was exported from.
        path: The ONNX file from :func:`export_onnx`.
        tol: Largest acceptable difference over both outputs (values are in [0, 1]).
        direction: The direction it was exported with.
        batch: Batch size of the check (≠ 2, the export example, to exercise the dynamic axis).
        seed: Seed of the random input.

    Returns:
        ``max |onnx - torch|`` over ``face_out`` and ``mask``.

    Raises:
        ModelError: The file won't load, has the wrong outputs, or differs by more than ``tol``.
    """
    return check_graph(model.inference(direction), model, model.input_size, path,
                       outputs=ONNX_OUTPUTS, tol=tol, batch=batch, seed=seed)


def check_graph(net: torch.nn.Module, owner: torch.nn.Module, size: int, path: str | Path, *,
                outputs: tuple[str, ...], tol: float = DEFAULT_TOL, batch: int = 3,
                seed: int = 0) -> float:
    """Run an ONNX file from :func:`export_graph` and ``net`` on the same random faces
    (N×3×size×size in [0, 1]); return the max abs difference over ``outputs``.

    Raises:
        ModelError: The file won't load, has other outputs, or differs by more than ``tol``.
    """
    sess = onnx_session(path)
    names = tuple(o.name for o in sess.get_outputs())
    if names != tuple(outputs):
        raise ModelError(f"outputs are {names}, expected {tuple(outputs)}", path)
    rng = np.random.default_rng(seed)
    x = rng.random((batch, 3, size, size), dtype=np.float32)
    was_training = owner.training
    owner.eval()
    try:
        with torch.no_grad():
            res = net(torch.from_numpy(x))
    finally:
        owner.train(was_training)
    ref = [t.numpy() for t in (res if isinstance(res, (tuple, list)) else (res,))]
    got = sess.run(list(outputs), {ONNX_INPUT: x})
    diff = 0.0
    for name, r, g in zip(outputs, ref, got, strict=True):
        if r.shape != g.shape:
            raise ModelError(f"output {name} has shape {g.shape}, torch gives {r.shape}", path)
        diff = max(diff, float(np.abs(r - g).max()))
    if not diff <= tol:
        raise ModelError(f"ONNX output differs from torch by {diff:.3g} (tolerance {tol:.3g})",
                         path)
    return diff


class _Faces:
    """onnxruntime's calibration reader over N×3×S×S faces, a few at a time."""

    def __init__(self, faces: np.ndarray, batch: int = 8) -> None:
        self._it = iter([{ONNX_INPUT: np.ascontiguousarray(faces[i:i + batch])}
                         for i in range(0, len(faces), batch)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._it, None)

    def rewind(self) -> None:  # onnxruntime's reader protocol; one pass is all MinMax needs
        pass


def _head_nodes(model: Any) -> list[str]:
    """Names of the nodes that make the graph's outputs from the last convolution on: each
    output's producer chain back to (and including) a Conv, through single-input
    element-wise/reshape nodes (Sigmoid, DepthToSpace, ...)."""
    producer = {out: node for node in model.graph.node for out in node.output}
    names: list[str] = []
    for out in model.graph.output:
        node = producer.get(out.name)
        while node is not None:
            names.append(node.name)
            if node.op_type == "Conv" or not node.input:
                break
            node = producer.get(node.input[0])
    return names


def quantize_int8(onnx_path: str | Path, out_path: str | Path, faces: np.ndarray) -> Path:
    """Write the int8 (QDQ) version of the float ONNX graph ``onnx_path`` to ``out_path``.

    Args:
        onnx_path: The float32 export (:func:`export_onnx`).
        out_path: The int8 ``.onnx`` file to write.
        faces: N×3×S×S float32 sRGB [0, 1] calibration faces (the model's own training faces).

    Raises:
        ModelError: onnxruntime cannot quantise the graph. OutputError: cannot write.
    """
    import tempfile

    import onnx
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    onnx_path, out_path = Path(onnx_path), Path(out_path)
    x = np.asarray(faces, np.float32)
    if x.ndim != 4 or x.shape[1] != 3 or len(x) == 0:
        raise ValueError(f"faces: expected N×3×S×S float32, got {x.shape}")
    try:
        with tempfile.TemporaryDirectory(dir=out_path.parent) as tmp, _quiet_exporter():
            pre = Path(tmp) / "pre.onnx"
            quant_pre_process(str(onnx_path), str(pre), skip_symbolic_shape=True)
            heads = _head_nodes(onnx.load(str(pre), load_external_data=False))
            part = Path(tmp) / "int8.onnx"
            quantize_static(
                str(pre), str(part), _Faces(x), quant_format=QuantFormat.QDQ,
                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                per_channel=True, calibrate_method=CalibrationMethod.MinMax,
                nodes_to_exclude=heads,
                extra_options={"ActivationSymmetric": False, "WeightSymmetric": True})
            part.replace(out_path)
    except OSError as err:
        raise OutputError(f"cannot write the int8 model: {err}", out_path) from err
    except Exception as err:  # onnxruntime's quantiser raises its own untyped errors
        raise ModelError(f"int8 quantisation failed ({type(err).__name__}: {err})",
                         onnx_path) from None
    return out_path


def int8_psnr(onnx_path: str | Path, int8_path: str | Path, faces: np.ndarray
              ) -> dict[str, float]:
    """PSNR of the int8 graph's faces against the float graph's on ``faces``.

    Returns:
        ``{"psnr_db": mean over faces, "psnr_db_min": worst face, "mask_max_abs_diff": ...,
        "faces": N}`` (faces in [0, 1]; a face whose outputs agree exactly counts as 100 dB).
    """
    ref = onnx_session(onnx_path)
    q = onnx_session(int8_path)
    x = np.asarray(faces, np.float32)
    psnr: list[float] = []
    mask_diff = 0.0
    for i in range(0, len(x), 8):
        chunk = {ONNX_INPUT: x[i:i + 8]}
        fr, mr = ref.run(list(ONNX_OUTPUTS), chunk)
        fq, mq = q.run(list(ONNX_OUTPUTS), chunk)
        mse = ((np.asarray(fq, np.float64) - fr) ** 2).reshape(len(fr), -1).mean(axis=1)
        psnr += [100.0 if m <= 1e-10 else float(10.0 * np.log10(1.0 / m)) for m in mse]
        mask_diff = max(mask_diff, float(np.abs(np.asarray(mq) - mr).max()))
    return {"psnr_db": float(np.mean(psnr)), "psnr_db_min": float(np.min(psnr)),
            "mask_max_abs_diff": mask_diff, "faces": len(psnr)}
