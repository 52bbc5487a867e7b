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
their full precision rather than in 1/255 steps. The file written is onnxruntime's own
optimised form of that QDQ graph (fused QLinear operators, convolutions channels-last), with
the activations kept NHWC between convolutions (:func:`_channels_last`) and torch's pixel
shuffles in DCR order (:func:`_dcr_pixel_shuffles`): the same values, fewer copies.
:func:`face_only_graph` prunes a graph to ``face_out`` alone (what convert runs when it does
not want the learned mask). :func:`int8_psnr` measures the int8 graph against the
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


def face_only_graph(src: str | Path, dst: str | Path) -> Path:
    """Write the graph ``src`` with ``face_out`` as its only output: every node, initializer and
    value_info only the ``mask`` output needed is dropped (the mask decoder), so onnxruntime
    runs the face alone. Input and ``face_out`` keep their names, shapes and values.

    Raises:
        ModelError: ``src`` has no ``face_out`` output. OutputError: ``dst`` cannot be written.
    """
    import onnx

    src, dst = Path(src), Path(dst)
    model = onnx.load(str(src))
    graph = model.graph
    keep = [o for o in graph.output if o.name == ONNX_OUTPUTS[0]]
    if not keep:
        raise ModelError(f"the graph has no {ONNX_OUTPUTS[0]!r} output", src)
    need = {ONNX_OUTPUTS[0]}
    nodes = []
    for node in reversed(graph.node):
        if any(o in need for o in node.output):
            nodes.append(node)
            need.update(i for i in node.input if i)
    _set_nodes(graph, reversed(nodes))
    del graph.output[:]
    graph.output.extend(keep)
    inits = [i for i in graph.initializer if i.name in need]
    del graph.initializer[:]
    graph.initializer.extend(inits)
    infos = [v for v in graph.value_info if v.name in need]
    del graph.value_info[:]
    graph.value_info.extend(infos)
    _save_onnx(model, dst)
    return dst


def _set_nodes(graph: Any, nodes: Any) -> None:
    new = list(nodes)
    del graph.node[:]
    graph.node.extend(new)


def _save_onnx(model: Any, path: Path) -> None:
    import onnx

    try:
        onnx.save(model, str(path),
                  save_as_external_data=model.ByteSize() > _SINGLE_FILE_LIMIT)
    except OSError as err:
        raise OutputError(f"cannot write the ONNX file: {err}", path) from err


def _dcr_pixel_shuffles(model: Any) -> int:
    """Turn every ``DepthToSpace`` in CRD mode (torch's ``pixel_shuffle``) that follows a
    ``Conv`` into DCR mode, reordering that convolution's output channels (weights and bias)
    so that the graph computes exactly the same values. In DCR order the r×r sub-pixels of one
    output pixel are r² runs of C contiguous channels, so in channels-last (NHWC) layout the
    shuffle is a copy of whole channel runs (:func:`_channels_last`) instead of a per-byte
    gather. Between the convolution and the shuffle only per-element nodes with one consumer
    each may sit (LeakyRelu, Relu, Sigmoid, ...). Returns the number of shuffles changed."""
    import onnx
    from onnx import numpy_helper

    graph = model.graph
    producer = {o: n for n in graph.node for o in n.output}
    uses: dict[str, int] = {}
    for n in graph.node:
        for i in n.input:
            uses[i] = uses.get(i, 0) + 1
    for o in graph.output:
        uses[o.name] = uses.get(o.name, 0) + 1
    inits = {i.name: i for i in graph.initializer}
    changed = 0
    for node in graph.node:
        if node.op_type != "DepthToSpace":
            continue
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        mode = attrs.get("mode", b"DCR")
        if mode not in (b"CRD", "CRD"):
            continue
        r = int(attrs["blocksize"])
        conv = producer.get(node.input[0])
        while conv is not None and conv.op_type in _ELEMENTWISE_FLOAT \
                and uses.get(conv.output[0]) == 1:
            conv = producer.get(conv.input[0])
        if conv is None or conv.op_type != "Conv" or uses.get(conv.output[0]) != 1 \
                or conv.input[1] not in inits or uses.get(conv.input[1]) != 1 \
                or (len(conv.input) > 2 and conv.input[2]
                    and (conv.input[2] not in inits or uses.get(conv.input[2]) != 1)):
            continue
        w = numpy_helper.to_array(inits[conv.input[1]])
        c = w.shape[0] // (r * r)
        # new channel (i·r + j)·C + k  ←  old channel k·r² + i·r + j
        perm = np.arange(c * r * r).reshape(c, r * r).T.reshape(-1)
        tensors = [conv.input[1]] + ([conv.input[2]] if len(conv.input) > 2
                                     and conv.input[2] else [])
        for name in tensors:
            arr = numpy_helper.to_array(inits[name])[perm]
            inits[name].CopyFrom(numpy_helper.from_array(np.ascontiguousarray(arr), name))
        for a in node.attribute:
            if a.name == "mode":
                a.s = b"DCR"
        changed += 1
    return changed


#: Per-element float nodes a pixel shuffle's convolution may be followed by (one input that
#: carries the tensor; any others are constants).
_ELEMENTWISE_FLOAT = frozenset({"LeakyRelu", "Relu", "Sigmoid", "Tanh", "Elu", "Clip"})
#: Quantised per-element nodes (onnxruntime's fused QDQ forms) that do not care about layout
#: when every scale and zero point is one number.
_ELEMENTWISE_Q = frozenset({"QLinearLeakyRelu", "QLinearSigmoid", "QLinearAdd", "QLinearMul",
                            "Relu", "LeakyRelu", "Sigmoid"})
_TO_NHWC = [0, 2, 3, 1]
_TO_NCHW = [0, 3, 1, 2]


def _channels_last(model: Any) -> dict[str, int]:
    """Keep the activations of onnxruntime's channels-last graph in NHWC from one convolution
    to the next.

    onnxruntime's layout pass runs each ``QLinearConv`` channels-last but wraps it in
    transposes back to NCHW, which the per-element nodes, the residual ``QLinearAdd`` and
    every ``DepthToSpace`` then run on (``DepthToSpace`` has only an NCHW kernel, and for
    uint8 it gathers byte by byte). This pass follows the NHWC tensors through the graph:
    a transpose back to NCHW is only written where a node needs NCHW (a ``Reshape`` to the
    dense layers, a float head, an output); per-element nodes whose other inputs are single
    numbers run on the NHWC tensor; a DCR ``DepthToSpace`` becomes Reshape → Transpose of
    whole channel runs → Reshape in NHWC (the output shape computed from the input's at run
    time: the batch axis stays dynamic); a ``DequantizeLinear`` (one scale) is written where
    its float output is needed, so a shuffle before a float head moves uint8 bytes; a
    transpose to NHWC of a tensor already held in NHWC is dropped. The values computed are
    the same. A graph with subgraphs (If, Loop) is left as it is. Returns counts of what
    changed.
    """
    from onnx import AttributeProto, helper, numpy_helper

    graph = model.graph
    counts = {"transposes_dropped": 0, "depth_to_space_nhwc": 0, "elementwise_nhwc": 0}
    if any(a.type in (AttributeProto.GRAPH, AttributeProto.GRAPHS)
           for n in graph.node for a in n.attribute):
        return counts
    outputs = {o.name for o in graph.output}
    inits = {i.name: i for i in graph.initializer}

    def scalar(name: str) -> bool:
        return name in inits and int(np.prod(inits[name].dims)) <= 1

    def perm(node: Any) -> list[int] | None:
        for a in node.attribute:
            if a.name == "perm":
                return list(a.ints)
        return None

    nhwc: dict[str, str] = {}      # NCHW tensor name → a tensor holding it in NHWC
    alias: dict[str, str] = {}     # dropped node's output → the tensor that replaces it
    pending: dict[str, Any] = {}   # NCHW tensor → its deferred Transpose(NHWC → NCHW)
    deferred_dq: dict[str, Any] = {}  # float NCHW tensor → its deferred DequantizeLinear
    have: set[str] = {i.name for i in graph.input} | set(inits)
    out: list[Any] = []
    new_inits: list[Any] = []
    uid = [0]

    def fresh(base: str) -> str:
        uid[0] += 1
        return f"{base}__nhwc{uid[0]}"

    def const(values: list[int]) -> str:
        name = fresh("shape")
        new_inits.append(numpy_helper.from_array(np.asarray(values, np.int64), name))
        return name

    def ensure(name: str) -> None:
        """Make the NCHW tensor ``name`` exist (write its deferred transpose)."""
        if name in have or not name:
            return
        if name in deferred_dq:
            dq = deferred_dq.pop(name)
            ensure(dq.input[0])
            out.append(dq)
        elif name in pending:
            out.append(pending.pop(name))
        else:
            out.append(helper.make_node("Transpose", [nhwc[name]], [name], perm=_TO_NCHW,
                                        name=fresh("to_nchw")))
        have.add(name)

    for node in graph.node:
        for k, name in enumerate(node.input):
            if name in alias:
                node.input[k] = alias[name]
        p = perm(node) if node.op_type == "Transpose" and node.domain in ("", "ai.onnx") \
            else None
        x = node.input[0] if node.input else ""
        if p == _TO_NHWC and x in nhwc and node.output[0] not in outputs:
            alias[node.output[0]] = nhwc[x]
            counts["transposes_dropped"] += 1
            continue
        if p == _TO_NCHW and x in have:
            nhwc[node.output[0]] = x
            pending[node.output[0]] = node
            continue
        dyn = [i for i in node.input if i and not scalar(i)]
        if node.op_type == "DequantizeLinear" and x in nhwc and dyn == [x]:
            deferred_dq[node.output[0]] = node  # written where needed, after a shuffle
            continue
        if node.op_type in _ELEMENTWISE_Q and dyn and all(i in nhwc for i in dyn) \
                and all(i in dyn or scalar(i) or not i for i in node.input):
            o = node.output[0]
            node.input[:] = [nhwc.get(i, i) for i in node.input]
            node.output[0] = fresh(o)
            nhwc[o] = node.output[0]
            out.append(node)
            have.add(node.output[0])
            counts["elementwise_nhwc"] += 1
            continue
        if node.op_type == "DepthToSpace" and (x in nhwc or x in deferred_dq):
            attrs = {a.name: a for a in node.attribute}
            mode = attrs["mode"].s if "mode" in attrs else b"DCR"
            if mode == b"DCR":
                r = int(attrs["blocksize"].i)
                o = node.output[0]
                dq = deferred_dq.pop(x, None)
                if dq is not None:  # shuffle the quantised tensor, dequantise after it
                    src = nhwc[dq.input[0]]
                    shuffled = fresh(o)
                    dq.input[0] = shuffled
                    deferred_dq[o] = dq
                    dq.output[0] = o
                    o = shuffled
                else:
                    src = nhwc[x]
                six, moved, shape, dst = (fresh(o) for _ in range(4))
                scaled = fresh(o)
                out += [
                    helper.make_node("Reshape", [src, const([0, 0, 0, r, r, -1])], [six],
                                     name=fresh("d2s")),
                    helper.make_node("Transpose", [six], [moved], perm=[0, 1, 3, 2, 4, 5],
                                     name=fresh("d2s")),
                    helper.make_node("Shape", [src], [shape], name=fresh("d2s")),
                    helper.make_node("Mul", [shape, const([1, r, r, 1])], [scaled],
                                     name=fresh("d2s")),
                    helper.make_node("Div", [scaled, const([1, 1, 1, r * r])], [dst + "s"],
                                     name=fresh("d2s")),
                    helper.make_node("Reshape", [moved, dst + "s"], [dst], name=fresh("d2s")),
                ]
                nhwc[o] = dst
                have.add(dst)
                counts["depth_to_space_nhwc"] += 1
                continue
        for name in node.input:
            ensure(name)
        out.append(node)
        have.update(node.output)
        if p == _TO_NHWC:
            nhwc[x] = node.output[0]
    for o in graph.output:
        ensure(o.name)
    _set_nodes(graph, out)
    graph.initializer.extend(new_inits)
    del graph.value_info[:]  # names now hold other layouts: let onnxruntime infer again
    return counts


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


def quantize_int8(onnx_path: str | Path, out_path: str | Path, faces: np.ndarray, *,
                  face_path: str | Path | None = None) -> Path:
    """Write the int8 version of the float ONNX graph ``onnx_path`` to ``out_path`` (and, with
    ``face_path``, its face-only version there: the same quantised graph without the mask
    branch, :func:`face_only_graph`).

    The steps: every pixel shuffle after a convolution is put in DCR order
    (:func:`_dcr_pixel_shuffles`: the same values); onnxruntime's static quantisation in QDQ
    form (uint8 activations per tensor, symmetric int8 weights per output channel, min/max
    ranges calibrated on ``faces``; the output heads stay float); then onnxruntime's own graph
    optimisation up to its layout level (QDQ groups fused into ``QLinearConv``, ``QLinearAdd``,
    ``QLinearLeakyRelu``, ``QGemm``; convolutions channels-last; not its machine-specific NCHWc
    blocking, which it applies when the file is loaded) saved as the file, with the
    activations kept channels-last between convolutions (:func:`_channels_last`). The file
    uses onnxruntime's contrib operators (``com.microsoft``): it is meant for onnxruntime's
    CPU provider.

    Args:
        onnx_path: The float32 export (:func:`export_onnx`).
        out_path: The int8 ``.onnx`` file to write.
        faces: N×3×S×S float32 sRGB [0, 1] calibration faces (the model's own training faces).
        face_path: Where to write the face-only int8 graph (None: not written).

    Raises:
        ModelError: onnxruntime cannot quantise the graph. OutputError: cannot write.
    """
    import tempfile

    onnx_path, out_path = Path(onnx_path), Path(out_path)
    x = np.asarray(faces, np.float32)
    if x.ndim != 4 or x.shape[1] != 3 or len(x) == 0:
        raise ValueError(f"faces: expected N×3×S×S float32, got {x.shape}")
    try:
        with tempfile.TemporaryDirectory(dir=out_path.parent) as tmp, _quiet_exporter():
            qdq = quantize_qdq(onnx_path, Path(tmp) / "qdq.onnx", x)
            part = Path(tmp) / "int8.onnx"
            _optimised_channels_last(qdq, part)
            if face_path is not None:
                face_qdq = face_only_graph(qdq, Path(tmp) / "qdq_face.onnx")
                face_part = Path(tmp) / "int8_face.onnx"
                _optimised_channels_last(face_qdq, face_part)
                face_part.replace(face_path)
            part.replace(out_path)
    except OSError as err:
        raise OutputError(f"cannot write the int8 model: {err}", out_path) from err
    except (ModelError, OutputError):
        raise
    except Exception as err:  # onnxruntime's quantiser raises its own untyped errors
        raise ModelError(f"int8 quantisation failed ({type(err).__name__}: {err})",
                         onnx_path) from None
    return out_path


def quantize_qdq(onnx_path: Path, out_path: Path, faces: np.ndarray) -> Path:
    """The first steps of :func:`quantize_int8`: the float graph with its pixel shuffles in DCR
    order, quantised by onnxruntime in QDQ form (standard ONNX operators), written to
    ``out_path``. ``faces``: N×3×S×S float32 sRGB [0, 1] calibration faces."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    pre = out_path.with_name(out_path.stem + ".pre.onnx")
    quant_pre_process(str(onnx_path), str(pre), skip_symbolic_shape=True)
    model = onnx.load(str(pre))
    _dcr_pixel_shuffles(model)
    heads = _head_nodes(model)
    _save_onnx(model, pre)
    del model
    quantize_static(
        str(pre), str(out_path), _Faces(np.asarray(faces, np.float32)),
        quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8, per_channel=True,
        calibrate_method=CalibrationMethod.MinMax, nodes_to_exclude=heads,
        extra_options={"ActivationSymmetric": False, "WeightSymmetric": True})
    pre.unlink(missing_ok=True)
    return out_path


def ort_layout_graph(src: Path, dst: Path) -> Path:
    """onnxruntime's graph optimisation of ``src`` up to its layout level, without the
    machine-specific NCHWc blocking, saved to ``dst``."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_LAYOUT
    opts.optimized_model_filepath = str(dst)
    ort.InferenceSession(str(src), opts, providers=["CPUExecutionProvider"],
                         disabled_optimizers=["NchwcTransformer"])
    return dst


def _optimised_channels_last(src: Path, dst: Path) -> Path:
    """:func:`ort_layout_graph`, then :func:`_channels_last`, written to ``dst``."""
    import onnx

    model = onnx.load(str(ort_layout_graph(src, dst)))
    _channels_last(model)
    _save_onnx(model, dst)
    return dst


def check_same_face(full_path: str | Path, face_path: str | Path, faces: np.ndarray,
                    tol: float = DEFAULT_TOL) -> float:
    """Max abs difference between the ``face_out`` of a graph and of its face-only version
    (:func:`face_only_graph`) on ``faces`` (N×3×S×S float32 sRGB [0, 1]).

    Raises:
        ModelError: the face-only graph won't load, has other outputs, or differs by more
            than ``tol``.
    """
    full, face = onnx_session(full_path), onnx_session(face_path)
    names = tuple(o.name for o in face.get_outputs())
    if names != ONNX_OUTPUTS[:1]:
        raise ModelError(f"outputs are {names}, expected {ONNX_OUTPUTS[:1]}", face_path)
    x = np.asarray(faces, np.float32)
    diff = 0.0
    for i in range(0, len(x), 8):
        chunk = {ONNX_INPUT: x[i:i + 8]}
        a = full.run([ONNX_OUTPUTS[0]], chunk)[0]
        b = face.run([ONNX_OUTPUTS[0]], chunk)[0]
        diff = max(diff, float(np.abs(np.asarray(a) - np.asarray(b)).max()))
    if not diff <= tol:
        raise ModelError(f"the face-only graph differs from the full graph by {diff:.3g} "
                         f"(tolerance {tol:.3g})", face_path)
    return diff


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
