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
  the fast mode on CPUs with AVX512-BF16 / AMX;
- ``original_64_plain``: ``original_64`` without the trainer's two CPU speed-ups (the GEMM
  weight gradient of small-map convolutions, ``faceplate.models.layers.conv2d``, and glibc's
  malloc keeping freed memory, ``faceplate.core.cpu.keep_freed_memory``): the same run's
  "before", not in the default list;
- ``*_bf16_cl``: bf16 and channels-last (oneDNN's bf16 kernels prefer NHWC);
  ``df_128_bf16_compile``: bf16 through ``torch.compile`` (inductor; its warm-up, which
  includes compiling, is reported as ``warmup_seconds``). Not in the default list.

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
bf16, 1080p decode), and gives ``ratios``: each bf16 mode's EGs/s over its fp32 mode's, and, with
``--faceswap DIR``, each mode's EGs/s over Faceswap 3's **measured in the same run**: Faceswap's
``train`` (``original`` for the 64 px modes, ``dfl-sae`` with its default ``df`` 128 widths for
the 128 px ones; its defaults, fp32, batch 16, a fresh model folder, ``-s 100000``) runs right
before the first Faceplate mode of its model, on faces that Faceswap's own ``extract -D file -A
file`` cuts from the same frames with the same landmarks as the Faceplate facesets. Its EGs/s is
2 × batch ÷ the median per-iteration time after its warm-up, read from its TensorBoard log with
:mod:`faceplate.io.tfevents` (Faceplate's side of that ratio is its median too). ``--rounds N``
repeats the whole interleaved sequence. Faceswap runs in its own environment
(``--faceswap-python``), through ``--faceswap-launcher`` when it needs local workarounds.
Without ``--faceswap`` the report says Faceswap was not run and gives no ratio against it.

Usage: python benchmarks/train.py [--iterations 6] [--warmup 2] [--modes original_64 df_128]
       [--faceswap DIR --faceswap-python PY [--faceswap-launcher SCRIPT]
        [--faceswap-iterations 40 6]] [--rounds 1] [--output bench_out/train.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
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
#: A bf16 mode → the fp32 mode it is compared with (each runs right after it). ``_cl`` modes
#: also train channels-last, ``_compile`` ones through ``torch.compile`` (inductor).
BF16_OF = {"original_64_bf16": "original_64", "df_128_bf16": "df_128",
           "original_64_bf16_cl": "original_64", "df_128_bf16_cl": "df_128",
           "df_128_bf16_compile": "df_128", "original_64_plain": "original_64"}
for _fast in BF16_OF:
    MODES[_fast] = MODES[BF16_OF[_fast]]
#: The default order: each bf16 mode right after its fp32 mode (the ratio's halves close in time).
ORDER = [m for base in MODES if base not in BF16_OF
         for m in (base, *(f for f, b in BF16_OF.items() if b == base))
         if not m.endswith(("_cl", "_compile", "_plain"))]
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
    import statistics

    import torch

    channels_last = channels_last or mode.endswith("_cl")
    compile_step = mode.endswith("_compile")
    if mode.endswith("_plain"):  # this process only: the trainer as it was before them
        from faceplate.models import layers
        from faceplate.train import trainer as trainer_module

        layers.GEMM_WEIGHT_GRAD_MAX_PIXELS = 0
        trainer_module.keep_freed_memory = lambda: False

    from faceplate.models import MODELS
    from faceplate.train.data import DataConfig
    from faceplate.train.trainer import TrainConfig, Trainer

    name, size, over, _reference = MODES[mode]
    a, b = _facesets()
    cfg = TrainConfig(model=name, size=size, iterations=warmup + iterations, batch_size=batch,
                      save_every=10**9, preview_every=0, log_every=10**9, export=False,
                      device=device, precision=precision,  # type: ignore[arg-type]
                      channels_last=channels_last, compile=compile_step, snapshot_every=0)
    mcfg = MODELS.config_class(name)(size=size, **over)
    times: list[float] = []
    cpu: list[float] = []
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
                c0 = time.process_time()
                phases.begin()
                parts = t._train_step()
                losses.append([parts["a"]["total"], parts["b"]["total"]])
                if t.device.type == "cuda":
                    torch.cuda.synchronize()
                times.append(time.perf_counter() - t0)
                cpu.append(time.process_time() - c0)
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
        "egs_per_second_median": 2 * batch / statistics.median(steady),
        "warmup_seconds": sum(times[:warmup]),
        "cpu_seconds_per_iteration": sum(cpu[warmup:]) / len(steady),
        "compile": compile_step, "plain": mode.endswith("_plain"),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "device": str(t.device), "precision": precision, "channels_last": channels_last,
        "threads": torch.get_num_threads(), "losses": losses,
        "phases_ms": phases.summary(warmup),
    }
    gpu = _gpu_peak()
    if gpu is not None:
        res["peak_gpu_mib"] = gpu
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


# --------------------------------------------------------------------------- Faceswap 3

#: Faceplate mode → (Faceswap trainer, default iterations, warm-up). Its log gives each
#: iteration's end time, so iteration 1 has no duration of its own; the warm-up drops that many
#: more: the interval after iteration 1 holds Faceswap's first model save, and ``original``'s
#: first few iterations are slower (as faceswap-bench.md's warm-up of 5 iterations).
FACESWAP_OF: dict[str, tuple[str, int, int]] = {"original_64": ("original", 40, 4),
                                                "df_128": ("dfl-sae", 6, 1)}


def _faceswap_commit(fs_dir: Path) -> str | None:
    """The checkout's commit: ``git rev-parse HEAD``, else a ``.faceswap-commit`` file beside
    or inside it (for an exported tree)."""
    proc = subprocess.run(["git", "-C", str(fs_dir), "rev-parse", "HEAD"], capture_output=True,
                          text=True)
    if proc.returncode == 0:
        return proc.stdout.strip()
    for f in (fs_dir / ".faceswap-commit", fs_dir.parent / ".faceswap-commit"):
        if f.is_file():
            return f.read_text().strip()
    return None


def _faceswap_json(store: Path, video: Path, out: Path) -> int:
    """Write the landmark file that Faceswap's ``extract -D file -A file`` imports (keys
    ``<stem>_<frame number from 1:06d><ext>``, ``detected`` [left, top, right, bottom],
    ``landmarks_2d`` 68 × [x, y] frame pixels) from a Faceplate alignments store, so that
    Faceswap trains on the same frames' faces with the same landmarks; returns the face count."""
    from faceplate.io.store import AlignmentsStore

    doc: dict[str, list[dict[str, Any]]] = {}
    with AlignmentsStore.open(store) as st:
        for info, faces in st.iter_frames():
            if faces:
                doc[f"{video.stem}_{info.index + 1:06d}{video.suffix}"] = [
                    {"detected": [f.bbox.x, f.bbox.y, f.bbox.x + f.bbox.w, f.bbox.y + f.bbox.h],
                     "landmarks_2d": [[float(x), float(y)] for x, y in f.landmarks]}
                    for f in faces]
    out.write_text(json.dumps(doc))
    return sum(len(v) for v in doc.values())


def _faceswap_faces(cmd: list[str], work: Path) -> tuple[Path, Path]:
    """Faceswap-format face folders of the benchmark's two facesets: the same clips, frames
    and landmarks (Faceswap aligns and crops them its own way)."""
    root = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(root))
    from tests.train_facesets import RECIPES

    from faceplate.io import samples

    a, _b = _facesets()
    out = []
    for side, name, _extra in RECIPES:
        media = work / "media"
        media.mkdir(parents=True, exist_ok=True)
        video = media / name
        if not video.exists():
            video.symlink_to(samples.path(name))
        want = _faceswap_json(a.parent / f"{side}.fpstore", video,
                              media / f"{video.stem}_alignments.json")
        faces = work / "faces" / side.upper()
        proc = subprocess.run([*cmd, "extract", "-i", str(video), "-o", str(faces),
                               "-D", "file", "-A", "file"], capture_output=True, text=True)
        got = len(list(faces.glob("*.png"))) if faces.is_dir() else 0
        if proc.returncode != 0 or got != want:
            tail = (proc.stdout + proc.stderr).strip().splitlines()[-8:]
            raise SystemExit(f"Faceswap extract of {video.name}: exit {proc.returncode}, "
                             f"{got} faces of {want}:\n" + "\n".join(tail))
        out.append(faces)
    return out[0], out[1]


def run_faceswap(cmd: list[str], faces: tuple[Path, Path], trainer: str, iterations: int,
                 warmup: int, batch: int, work: Path) -> dict[str, Any]:
    """One Faceswap ``train`` run in a fresh model folder (``-s 100000``: no periodic saves);
    its EGs/s from the per-iteration wall times of its TensorBoard log (read with
    :mod:`faceplate.io.tfevents`; iteration k's time = its log time - iteration k-1's), median
    over iterations 2 + ``warmup`` onwards, as Faceswap's own analysis defines EGs/s (batch × 2
    ÷ seconds an iteration)."""
    import statistics

    from faceplate.io.tfevents import read_events, step_times

    model = work / f"model_{trainer}_{time.monotonic_ns()}"
    argv = [*cmd, "train", "-A", str(faces[0]), "-B", str(faces[1]), "-m", str(model),
            "-t", trainer, "-b", str(batch), "-i", str(iterations), "-s", "100000"]
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    out = proc.stdout.read()
    _pid, status, usage = os.wait4(proc.pid, 0)  # its own peak RSS and CPU time
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    res: dict[str, Any] = {"trainer": trainer, "batch_size": batch, "iterations": iterations,
                           "warmup_iterations": warmup, "wall_seconds": wall,
                           "command": " ".join(argv[len(cmd):])}
    logs = sorted(model.glob("*_logs/session_*/train/events.out.tfevents.*"))
    if proc.returncode != 0 or not logs:
        res["error"] = out.strip().splitlines()[-8:]
        return res
    stamps = step_times(read_events(logs[-1]))
    per_it = [t1 - t0_ for (_s0, t0_), (_s1, t1) in zip(stamps, stamps[1:])]
    timed = per_it[warmup:]
    if not timed:
        res["error"] = f"{len(stamps)} logged iterations: too few after a warm-up of {warmup}"
        return res
    med = statistics.median(timed)
    res.update({"iterations_logged": len(stamps), "iterations_timed": len(timed),
                "seconds_per_iteration_median": med, "egs_per_second": 2 * batch / med,
                "egs_per_second_mean_window": 2 * batch * len(timed) / sum(timed),
                "seconds_per_iteration": timed})
    res["peak_rss_mib"] = usage.ru_maxrss / 1024
    res["cpu_seconds"] = usage.ru_utime + usage.ru_stime
    shutil.rmtree(model, ignore_errors=True)  # ~1-3 GB of weights and their backup
    return res


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
    ap.add_argument("--faceswap", type=Path, metavar="DIR",
                    help="a Faceswap 3 checkout: run its train beside the modes, in this run")
    ap.add_argument("--faceswap-python", default="python", metavar="PY",
                    help="the Python of Faceswap's own environment")
    ap.add_argument("--faceswap-launcher", type=Path, metavar="SCRIPT",
                    help="the script PY runs with Faceswap's CLI arguments (default: "
                    "DIR/faceswap.py; a wrapper that applies local workarounds)")
    ap.add_argument("--faceswap-iterations", type=int, nargs=2, metavar=("ORIGINAL", "DFL_SAE"),
                    help="Faceswap iterations per run (default "
                    f"{FACESWAP_OF['original_64'][1]} {FACESWAP_OF['df_128'][1]})")
    ap.add_argument("--rounds", type=int, default=1,
                    help="run the whole interleaved sequence this many times")
    ap.add_argument("--output", type=Path, default=Path("bench_out/train.json"))
    ap.add_argument("--mode", choices=list(MODES), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.mode:  # child process
        if args.precision == "mode":
            args.precision = "bf16" if "_bf16" in args.mode else "fp32"
        print(json.dumps(run_mode(args.mode, args.iterations, args.warmup, args.batch_size,
                                  args.device, args.precision, args.channels_last)))
        return
    _facesets()  # build once before the timed children
    fs_cmd: list[str] | None = None
    fs_faces: tuple[Path, Path] | None = None
    fs_counts: dict[str, int] = {}
    fs_iters = dict(zip(("original_64", "df_128"),
                        args.faceswap_iterations or (FACESWAP_OF["original_64"][1],
                                                     FACESWAP_OF["df_128"][1])))
    work = Path(tempfile.mkdtemp(prefix="train_bench_"))
    if args.faceswap is not None:
        launcher = args.faceswap_launcher or args.faceswap / "faceswap.py"
        fs_cmd = [args.faceswap_python, str(launcher)]
        fs_faces = _faceswap_faces(fs_cmd, work)
        fs_counts = {"A": len(list(fs_faces[0].glob("*.png"))),
                     "B": len(list(fs_faces[1].glob("*.png")))}
    cal_start = calibration()
    rounds: list[dict[str, Any]] = []
    try:
        for _ in range(args.rounds):
            rounds.append(_one_round(args, fs_cmd, fs_faces, fs_iters, work))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report: dict[str, Any] = {
        "benchmark": "train",
        "definition": "EGs/s = 2 x batch / seconds per iteration (both sides count; Faceswap)",
        "machine": _machine(),
    }
    if fs_cmd is None:
        report["faceswap"] = (
            "not run: pass --faceswap DIR to measure Faceswap 3 in this run. For reference "
            "only (not measured here): faceswap-bench.md's figures on a machine of this kind, "
            "batch 16, fp32: " + ", ".join(f"{m} {MODES[m][3]} EGs/s" for m in FACESWAP_OF)
            + f", peak RSS {FACESWAP_PEAK_GIB} GiB")
    else:
        assert args.faceswap is not None and fs_faces is not None
        report["faceswap"] = {
            "run": True, "checkout": str(args.faceswap),
            "commit": _faceswap_commit(args.faceswap), "launcher": fs_cmd[1],
            "faces": fs_counts,
            "settings": "Faceswap's defaults (config/*.ini), fp32 (mixed_precision False), "
                        "batch 16, a fresh model folder each run, -s 100000",
            "definition": "median over per-iteration wall times from its TensorBoard log after "
                          "the warm-up; Faceplate's side of each ratio is its median too"}
    report["ratios"] = _summarise(rounds)
    report["rounds"] = rounds
    if len(rounds) == 1:
        report["results"] = rounds[0]["faceplate"]
    report["calibration"] = {"start": cal_start, "end": calibration()}
    write_report(report, args.output)


def _one_round(args: argparse.Namespace, fs_cmd: list[str] | None,
               fs_faces: tuple[Path, Path] | None, fs_iters: dict[str, int],
               work: Path) -> dict[str, Any]:
    """Every mode once, each Faceswap run right before the first Faceplate mode it compares
    with (so the pair's halves are close in time)."""
    results: list[dict[str, Any]] = []
    fs_results: dict[str, dict[str, Any]] = {}
    load: dict[str, list[float]] = {}
    for mode in args.modes:
        base = BF16_OF.get(mode, mode)
        if fs_cmd is not None and fs_faces is not None and base in FACESWAP_OF \
                and base not in fs_results and args.batch_size == 16:
            trainer, _n, warm = FACESWAP_OF[base]
            load[f"faceswap_{trainer}"] = list(os.getloadavg())
            fs_results[base] = run_faceswap(fs_cmd, fs_faces, trainer, fs_iters[base], warm,
                                            args.batch_size, work)
            fs_results[base]["loadavg_start"] = load[f"faceswap_{trainer}"]
            fs_results[base]["loadavg_end"] = list(os.getloadavg())
        prec = args.precision if args.precision != "mode" else (
            "bf16" if "_bf16" in mode else "fp32")
        cmd = [sys.executable, __file__, "--mode", mode, "--iterations", str(args.iterations),
               "--warmup", str(args.warmup), "--batch-size", str(args.batch_size),
               "--device", args.device, "--precision", prec]
        if args.channels_last:
            cmd.append("--channels-last")
        la = list(os.getloadavg())
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            results.append({"mode": mode, "error": proc.stderr.strip().splitlines()[-5:]})
            continue
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        r["loadavg_start"], r["loadavg_end"] = la, list(os.getloadavg())
        results.append(r)
    by_mode = {r["mode"]: r for r in results}
    for fast, base in BF16_OF.items():
        f, b = by_mode.get(fast, {}), by_mode.get(base, {})
        if "egs_per_second" in f and "egs_per_second" in b:
            f["loss_vs_fp32"] = _loss_guard(f["losses"], b["losses"], args.warmup)
    return {"faceplate": by_mode, "faceswap": fs_results}


def _summarise(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Per round: each fast mode over its fp32 mode (means, as before) and each Faceplate mode
    over the Faceswap run of its model in the same round (medians); then over the rounds."""
    per_round: list[dict[str, float]] = []
    for rnd in rounds:
        fp, fs = rnd["faceplate"], rnd["faceswap"]
        ratios: dict[str, float] = {}
        for fast, base in BF16_OF.items():
            if "egs_per_second" in fp.get(fast, {}) and "egs_per_second" in fp.get(base, {}):
                ratios[f"{fast}_vs_{base}"] = (fp[fast]["egs_per_second"]
                                               / fp[base]["egs_per_second"])
        for mode, r in fp.items():
            f = fs.get(BF16_OF.get(mode, mode), {})
            if "egs_per_second_median" in r and "egs_per_second" in f:
                ratios[f"{mode}_vs_faceswap_{f['trainer']}_fp32"] = (
                    r["egs_per_second_median"] / f["egs_per_second"])
        per_round.append(ratios)
    keys = sorted({k for r in per_round for k in r})
    out: dict[str, Any] = {k: [r[k] for r in per_round if k in r] for k in keys}
    if not any("faceswap" in k for k in keys):
        out["vs_faceswap"] = "not measured: Faceswap was not run in this run (--faceswap)"
    return out


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
