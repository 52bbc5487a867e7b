"""Training checkpoints: weights and optimiser state in safetensors plus a JSON state file.

A checkpoint is a folder ``MODEL_DIR/checkpoints/<iteration:08d>/`` holding

- ``model.safetensors``: the swap model's ``state_dict`` (bit-exact, any dtype);
- ``optimizer.safetensors``: every optimiser's tensor state, flattened to
  ``<name>/state/<param index>/<key>`` (plus ``rng/torch`` and ``rng/cuda/<i>`` byte tensors);
- ``discriminator.safetensors``: the GAN discriminator, when the GAN stage has started;
- ``state.json``: ``format``/``format_version``, ``iteration``, the optimisers' ``param_groups``
  and scalar state, the trainer's JSON state (config, LR schedule position, data seed, loss
  history, ...) and the sha256 of each file above.

Writing is crash- and full-disk-safe: the files go into a hidden ``.partial-*`` folder (each
written atomically and fsynced), the folder is renamed into place, and only then is
``latest.json`` replaced to point at it. A failure anywhere leaves the previous checkpoint and
``latest.json`` untouched. Old checkpoints beyond ``keep_last`` are removed afterwards; every
``snapshot_every`` iterations a copy (hard links) is kept under ``snapshots/``. Loading verifies
the hashes and never unpickles.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from faceplate.core.errors import ConfigError, ModelError, OutputError
from faceplate.io.model_files import (
    FORMAT_NAME,
    FORMAT_VERSION,
    LATEST,
    MANIFEST,
    check_format,
    fsync_dir,
    load_tensors,
    read_json,
    save_tensors_atomic,
    write_json_atomic,
)
from faceplate.io.paths import sha256_file

CHECKPOINTS = "checkpoints"
SNAPSHOTS = "snapshots"
STATE = "state.json"
MODEL = "model.safetensors"
OPTIMIZER = "optimizer.safetensors"
DISCRIMINATOR = "discriminator.safetensors"
_NAME = re.compile(r"^\d{8}$")


@dataclass
class Checkpoint:
    """A loaded checkpoint.

    Attributes:
        path: Its folder.
        iteration: Optimiser steps done when it was written.
        model: The swap model's state dict (CPU tensors).
        optimizers: Name → optimiser state dict (ready for ``Optimizer.load_state_dict``).
        rng: ``{"torch": ByteTensor, "cuda": [ByteTensor, ...]}``.
        discriminator: The discriminator's state dict, or None.
        state: The trainer's JSON state (whatever was passed to :func:`save_checkpoint`).
    """

    path: Path
    iteration: int
    model: dict[str, torch.Tensor]
    optimizers: dict[str, dict[str, Any]]
    rng: dict[str, Any]
    discriminator: dict[str, torch.Tensor] | None
    state: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------- optimiser flattening


def _encode(v: Any) -> Any:
    if isinstance(v, tuple):
        return {"__tuple__": [_encode(x) for x in v]}
    if isinstance(v, list):
        return [_encode(x) for x in v]
    if isinstance(v, float) and v != v:
        return {"__float__": "nan"}
    return v


def _decode(v: Any) -> Any:
    if isinstance(v, dict) and "__tuple__" in v:
        return tuple(_decode(x) for x in v["__tuple__"])
    if isinstance(v, dict) and "__float__" in v:
        return float(v["__float__"])
    if isinstance(v, list):
        return [_decode(x) for x in v]
    return v


def flatten_optimizer(sd: Mapping[str, Any], prefix: str
                      ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimiser ``state_dict`` into tensors and JSON.

    Returns:
        ``(tensors, meta)``: tensors keyed ``<prefix>/state/<pid>/<key>`` and
        ``<prefix>/group/<i>/<key>``; ``meta`` = {"param_groups", "scalars"} (JSON-safe).
    """
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"{prefix}/state/{pid}/{k}"] = v
            else:
                scalars[f"{pid}/{k}"] = _encode(v)
    groups: list[dict[str, Any]] = []
    for i, g in enumerate(sd["param_groups"]):
        out: dict[str, Any] = {}
        for k, v in g.items():
            if torch.is_tensor(v):
                key = f"{prefix}/group/{i}/{k}"
                tensors[key] = v
                out[k] = {"__tensor__": key}
            else:
                out[k] = _encode(v)
        groups.append(out)
    return tensors, {"param_groups": groups, "scalars": scalars}


def unflatten_optimizer(tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any],
                        prefix: str) -> dict[str, Any]:
    """Inverse of :func:`flatten_optimizer`."""
    state: dict[int, dict[str, Any]] = {}
    head = f"{prefix}/state/"
    for key, t in tensors.items():
        if key.startswith(head):
            pid, k = key[len(head):].split("/", 1)
            state.setdefault(int(pid), {})[k] = t
    for key, v in meta.get("scalars", {}).items():
        pid, k = key.split("/", 1)
        state.setdefault(int(pid), {})[k] = _decode(v)
    groups = []
    for g in meta["param_groups"]:
        out = {}
        for k, v in g.items():
            if isinstance(v, dict) and "__tensor__" in v:
                out[k] = tensors[v["__tensor__"]]
            else:
                out[k] = _decode(v)
        groups.append(out)
    return {"state": dict(sorted(state.items())), "param_groups": groups}


def rng_tensors() -> dict[str, torch.Tensor]:
    """The torch CPU (and CUDA) RNG states as byte tensors, keyed ``rng/...``."""
    out = {"rng/torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            out[f"rng/cuda/{i}"] = s
    return out


def restore_rng(rng: Mapping[str, Any]) -> None:
    """Restore states captured by :func:`rng_tensors` (CUDA only where devices match)."""
    torch.set_rng_state(rng["torch"])
    cuda = rng.get("cuda") or []
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


# ------------------------------------------------------------------------------ writing


def _dirs(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_dir() and _NAME.match(p.name))


def _rmtree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def save_checkpoint(model_dir: str | os.PathLike[str], iteration: int, *,
                    model: Mapping[str, torch.Tensor],
                    optimizers: Mapping[str, Mapping[str, Any]],
                    state: Mapping[str, Any],
                    discriminator: Mapping[str, torch.Tensor] | None = None,
                    keep_last: int = 3, snapshot_every: int = 0) -> Path:
    """Write checkpoint ``iteration`` under ``model_dir`` and point ``latest.json`` at it.

    Args:
        model_dir: The model directory.
        iteration: Optimiser steps done.
        model: The swap model's state dict.
        optimizers: Name → optimiser ``state_dict()`` (e.g. {"g": ..., "d": ...}).
        state: JSON-serialisable trainer state (no NaN).
        discriminator: The GAN discriminator's state dict, when there is one.
        keep_last: Checkpoints kept in ``checkpoints/`` (older ones are removed afterwards).
        snapshot_every: When > 0 and ``iteration`` is a multiple, also keep a snapshot.

    Returns:
        The checkpoint folder.

    Raises:
        OutputError: naming the file that could not be written; the previous checkpoint and
            ``latest.json`` are left as they were.
    """
    model_dir = Path(model_dir)
    ckroot = model_dir / CHECKPOINTS
    name = f"{iteration:08d}"
    final = ckroot / name
    tmp = ckroot / f".partial-{name}-{os.getpid()}"
    try:
        ckroot.mkdir(parents=True, exist_ok=True)
        _rmtree(tmp)
        tmp.mkdir()
    except OSError as err:
        raise OutputError(f"cannot create a checkpoint folder ({err.strerror or err})",
                          ckroot) from None
    try:
        opt_tensors: dict[str, torch.Tensor] = dict(rng_tensors())
        opt_meta: dict[str, Any] = {}
        for oname, sd in optimizers.items():
            t, meta = flatten_optimizer(sd, oname)
            opt_tensors.update(t)
            opt_meta[oname] = meta
        files = {MODEL: model, OPTIMIZER: opt_tensors}
        if discriminator is not None:
            files[DISCRIMINATOR] = discriminator
        hashes = {}
        for fname, tensors in files.items():
            save_tensors_atomic(tmp / fname, tensors, {"format": FORMAT_NAME})
            hashes[fname] = sha256_file(tmp / fname)
        doc = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "kind": "checkpoint",
               "iteration": int(iteration), "files": hashes, "optimizers": opt_meta,
               "trainer": dict(state)}
        write_json_atomic(tmp / STATE, doc)
        old = None
        if final.exists():
            old = ckroot / f".old-{name}-{os.getpid()}"
            _rmtree(old)
            os.replace(final, old)
        os.replace(tmp, final)
        fsync_dir(ckroot)
        if old is not None:
            _rmtree(old)
    except OutputError:
        _rmtree(tmp)
        raise
    except OSError as err:
        _rmtree(tmp)
        raise OutputError(f"cannot write the checkpoint ({err.strerror or err}); the previous "
                          "checkpoint is left intact", final) from None
    write_json_atomic(model_dir / LATEST, {"format": FORMAT_NAME, "format_version": FORMAT_VERSION,
                                           "checkpoint": f"{CHECKPOINTS}/{name}",
                                           "iteration": int(iteration)})
    if snapshot_every > 0 and iteration > 0 and iteration % snapshot_every == 0:
        _snapshot(model_dir, final)
    _prune(ckroot, keep_last, keep=final)
    return final


def _snapshot(model_dir: Path, ckpt: Path) -> None:
    """Copy a checkpoint to ``snapshots/`` (hard links: checkpoint files are never rewritten)."""
    root = model_dir / SNAPSHOTS
    dest = root / ckpt.name
    if dest.exists():
        return
    tmp = root / f".partial-{ckpt.name}-{os.getpid()}"
    try:
        root.mkdir(exist_ok=True)
        _rmtree(tmp)
        tmp.mkdir()
        for f in ckpt.iterdir():
            try:
                os.link(f, tmp / f.name)
            except OSError:
                shutil.copy2(f, tmp / f.name)
        os.replace(tmp, dest)
        fsync_dir(root)
    except OSError as err:
        _rmtree(tmp)
        raise OutputError(f"cannot write a snapshot ({err.strerror or err})", dest) from None


def _prune(ckroot: Path, keep_last: int, keep: Path) -> None:
    for stale in ckroot.glob(".partial-*"):
        _rmtree(stale)
    dirs = _dirs(ckroot)
    for d in dirs[:-max(1, keep_last)]:
        if d != keep:
            _rmtree(d)


# ------------------------------------------------------------------------------ reading


def list_checkpoints(model_dir: str | os.PathLike[str]) -> list[Path]:
    """Complete checkpoint folders (with a ``state.json``), oldest first."""
    return [d for d in _dirs(Path(model_dir) / CHECKPOINTS) if (d / STATE).is_file()]


def latest_checkpoint(model_dir: str | os.PathLike[str]) -> Path | None:
    """The checkpoint ``latest.json`` points at (else the newest complete one), or None.

    Raises:
        ModelError / SchemaVersionError: ``latest.json`` is not ours or is too new.
    """
    model_dir = Path(model_dir)
    ptr = model_dir / LATEST
    if ptr.is_file():
        obj = read_json(ptr, "latest-checkpoint pointer")
        check_format(obj, ptr, "latest-checkpoint pointer")
        rel = obj.get("checkpoint")
        if not isinstance(rel, str) or not re.fullmatch(rf"{CHECKPOINTS}/\d{{8}}", rel):
            raise ModelError(f"latest.json points at an invalid checkpoint {rel!r}", ptr)
        if (model_dir / rel / STATE).is_file():
            return model_dir / rel
    found = list_checkpoints(model_dir)
    return found[-1] if found else None


def checkpoint_to_resume(model_dir: str | os.PathLike[str], resume: bool) -> Path | None:
    """The checkpoint a training run into ``model_dir`` continues from (None: a new model).

    A run never overwrites a model: without ``resume`` a folder holding a checkpoint is
    refused, and a folder holding a model without checkpoints (only its manifest: exported,
    its checkpoints removed) is refused even with ``resume``, since nothing could be resumed.

    Raises:
        ConfigError: the folder already holds a model this run may not continue.
        ModelError / SchemaVersionError: ``latest.json`` is not ours or is too new.
    """
    model_dir = Path(model_dir)
    existing = latest_checkpoint(model_dir)
    if existing is not None and not resume:
        raise ConfigError(f"{model_dir} already holds a model (checkpoint {existing.name}); "
                          "pass --resume to continue it, or choose another output folder")
    if existing is None and (model_dir / MANIFEST).exists():
        raise ConfigError(f"{model_dir} already holds a model (manifest.json) without "
                          "checkpoints to resume from; choose another output folder")
    return existing


def read_state(ckpt: str | os.PathLike[str]) -> dict[str, Any]:
    """A checkpoint's validated ``state.json`` (no tensors loaded)."""
    path = Path(ckpt) / STATE
    doc = read_json(path, "checkpoint state")
    check_format(doc, path, "checkpoint state")
    if doc.get("kind") != "checkpoint" or not isinstance(doc.get("iteration"), int) \
            or not isinstance(doc.get("files"), dict) or not isinstance(doc.get("trainer"), dict):
        raise ModelError("checkpoint state is incomplete (kind/iteration/files/trainer)", path)
    return doc


def load_checkpoint(ckpt: str | os.PathLike[str]) -> Checkpoint:
    """Load a checkpoint folder, verifying every file against the hashes in ``state.json``.

    Raises:
        ModelError: a file is missing, altered, or not safetensors (never unpickled).
        SchemaVersionError: written by a newer Faceplate.
    """
    ckpt = Path(ckpt)
    doc = read_state(ckpt)
    loaded: dict[str, dict[str, torch.Tensor]] = {}
    for fname, digest in doc["files"].items():
        if fname not in (MODEL, OPTIMIZER, DISCRIMINATOR):
            raise ModelError(f"checkpoint lists an unknown file {fname!r}", ckpt / STATE)
        path = ckpt / fname
        if not path.is_file():
            raise ModelError("checkpoint file is missing", path)
        if sha256_file(path) != digest:
            raise ModelError("checkpoint file does not match its sha256 in state.json "
                             "(altered or corrupt)", path)
        loaded[fname] = load_tensors(path)
    if MODEL not in loaded or OPTIMIZER not in loaded:
        raise ModelError("checkpoint lacks model or optimizer weights", ckpt / STATE)
    opt = loaded[OPTIMIZER]
    optimizers = {name: unflatten_optimizer(opt, meta, name)
                  for name, meta in doc.get("optimizers", {}).items()}
    cuda = [opt[k] for k in sorted(k for k in opt if k.startswith("rng/cuda/"))]
    rng: dict[str, Any] = {"torch": opt["rng/torch"], "cuda": cuda} if "rng/torch" in opt else {}
    return Checkpoint(path=ckpt, iteration=doc["iteration"], model=loaded[MODEL],
                      optimizers=optimizers, rng=rng, discriminator=loaded.get(DISCRIMINATOR),
                      state=doc["trainer"])


def remove_partials(model_dir: str | os.PathLike[str]) -> None:
    """Remove leftovers of an interrupted checkpoint write (hidden ``.partial-*`` folders)."""
    for root in (Path(model_dir) / CHECKPOINTS, Path(model_dir) / SNAPSHOTS):
        for old in root.glob(".old-*"):
            # a crash between moving a checkpoint aside and renaming its replacement in
            dest = root / old.name.split("-")[1]
            with contextlib.suppress(OSError):
                if _NAME.match(dest.name) and not dest.exists():
                    os.replace(old, dest)
                else:
                    _rmtree(old)
        for stale in root.glob(".partial-*"):
            with contextlib.suppress(OSError):
                _rmtree(stale)
