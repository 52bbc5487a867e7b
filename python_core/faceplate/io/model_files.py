"""The trained-model directory: what ``faceplate train`` writes and convert / the OFX node load.

Layout of a model directory (every file written atomically: a temp file in the same folder,
``fsync``, ``os.replace``, then an ``fsync`` of the folder)::

    MODEL_DIR/
      manifest.json          the inference manifest (:class:`Manifest`), written after the weights
      model.safetensors      the inference weights (the full swap model's ``state_dict``, float32)
      model.onnx             optional ONNX export of the inference graph (recorded in the manifest)
      model.int8.onnx        optional int8 version of it (static quantisation), recorded too
      model.face.onnx, model.int8.face.onnx   optional face-only versions of the two (no mask
                             branch: what convert runs when the learned mask is not wanted)
      latest.json            {"format", "checkpoint": "checkpoints/00001200", "iteration": 1200}
      checkpoints/<iteration:08d>/{model.safetensors, optimizer.safetensors, state.json}
      snapshots/<iteration:08d>/...   same content, kept forever (one every ``snapshot_every``)
      previews/, logs/       preview grids, the loss plot, TensorBoard event files

(The checkpoint files are written by :mod:`faceplate.train.checkpoint`, with the helpers below.)

``manifest.json`` (``format_version`` 1)::

    {"format": "faceplate-swap-model", "format_version": 1, "faceplate_version": "0.1.0",
     "architecture": "df", "model_config": {...the model's config fields...},
     "size": 128, "input_size": 128, "output_size": 128, "centering": "face", "coverage": 1.0,
     "color_space": "srgb", "learn_mask": true,
     "weights": {"file": "model.safetensors", "sha256": "..."},
     "onnx": null | {"file": "model.onnx", "direction": "b2a", "max_abs_diff": 1e-6, "sha256": ...,
                     "face_only": {"file": "model.face.onnx", "sha256": ...} (optional)},
     "int8": null | {"file": "model.int8.onnx", "direction": "b2a", "sha256": ..., "from_onnx":
                     <model.onnx's sha256>, "calibration": {...}, "psnr_db": ..., ...,
                     "face_only": {"file": "model.int8.face.onnx", "sha256": ...} (optional)},
     "training": {"iterations": 1200, "examples_seen": 38400, "batch_size": 16,
                  "last_losses": {"a": ..., "b": ...}, "date": "2025-...Z",
                  "faceplate_version": "0.1.0"},
     "data_config": {...}}

The model works on display-referred sRGB crops in [0, 1] (``color_space`` "srgb"), N×3×H×W,
cut with the stored ``centering`` and ``coverage``. Loading never unpickles: weights are read
with ``safetensors`` only, JSON with ``json``. A directory written by a newer Faceplate raises
:class:`SchemaVersionError`; anything else unusable raises :class:`ModelError` naming the file.

A mask model directory (``faceplate mask train``: the occlusion segmenter) has the same layout and
checkpoints; its ``manifest.json`` has ``format`` :data:`MASK_FORMAT_NAME` and the fields of
:class:`MaskManifest` (``architecture``, ``model_config``, ``size``, ``centering``, ``coverage``,
``color_space``, ``weights``, ``onnx``, ``training``, ``data_config``, ``trained_on``); its ONNX
graph maps ``face`` (N×3×S×S sRGB [0, 1]) to ``mask`` (N×1×S×S in [0, 1], 1 = face). Either kind
of directory is refused by the other kind's loader, saying which it is.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from faceplate import __version__
from faceplate.core.errors import ConfigError, ModelError, OutputError, SchemaVersionError
from faceplate.core.profile import active_profile
from faceplate.core.types import CENTERINGS
from faceplate.io import paths
from faceplate.io.paths import fsync_dir, sha256_file

if TYPE_CHECKING:
    import torch

    from faceplate.models import SwapModel

FORMAT_NAME = "faceplate-swap-model"
#: The ``format`` of a mask model's manifest (``faceplate mask train``); its checkpoints and
#: ``latest.json`` are the swap models' (:data:`FORMAT_NAME`).
MASK_FORMAT_NAME = "faceplate-mask-model"
#: Version of ``manifest.json`` / ``latest.json`` / checkpoint ``state.json`` this code writes.
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
WEIGHTS = "model.safetensors"
ONNX = "model.onnx"
#: The int8 (statically quantised) version of the ONNX export, run by ``--precision int8``.
INT8 = "model.int8.onnx"
#: Face-only versions of the two graphs (output ``face_out`` alone: the mask branch pruned),
#: recorded as the ``face_only`` entry of the manifest's ``onnx`` / ``int8`` entries.
ONNX_FACE = "model.face.onnx"
INT8_FACE = "model.int8.face.onnx"
#: The ONNX export's graph input (N×3×S×S float32 faces) and outputs (faces, masks).
ONNX_INPUT = "face"
ONNX_OUTPUTS = ("face_out", "mask")
#: A mask model's ONNX graph: input ``face`` (N×3×S×S), output ``mask`` (N×1×S×S in [0, 1]).
MASK_ONNX_OUTPUTS = ("mask",)
LATEST = "latest.json"
COLOR_SPACES = ("srgb",)

_MANIFEST_KEYS = ("format", "format_version", "architecture", "model_config", "size",
                  "input_size", "output_size", "centering", "coverage", "color_space",
                  "learn_mask", "weights", "training")
#: Largest JSON file we parse (manifests and states are a few kB; the loss history a few MB).
_MAX_JSON = 256 << 20


# ---------------------------------------------------------------------------- atomic writes


def _output_error(err: OSError, path: Path) -> OutputError:
    why = "the disk is full" if err.errno == errno.ENOSPC else (err.strerror or str(err))
    return OutputError(f"cannot write ({why}); the previous version is left intact", path)


def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def _finish(tmp: Path, path: Path) -> None:
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically and durably (temp file + fsync + rename + fsync of
    the folder): :func:`faceplate.io.paths.write_bytes_atomic` with ``durable=True``.

    Raises:
        OutputError: naming ``path`` (the old file, if any, is left as it was).
    """
    return paths.write_bytes_atomic(path, data, durable=True)


def write_json_atomic(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write ``obj`` as indented UTF-8 JSON to ``path`` atomically (no NaN allowed)."""
    text = json.dumps(obj, indent=1, sort_keys=True, allow_nan=False) + "\n"
    return write_bytes_atomic(path, text.encode("utf-8"))


def _save_file(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str]) -> None:
    from safetensors.torch import save_file

    save_file(tensors, str(path), metadata=metadata)


def _plain_tensors(tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Detached, contiguous CPU tensors with no two sharing storage (safetensors refuses that)."""
    out: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for k, v in tensors.items():
        t = v.detach().to("cpu").contiguous()
        ptr = t.untyped_storage().data_ptr()
        if ptr in seen and t.numel():
            t = t.clone()
        seen.add(t.untyped_storage().data_ptr())
        out[k] = t
    return out


def save_tensors_atomic(path: str | os.PathLike[str], tensors: Mapping[str, torch.Tensor],
                        metadata: Mapping[str, str] | None = None) -> Path:
    """Write ``tensors`` as a safetensors file at ``path`` atomically.

    Args:
        path: Destination file.
        tensors: Name → tensor (any dtype/device; saved as is, moved to CPU).
        metadata: Optional string → string header metadata.

    Raises:
        OutputError: naming ``path``; a failing write (e.g. a full disk) leaves the old file.
    """
    path = Path(path)
    tmp = _tmp_name(path)
    try:
        _save_file(_plain_tensors(tensors), tmp, dict(metadata or {}))
        _finish(tmp, path)
    except OSError as err:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise _output_error(err, path) from None
    return path


# ------------------------------------------------------------------------------- reading


def load_tensors(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read a safetensors file (never unpickles: a pickle or any other file is refused).

    Returns:
        Name → CPU tensor.

    Raises:
        ModelError: naming ``path`` when it is missing or not a valid safetensors file.
    """
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise ModelError("weights file is missing", path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
        if len(head) < 8 or int.from_bytes(head, "little") > os.path.getsize(path) - 8:
            raise ModelError("not a safetensors file (bad header length; pickled checkpoints "
                             "are never loaded)", path)
        return load_file(str(path), device="cpu")
    except ModelError:
        raise
    except Exception as err:  # safetensors raises its own SafetensorError / OSError
        raise ModelError(f"not a valid safetensors file ({err})", path) from None


def read_json(path: str | os.PathLike[str], what: str) -> dict[str, Any]:
    """Parse a JSON object file; :class:`ModelError` naming ``path`` otherwise."""
    path = Path(path)
    try:
        if path.stat().st_size > _MAX_JSON:
            raise ModelError(f"{what} is implausibly large", path)
        obj = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"{what} is missing", path) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelError(f"{what} is not valid JSON ({err})", path) from None
    if not isinstance(obj, dict):
        raise ModelError(f"{what} is not a JSON object", path)
    return obj


def check_format(obj: Mapping[str, Any], path: Path, what: str,
                 format_name: str = FORMAT_NAME) -> None:
    """Check the ``format`` / ``format_version`` keys every model-dir JSON file carries.

    Args:
        obj: The parsed file.
        path: The file (named in errors).
        what: What the file is, in words.
        format_name: The format expected (:data:`FORMAT_NAME` for swap models and every
            checkpoint, :data:`MASK_FORMAT_NAME` for a mask model's manifest).

    Raises:
        SchemaVersionError: written by a newer Faceplate (a newer format version).
        ModelError: not a Faceplate model file, or a version this Faceplate cannot read.
    """
    if obj.get("format") != format_name:
        hint = ""
        if obj.get("format") == MASK_FORMAT_NAME:
            hint = " (this is a mask model: use it with --mask-model or `faceplate mask`)"
        elif obj.get("format") == FORMAT_NAME:
            hint = " (this is a swap model, not a mask model)"
        raise ModelError(f"{what} is not a Faceplate model file of this kind (format "
                         f"{obj.get('format')!r}, expected {format_name!r}){hint}", path)
    ver = obj.get("format_version")
    if not isinstance(ver, int) or isinstance(ver, bool) or ver < 1:
        raise ModelError(f"{what} has an invalid format_version {ver!r}", path)
    if ver > FORMAT_VERSION:
        raise SchemaVersionError(f"{what} format version {ver} is newer than this Faceplate "
                                 f"({__version__}) reads (up to {FORMAT_VERSION}); update "
                                 "Faceplate", path)


# ------------------------------------------------------------------------------ manifest


@dataclass(frozen=True)
class Manifest:
    """The inference manifest (``manifest.json``) of a model directory.

    Attributes:
        architecture: Registry name of the model (``faceplate.models.MODELS``).
        model_config: The model config's fields (JSON values; tuples as lists).
        size: Training size in pixels (the faces the model was trained on).
        input_size: Side of the model's input face, px (N×3×input_size² sRGB [0, 1]).
        output_size: Side of the model's output face and mask, px.
        centering: Crop centering the faces were cut with ("face" / "whole_face" / "head").
        coverage: Fraction (0.5–1.0) of the aligned crop the model sees (centre crop).
        color_space: Always "srgb": display-referred sRGB in [0, 1].
        learn_mask: Whether the model predicts a mask (N×1×output_size² in [0, 1]).
        weights: {"file": name, "sha256": hex}.
        training: iterations, examples_seen, batch_size, last_losses, date, faceplate_version.
        onnx: None, or {"file", "direction", "max_abs_diff", "sha256"}.
        int8: None, or {"file", "direction", "sha256", "from_onnx", "calibration", "psnr_db",
            ...}: the int8 graph quantised from the ONNX export whose sha256 is ``from_onnx``.
        data_config: The data config the model was trained with (informative).
    """

    architecture: str
    model_config: dict[str, Any]
    size: int
    input_size: int
    output_size: int
    centering: str
    coverage: float
    learn_mask: bool
    weights: dict[str, Any]
    training: dict[str, Any]
    color_space: str = "srgb"
    onnx: dict[str, Any] | None = None
    int8: dict[str, Any] | None = None
    data_config: dict[str, Any] = field(default_factory=dict)
    format: str = FORMAT_NAME
    format_version: int = FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any], path: Path) -> Manifest:
        """Validate a parsed manifest; :class:`ModelError` / :class:`SchemaVersionError`."""
        check_format(obj, path, "model manifest")
        missing = [k for k in _MANIFEST_KEYS if k not in obj]
        if missing:
            raise ModelError(f"model manifest lacks {', '.join(missing)}", path)

        def need(key: str, typ: type | tuple[type, ...]) -> Any:
            v = obj[key]
            if not isinstance(v, typ) or (typ is int and isinstance(v, bool)):
                raise ModelError(f"model manifest: {key} has the wrong type ({v!r})", path)
            return v

        for key in ("size", "input_size", "output_size"):
            v = need(key, int)
            if not 8 <= v <= 4096:
                raise ModelError(f"model manifest: {key} {v} is out of range", path)
        if obj["centering"] not in CENTERINGS:
            raise ModelError(f"model manifest: unknown centering {obj['centering']!r}", path)
        cov = need("coverage", (int, float))
        if not 0.1 <= float(cov) <= 1.0:
            raise ModelError(f"model manifest: coverage {cov} is out of range", path)
        if obj["color_space"] not in COLOR_SPACES:
            raise ModelError(f"model manifest: unknown colour space {obj['color_space']!r}", path)
        need("architecture", str)
        need("model_config", dict)
        need("learn_mask", bool)
        _check_file_entry(need("weights", dict), "weights", path)
        need("training", dict)
        onnx = obj.get("onnx")
        if onnx is not None:
            if not isinstance(onnx, dict):
                raise ModelError("model manifest: onnx must be null or an object with a file",
                                 path)
            _check_file_entry(onnx, "onnx", path)
            _check_face_only(onnx, "onnx", path)
        int8 = obj.get("int8")
        if int8 is not None:
            if not isinstance(int8, dict):
                raise ModelError("model manifest: int8 must be null or an object with a file",
                                 path)
            _check_file_entry(int8, "int8", path)
            _check_face_only(int8, "int8", path)
        names = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in obj.items() if k in names}
        kw["coverage"] = float(cov)
        return cls(**kw)


def _check_file_entry(entry: Mapping[str, Any], key: str, path: Path) -> None:
    """A manifest's file entry: ``file`` a plain name inside the model folder, ``sha256`` (when
    present) 64 hex digits."""
    name = entry.get("file")
    if not isinstance(name, str) or not name or "/" in name or "\\" in name \
            or name.startswith(".") or "\x00" in name:
        raise ModelError(f"model manifest: {key}.file must be a plain file name", path)
    digest = entry.get("sha256")
    if digest is not None and (not isinstance(digest, str) or len(digest) != 64
                               or any(c not in "0123456789abcdef" for c in digest)):
        raise ModelError(f"model manifest: {key}.sha256 must be 64 hex digits", path)


def _check_face_only(entry: Mapping[str, Any], key: str, path: Path) -> None:
    """An ``onnx`` / ``int8`` entry's optional ``face_only`` file entry."""
    face = entry.get("face_only")
    if face is None:
        return
    if not isinstance(face, dict):
        raise ModelError(f"model manifest: {key}.face_only must be null or an object with a "
                         "file", path)
    _check_file_entry(face, f"{key}.face_only", path)


def model_digest(manifest: Manifest) -> str | None:
    """The model's own digest: sha256 over the digests of every file a predictor may run (the
    weights and, once exported, the ONNX graph and its int8 version), so that whichever runs,
    a different file means a different model. None for an old manifest without a weights
    digest. (The int8 line, and each face-only graph's, is there only when the model has
    one: a model without it keeps the id it had before these existed.)"""
    weights = manifest.weights.get("sha256")
    if not weights:
        return None
    onnx = (manifest.onnx or {}).get("sha256") or ""
    text = f"weights:{weights}\nonnx:{onnx}\n"
    if manifest.int8:
        text += f"int8:{manifest.int8.get('sha256') or ''}\n"
    for key, entry in (("onnx", manifest.onnx), ("int8", manifest.int8)):
        face = (entry or {}).get("face_only")
        if face:
            text += f"{key}.face_only:{face.get('sha256') or ''}\n"
    return hashlib.sha256(text.encode()).hexdigest()


def verify_file(model_dir: Path, entry: Mapping[str, Any], what: str) -> Path:
    """The path of a manifest file entry, checked against the entry's sha256.

    Raises:
        ModelError: the file is missing, the entry has no digest, or the file does not match
            it (replaced or corrupt).
    """
    path = Path(model_dir) / str(entry["file"])
    if not path.is_file():
        raise ModelError(f"the {what} file named by the manifest is missing", path)
    want = entry.get("sha256")
    if not want:
        raise ModelError(f"the manifest records no sha256 for the {what} file: it cannot be "
                         "verified (export it again with `faceplate train --export-only`)", path)
    if sha256_file(path) != want:
        raise ModelError(f"the {what} file does not match the manifest's sha256 (replaced or "
                         "corrupt)", path)
    return path


def training_stats(iterations: int, examples_seen: int, batch_size: int,
                   last_losses: Mapping[str, float]) -> dict[str, Any]:
    """The manifest's ``training`` block, dated now (UTC, ISO 8601)."""
    return {"iterations": int(iterations), "examples_seen": int(examples_seen),
            "batch_size": int(batch_size),
            "last_losses": {k: float(v) for k, v in last_losses.items()},
            "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "faceplate_version": __version__, "model_profile": active_profile().name}


def write_manifest(model_dir: str | os.PathLike[str], manifest: Manifest) -> Path:
    """Write ``manifest.json`` atomically (call after the weights it names are in place)."""
    return write_json_atomic(Path(model_dir) / MANIFEST, manifest.to_dict())


def save_model(model_dir: str | os.PathLike[str], state_dict: Mapping[str, torch.Tensor],
               manifest: Manifest) -> Manifest:
    """Write the inference weights then the manifest (with the weights' sha256) atomically.

    A reader never sees a manifest whose weights are not complete: the weights are replaced
    first, the manifest naming them last.

    Returns:
        The manifest as written (``weights`` filled in).
    """
    model_dir = Path(model_dir)
    wpath = save_tensors_atomic(model_dir / WEIGHTS, state_dict,
                                {"format": FORMAT_NAME, "architecture": manifest.architecture})
    manifest = dataclasses.replace(manifest, weights={"file": WEIGHTS,
                                                      "sha256": sha256_file(wpath)})
    write_manifest(model_dir, manifest)
    return manifest


def read_manifest(model_dir: str | os.PathLike[str]) -> Manifest:
    """Read and validate ``MODEL_DIR/manifest.json``.

    Raises:
        ModelError: the folder is not a model directory, or the manifest is invalid.
        SchemaVersionError: the manifest was written by a newer Faceplate.
    """
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise ModelError("not a model directory (no such folder)", model_dir)
    path = model_dir / MANIFEST
    return Manifest.from_dict(read_json(path, "model manifest"), path)


def load_weights(model_dir: str | os.PathLike[str],
                 manifest: Manifest | None = None) -> dict[str, torch.Tensor]:
    """The inference weights named by the manifest, checked against its sha256."""
    model_dir = Path(model_dir)
    manifest = manifest or read_manifest(model_dir)
    path = model_dir / manifest.weights["file"]
    want = manifest.weights.get("sha256")
    if want and path.is_file() and sha256_file(path) != want:
        raise ModelError("weights do not match the manifest's sha256 (replaced or corrupt)",
                         path)
    return load_tensors(path)


def model_config_from_manifest(manifest: Manifest, path: Path) -> Any:
    """Rebuild the model's frozen config from the manifest (JSON lists → tuples).

    Raises:
        ModelError: unknown architecture, or config fields this Faceplate does not know.
    """
    from faceplate.models import MODELS

    return _registry_config(MODELS, manifest.architecture, manifest.model_config, path, "model")


def _registry_config(registry: Any, architecture: str, model_config: dict[str, Any],
                     path: Path, what: str) -> Any:
    """The frozen config of ``architecture`` in ``registry`` (swap or mask models) from a
    manifest's ``model_config`` (JSON lists → tuples); ``what`` names the kind in errors.

    Raises:
        ModelError: unknown architecture, options this Faceplate does not know, or values
            its config refuses.
    """
    if architecture not in registry:
        raise ModelError(f"unknown {what} architecture {architecture!r} (this "
                         f"Faceplate has: {', '.join(registry.names())})", path)
    cls = registry.config_class(architecture)
    known = {f.name for f in dataclasses.fields(cls)}
    extra = sorted(set(model_config) - known)
    if extra:
        raise ModelError(f"{what} config has options this Faceplate does not know "
                         f"({', '.join(extra)}): written by an incompatible version", path)
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in model_config.items()}
    try:
        return cls(**values)
    except (ConfigError, TypeError) as err:
        raise ModelError(f"{what} config is invalid for this Faceplate ({err})", path) from None


def load_inference_model(model_dir: str | os.PathLike[str], device: str = "cpu"
                         ) -> tuple[SwapModel, Manifest]:
    """Load a trained swap model for inference (convert, the OFX node).

    Args:
        model_dir: A model directory written by ``faceplate train``.
        device: Torch device for the model ("cpu", "cuda", ...).

    Returns:
        ``(model, manifest)``: the :class:`~faceplate.models.SwapModel` in eval mode with
        ``requires_grad`` off (call ``model(x, "a")`` on B's faces, N×3×input_size² sRGB [0, 1],
        or ``model.inference("b2a")``), and the validated manifest.

    Raises:
        ModelError: missing/invalid manifest or weights, unknown architecture, weights that do
            not fit the architecture; never unpickles anything.
        SchemaVersionError: written by a newer Faceplate.
    """
    from faceplate.models import build_model

    model_dir = Path(model_dir)
    manifest = read_manifest(model_dir)
    mpath = model_dir / MANIFEST
    cfg = model_config_from_manifest(manifest, mpath)
    import torch

    # Built on the meta device (shapes only): the random initialisation every layer would
    # otherwise run is thrown away by the load (~0.3 s for a df 128 model); ``assign`` makes
    # the loaded tensors the parameters, and ``strict`` leaves none of them unloaded.
    with torch.device("meta"):
        model = build_model(manifest.architecture, cfg)
    state = load_weights(model_dir, manifest)
    # Each tensor in the dtype the layer declares (a plain load would have copied it in).
    want = {k: v.dtype for k, v in model.state_dict().items()}
    state = {k: v.to(want[k]) if k in want and v.dtype != want[k] else v
             for k, v in state.items()}
    try:
        model.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as err:
        first = str(err).splitlines()[0] if str(err) else "mismatch"
        raise ModelError(f"weights do not fit the {manifest.architecture!r} architecture in the "
                         f"manifest ({first})", model_dir / manifest.weights["file"]) from None
    if (model.input_size, model.output_size) != (manifest.input_size, manifest.output_size):
        raise ModelError(f"model sizes {model.input_size}/{model.output_size} differ from the "
                         f"manifest's {manifest.input_size}/{manifest.output_size}", mpath)
    model.eval().requires_grad_(False)
    return model.to(device), manifest


# --------------------------------------------------------------------------- mask models

_MASK_MANIFEST_KEYS = ("format", "format_version", "architecture", "model_config", "size",
                       "centering", "coverage", "color_space", "weights", "training")


@dataclass(frozen=True)
class MaskManifest:
    """The manifest (``manifest.json``) of a mask model directory (``faceplate mask train``).

    The directory has the swap models' layout (weights, ONNX export, checkpoints, previews);
    only the manifest differs (``format`` :data:`MASK_FORMAT_NAME`).

    Attributes:
        architecture: Registry name (``faceplate.models.occlusion.MASK_MODELS``).
        model_config: The model config's fields (JSON values).
        size: Side of the faces it takes and the masks it returns, px.
        centering: Crop centering of those faces.
        coverage: Fraction (0.5–1.0) of the centering's frame the crop keeps.
        weights: {"file": name, "sha256": hex}.
        training: iterations, examples_seen, batch_size, last_losses, date, faceplate_version.
        color_space: Always "srgb" (display-referred sRGB in [0, 1]).
        onnx: None, or {"file", "sha256", "max_abs_diff", ...}.
        data_config: The data config it was trained with (informative).
        trained_on: The labelled faces it was trained on, ``{"store": absolute path,
            "frame": frame index, "face": face index}`` each (``faceplate mask eval`` leaves
            them out).
    """

    architecture: str
    model_config: dict[str, Any]
    size: int
    centering: str
    coverage: float
    weights: dict[str, Any]
    training: dict[str, Any]
    color_space: str = "srgb"
    onnx: dict[str, Any] | None = None
    data_config: dict[str, Any] = field(default_factory=dict)
    trained_on: list[dict[str, Any]] = field(default_factory=list)
    format: str = MASK_FORMAT_NAME
    format_version: int = FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any], path: Path) -> MaskManifest:
        """Validate a parsed mask manifest; :class:`ModelError` / :class:`SchemaVersionError`."""
        check_format(obj, path, "mask model manifest", MASK_FORMAT_NAME)
        missing = [k for k in _MASK_MANIFEST_KEYS if k not in obj]
        if missing:
            raise ModelError(f"mask model manifest lacks {', '.join(missing)}", path)
        size = obj["size"]
        if isinstance(size, bool) or not isinstance(size, int) or not 8 <= size <= 4096:
            raise ModelError(f"mask model manifest: size {size!r} is out of range", path)
        if obj["centering"] not in CENTERINGS:
            raise ModelError(f"mask model manifest: unknown centering {obj['centering']!r}",
                             path)
        cov = obj["coverage"]
        if isinstance(cov, bool) or not isinstance(cov, (int, float)) \
                or not 0.1 <= float(cov) <= 1.0:
            raise ModelError(f"mask model manifest: coverage {cov!r} is out of range", path)
        if obj["color_space"] not in COLOR_SPACES:
            raise ModelError(f"mask model manifest: unknown colour space "
                             f"{obj['color_space']!r}", path)
        for key, typ in (("architecture", str), ("model_config", dict), ("weights", dict),
                         ("training", dict)):
            if not isinstance(obj[key], typ):
                raise ModelError(f"mask model manifest: {key} has the wrong type", path)
        _check_file_entry(obj["weights"], "weights", path)
        onnx = obj.get("onnx")
        if onnx is not None:
            if not isinstance(onnx, dict):
                raise ModelError("mask model manifest: onnx must be null or an object", path)
            _check_file_entry(onnx, "onnx", path)
            _check_face_only(onnx, "onnx", path)
        trained = obj.get("trained_on", [])
        if not isinstance(trained, list) or not all(
                isinstance(t, dict) and isinstance(t.get("store"), str)
                and isinstance(t.get("frame"), int) and isinstance(t.get("face"), int)
                for t in trained):
            raise ModelError("mask model manifest: trained_on must list {store, frame, face}",
                             path)
        names = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in obj.items() if k in names}
        kw["coverage"] = float(cov)
        return cls(**kw)


def read_mask_manifest(model_dir: str | os.PathLike[str]) -> MaskManifest:
    """Read and validate ``MODEL_DIR/manifest.json`` of a mask model.

    Raises:
        ModelError: not a mask model directory (a swap model's is refused, saying so), or an
            invalid manifest.
        SchemaVersionError: written by a newer Faceplate.
    """
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise ModelError("not a mask model directory (no such folder)", model_dir)
    path = model_dir / MANIFEST
    return MaskManifest.from_dict(read_json(path, "mask model manifest"), path)


def mask_model_digest(manifest: MaskManifest) -> str | None:
    """The mask model's own digest (its weights' and ONNX export's digests together), as
    :func:`model_digest` for swap models; None when the manifest has no weights digest."""
    weights = manifest.weights.get("sha256")
    if not weights:
        return None
    onnx = (manifest.onnx or {}).get("sha256") or ""
    return hashlib.sha256(f"mask-weights:{weights}\nonnx:{onnx}\n".encode()).hexdigest()


def save_mask_model(model_dir: str | os.PathLike[str],
                    state_dict: Mapping[str, torch.Tensor],
                    manifest: MaskManifest) -> MaskManifest:
    """Write a mask model's weights, then its manifest (with the weights' sha256), atomically."""
    model_dir = Path(model_dir)
    wpath = save_tensors_atomic(model_dir / WEIGHTS, state_dict,
                                {"format": MASK_FORMAT_NAME, "architecture": manifest.architecture})
    manifest = dataclasses.replace(manifest, weights={"file": WEIGHTS,
                                                      "sha256": sha256_file(wpath)})
    write_json_atomic(model_dir / MANIFEST, manifest.to_dict())
    return manifest


def load_mask_model(model_dir: str | os.PathLike[str], device: str = "cpu") -> tuple[Any,
                                                                                      MaskManifest]:
    """Load a mask model for inference.

    Returns:
        ``(model, manifest)``: the :class:`~faceplate.models.occlusion.MaskModel` in eval mode
        with ``requires_grad`` off (N×3×size² sRGB [0, 1] → N×1×size² in [0, 1]), and its
        validated manifest.

    Raises:
        ModelError: missing/invalid manifest or weights (checked against the manifest's
            sha256), unknown architecture, weights that do not fit it; never unpickles.
        SchemaVersionError: written by a newer Faceplate.
    """
    from faceplate.models.occlusion import MASK_MODELS, build_mask_model

    model_dir = Path(model_dir)
    manifest = read_mask_manifest(model_dir)
    mpath = model_dir / MANIFEST
    cfg = _registry_config(MASK_MODELS, manifest.architecture, manifest.model_config, mpath,
                           "mask model")
    if cfg.size != manifest.size:
        raise ModelError(f"model size {cfg.size} differs from the manifest's {manifest.size}",
                         mpath)
    wpath = verify_file(model_dir, manifest.weights, "weights")
    model = build_mask_model(manifest.architecture, cfg)
    try:
        model.load_state_dict(load_tensors(wpath), strict=True)
    except RuntimeError as err:
        first = str(err).splitlines()[0] if str(err) else "mismatch"
        raise ModelError(f"weights do not fit the {manifest.architecture!r} mask model "
                         f"({first})", wpath) from None
    model.eval().requires_grad_(False)
    return model.to(device), manifest
