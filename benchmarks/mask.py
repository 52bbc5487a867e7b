"""The occlusion mask's speed: training iterations per second and ``apply`` faces per second.

Data: the tests' recipe (``tests/occlusion_model.py``): 30 labelled faces of the woman's clip
(23 real hand labels, 7 landmark hulls) from the shared test faceset (128 px face PNGs, recut to
the model's crop), and 30 other faces of the clip with occluders pasted from other media (exact
labels) to measure IoU on.

* ``train``: ``faceplate mask train``'s trainer at ``--size`` (default 256 px), batch 8, for
  ``--iterations`` or until ``--minutes`` of wall time have passed; every ``--eval-every``
  iterations the IoU on the 30 held-out composites is measured (its time is not counted), so the
  report has IoU against training minutes and when it first reached 0.90. Iterations per second
  are the trainer's own steps (data, forward, backward, optimiser) over the training time, in
  wall time and in this process's CPU time (on a machine shared with other work, CPU time says
  what two free cores would do: wall ≈ CPU ÷ cores when nothing else runs).
* ``apply``: the trained model's ONNX export through onnxruntime on 256 aligned faces at its
  size, with one thread and with ``--threads`` (default every usable core): faces per second of
  the model alone, in wall and CPU time; and ``faceplate mask apply`` end to end on the test
  store (118 faces: decoding the clip, warping, predicting, encoding and storing the masks).
* ``prefetch``: the test recipe's training step (128 px, one torch thread) with the batches
  made in line and made ahead on a worker thread (what ``mask train --threads 1`` does),
  ``--prefetch-steps`` each, twice, alternating: wall and CPU seconds an iteration.

The machine's load is recorded before and after (the figures are only comparable within a run).
Never asserts on time.

Usage: python benchmarks/mask.py [--size 256] [--minutes 10] [--output bench_out/mask.json]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_common import machine_info, write_report

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


class _Tmp:
    """The one method of pytest's tmp_path_factory the test recipe uses."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def mktemp(self, name: str) -> Path:
        return Path(tempfile.mkdtemp(prefix=name, dir=self.root))


def prefetch_speed(folder: Path, steps: int) -> dict[str, Any]:
    """The test recipe's training step (128 px, batch 8, one torch thread) with its batches
    made in line and made ahead on a worker thread (``MaskLoader(prefetch=True)``), twice each,
    alternating: wall and CPU seconds an iteration."""
    import torch
    from tests import occlusion_model as om

    from faceplate.models.occlusion import MASK_MODELS, build_mask_model
    from faceplate.train.occlusion import mask_losses
    from faceplate.train.occlusion_data import LabelledFaces, MaskDataConfig, MaskLoader

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    cfg = MaskDataConfig(**om.DATA_OPTIONS)
    faces = LabelledFaces([folder], cfg, om.SIZE)
    runs: list[dict[str, Any]] = []
    try:
        for prefetch in (False, True, False, True):
            model = build_mask_model("lite_unet", MASK_MODELS.default_config("lite_unet")
                                     .replace(size=om.SIZE)).to(
                memory_format=torch.channels_last)  # type: ignore[call-overload]
            opt = torch.optim.AdamW(model.parameters(), 1e-3)
            loader = MaskLoader(faces, 8, cfg, seed=0, prefetch=prefetch)
            t0, c0 = time.perf_counter(), time.process_time()
            try:
                for _ in range(steps):
                    b = next(loader)
                    loss, _ = mask_losses(model.logits(
                        b.face.contiguous(memory_format=torch.channels_last)), b.label)
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
            finally:
                loader.close()
            runs.append({"prefetch": prefetch,
                         "wall_s_per_it": round((time.perf_counter() - t0) / steps, 4),
                         "cpu_s_per_it": round((time.process_time() - c0) / steps, 4),
                         "load_average_1min": round(os.getloadavg()[0], 2)})
            print(runs[-1], flush=True)
    finally:
        torch.set_num_threads(threads)
    wall = {p: sum(r["wall_s_per_it"] for r in runs if r["prefetch"] == p) for p in (0, 1)}
    return {"steps": steps, "size": om.SIZE, "runs": runs,
            "speedup": round(wall[0] / wall[1], 3)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--iterations", type=int, default=2000)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--threads", type=int, default=0,
                    help="torch/onnxruntime threads (0: every usable core)")
    ap.add_argument("--output", type=Path, default=Path("bench_out/mask.json"))
    ap.add_argument("--prefetch-steps", type=int, default=60,
                    help="training steps at 128 px with one thread, batches made in line and "
                    "on a worker thread (0: skip)")
    args = ap.parse_args()

    import numpy as np
    import torch
    from tests import occlusion_model as om

    from faceplate.evaluate.masks import iou
    from faceplate.extract.mask.apply import apply_mask_model
    from faceplate.extract.mask.occlusion import OcclusionPredictor
    from faceplate.train.occlusion import MaskTrainConfig, MaskTrainer
    from faceplate.train.occlusion_data import MaskDataConfig

    threads = args.threads or len(os.sched_getaffinity(0))
    report: dict[str, Any] = {"machine": machine_info(), "threads": threads,
                              "size": args.size}
    work = Path(tempfile.mkdtemp(prefix="faceplate-mask-bench-"))
    try:
        folder, store = om.labelled_faceset(_Tmp(work))
        faces, truth, hull, _ = om.occluded_test_set(folder, args.size)
        x = torch.from_numpy(faces).permute(0, 3, 1, 2).float() / 255.0
        report["hull_iou"] = round(float(np.mean([iou(h, t) for h, t in zip(hull, truth)])), 4)

        curve: list[dict[str, float]] = []
        t_eval = c_eval = 0.0
        t0, c0 = time.perf_counter(), time.process_time()

        def check(it: int, model: Any) -> bool:
            nonlocal t_eval, c_eval
            e0, ce0 = time.perf_counter(), time.process_time()
            model.eval()
            with torch.no_grad():
                pred = model(x)[:, 0].numpy() > 0.5
            v = float(np.mean([iou(p, t) for p, t in zip(pred, truth)]))
            t_eval += time.perf_counter() - e0
            c_eval += time.process_time() - ce0
            minutes = (time.perf_counter() - t0 - t_eval) / 60.0
            cpu_minutes = (time.process_time() - c0 - c_eval) / 60.0
            curve.append({"iteration": it, "train_minutes": round(minutes, 3),
                          "train_cpu_minutes": round(cpu_minutes, 3), "iou": round(v, 4),
                          "load_average_1min": round(os.getloadavg()[0], 2)})
            print(f"iteration {it}: {minutes:.2f} min ({cpu_minutes:.2f} CPU min), IoU {v:.4f}",
                  flush=True)
            return minutes >= args.minutes

        cfg = MaskTrainConfig(**{**om.TRAIN_OPTIONS, "size": args.size,
                                 "iterations": args.iterations, "threads": threads,
                                 "save_every": args.iterations, "log_every": 50})
        res = MaskTrainer(cfg, [folder], work / "model", data_cfg=MaskDataConfig(),
                          log=print).run(every=args.eval_every, callback=check)
        train_s = time.perf_counter() - t0 - t_eval
        train_cpu = time.process_time() - c0 - c_eval
        reached = next((c for c in curve if c["iou"] >= 0.90), None)
        report["train"] = {
            "options": {k: v for k, v in cfg.__dict__.items()},
            "iterations": res.iteration, "train_seconds": round(train_s, 1),
            "iterations_per_s": round(res.iteration / train_s, 3),
            "faces_per_s": round(res.iteration * cfg.batch_size / train_s, 2),
            "train_cpu_seconds": round(train_cpu, 1),
            "iterations_per_cpu_s": round(res.iteration / train_cpu, 3),
            "iou_curve": curve, "final_iou": curve[-1]["iou"] if curve else None,
            "reached_0_90": reached,
        }

        batch = np.concatenate([faces] * (256 // len(faces) + 1))[:256]
        model_rates: dict[str, Any] = {}
        for n in sorted({1, threads}):
            pred = OcclusionPredictor(work / "model", engine="onnx", threads=n)
            pred.predict(batch[:16])
            a0, ac0 = time.perf_counter(), time.process_time()
            pred.predict(batch)
            wall, cpu = time.perf_counter() - a0, time.process_time() - ac0
            model_rates[f"threads_{n}"] = {"faces_per_s": round(len(batch) / wall, 1),
                                           "faces_per_cpu_s": round(len(batch) / cpu, 1),
                                           "load_average_1min": round(os.getloadavg()[0], 2)}
        run_store = work / "apply.fpstore"
        shutil.copyfile(store, run_store)
        torch.set_num_threads(threads)
        a0 = time.perf_counter()
        stats = apply_mask_model(work / "model", run_store, engine="onnx")
        e2e = time.perf_counter() - a0
        report["apply"] = {"engine": "onnx", "model_only": model_rates,
                           "end_to_end_faces": stats.faces,
                           "end_to_end_faces_per_s": round(stats.faces / e2e, 1)}
        if args.prefetch_steps:
            report["prefetch"] = prefetch_speed(folder, args.prefetch_steps)
        report["load_average_after"] = list(os.getloadavg())
    finally:
        shutil.rmtree(work, ignore_errors=True)
    write_report(report, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
