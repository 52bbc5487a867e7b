"""Training speed and memory: EGs/s and peak memory per model, Faceswap's way.

Modes (batch 16 per side unless ``--batch-size``):

- ``original_64``: ``original`` at 64 px with Faceswap's dims (encoder 1024, dims 128);
- ``df_128``: ``df`` at 128 px with Faceswap's dfl-sae defaults (encoder dims 42 and decoder
  dims 21 *per input channel*, i.e. 126 and 63 channels, ae 512, two residual blocks per decoder
  stage, mask decoder 21), the figure Faceswap's 0.59 EGs/s compares to;
- ``liae_128``: ``liae`` at 128 px, same widths with Faceswap's LIAE ae 256;
- ``df_128_dfl_channels``: ``df_128`` with 42/21 read as channel counts (a smaller model);
- ``original_64_mask``: ``original_64`` plus the learned-mask branch at full width;
- ``original_64_bf16``, ``df_128_bf16``: the two compared modes with ``--precision bf16``
  (autocast: convolutions and matrix products in bf16, weights, optimiser and losses in fp32),
  the fast mode on CPUs with AVX512-BF16 / AMX.

Every mode runs fp32 unless its name says bf16 (``--precision`` overrides that for all). The
bf16 modes come with a quality guard measured in the same run: both precisions start from
the same weights and see the same batches (the data stream depends only on the seed), so
``loss_vs_fp32`` compares the bf16 run's per-iteration losses with the fp32 run's
(``max_relative_difference`` over the timed iterations, both sides' totals).

Faceswap's figures are with its defaults, where "learn mask" is off, so the compared modes train
without the mask head (the masked SSIM+L2 loss on the stored mask is on, as in Faceswap).

Each mode runs in its own subprocess (so peak RSS is its own) through the real trainer
(:class:`faceplate.train.trainer.Trainer`: data loader with augmentation, SSIM+L2 losses, mask
loss, Adam) on the sample facesets (``tests/train_facesets.py``; built on first use). EGs/s =
2 × batch ÷ seconds per iteration (both sides count, as Faceswap reports), measured over the
iterations after ``--warmup`` iterations. Runs on the GPU when one is present (``--device``).
Writes JSON (``--output``) and prints it. Never asserts on speed.

The report starts and ends with the calibration of ``bench_common.py`` (conv GFLOP/s in fp32 and
bf16, 1080p decode), and gives ``ratios``: each bf16 mode's EGs/s over its fp32 mode's, and
each compared mode's EGs/s over Faceswap 3's figure from the same kind of machine
(``FACESWAP_EGS``; Faceswap itself is not run by this script, see ``faceswap-bench.md``).

Usage: python benchmarks/train.py [--iterations 6] [--warmup 2] [--modes original_64 df_128]
       [--output bench_out/train.json]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_common import calibration, machine_info, write_report

#: mode → (model, size, model config overrides, Faceswap's figure on 2 cores in EGs/s).
#: Faceswap's dfl-sae "encoder dims 42 / decoder dims 21" are per input channel: its layers have
#: 3 × 42 = 126 and 3 × 21 = 63 channels, two residual blocks per decoder stage, and its mask
#: decoder uses 21; learn-mask is off by default. The df_128 mode uses exactly those widths so the
#: figures compare like for like (df_128_dfl_channels reads 42/21 as channel counts, for scale).
MODES: dict[str, tuple[str, int, dict[str, Any], float | None]] = {
    "original_64": ("original", 64, {"encoder_dim": 1024, "dims": 128, "learn_mask": False},
                    8.2),
    "df_128": ("df", 128, {"ae_dims": 512, "e_dims": 126, "d_dims": 63, "d_mask_dims": 21,
                          "res_blocks": 2, "learn_mask": False}, 0.59),
    "liae_128": ("liae", 128, {"ae_dims": 256, "e_dims": 126, "d_dims": 63, "d_mask_dims": 21,
                              "res_blocks": 2, "learn_mask": False}, None),
    "df_128_dfl_channels": ("df", 128, {"ae_dims": 512, "e_dims": 42, "d_dims": 21,
                                       "d_mask_dims": 8, "res_blocks": 2, "learn_mask": False},
                            None),
    "original_64_mask": ("original", 64, {"encoder_dim": 1024, "dims": 128, "mask_dims": 128,
                                          "learn_mask": True}, None),
}
#: A bf16 mode → the fp32 mode it is compared with (each runs right after it).
BF16_OF = {"original_64_bf16": "original_64", "df_128_bf16": "df_128"}
for _fast in BF16_OF:
    MODES[_fast] = MODES[BF16_OF[_fast]]
#: The default order: each bf16 mode right after its fp32 mode (the ratio's halves close in time).
ORDER = [m for base in MODES if base not in BF16_OF
         for m in (base, *(f for f, b in BF16_OF.items() if b == base))]
#: Faceswap 3 peak memory (GiB) on the same machine class, from the issue.
FACESWAP_PEAK_GIB = {"original_64": 4.3, "df_128": 9.6}


def _facesets() -> tuple[Path, Path]:
    root = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(root))
    from tests.train_facesets import facesets

    return facesets()


def _gpu_peak() -> float | None:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return None


def run_mode(mode: str, iterations: int, warmup: int, batch: int, device: str,
             precision: str, channels_last: bool) -> dict[str, Any]:
    """Train ``warmup + iterations`` iterations of ``mode`` in this process; its figures."""
    import torch

    from faceplate.models import MODELS
    from faceplate.train.data import DataConfig
    from faceplate.train.trainer import TrainConfig, Trainer

    name, size, over, fs_egs = MODES[mode]
    a, b = _facesets()
    cfg = TrainConfig(model=name, size=size, iterations=warmup + iterations, batch_size=batch,
                      save_every=10**9, preview_every=0, log_every=10**9, export=False,
                      device=device, precision=precision,  # type: ignore[arg-type]
                      channels_last=channels_last, snapshot_every=0)
    mcfg = MODELS.config_class(name)(size=size, **over)
    times: list[float] = []
    losses: list[list[float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        t = Trainer(cfg, a, b, Path(tmp) / "model", model_cfg=mcfg, data_cfg=DataConfig())
        t.setup()
        params = t.model.param_count()
        t.model.train()
        phases = _PhaseTimer(t)
        try:
            for _ in range(warmup + iterations):
                t0 = time.perf_counter()
                phases.begin()
                parts = t._train_step()
                losses.append([parts["a"]["total"], parts["b"]["total"]])
                if t.device.type == "cuda":
                    torch.cuda.synchronize()
                times.append(time.perf_counter() - t0)
                phases.end(times[-1])
                t.iteration += 1
        finally:
            t.close()
    steady = times[warmup:]
    sec = sum(steady) / len(steady)
    res: dict[str, Any] = {
        "mode": mode, "model": name, "size": size, "model_config": over, "batch_size": batch,
        "parameters": params, "iterations_timed": len(steady), "warmup_iterations": warmup,
        "seconds_per_iteration": sec, "egs_per_second": 2 * batch / sec,
        "fastest_egs_per_second": 2 * batch / min(steady),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "device": str(t.device), "precision": precision, "channels_last": channels_last,
        "threads": torch.get_num_threads(), "losses": losses,
        "phases_ms": phases.summary(warmup),
    }
    gpu = _gpu_peak()
    if gpu is not None:
        res["peak_gpu_mib"] = gpu
    if fs_egs is not None and device != "cuda" and batch == 16:
        res["faceswap_egs_per_second"] = fs_egs
        res["ratio_vs_faceswap"] = res["egs_per_second"] / fs_egs
    if mode in FACESWAP_PEAK_GIB and batch == 16:
        res["faceswap_peak_gib"] = FACESWAP_PEAK_GIB[mode]
    return res



class _PhaseTimer:
    """Where a training step's time goes, measured from outside the trainer: ``data`` (the next
    batch pair: loading, augmentation, warping; made in the main thread on small machines),
    ``forward`` (both sides' model forward), ``optimizer`` (the optimiser's step), and
    ``loss_backward_rest`` (the losses, the backward pass, gradient clipping, bookkeeping: the
    iteration's time minus the other three). CPU timings (on CUDA the phases are asynchronous
    and only the total is meaningful)."""

    def __init__(self, trainer: Any) -> None:
        self.rows: list[dict[str, float]] = []
        self._cur: dict[str, float] = {}
        self._fwd_t0 = 0.0
        inner = trainer._batches

        def batches() -> Any:
            while True:
                t = time.perf_counter()
                item = next(inner)
                self._add("data", time.perf_counter() - t)
                yield item

        trainer._batches = batches()
        trainer.step_module.register_forward_pre_hook(self._pre)
        trainer.step_module.register_forward_hook(self._post)
        step = trainer.optimizer.step

        def timed_step(*a: Any, **k: Any) -> Any:
            t = time.perf_counter()
            out = step(*a, **k)
            self._add("optimizer", time.perf_counter() - t)
            return out

        trainer.optimizer.step = timed_step

    def _add(self, key: str, secs: float) -> None:
        self._cur[key] = self._cur.get(key, 0.0) + secs

    def _pre(self, *_: Any) -> None:
        self._fwd_t0 = time.perf_counter()

    def _post(self, *_: Any) -> None:
        self._add("forward", time.perf_counter() - self._fwd_t0)

    def begin(self) -> None:
        self._cur = {}

    def end(self, total: float) -> None:
        row = {k: self._cur.get(k, 0.0) for k in ("data", "forward", "optimizer")}
        row["loss_backward_rest"] = total - sum(row.values())
        row["total"] = total
        self.rows.append(row)

    def summary(self, warmup: int) -> dict[str, float]:
        """Mean milliseconds per timed iteration of each phase."""
        rows = self.rows[warmup:] or self.rows
        return {k: 1000.0 * sum(r[k] for r in rows) / len(rows) for k in rows[0]} if rows else {}


def _machine() -> dict[str, Any]:
    import torch

    info = machine_info()
    info["torch"] = torch.__version__
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iterations", type=int, default=6, help="timed iterations per mode")
    ap.add_argument("--warmup", type=int, default=2, help="untimed iterations first")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--modes", nargs="*", choices=list(MODES), default=ORDER)
    ap.add_argument("--precision", choices=("mode", "fp32", "bf16", "fp16"), default="mode",
                    help="arithmetic of every mode (default: bf16 for the *_bf16 modes, "
                    "else fp32)")
    ap.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--output", type=Path, default=Path("bench_out/train.json"))
    ap.add_argument("--mode", choices=list(MODES), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.mode:  # child process
        if args.precision == "mode":
            args.precision = "bf16" if args.mode.endswith("_bf16") else "fp32"
        print(json.dumps(run_mode(args.mode, args.iterations, args.warmup, args.batch_size,
                                  args.device, args.precision, args.channels_last)))
        return
    _facesets()  # build once before the timed children
    cal_start = calibration()
    results = []
    for mode in args.modes:
        prec = args.precision if args.precision != "mode" else (
            "bf16" if mode.endswith("_bf16") else "fp32")
        cmd = [sys.executable, __file__, "--mode", mode, "--iterations", str(args.iterations),
               "--warmup", str(args.warmup), "--batch-size", str(args.batch_size),
               "--device", args.device, "--precision", prec]
        if args.channels_last:
            cmd.append("--channels-last")
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            results.append({"mode": mode, "error": proc.stderr.strip().splitlines()[-5:]})
            continue
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    by_mode = {r["mode"]: r for r in results}
    ratios: dict[str, float] = {}
    for fast, base in BF16_OF.items():
        f, b = by_mode.get(fast, {}), by_mode.get(base, {})
        if "egs_per_second" in f and "egs_per_second" in b:
            ratios[f"{fast}_vs_{base}"] = f["egs_per_second"] / b["egs_per_second"]
            f["loss_vs_fp32"] = _loss_guard(f["losses"], b["losses"], args.warmup)
    for mode, r in by_mode.items():
        fs = MODES[mode][3]
        if fs is not None and "egs_per_second" in r and args.batch_size == 16:
            ratios[f"{mode}_vs_faceswap"] = r["egs_per_second"] / fs
    report = {
        "benchmark": "train",
        "definition": "EGs/s = 2 x batch / seconds per iteration (both sides count; Faceswap)",
        "faceswap": "Faceswap 3's EGs/s are figures measured on a machine of the same kind "
                    "(../shared/docs/faceswap-bench.md), not in this run",
        "machine": _machine(),
        "ratios": ratios,
        "results": by_mode,
    }
    report["calibration"] = {"start": cal_start, "end": calibration()}
    write_report(report, args.output)


def _loss_guard(fast: list[list[float]], base: list[list[float]], warmup: int
                ) -> dict[str, float]:
    """How far the bf16 run's losses are from the fp32 run's at the same iterations (the same
    weights and batches): relative differences of both sides' totals, over every iteration
    and over the timed ones."""
    rel = [abs(x - y) / abs(y) for fr, br in zip(fast, base) for x, y in zip(fr, br) if y]
    timed = [abs(x - y) / abs(y) for fr, br in zip(fast[warmup:], base[warmup:])
             for x, y in zip(fr, br) if y]
    return {"max_relative_difference": max(rel, default=float("nan")),
            "mean_relative_difference": sum(rel) / len(rel) if rel else float("nan"),
            "max_relative_difference_timed": max(timed, default=float("nan"))}


if __name__ == "__main__":
    main()
