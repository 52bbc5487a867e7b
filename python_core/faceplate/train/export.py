"""ONNX export of a swap model's inference graph, and its check against torch with onnxruntime.

The exported graph is ``model.inference(direction)``:

* input ``face``: N×3×S×S float32 RGB, display-referred sRGB in [0, 1] (S = ``model.input_size``);
* outputs ``face_out`` (N×3×S'×S' in [0, 1], S' = ``model.output_size``) and ``mask``
  (N×1×S'×S' in [0, 1]; all ones when the model does not learn a mask).

ONNX value names are unique in a graph, so the output face cannot share the input's name
``face``: it is ``face_out``. The batch axis is dynamic. Export uses torch's dynamo-based exporter
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
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError(f"cannot create the folder: {err.strerror}", path.parent) from err
    net = model.inference(direction)
    example = torch.rand(2, 3, model.input_size, model.input_size)
    was_training = model.training
    param_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    model.eval()
    errors: list[str] = []
    try:
        with torch.no_grad():
            for fn in _EXPORTERS[exporter]:
                try:
                    fn(net, example, path, opset, param_bytes > _SINGLE_FILE_LIMIT)
                    return path
                except OSError as err:
                    raise OutputError(f"cannot write the ONNX file: {err}", path) from err
                except Exception as err:  # try the other exporter, report both
                    errors.append(f"{fn.__name__}: {type(err).__name__}: {err}")
    finally:
        model.train(was_training)
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
    net: torch.nn.Module, example: torch.Tensor, path: Path, opset: int, external: bool
) -> None:
    batch = torch.export.Dim("batch", min=1, max=65536)
    with _quiet_exporter():
        torch.onnx.export(
            net,
            (example,),
            str(path),
            input_names=[ONNX_INPUT],
            output_names=list(ONNX_OUTPUTS),
            dynamic_shapes={"x": {0: batch}},
            opset_version=opset,
            dynamo=True,
            external_data=external,
            verbose=False,
        )


def _export_torchscript(
    net: torch.nn.Module, example: torch.Tensor, path: Path, opset: int, external: bool
) -> None:
    del external  # the TorchScript exporter decides by itself
    axes = {name: {0: "batch"} for name in (ONNX_INPUT, *ONNX_OUTPUTS)}
    with _quiet_exporter():
        torch.onnx.export(
            net,
            (example,),
            str(path),
            input_names=[ONNX_INPUT],
            output_names=list(ONNX_OUTPUTS),
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
    sess = onnx_session(path)
    names = tuple(o.name for o in sess.get_outputs())
    if names != ONNX_OUTPUTS:
        raise ModelError(f"outputs are {names}, expected {ONNX_OUTPUTS}", path)
    rng = np.random.default_rng(seed)
    size = model.input_size
    x = rng.random((batch, 3, size, size), dtype=np.float32)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            ref = [t.numpy() for t in model.inference(direction)(torch.from_numpy(x))]
    finally:
        model.train(was_training)
    got = sess.run(list(ONNX_OUTPUTS), {ONNX_INPUT: x})
    diff = 0.0
    for name, r, g in zip(ONNX_OUTPUTS, ref, got, strict=True):
        if r.shape != g.shape:
            raise ModelError(f"output {name} has shape {g.shape}, torch gives {r.shape}", path)
        diff = max(diff, float(np.abs(r - g).max()))
    if not diff <= tol:
        raise ModelError(f"ONNX output differs from torch by {diff:.3g} (tolerance {tol:.3g})",
                         path)
    return diff
