"""The training loop: two facesets in, a model directory out.

One iteration = one optimiser step: for each of ``accumulate`` micro-batches, a batch of A's and
a batch of B's faces go through the model in one forward (``forward_pair``: A's decoder
reconstructs A, B's reconstructs B), the :class:`~faceplate.train.losses.CompositeLoss` of each
side is summed, and gradients accumulate; then clipping (global norm), the LR warm-up and the
optimiser step. From ``gan_start`` on, a patch discriminator on A's faces adds an adversarial term.

Every ``save_every`` iterations (and at the end, and on Ctrl-C) rank 0 writes a checkpoint
(:mod:`faceplate.train.checkpoint`) and the inference weights + manifest
(:mod:`faceplate.io.model_files`). ``resume=True`` continues from the newest checkpoint at the
same iteration, with the same LR schedule position, optimiser state, RNG state and data-stream
position (the loader's batch ``k`` depends only on ``(seed, k)``), so a resumed run trains
exactly as the uninterrupted one would have.

A NaN/Inf loss (or gradient) stops training with :class:`TrainingError`; nothing is saved after
the last good checkpoint.

Distributed: when ``torch.distributed`` is initialised (``torchrun``), the model is wrapped in
DDP, each rank loads its own shard of every batch (``PairLoader(rank=, world=)``), ``batch_size``
is per process and per side, and only rank 0 writes files.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
import torch.distributed as dist
from torch import Tensor, nn

from faceplate.core.config import Config, option
from faceplate.core.cpu import keep_freed_memory
from faceplate.core.errors import ConfigError, ModelError, TrainingError
from faceplate.io.model_files import (
    MANIFEST,
    Manifest,
    read_manifest,
    save_model,
    training_stats,
    write_manifest,
)
from faceplate.io.paths import ensure_output_dir, sha256_file
from faceplate.models import MODELS, SwapModel, build_model
from faceplate.train import checkpoint as ckpt_io
from faceplate.train.data import DataConfig, Faceset, PairLoader
from faceplate.train.gan import GanConfig, gan_losses
from faceplate.train.losses import CompositeLoss, parse_losses
from faceplate.train.optim import build_optimizer
from faceplate.train.progress import (
    Meter,
    TensorBoard,
    console_line,
    plot_losses,
    preview_grid,
    save_preview,
    swap_rows,
)

Precision = Literal["fp32", "bf16", "fp16"]
LogFn = Callable[[str], None]


@dataclass(frozen=True)
class TrainConfig(Config):
    """Trainer options (the model's and the data's options are their own configs)."""

    model: str = option("original", "Model architecture.", choices=tuple(MODELS.names()))
    size: int | None = option(None, "Training resolution in px (default: the model's default).",
                              minimum=64, maximum=512)
    iterations: int = option(100000, "Target iteration (optimiser steps) to train to.",
                             minimum=1)
    batch_size: int = option(16, "Faces per side per iteration (per process under torchrun).",
                             minimum=1, maximum=256)
    lr: float = option(5e-5, "Learning rate.", minimum=1e-12)
    optimizer: Literal["adam", "adamw", "adabelief"] = option("adam", "Optimiser.")
    weight_decay: float = option(0.0, "Weight decay (decoupled for adamw/adabelief).",
                                 minimum=0.0)
    warmup: int = option(0, "LR warm-up: iterations over which the LR rises linearly to --lr.",
                         minimum=0)
    clip_grad: float = option(0.0, "Clip the gradients' global norm to this (0 = off).",
                              minimum=0.0)
    accumulate: int = option(1, "Gradient accumulation: micro-batches per optimiser step.",
                             minimum=1, maximum=100)
    precision: Precision = option("fp32", "Arithmetic: fp32, or bf16/fp16 mixed precision "
                                  "(autocast; fp16 with a gradient scaler).")
    channels_last: bool = option(False, "Channels-last memory format (faster on GPU).")
    compile: bool = option(False, "torch.compile the training step (slow start).")
    losses: str = option("ssim:1,l2:1", "Reconstruction losses with weights, e.g. "
                         "'ssim:10,l2:10' (ssim, ms_ssim, l1, l2, ffl).")
    mask_loss: float = option(1.0, "Weight of the learned-mask loss.", minimum=0.0)
    penalized_mask_loss: bool = option(True, "Compare faces only inside the target mask.")
    gan_start: int = option(0, "Iteration at which the patch-GAN stage starts (0 = no GAN).",
                            minimum=0)
    gan_weight: float = option(0.1, "Weight of the generator's GAN loss.", minimum=0.0)
    save_every: int = option(250, "Checkpoint every N iterations.", minimum=1)
    snapshot_every: int = option(25000, "Keep a snapshot every N iterations (0 = never).",
                                 minimum=0)
    keep_last: int = option(3, "Checkpoints to keep (older ones are removed).", minimum=1)
    preview_every: int = option(250, "Write the preview grid and loss plot every N iterations "
                                "(0 = never).", minimum=0)
    preview_faces: int = option(6, "Faces per preview row.", minimum=1, maximum=16)
    log_every: int = option(10, "Console/TensorBoard line every N iterations.", minimum=1)
    seed: int = option(0, "Random seed (weights, augmentation, sampling).", minimum=0)
    threads: int = option(0, "CPU threads for torch (0 = torch's default).", minimum=0)
    device: Literal["auto", "cpu", "cuda"] = option("auto", "Device (auto: cuda if present).")
    export: bool = option(True, "Export ONNX (checked with onnxruntime) when training ends.")
    export_int8: bool = option(False, "Also write the int8 model (model.int8.onnx, run by "
                               "`faceplate convert --precision int8`): the ONNX export "
                               "statically quantised, calibrated on faceset B's faces and "
                               "checked against the float graph (PSNR).")

    def __post_init__(self) -> None:
        super().__post_init__()
        parse_losses(self.losses)  # ConfigError for a bad spec, before any work
        if self.export_int8 and not self.export:
            raise ConfigError("export_int8: the int8 model is made from the ONNX export; "
                              "keep --export on")


@dataclass
class TrainResult:
    """What a run did.

    Attributes:
        model_dir: The model directory.
        start_iteration: The iteration it started (or resumed) from.
        iteration: The iteration it reached.
        history: Loss history entries ``{"iteration", "a": {...}, "b": {...}}`` (all runs).
        egs_per_second: Last measured speed (both sides counted).
        skipped: Faces skipped while scanning, ``(path, reason)``.
        onnx_max_abs_diff: ONNX vs torch, when exported.
        int8: The int8 export's manifest entry (its PSNR against the float graph), when made.
    """

    model_dir: Path
    start_iteration: int
    iteration: int
    history: list[dict[str, Any]]
    egs_per_second: float
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    onnx_max_abs_diff: float | None = None
    int8: dict[str, Any] | None = None


def lr_at(iteration: int, lr: float, warmup: int) -> float:
    """The LR schedule: linear warm-up over ``warmup`` iterations, then constant.

    ``iteration`` is the number of steps already done (the step being taken is ``iteration+1``).
    """
    if warmup <= 0:
        return lr
    return lr * min(1.0, (iteration + 1) / warmup)


class _PairStep(nn.Module):
    """Both sides' forward in one call (so DDP sees one forward per backward)."""

    def __init__(self, model: SwapModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, xa: Tensor, xb: Tensor) -> Any:
        return self.model.forward_pair(xa, xb)


def _resolve_device(name: str) -> torch.device:
    if name == "cuda" or (name == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise ConfigError("device: cuda requested but no CUDA device is available")
        if dist.is_available() and dist.is_initialized():
            local = int(os.environ.get("LOCAL_RANK", "0"))
            torch.cuda.set_device(local)
            return torch.device("cuda", local)
        return torch.device("cuda")
    return torch.device("cpu")


def _lost_peer(err: RuntimeError) -> bool:
    """Whether a collective failed because another rank is gone (or stopped answering)."""
    backend_error = getattr(dist, "DistBackendError", ())
    text = str(err).lower()
    return isinstance(err, backend_error) or any(
        k in text for k in ("gloo", "nccl", "connection", "timed out", "timeout", "peer"))


def _rank_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _config_dict(cfg: Any) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(cfg).items()}


def _config_from(cls: type, values: dict[str, Any], path: Path) -> Any:
    known = {f.name for f in dataclasses.fields(cls)}
    extra = sorted(set(values) - known)
    if extra:
        raise ModelError(f"saved {cls.__name__} has options this Faceplate does not know "
                         f"({', '.join(extra)}): written by an incompatible version", path)
    try:
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})
    except (ConfigError, TypeError) as err:
        raise ModelError(f"saved {cls.__name__} is invalid for this Faceplate ({err})",
                         path) from None


def saved_configs(model_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The configs of the newest checkpoint in ``model_dir``, or None when there is none.

    Returns:
        ``{"train": dict, "model": dict, "data": dict, "gan": dict, "a": str, "b": str,
        "iteration": int, "checkpoint": Path}`` (plain JSON values).
    """
    path = ckpt_io.latest_checkpoint(model_dir)
    if path is None:
        return None
    doc = ckpt_io.read_state(path)
    tr = doc["trainer"]
    try:
        return {"train": dict(tr["train_config"]), "model": dict(tr["model_config"]),
                "data": dict(tr["data_config"]), "gan": dict(tr.get("gan_config", {})),
                "a": tr["facesets"]["a"],
                "b": tr["facesets"]["b"], "iteration": doc["iteration"], "checkpoint": path}
    except (KeyError, TypeError):
        raise ModelError("checkpoint state lacks its configs (incompatible version)",
                         path / ckpt_io.STATE) from None


class Trainer:
    """Train a swap model on two facesets.

    Args:
        cfg: Trainer options.
        folder_a: Faceset of A (the identity to produce).
        folder_b: Faceset of B (the footage's person).
        model_dir: Output model directory.
        model_cfg: The model's config (default: the model's defaults at ``cfg.size``).
        data_cfg: Data/augmentation config (its ``size`` is set to the model's input size).
        gan_cfg: Discriminator options (dims, layers, spectral norm, loss kind, its LR); the
            stage itself is switched by ``cfg.gan_start`` and weighted by ``cfg.gan_weight``.
        resume: Continue from the newest checkpoint in ``model_dir`` (a fresh start if none).
        log: Called with each console line (default: ignore).

    Use :meth:`run`; :meth:`setup` alone builds everything and restores the checkpoint (for
    inspection), :meth:`close` releases the loader and log writers.
    """

    def __init__(self, cfg: TrainConfig, folder_a: str | os.PathLike[str],
                 folder_b: str | os.PathLike[str], model_dir: str | os.PathLike[str], *,
                 model_cfg: Any = None, data_cfg: DataConfig | None = None,
                 gan_cfg: GanConfig | None = None, resume: bool = False,
                 log: LogFn | None = None) -> None:
        self.cfg = cfg
        self.folder_a = Path(folder_a)
        self.folder_b = Path(folder_b)
        self.model_dir = Path(model_dir)
        self.resume = resume
        self.log: LogFn = log or (lambda _line: None)
        self.rank, self.world = _rank_world()
        if model_cfg is None:
            model_cfg = MODELS.default_config(cfg.model)
        elif not isinstance(model_cfg, MODELS.config_class(cfg.model)):
            raise ConfigError(f"model {cfg.model!r} takes a "
                              f"{MODELS.config_class(cfg.model).__name__}, got "
                              f"{type(model_cfg).__name__}")
        if cfg.size is not None and model_cfg.size != cfg.size:
            model_cfg = model_cfg.replace(size=cfg.size)
        self.model_cfg = model_cfg
        self.data_cfg = data_cfg or DataConfig()
        self.gan_cfg = gan_cfg or GanConfig()
        self.iteration = 0
        self.start_iteration = 0
        self.examples_seen = 0
        self.next_batch = 0  # index of the next batch pair the data stream yields
        self.history: list[dict[str, Any]] = []
        self.skipped: list[tuple[Path, str]] = []
        self._ready = False
        self._loader: PairLoader | None = None
        self._tb: TensorBoard | None = None
        self._preview: tuple[Tensor, Tensor] | None = None
        self.last_good: int | None = None
        self.disc: nn.Module | None = None
        self.d_opt: torch.optim.Optimizer | None = None

    # ------------------------------------------------------------------------- set-up

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def setup(self) -> None:
        """Build model, optimiser, data and logs; restore the checkpoint when resuming."""
        if self._ready:
            return
        cfg = self.cfg
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.device = _resolve_device(cfg.device)
        if self.device.type == "cpu":
            keep_freed_memory()
        if self.is_main:
            ensure_output_dir(self.model_dir, probe=True)
            ckpt_io.remove_partials(self.model_dir)
        existing = ckpt_io.checkpoint_to_resume(self.model_dir, self.resume)

        torch.manual_seed(cfg.seed)
        self.model = build_model(cfg.model, self.model_cfg).to(self.device)
        if cfg.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.data_cfg = self.data_cfg.replace(size=self.model.input_size)
        self.criterion = CompositeLoss(cfg.losses, mask_weight=cfg.mask_loss,
                                       masked=cfg.penalized_mask_loss).to(self.device)
        self.optimizer = build_optimizer(cfg.optimizer, self.model.parameters(), lr=cfg.lr,
                                         weight_decay=cfg.weight_decay, device=self.device)
        self.amp_dtype = {"fp32": None, "bf16": torch.bfloat16,
                          "fp16": torch.float16}[cfg.precision]
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=cfg.precision == "fp16")

        if existing is not None:
            self._restore(existing)
        elif self.resume:
            self.log(f"no checkpoint in {self.model_dir}: starting a new model")
        self.start_iteration = self.iteration

        step: nn.Module = _PairStep(self.model)
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            step = DistributedDataParallel(step, device_ids=ids)
        if cfg.compile:
            step = torch.compile(step)  # type: ignore[assignment]
        self.step_module = step

        self.face_a = Faceset(self.folder_a, self.data_cfg)
        self.face_b = Faceset(self.folder_b, self.data_cfg)
        self.skipped = list(self.face_a.skipped) + list(self.face_b.skipped)
        for side, fs in (("A", self.face_a), ("B", self.face_b)):
            if fs.skipped:
                self.log(f"faceset {side}: skipped {len(fs.skipped)} unreadable face(s), e.g. "
                         f"{fs.skipped[0][0]}: {fs.skipped[0][1]}")
        self._loader = PairLoader(self.face_a, self.face_b, cfg.batch_size, self.data_cfg,
                                  seed=cfg.seed, rank=self.rank, world=self.world,
                                  start=self.next_batch)
        self._batches: Iterator[Any] = iter(self._loader)
        if self.is_main:
            self._tb = TensorBoard(self.model_dir / "logs",
                                   purge_step=self.iteration if self.iteration else None)
        self._ready = True

    def _restore(self, path: Path) -> None:
        ck = ckpt_io.load_checkpoint(path)
        st = ck.state
        spath = path / ckpt_io.STATE
        saved_model = st.get("model")
        if saved_model != self.cfg.model:
            raise ConfigError(f"{spath}: the checkpoint is a {saved_model!r} model, not "
                              f"{self.cfg.model!r} (use the same --model to resume)")
        saved_cfg = _config_from(MODELS.config_class(self.cfg.model), st["model_config"], spath)
        if saved_cfg != self.model_cfg:
            diff = [f.name for f in dataclasses.fields(saved_cfg)
                    if getattr(saved_cfg, f.name) != getattr(self.model_cfg, f.name)]
            raise ConfigError(f"{spath}: the model options differ from the checkpoint's "
                              f"({', '.join(diff)}); resume with the same model options")
        try:
            self.model.load_state_dict(ck.model, strict=True)
            self.optimizer.load_state_dict(ck.optimizers["g"])
        except (RuntimeError, KeyError, ValueError) as err:
            raise ModelError(f"checkpoint does not fit this model/optimiser ({err})",
                             path) from None
        if "scaler" in st and self.scaler.is_enabled():
            self.scaler.load_state_dict(st["scaler"])
        if ck.discriminator is not None:
            self._build_gan()
            assert self.disc is not None and self.d_opt is not None
            self.disc.load_state_dict(ck.discriminator)
            if "d" in ck.optimizers:
                self.d_opt.load_state_dict(ck.optimizers["d"])
        if ck.rng:
            ckpt_io.restore_rng(ck.rng)
        self.iteration = ck.iteration
        self.examples_seen = int(st.get("examples_seen", 0))
        self.next_batch = int(st.get("data", {}).get("next_batch", 0))
        self.history = list(st.get("history", []))
        self.last_good = ck.iteration
        self.log(f"resuming {self.cfg.model} from iteration {ck.iteration} ({path})")

    def _build_gan(self) -> None:
        from faceplate.train.gan import PatchDiscriminator

        torch.manual_seed(self.cfg.seed + 1)
        self.disc = PatchDiscriminator.from_config(self.gan_cfg).to(self.device)
        self.d_opt = build_optimizer(self.cfg.optimizer, self.disc.parameters(),
                                     lr=self.gan_cfg.lr, weight_decay=0.0, device=self.device)

    # ---------------------------------------------------------------------- one step

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def _to_device(self, batch: Any) -> Any:
        nb = self.device.type == "cuda"
        fields = {k: (v.to(self.device, non_blocking=nb) if torch.is_tensor(v) else v)
                  for k, v in batch._asdict().items()}
        if self.cfg.channels_last:
            for k in ("warped", "target"):
                fields[k] = fields[k].contiguous(memory_format=torch.channels_last)
        return type(batch)(**fields)

    def _train_step(self) -> dict[str, dict[str, float]]:
        """One optimiser step over ``accumulate`` micro-batches; returns the losses."""
        cfg = self.cfg
        accum = cfg.accumulate
        gan_on = cfg.gan_start > 0 and self.iteration >= cfg.gan_start
        if gan_on and self.disc is None:
            self._build_gan()
            self.log(f"iteration {self.iteration}: GAN stage starts")
        sums: dict[str, dict[str, float]] = {"a": {}, "b": {}}
        for micro in range(accum):
            ba, bb = next(self._batches)
            self.next_batch += 1
            ba, bb = self._to_device(ba), self._to_device(bb)
            sync = micro == accum - 1 or self.world == 1
            no_sync = getattr(self.step_module, "no_sync", None)
            ctx = no_sync() if not sync and no_sync is not None else contextlib.nullcontext()
            with ctx:
                with self._autocast():
                    (fa, ma), (fb, mb) = self.step_module(ba.warped, bb.warped)
                loss_a, parts_a = self.criterion(fa, ma, ba)
                loss_b, parts_b = self.criterion(fb, mb, bb)
                loss = loss_a + loss_b
                d_loss = None
                if gan_on:
                    assert self.disc is not None
                    with self._autocast():
                        d_loss, g_loss = gan_losses(self.disc, ba.target, fa,
                                                    kind=self.gan_cfg.loss)
                    loss = loss + cfg.gan_weight * g_loss
                    parts_a["gan_g"] = float(g_loss.detach())
                    parts_a["gan_d"] = float(d_loss.detach())
                for side, parts in (("a", parts_a), ("b", parts_b)):
                    for k, v in parts.items():
                        sums[side][k] = sums[side].get(k, 0.0) + v / accum
                self._check_finite(parts_a["total"], parts_b["total"])
                d_grads = None
                if self.disc is not None and gan_on:
                    # the generator's backward also reaches D: keep only D's own gradients
                    d_grads = [p.grad for p in self.disc.parameters()]
                    for p in self.disc.parameters():
                        p.grad = None
                self.scaler.scale(loss / accum).backward()
                if d_grads is not None and d_loss is not None:
                    assert self.disc is not None
                    for p, dg in zip(self.disc.parameters(), d_grads):
                        p.grad = dg
                    (d_loss / accum).backward()

        lr = lr_at(self.iteration, cfg.lr, cfg.warmup)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.scaler.unscale_(self.optimizer)
        params = [p for p in self.model.parameters() if p.grad is not None]
        norm = torch.nn.utils.clip_grad_norm_(params, cfg.clip_grad if cfg.clip_grad > 0
                                              else float("inf"))
        if not torch.isfinite(norm) and not self.scaler.is_enabled():
            self._nan(f"gradient norm is {float(norm)}")
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        if gan_on and self.d_opt is not None and self.disc is not None:
            if self.world > 1:  # D is not DDP-wrapped: average its gradients by hand
                for p in self.disc.parameters():
                    if p.grad is not None:
                        dist.all_reduce(p.grad)
                        p.grad /= self.world
            self.d_opt.step()
            self.d_opt.zero_grad(set_to_none=True)
        if self._preview is None:
            n = self.cfg.preview_faces
            self._preview = (ba.target[:n].detach().float().clone(),
                             bb.target[:n].detach().float().clone())
        return sums

    def _check_finite(self, total_a: float, total_b: float) -> None:
        """Stop on a NaN/Inf loss, every rank together: under DDP the ranks agree first (one
        all-reduce of a flag), so one rank never stops while the others wait in the gradient
        all-reduce."""
        bad = not (math.isfinite(total_a) and math.isfinite(total_b))
        if self.world > 1:
            flags = torch.zeros(self.world, device=self.device)
            flags[self.rank] = float(bad)
            dist.all_reduce(flags)
            ranks = [r for r in range(self.world) if flags[r] > 0]
            if ranks:
                self._nan(f"the loss is not finite on rank(s) {', '.join(map(str, ranks))} of "
                          f"{self.world}" + (f" (here {total_a} (A) / {total_b} (B))" if bad
                                             else ""))
        elif bad:
            self._nan(f"loss is {total_a} (A) / {total_b} (B)")

    def _nan(self, what: str) -> None:
        kept = (f"the last good checkpoint (iteration {self.last_good}) is kept in "
                f"{self.model_dir}" if self.last_good is not None else
                "no checkpoint had been written yet")
        hint = "lower --lr or enable --clip-grad" + (
            "" if self.cfg.precision == "fp32" else ", or use --precision fp32")
        raise TrainingError(f"training diverged at iteration {self.iteration + 1}: {what}; "
                            f"{kept}. Resume with --resume after you {hint}", self.model_dir)

    # --------------------------------------------------------------------- outputs

    def _state(self) -> dict[str, Any]:
        return {"model": self.cfg.model, "train_config": _config_dict(self.cfg),
                "model_config": _config_dict(self.model_cfg),
                "data_config": _config_dict(self.data_cfg),
                "gan_config": _config_dict(self.gan_cfg),
                "facesets": {"a": str(self.folder_a), "b": str(self.folder_b)},
                "examples_seen": self.examples_seen,
                "lr": lr_at(self.iteration, self.cfg.lr, self.cfg.warmup),
                "lr_schedule": {"kind": "linear_warmup", "lr": self.cfg.lr,
                                "warmup": self.cfg.warmup, "position": self.iteration},
                "data": {"seed": self.cfg.seed, "next_batch": self.next_batch,
                         "world": self.world, "global_batch": self.cfg.batch_size * self.world},
                "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else {},
                "history": self.history}

    def _last_losses(self) -> dict[str, float]:
        if not self.history:
            return {}
        h = self.history[-1]
        return {f"{s}_{k}": v for s in ("a", "b") for k, v in h.get(s, {}).items()}

    def manifest(self, onnx: dict[str, Any] | None = None) -> Manifest:
        """The inference manifest for the current state (weights block filled on save)."""
        dc = self.data_cfg
        return Manifest(
            architecture=self.cfg.model, model_config=_config_dict(self.model_cfg),
            size=int(self.model_cfg.size), input_size=self.model.input_size,
            output_size=self.model.output_size, centering=str(getattr(dc, "centering", "face")),
            coverage=float(getattr(dc, "coverage", 1.0)), learn_mask=self.model.learn_mask,
            weights={"file": "model.safetensors"},
            training=training_stats(self.iteration, self.examples_seen,
                                    self.cfg.batch_size * self.world, self._last_losses()),
            onnx=onnx, data_config=_config_dict(dc))

    def save(self) -> Path:
        """Write a checkpoint and the inference weights + manifest (rank 0 only)."""
        for p in self.model.parameters():
            if not torch.isfinite(p).all():
                self._nan("a weight is not finite")
        disc = self.disc.state_dict() if self.disc is not None else None
        opts = {"g": self.optimizer.state_dict()}
        if self.d_opt is not None:
            opts["d"] = self.d_opt.state_dict()
        path = ckpt_io.save_checkpoint(
            self.model_dir, self.iteration, model=self.model.state_dict(), optimizers=opts,
            state=self._state(), discriminator=disc, keep_last=self.cfg.keep_last,
            snapshot_every=self.cfg.snapshot_every)
        # any earlier ONNX export no longer matches these weights: the manifest drops it
        save_model(self.model_dir, self.model.state_dict(), self.manifest(onnx=None))
        self.last_good = self.iteration
        return path

    def write_preview(self) -> Path | None:
        """Write ``previews/preview_<iteration>.png``, ``previews/latest.png`` and the loss plot."""
        if self._preview is None:
            return None
        was = self.model.training
        self.model.eval()
        try:
            with self._autocast():
                rows = swap_rows(self.model, *self._preview)
        finally:
            self.model.train(was)
        grid = preview_grid(rows)
        path = save_preview(self.model_dir, self.iteration, grid)
        if self.history:
            plot_losses(self.history, self.model_dir / "loss.png",
                        title=f"{self.cfg.model} {self.model.output_size} px — loss")
        if self._tb is not None:
            self._tb.image(self.iteration, grid)
        return path

    def export(self) -> float | None:
        """Export ONNX beside the weights and record it in the manifest; max abs diff vs torch."""
        return export_model(self.model_dir, model=self.model, log=self.log)

    # ------------------------------------------------------------------------ loop

    def run(self) -> TrainResult:
        """Train to ``cfg.iterations``; returns what was done.

        Raises:
            TrainingError: NaN/Inf loss (the last good checkpoint is kept).
            InputError: unusable facesets. OutputError: unwritable model directory.
        """
        self.setup()
        cfg = self.cfg
        per_iter = 2 * cfg.batch_size * cfg.accumulate
        meter = Meter(per_iter * self.world)
        acc: dict[str, dict[str, float]] = {"a": {}, "b": {}}
        n_acc = 0
        onnx_diff = None
        self.model.train()
        try:
            while self.iteration < cfg.iterations:
                losses = self._train_step()
                self.iteration += 1
                self.examples_seen += per_iter * self.world
                for side in ("a", "b"):
                    for k, v in losses[side].items():
                        acc[side][k] = acc[side].get(k, 0.0) + v
                n_acc += 1
                meter.tick()
                last = self.iteration == cfg.iterations
                if self.iteration % cfg.log_every == 0 or last:
                    avg = {s: {k: v / n_acc for k, v in d.items()} for s, d in acc.items()}
                    self.history.append({"iteration": self.iteration, **avg})
                    if self.is_main:
                        self.log(console_line(self.iteration, cfg.iterations, meter, avg))
                        if self._tb is not None:
                            self._tb.scalars(self.iteration, avg,
                                             {"speed/egs_per_s": meter.egs_per_second,
                                              "lr": lr_at(self.iteration - 1, cfg.lr,
                                                          cfg.warmup)})
                    acc = {"a": {}, "b": {}}
                    n_acc = 0
                busy = False
                if self.is_main and cfg.preview_every and (
                        self.iteration % cfg.preview_every == 0 or last):
                    self.write_preview()
                    busy = True
                if self.is_main and (self.iteration % cfg.save_every == 0 or last):
                    self.save()
                    busy = True
                if busy:
                    meter.reset_clock()
        except KeyboardInterrupt:
            if self.is_main and self.iteration > (self.last_good or 0):
                self.save()
                self.log(f"interrupted: saved iteration {self.iteration}")
            raise
        except RuntimeError as err:
            if self.world > 1 and _lost_peer(err):
                kept = (f"the last checkpoint (iteration {self.last_good}) is kept in "
                        f"{self.model_dir}" if self.last_good is not None else
                        "no checkpoint had been written yet")
                raise TrainingError(
                    f"rank {self.rank} of {self.world} lost the other training processes at "
                    f"iteration {self.iteration + 1} ({str(err).splitlines()[0][:200]}); "
                    f"{kept}: run the same command again with --resume", self.model_dir
                ) from None
            raise
        finally:
            self.close()
        int8 = None
        if self.is_main and cfg.export:
            onnx_diff = self.export()
            if cfg.export_int8:
                int8 = export_int8(self.model_dir, self.folder_b, log=self.log)
        return TrainResult(self.model_dir, self.start_iteration, self.iteration, self.history,
                           meter.egs_per_second, self.skipped, onnx_diff, int8)

    def close(self) -> None:
        if self._loader is not None:
            self._loader.close()
            self._loader = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None
        for fs in (getattr(self, "face_a", None), getattr(self, "face_b", None)):
            if fs is not None:
                fs.close()


def export_model(model_dir: str | os.PathLike[str], *, model: SwapModel | None = None,
                 direction: Literal["b2a", "a2b"] = "b2a", tol: float = 1e-4,
                 log: LogFn | None = None) -> float:
    """Export ``MODEL_DIR/model.onnx`` (B's faces → A's by default), check it against torch with
    onnxruntime, and record it in the manifest; with its face-only version
    ``MODEL_DIR/model.face.onnx`` (the mask branch pruned: what convert runs when the learned
    mask is not wanted), checked to give the same faces, recorded as ``onnx.face_only``.

    Args:
        model_dir: A model directory with weights and manifest.
        model: The trained model (loaded from ``model_dir`` when None).
        direction: "b2a" or "a2b".
        tol: Largest max-abs difference accepted (float32 sRGB [0, 1]).
        log: Line callback.

    Returns:
        The max abs difference between onnxruntime and torch.

    Raises:
        ModelError: the export differs from torch by more than ``tol`` (checked by
            :func:`faceplate.train.export.check_onnx`), or the model cannot be exported.
    """
    import numpy as np

    from faceplate.io.model_files import (
        ONNX,
        ONNX_FACE,
        ONNX_INPUT,
        ONNX_OUTPUTS,
        load_inference_model,
    )
    from faceplate.train.export import (
        DEFAULT_OPSET,
        check_onnx,
        check_same_face,
        export_onnx,
        face_only_graph,
    )

    model_dir = Path(model_dir)
    manifest = read_manifest(model_dir)
    if model is None:
        model, manifest = load_inference_model(model_dir)
    was = model.training
    model.eval()
    try:
        path = export_onnx(model, model_dir / ONNX, direction=direction)
        diff = float(check_onnx(model, path, tol, direction=direction))
    finally:
        model.train(was)
    face_path = face_only_graph(path, model_dir / ONNX_FACE)
    size = manifest.input_size
    probe = np.random.default_rng(1).random((3, 3, size, size), dtype=np.float32)
    check_same_face(path, face_path, probe, tol)
    # A new export: an int8 model quantised from the previous one is dropped with it.
    manifest = dataclasses.replace(manifest, onnx={
        "file": ONNX, "direction": direction, "opset": DEFAULT_OPSET, "input": ONNX_INPUT,
        "outputs": list(ONNX_OUTPUTS), "max_abs_diff": diff, "tolerance": tol,
        "sha256": sha256_file(path),
        "face_only": {"file": ONNX_FACE, "sha256": sha256_file(face_path)}}, int8=None)
    write_manifest(model_dir, manifest)
    if log is not None:
        log(f"exported {path} ({direction}; onnxruntime vs torch max abs diff {diff:.2e})")
    return diff


def export_int8(model_dir: str | os.PathLike[str], faceset_b: str | os.PathLike[str] | None = None,
                *, log: LogFn | None = None) -> dict[str, Any]:
    """Quantise ``MODEL_DIR/model.onnx`` to ``MODEL_DIR/model.int8.onnx`` (static int8) with
    ranges calibrated on faceset B's own training crops (the faces convert feeds the ``b2a``
    graph), check it against the float graph on other faces of B, and record it in the
    manifest (its sha256, the float export's it came from, the calibration, the PSNR); with
    its face-only version ``MODEL_DIR/model.int8.face.onnx`` (checked to give the same faces,
    recorded as ``int8.face_only``).

    Args:
        model_dir: A model directory with a verified ONNX export.
        faceset_b: The faces to calibrate with (default: faceset B named in the newest
            checkpoint).
        log: Line callback.

    Returns:
        The manifest's ``int8`` entry.

    Raises:
        ModelError: no (verifiable) ONNX export, no faceset to calibrate with, or an int8 graph
            whose mean PSNR against the float one is below
            :data:`faceplate.train.export.INT8_MIN_PSNR` (the file is then removed).
        InputError: the faceset holds no usable face.
    """
    import numpy as np

    from faceplate.io.model_files import INT8, INT8_FACE, verify_file
    from faceplate.train.data import training_crops
    from faceplate.train.export import (
        INT8_CALIBRATION_FACES,
        INT8_CHECK_FACES,
        INT8_MIN_PSNR,
        check_same_face,
        int8_psnr,
        quantize_int8,
    )

    model_dir = Path(model_dir)
    manifest = read_manifest(model_dir)
    if not manifest.onnx:
        raise ModelError("the model has no ONNX export to quantise (run `faceplate train "
                         f"--export-only --output {model_dir}` first)", model_dir / MANIFEST)
    onnx_path = verify_file(model_dir, manifest.onnx, "ONNX")
    if faceset_b is None:
        saved = saved_configs(model_dir)
        if saved is None:
            raise ModelError("no checkpoint names faceset B to calibrate the int8 model with: "
                             "give it with --b FACESET_B", model_dir)
        faceset_b = saved["b"]
    known = {f.name for f in dataclasses.fields(DataConfig)}
    values = {k: v for k, v in manifest.data_config.items() if k in known}
    dcfg = DataConfig(**{**values, "size": manifest.input_size,
                         "centering": manifest.centering, "coverage": manifest.coverage})
    faces = training_crops(Path(faceset_b), dcfg, INT8_CALIBRATION_FACES + INT8_CHECK_FACES)
    check = np.arange(len(faces)) % 4 == 3  # every 4th face checks, the others calibrate
    if not check.any() or check.all():
        check = np.zeros(len(faces), bool)  # too few faces to hold any out: check on all
    cal = faces[~check]
    out, face_out = model_dir / INT8, model_dir / INT8_FACE
    quantize_int8(onnx_path, out, cal, face_path=face_out)
    held = faces[check] if check.any() else faces
    quality = int8_psnr(onnx_path, out, held)
    try:
        check_same_face(out, face_out, held)
    except ModelError:
        out.unlink(missing_ok=True)
        face_out.unlink(missing_ok=True)
        raise
    if not quality["psnr_db"] >= INT8_MIN_PSNR:
        out.unlink(missing_ok=True)
        face_out.unlink(missing_ok=True)
        raise ModelError(f"the int8 model's faces differ from the float model's (PSNR "
                         f"{quality['psnr_db']:.1f} dB, below {INT8_MIN_PSNR:g}); keep "
                         "--precision fp32 or bf16 for this model", out)
    entry = {"file": INT8, "direction": manifest.onnx.get("direction", "b2a"),
             "format": "static int8: uint8 activations per tensor, symmetric int8 weights per "
                       "channel; onnxruntime QLinear operators, channels-last",
             "sha256": sha256_file(out), "from_onnx": manifest.onnx.get("sha256"),
             "face_only": {"file": INT8_FACE, "sha256": sha256_file(face_out)},
             "calibration": {"faceset": str(faceset_b), "faces": int(len(cal)),
                             "method": "minmax"},
             "check_faces": quality["faces"], "psnr_db": quality["psnr_db"],
             "psnr_db_min": quality["psnr_db_min"],
             "mask_max_abs_diff": quality["mask_max_abs_diff"], "min_psnr_db": INT8_MIN_PSNR}
    write_manifest(model_dir, dataclasses.replace(manifest, int8=entry))
    if log is not None:
        log(f"int8: {out} (calibrated on {len(cal)} faces of {faceset_b}; PSNR against the "
            f"float model {quality['psnr_db']:.1f} dB mean, {quality['psnr_db_min']:.1f} worst)")
    return entry
