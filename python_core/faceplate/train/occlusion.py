"""Training the occlusion mask: labelled faces in, a mask model directory out.

One iteration = one optimiser step on a batch of labelled faces with synthetic occluders pasted
over most of them (:mod:`faceplate.train.occlusion_data`); the loss is binary cross-entropy plus
the soft Dice loss (one minus the soft IoU of each face, which is what the mask is judged by).
The learning rate rises linearly over ``warmup`` iterations, then follows a cosine down to a
twentieth of ``lr`` at the target iteration.
With one torch thread (``--threads 1``) the next batch is made on a worker thread meanwhile
(:class:`~faceplate.train.occlusion_data.MaskLoader` ``prefetch``): pasting the occluders and
augmenting costs about as much CPU as the network's step, and the second core is free.

The swap trainer's infrastructure does the rest: checkpoints (:mod:`faceplate.train.checkpoint`:
safetensors, atomic, hashed; ``resume=True`` continues bit-identically at the same iteration
with the same data stream), the speed meter and console line, the preview grid (face | label |
prediction, :func:`faceplate.train.progress.preview_grid`), the loss plot, TensorBoard, and the
ONNX export checked against torch with onnxruntime (:func:`faceplate.train.export.export_graph`).
The model directory's manifest is a :class:`faceplate.io.model_files.MaskManifest`; it lists the
faces trained on, so ``faceplate mask eval`` can leave them out.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor
from torch.nn import functional as F  # noqa: N812  (the PyTorch convention)

from faceplate.core.config import Config, option
from faceplate.core.errors import ConfigError, ModelError, TrainingError
from faceplate.io.model_files import (
    MANIFEST,
    MASK_ONNX_OUTPUTS,
    ONNX,
    ONNX_INPUT,
    MaskManifest,
    load_mask_model,
    read_mask_manifest,
    save_mask_model,
    training_stats,
    write_json_atomic,
)
from faceplate.io.paths import ensure_output_dir, sha256_file
from faceplate.models.occlusion import MASK_MODELS, MaskModel, build_mask_model
from faceplate.train import checkpoint as ckpt_io
from faceplate.train.occlusion_data import (
    FaceKey,
    LabelledFaces,
    MaskDataConfig,
    MaskLoader,
    default_threads,
    preview_faces,
)
from faceplate.train.optim import build_optimizer
from faceplate.train.progress import (
    Meter,
    TensorBoard,
    console_line,
    plot_losses,
    preview_grid,
    save_preview,
)

LogFn = Callable[[str], None]
#: The trainer state's ``kind`` (a swap model's checkpoint is refused, and the other way round).
KIND = "occlusion-mask"
PREVIEW_ROWS = ("face", "label", "mask")


@dataclass(frozen=True)
class MaskTrainConfig(Config):
    """Options of ``faceplate mask train`` (the data's are :class:`MaskDataConfig`)."""

    model: str = option("lite_unet", "Mask model architecture.",
                        choices=tuple(MASK_MODELS.names()))
    size: int = option(256, "Side of the mask model's face crop in px (a multiple of 32).",
                       minimum=64, maximum=1024)
    iterations: int = option(3000, "Target iteration (optimiser steps) to train to.",
                             minimum=1)
    batch_size: int = option(8, "Faces per iteration.", minimum=1, maximum=256)
    lr: float = option(2e-3, "Peak learning rate.", minimum=1e-8)
    warmup: int = option(50, "Iterations over which the learning rate rises to --lr.",
                         minimum=0)
    optimizer: Literal["adam", "adamw"] = option("adamw", "Optimiser.")
    weight_decay: float = option(1e-4, "Decoupled weight decay.", minimum=0.0)
    save_every: int = option(250, "Checkpoint every N iterations.", minimum=1)
    keep_last: int = option(2, "Checkpoints to keep.", minimum=1)
    preview_every: int = option(250, "Write the preview grid and loss plot every N iterations "
                                "(0 = never).", minimum=0)
    preview_faces: int = option(6, "Faces in the preview.", minimum=1, maximum=16)
    log_every: int = option(10, "Console/TensorBoard line every N iterations.", minimum=1)
    seed: int = option(0, "Random seed (weights, occluders, augmentation, sampling).",
                       minimum=0)
    threads: int = option(0, "CPU threads for torch (0 = every core this process may use).",
                          minimum=0)
    export: bool = option(True, "Export ONNX (checked with onnxruntime) when training ends.")


@dataclass
class MaskTrainResult:
    """What a run did.

    Attributes:
        model_dir: The model directory.
        start_iteration: Where it started (or resumed).
        iteration: Where it ended.
        history: Loss history ``{"iteration", "mask": {"bce", "dice", "iou", "total"}}``.
        faces_per_second: Last measured training speed.
        faces: Labelled faces trained on.
        held_out: Labelled faces kept out of training.
        skipped: ``(path, reason)`` of files not used.
        onnx_max_abs_diff: ONNX vs torch, when exported.
    """

    model_dir: Path
    start_iteration: int
    iteration: int
    history: list[dict[str, Any]]
    faces_per_second: float
    faces: int
    held_out: int
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    onnx_max_abs_diff: float | None = None


def mask_lr(iteration: int, cfg: MaskTrainConfig) -> float:
    """The learning rate of step ``iteration + 1``: linear warm-up, then a cosine from ``lr``
    down to ``lr / 20`` at ``cfg.iterations``."""
    if iteration < cfg.warmup:
        return cfg.lr * (iteration + 1) / cfg.warmup
    span = max(1, cfg.iterations - cfg.warmup)
    t = min(1.0, (iteration - cfg.warmup) / span)
    low = cfg.lr / 20.0
    return low + (cfg.lr - low) * 0.5 * (1.0 + math.cos(math.pi * t))


def mask_losses(logits: Tensor, label: Tensor) -> tuple[Tensor, dict[str, float]]:
    """BCE + soft Dice of N×1×S×S logits against N×1×S×S labels in [0, 1].

    Returns:
        ``(loss, parts)``: the scalar loss and ``{"bce", "dice", "iou", "total"}`` (``iou``:
        the batch's mean IoU at threshold 0.5, for the console).
    """
    bce = F.binary_cross_entropy_with_logits(logits, label)
    p = torch.sigmoid(logits)
    inter = (p * label).flatten(1).sum(1)
    union = (p + label).flatten(1).sum(1)
    dice = (1.0 - (2.0 * inter + 1.0) / (union + 1.0)).mean()
    loss = bce + dice
    with torch.no_grad():
        hard, truth = p > 0.5, label > 0.5
        i = (hard & truth).flatten(1).sum(1).float()
        u = (hard | truth).flatten(1).sum(1).float().clamp_min(1.0)
        iou = float((i / u).mean())
    return loss, {"bce": float(bce.detach()), "dice": float(dice.detach()), "iou": iou,
                  "total": float(loss.detach())}


def _cfg_dict(cfg: Any) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(cfg).items()}


class MaskTrainer:
    """Train a mask model on the labelled faces of some faceset folders.

    Args:
        cfg: Trainer options.
        folders: Faceset folders whose faces carry labels (in their stores).
        model_dir: Output model directory.
        data_cfg: Data/augmentation options.
        model_cfg: The architecture's config (its defaults at ``cfg.size`` when None).
        resume: Continue from the newest checkpoint in ``model_dir`` (a fresh start if none).
        log: Called with each console line.
    """

    def __init__(self, cfg: MaskTrainConfig, folders: Sequence[str | os.PathLike[str]],
                 model_dir: str | os.PathLike[str], *, data_cfg: MaskDataConfig | None = None,
                 model_cfg: Any = None, resume: bool = False, log: LogFn | None = None) -> None:
        self.cfg = cfg
        self.folders = [Path(f) for f in folders]
        if not self.folders:
            raise ConfigError("give at least one faceset folder (--faces DIR)")
        self.model_dir = Path(model_dir)
        self.data_cfg = data_cfg or MaskDataConfig()
        if model_cfg is None:
            model_cfg = MASK_MODELS.default_config(cfg.model)
        model_cfg = model_cfg.replace(size=cfg.size)
        self.model_cfg = model_cfg
        self.resume = resume
        self.log: LogFn = log or (lambda _line: None)
        self.iteration = 0
        self.start_iteration = 0
        self.examples_seen = 0
        self.history: list[dict[str, Any]] = []
        self.last_good: int | None = None
        self._tb: TensorBoard | None = None

    # ------------------------------------------------------------------------- set-up

    def setup(self) -> None:
        """Build the model, optimiser and data; restore the checkpoint when resuming."""
        cfg = self.cfg
        torch.set_num_threads(cfg.threads or default_threads())
        ensure_output_dir(self.model_dir, probe=True)
        ckpt_io.remove_partials(self.model_dir)
        existing = ckpt_io.checkpoint_to_resume(self.model_dir, self.resume)
        torch.manual_seed(cfg.seed)
        # channels-last: oneDNN's convolutions take half the time on a CPU in that layout
        self.model: MaskModel = build_mask_model(cfg.model, self.model_cfg).to(
            memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.optimizer = build_optimizer(cfg.optimizer, self.model.parameters(), lr=cfg.lr,
                                         weight_decay=cfg.weight_decay,
                                         device=torch.device("cpu"))
        self.faces = LabelledFaces(self.folders, self.data_cfg, self.model.size)
        self.log(f"{len(self.faces)} labelled faces to train on"
                 + (f", {len(self.faces.held_out)} held out" if self.faces.held_out else "")
                 + f", {self.faces.unlabelled} without labels, "
                 f"{len(self.faces.sources)} occluder texture sources "
                 f"({self.faces.load_seconds:.1f} s)")
        for path, why in self.faces.skipped[:10]:
            self.log(f"skipped {path}: {why}")
        if len(self.faces.skipped) > 10:
            self.log(f"... and {len(self.faces.skipped) - 10} more skipped")
        if existing is not None:
            self._restore(existing)
        elif self.resume:
            self.log(f"no checkpoint in {self.model_dir}: starting a new mask model")
        self.start_iteration = self.iteration
        # with one torch thread the second core makes the next batch meanwhile (the same
        # batches: each is a function of the seed and its index)
        self.loader = MaskLoader(self.faces, cfg.batch_size, self.data_cfg, seed=cfg.seed,
                                 start=self.iteration, prefetch=torch.get_num_threads() == 1)
        self.preview = preview_faces(self.faces, cfg.preview_faces, cfg.seed)
        self._tb = TensorBoard(self.model_dir / "logs",
                               purge_step=self.iteration if self.iteration else None)

    def _restore(self, path: Path) -> None:
        ck = ckpt_io.load_checkpoint(path)
        st = ck.state
        spath = path / ckpt_io.STATE
        if st.get("kind") != KIND:
            raise ConfigError(f"{spath}: not a mask model checkpoint (a swap model's? resume it "
                              "with `faceplate train --resume`)")
        if st.get("model") != self.cfg.model:
            raise ConfigError(f"{spath}: the checkpoint is a {st.get('model')!r} mask model, not "
                              f"{self.cfg.model!r}")
        if st.get("model_config") != _cfg_dict(self.model_cfg):
            raise ConfigError(f"{spath}: the model options differ from the checkpoint's "
                              f"({st.get('model_config')}); resume with the same --size")
        try:
            self.model.load_state_dict(ck.model, strict=True)
            self.optimizer.load_state_dict(ck.optimizers["g"])
        except (RuntimeError, KeyError, ValueError) as err:
            raise ModelError(f"checkpoint does not fit this model ({err})", path) from None
        if ck.rng:
            ckpt_io.restore_rng(ck.rng)
        self.iteration = ck.iteration
        self.examples_seen = int(st.get("examples_seen", 0))
        self.history = list(st.get("history", []))
        self.last_good = ck.iteration
        before = {FaceKey(**k) for k in st.get("trained_on", [])}
        now = set(self.faces.keys)
        if before != now:
            self.log(f"the labelled faces changed since the checkpoint ({len(before)} → "
                     f"{len(now)}): training goes on with the new set")
        self.log(f"resuming the {self.cfg.model} mask model from iteration {ck.iteration}")

    # ----------------------------------------------------------------------- outputs

    def _state(self) -> dict[str, Any]:
        return {"kind": KIND, "model": self.cfg.model, "train_config": _cfg_dict(self.cfg),
                "model_config": _cfg_dict(self.model_cfg),
                "data_config": _cfg_dict(self.data_cfg),
                "folders": [str(f) for f in self.folders],
                "examples_seen": self.examples_seen,
                "lr": mask_lr(self.iteration, self.cfg),
                "trained_on": [k.to_json() for k in self.faces.keys],
                "held_out": [k.to_json() for k in self.faces.held_out],
                "history": self.history}

    def manifest(self, onnx: dict[str, Any] | None = None) -> MaskManifest:
        last = self.history[-1]["mask"] if self.history else {}
        return MaskManifest(
            architecture=self.cfg.model, model_config=_cfg_dict(self.model_cfg),
            size=self.model.size, centering=self.data_cfg.centering,
            coverage=float(self.data_cfg.coverage), weights={"file": "model.safetensors"},
            training=training_stats(self.iteration, self.examples_seen, self.cfg.batch_size,
                                    {f"mask_{k}": v for k, v in last.items()}),
            onnx=onnx, data_config=_cfg_dict(self.data_cfg),
            trained_on=[k.to_json() for k in self.faces.keys])

    def save(self) -> Path:
        """A checkpoint, then the inference weights and manifest."""
        for p in self.model.parameters():
            if not torch.isfinite(p).all():
                self._nan("a weight is not finite")
        path = ckpt_io.save_checkpoint(
            self.model_dir, self.iteration, model=self.model.state_dict(),
            optimizers={"g": self.optimizer.state_dict()}, state=self._state(),
            keep_last=self.cfg.keep_last, snapshot_every=0)
        save_mask_model(self.model_dir, self.model.state_dict(), self.manifest(onnx=None))
        self.last_good = self.iteration
        return path

    def write_preview(self) -> Path:
        """``previews/preview_<iteration>.png`` and ``previews/latest.png`` (face | label |
        mask, one column per face) and the loss plot."""
        was = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                pred = self.model(self.preview.face)
        finally:
            self.model.train(was)
        rows = [self.preview.face, self.preview.label, pred]
        grid = preview_grid(rows, PREVIEW_ROWS, label_width=56)
        path = save_preview(self.model_dir, self.iteration, grid)
        if self.history:
            plot_losses(self.history, self.model_dir / "loss.png",
                        title=f"occlusion mask {self.model.size} px — loss", sides=("mask",))
        if self._tb is not None:
            self._tb.image(self.iteration, grid)
        return path

    def _nan(self, what: str) -> None:
        kept = (f"the last good checkpoint (iteration {self.last_good}) is kept" if
                self.last_good is not None else "no checkpoint had been written yet")
        raise TrainingError(f"mask training diverged at iteration {self.iteration + 1}: {what}; "
                            f"{kept}. Lower --lr and resume with --resume", self.model_dir)

    # -------------------------------------------------------------------------- loop

    def run(self, every: int = 0,
            callback: Callable[[int, MaskModel], bool] | None = None) -> MaskTrainResult:
        """Train to ``cfg.iterations``; returns what was done.

        Args:
            every: Call ``callback`` every this many iterations (0: never).
            callback: Called with (iteration, model) (the model in train mode; switch it to
                eval and back to look at it); returning True stops training there (saved and
                exported as at the end). ``benchmarks/mask.py`` measures IoU against time so.

        Raises:
            InputError: no usable labelled face. TrainingError: NaN/Inf loss (the last good
            checkpoint is kept). OutputError: unwritable model directory.
        """
        self.setup()
        cfg = self.cfg
        meter = Meter(cfg.batch_size)
        acc: dict[str, float] = {}
        n_acc = 0
        self.model.train()
        try:
            while self.iteration < cfg.iterations:
                batch = next(self.loader)
                for group in self.optimizer.param_groups:
                    group["lr"] = mask_lr(self.iteration, cfg)
                logits = self.model.logits(
                    batch.face.contiguous(memory_format=torch.channels_last))
                loss, parts = mask_losses(logits, batch.label)
                if not math.isfinite(parts["total"]):
                    self._nan(f"loss is {parts['total']}")
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer.step()
                self.iteration += 1
                self.examples_seen += cfg.batch_size
                for k, v in parts.items():
                    acc[k] = acc.get(k, 0.0) + v
                n_acc += 1
                meter.tick()
                last = self.iteration == cfg.iterations
                if self.iteration % cfg.log_every == 0 or last:
                    avg = {k: v / n_acc for k, v in acc.items()}
                    self.history.append({"iteration": self.iteration, "mask": avg})
                    self.log(console_line(self.iteration, cfg.iterations, meter, {"mask": avg})
                             .replace("EGs/s", "faces/s"))
                    if self._tb is not None:
                        self._tb.scalars(self.iteration, {"mask": avg},
                                         {"speed/faces_per_s": meter.egs_per_second,
                                          "lr": mask_lr(self.iteration - 1, cfg)})
                    acc, n_acc = {}, 0
                busy = False
                if cfg.preview_every and (self.iteration % cfg.preview_every == 0 or last):
                    self.write_preview()
                    busy = True
                if self.iteration % cfg.save_every == 0 or last:
                    self.save()
                    busy = True
                if callback is not None and every and self.iteration % every == 0:
                    stop = callback(self.iteration, self.model)
                    self.model.train()
                    meter.reset_clock()
                    if stop:
                        break
                if busy:
                    meter.reset_clock()
        except KeyboardInterrupt:
            if self.iteration > (self.last_good or 0):
                self.save()
                self.log(f"interrupted: saved iteration {self.iteration}")
            raise
        finally:
            self.loader.close()
            if self._tb is not None:
                self._tb.close()
                self._tb = None
        if self.iteration > (self.last_good or -1):
            self.save()
        diff = export_mask_model(self.model_dir, model=self.model, log=self.log) \
            if cfg.export else None
        return MaskTrainResult(self.model_dir, self.start_iteration, self.iteration,
                               self.history, meter.egs_per_second, len(self.faces),
                               len(self.faces.held_out), list(self.faces.skipped), diff)


def export_mask_model(model_dir: str | os.PathLike[str], *, model: MaskModel | None = None,
                      tol: float = 1e-4, log: LogFn | None = None) -> float:
    """Export ``MODEL_DIR/model.onnx`` of a mask model, check it against torch with onnxruntime
    and record it (with its sha256) in the manifest; returns the max abs difference.

    Raises:
        ModelError: the export differs from torch by more than ``tol``, or fails.
    """
    from faceplate.train.export import DEFAULT_OPSET, check_graph, export_graph

    model_dir = Path(model_dir)
    manifest = read_mask_manifest(model_dir)
    if model is None:
        model, manifest = load_mask_model(model_dir)
    was = model.training
    model.eval()
    try:
        path = export_graph(model, model, model.size, model_dir / ONNX,
                            outputs=MASK_ONNX_OUTPUTS)
        diff = float(check_graph(model, model, model.size, path, outputs=MASK_ONNX_OUTPUTS,
                                 tol=tol))
    finally:
        model.train(was)
    manifest = dataclasses.replace(manifest, onnx={
        "file": ONNX, "opset": DEFAULT_OPSET, "input": ONNX_INPUT,
        "outputs": list(MASK_ONNX_OUTPUTS), "max_abs_diff": diff, "tolerance": tol,
        "sha256": sha256_file(path)})
    write_json_atomic(model_dir / MANIFEST, manifest.to_dict())
    if log is not None:
        log(f"exported {path} (onnxruntime vs torch max abs diff {diff:.2e})")
    return diff


__all__ = ["KIND", "MaskTrainConfig", "MaskTrainResult", "MaskTrainer", "export_mask_model",
           "mask_losses", "mask_lr"]
