"""``faceplate train --a FACESET_A --b FACESET_B --model df --size 128 --output MODEL_DIR``.

Trains a model that turns B's faces (the footage) into A's. Options: ``--iterations N``,
``--batch-size N`` (per side), ``--resume`` (continue the model in MODEL_DIR; options not given
again are taken from its checkpoint), ``--export-only`` (write the ONNX export of a trained
model; with ``--export-int8`` also the int8 model ``convert --precision int8`` runs), the
trainer options below, every data/augmentation option, and each model's own options
as ``--<model>-<option>`` (e.g. ``--df-ae-dims 512``).

The same options run as the standalone script ``python -m faceplate.train``, which is also what
``torchrun --nproc_per_node N -m faceplate.train ...`` launches for multi-GPU / multi-node DDP
(gloo on CPU, NCCL on GPU; ``--batch-size`` is per process; rank 0 writes the files). The ranks
stop together on a NaN/Inf loss; a rank that loses the others (one killed, or silent for
``$FACEPLATE_DDP_TIMEOUT`` seconds, default 600) stops with an error naming the last checkpoint,
and the same command with ``--resume`` continues from it.

MODEL_DIR receives ``manifest.json`` + ``model.safetensors`` (what convert and the OFX node
load), ``model.onnx``, ``checkpoints/``, ``snapshots/``, ``previews/`` (the preview grid),
``loss.png`` and ``logs/`` (TensorBoard: ``tensorboard --logdir MODEL_DIR/logs``).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from faceplate.cli.options import add_config, config_from_args
from faceplate.core.config import params
from faceplate.core.errors import ConfigError, FaceplateError

_TRAIN = "train_"
_DATA = "data_"
_GAN = "gan_"
#: The GAN's switch and weight are the trainer's ``--gan-start`` / ``--gan-weight``.
_GAN_EXCLUDE = ("power", "start_iteration")


def _model_prefix(name: str) -> str:
    return f"model_{name}_"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add every ``faceplate train`` option to ``p`` (shared with ``python -m faceplate.train``)."""
    from faceplate.models import MODELS
    from faceplate.train.data import DataConfig
    from faceplate.train.gan import GanConfig
    from faceplate.train.trainer import TrainConfig

    p.add_argument("--a", dest="faceset_a", type=Path, default=None, metavar="FACESET_A",
                   help="faceset of A, the person whose face the model learns to produce")
    p.add_argument("--b", dest="faceset_b", type=Path, default=None, metavar="FACESET_B",
                   help="faceset of B, the person in the footage to be replaced")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="MODEL_DIR",
                   help="model directory (created; holds checkpoints, previews and logs)")
    p.add_argument("--resume", action="store_true",
                   help="continue the model in MODEL_DIR from its latest checkpoint")
    p.add_argument("--export-only", action="store_true",
                   help="only export MODEL_DIR's trained model to ONNX (no training); with "
                   "--export-int8 also its int8 model (calibrated on --b, default the "
                   "checkpoint's faceset B)")
    add_config(p, TrainConfig, prefix=_TRAIN, title="training")
    add_config(p, DataConfig, prefix=_DATA, title="data and augmentation", exclude=("size",))
    add_config(p, GanConfig, prefix=_GAN, flag_prefix="gan-", exclude=_GAN_EXCLUDE,
               title="patch-GAN stage (from --gan-start, weighted by --gan-weight)")
    for entry in MODELS:
        add_config(p, entry.config, prefix=_model_prefix(entry.name),
                   flag_prefix=f"{entry.name.replace('_', '-')}-", exclude=("size",),
                   title=f"model '{entry.name}': {entry.summary}")


def register(sub: Any) -> None:
    p = sub.add_parser("train", help="train a swap model on two facesets",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    p.set_defaults(func=run)


def _given(cls: type, ns: argparse.Namespace, prefix: str) -> set[str]:
    return {pr.name for pr in params(cls) if hasattr(ns, prefix + pr.name)}


def _saved_overrides(cls: type, saved: dict[str, Any], given: set[str]) -> dict[str, Any]:
    """Saved values for the fields the user did not give again (JSON lists → tuples)."""
    names = {pr.name for pr in params(cls)}
    return {k: tuple(v) if isinstance(v, list) else v for k, v in saved.items()
            if k in names and k not in given}


#: How long a rank waits for the others in a collective before it stops with an error (a rank
#: that died is usually noticed at once; this bounds a rank that hangs).
DDP_TIMEOUT_ENV = "FACEPLATE_DDP_TIMEOUT"
DEFAULT_DDP_TIMEOUT = 600.0


def _init_distributed() -> bool:
    """Join the process group when launched by ``torchrun`` (WORLD_SIZE > 1)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        want_cuda = os.environ.get("FACEPLATE_DDP_BACKEND", "") != "gloo" \
            and torch.cuda.is_available()
        raw = os.environ.get(DDP_TIMEOUT_ENV, "").strip()
        try:
            seconds = float(raw) if raw else DEFAULT_DDP_TIMEOUT
        except ValueError:
            raise ConfigError(f"{DDP_TIMEOUT_ENV}={raw!r} is not a number of seconds") from None
        dist.init_process_group(backend="nccl" if want_cuda else "gloo",
                                timeout=timedelta(seconds=seconds))
    return True


def build(args: argparse.Namespace) -> tuple[Any, Any, Any, Any, Path, Path]:
    """Configs and facesets from parsed options (``--resume`` fills the rest from the checkpoint).

    Returns:
        ``(train_cfg, model_cfg, data_cfg, gan_cfg, faceset_a, faceset_b)``.
    """
    from faceplate.models import MODELS
    from faceplate.train.data import DataConfig
    from faceplate.train.gan import GanConfig
    from faceplate.train.trainer import TrainConfig, saved_configs

    saved = saved_configs(args.output) if args.resume else None
    tr_over: dict[str, Any] = {}
    data_over: dict[str, Any] = {}
    gan_over: dict[str, Any] = {}
    model_saved: dict[str, Any] = {}
    if saved is not None:
        tr_over = _saved_overrides(TrainConfig, saved["train"], _given(TrainConfig, args, _TRAIN))
        data_over = _saved_overrides(DataConfig, saved["data"], _given(DataConfig, args, _DATA))
        data_over.pop("size", None)
        gan_over = _saved_overrides(GanConfig, saved.get("gan", {}), _given(GanConfig, args, _GAN))
        model_saved = saved["model"]
    cfg = config_from_args(TrainConfig, args, prefix=_TRAIN, **tr_over)
    model_cls = MODELS.config_class(cfg.model)
    prefix = _model_prefix(cfg.model)
    model_over: dict[str, Any] = {}
    if saved is not None and saved["train"].get("model") == cfg.model:
        model_over = _saved_overrides(model_cls, model_saved, _given(model_cls, args, prefix))
        if cfg.size is None:
            model_over.setdefault("size", model_saved.get("size"))
    if cfg.size is not None:
        model_over["size"] = cfg.size
    model_cfg: Any = config_from_args(model_cls, args, prefix=prefix, **model_over)
    data_cfg = config_from_args(DataConfig, args, prefix=_DATA, **data_over)
    gan_cfg = config_from_args(GanConfig, args, prefix=_GAN, **gan_over)
    a = args.faceset_a or (Path(saved["a"]) if saved else None)
    b = args.faceset_b or (Path(saved["b"]) if saved else None)
    if a is None or b is None:
        raise ConfigError("both facesets are needed: --a FACESET_A --b FACESET_B")
    return cfg, model_cfg, data_cfg, gan_cfg, Path(a), Path(b)


def run(args: argparse.Namespace) -> int:
    from faceplate.train.trainer import Trainer, export_int8, export_model

    if args.export_only:
        diff = export_model(args.output, log=_say)
        print(f"onnx: {args.output / 'model.onnx'} (max abs diff vs torch {diff:.2e})")
        if getattr(args, _TRAIN + "export_int8", False):
            entry = export_int8(args.output, args.faceset_b, log=_say)
            print(f"int8: {args.output / entry['file']} (PSNR against the float model "
                  f"{entry['psnr_db']:.1f} dB)")
        return 0
    distributed = _init_distributed()
    try:
        cfg, model_cfg, data_cfg, gan_cfg, a, b = build(args)
        trainer = Trainer(cfg, a, b, args.output, model_cfg=model_cfg, data_cfg=data_cfg,
                          gan_cfg=gan_cfg, resume=args.resume, log=_say)
        res = trainer.run()
    finally:
        if distributed:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()
    if trainer.is_main:
        last = res.history[-1] if res.history else {}
        tot = " ".join(f"{s.upper()} {last[s].get('total', float('nan')):.4f}"
                       for s in ("a", "b") if s in last)
        print(f"train: iterations {res.start_iteration} → {res.iteration}, "
              f"{res.egs_per_second:.1f} EGs/s, loss {tot}, skipped faces {len(res.skipped)}",
              flush=True)
        print(f"model: {res.model_dir}")
    return 0


def _say(line: str) -> None:
    if int(os.environ.get("RANK", "0")) == 0:
        print(line, flush=True)


def main_standalone(argv: Sequence[str] | None = None) -> int:
    """``python -m faceplate.train`` (also under ``torchrun``): the same options as
    ``faceplate train``; returns the exit code."""
    p = argparse.ArgumentParser(prog="python -m faceplate.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    args = p.parse_args(argv)
    try:
        return run(args)
    except FaceplateError as err:
        print(f"faceplate train: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("faceplate train: interrupted; the last checkpoint is kept", file=sys.stderr)
        return 130
