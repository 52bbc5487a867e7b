"""Convert speed at 1920×1080 with a ``df`` 128 px model: faces from the store and on the fly.

Builds (cached) the 1080p clip ``samples.upscaled_clip("single_face.mp4", 48)``, extracts its
alignments store once, and writes an untrained ``df`` model directory (random weights through
``faceplate.io.model_files.save_model``: the speed does not depend on what the weights learned).
Then each mode runs ``run_convert`` in its own subprocess (its own peak memory):

* ``store``: faces from the store, torch predictor, fp32 (the default precision);
* ``store_bf16``: ``store`` with bf16 inference (``--precision bf16``: the mode for the issue's
  ≥ 10 fps target on 2 cores, on a CPU with AVX512-BF16);
* ``store_bf16_jobs1``: ``store_bf16`` swapping one frame at a time (``--jobs 1``; every other
  mode uses the default, two frames at once on a 2-core machine);
* ``store_onnx``: the same with the ONNX predictor (exported here once);
* ``on_the_fly``: no store, faces detected per frame (detect + align + masks).

Each reports end-to-end frames/s (``run_convert`` from its call to its return: the imports it
triggers, the model load, decode → faces → swap → H.264 ``ultrafast`` write, the signing), the
steady rate inside the frame loop (``fps_steady``: frames written after the first
``WARM_FRAMES`` over the time they took; what a long clip converges to), the seconds before
the first frame (``startup_seconds``: imports, model and watermark set-up, opening the
writers), the swap's own frames/s (``swap_frame`` only, per job), milliseconds per frame for
every stage, and peak RSS.
Writes JSON (``--output``) and prints it. Never asserts on time.

Usage: python benchmarks/convert.py [--frames 48] [--output bench_out/convert.json]
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

from bench_common import machine_info, write_report

MODES = ("store", "store_bf16", "store_bf16_jobs1", "store_onnx", "on_the_fly")
SIZE = 128
#: ``fps_steady`` counts from the frame written after these (the first frames carry the
#: inference engine's one-time set-up).
WARM_FRAMES = 8


def prepare(frames: int, work: Path) -> tuple[Path, Path, Path]:
    """(clip, its store, the df model dir), built once under ``work``."""
    import torch

    from faceplate.extract.pipeline import ExtractConfig, Extractor, run_extract
    from faceplate.io import model_files as mf
    from faceplate.io import samples
    from faceplate.models import build_model
    from faceplate.models.dfl import DFConfig

    clip = samples.upscaled_clip("single_face.mp4", frames)
    store = work / "clip.fpstore"
    if not store.exists():
        run_extract(clip, None, store, extractor=Extractor(ExtractConfig(write_faces=False,
                                                                         thumbnails=False)))
    model_dir = work / "df128"
    if not (model_dir / "manifest.json").exists():
        model_dir.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(0)
        cfg = DFConfig(size=SIZE)
        model = build_model("df", cfg).eval()
        manifest = mf.Manifest(
            architecture="df", model_config=cfg.to_dict(), size=SIZE, input_size=SIZE,
            output_size=SIZE, centering="face", coverage=1.0, learn_mask=True,
            weights={"file": "model.safetensors"},
            training=mf.training_stats(0, 0, 1, {}))
        manifest = mf.save_model(model_dir, model.state_dict(), manifest)
        onnx_path = model_dir / "model.onnx"
        from faceplate.train.export import export_onnx  # the benchmark may use train

        export_onnx(model, onnx_path)
        mf.write_manifest(model_dir, manifest.__class__(**{
            **manifest.to_dict(), "onnx": {"file": "model.onnx", "direction": "b2a"}}))
    return clip, store, model_dir


def run_mode(mode: str, clip: Path, store: Path, model_dir: Path) -> dict[str, object]:
    """Run one mode in this process; returns its figures."""
    import torch

    from faceplate.convert.run import run_convert
    from faceplate.convert.swap import ConvertConfig
    from faceplate.convert.writers.video import VideoConfig

    cfg = ConvertConfig(predictor="onnx" if mode == "store_onnx" else "torch",
                        precision="bf16" if mode.startswith("store_bf16") else "fp32",
                        jobs=1 if mode.endswith("_jobs1") else 0)
    with tempfile.TemporaryDirectory() as tmp:
        src = clip
        if mode == "on_the_fly":  # a link in an empty folder: no store beside it
            src = Path(tmp) / clip.name
            src.symlink_to(clip)
        started: list[float] = []
        written: list[float] = []
        t = time.perf_counter()
        stats = run_convert(model_dir, src, Path(tmp) / "out.mp4",
                            None if mode == "on_the_fly" else store, cfg,
                            video_cfg=VideoConfig(preset="ultrafast"),
                            on_start=lambda _n: started.append(time.perf_counter()),
                            on_frame=lambda _i, _r: written.append(time.perf_counter()))
        secs = time.perf_counter() - t
    n = stats.frames
    swap_ms = sum(v for k, v in stats.stage_ms.items() if k.startswith("swap."))
    steady = (len(written) - 1 - WARM_FRAMES) / (written[-1] - written[WARM_FRAMES]) \
        if len(written) > WARM_FRAMES + 1 else None
    return {
        "mode": mode, "frames": n, "faces": stats.faces, "seconds": secs,
        "fps_end_to_end": n / secs, "fps_steady": steady,
        "startup_seconds": started[0] - t if started else None,
        "first_frame_seconds": written[0] - started[0] if started and written else None,
        "finish_seconds": t + secs - written[-1] if written else None, "jobs": stats.jobs,
        # The swap's stage times are summed over the frames swapped at once: per job.
        "fps_swap_only": 1000.0 * n * stats.jobs / swap_ms if swap_ms else None,
        "stage_ms_per_frame": {k: v / n for k, v in sorted(stats.stage_ms.items())},
        "torch_threads": torch.get_num_threads(),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }



def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=48)
    ap.add_argument("--output", type=Path, default=Path("bench_out/convert.json"))
    ap.add_argument("--work", type=Path, default=None,
                    help="folder for the store and model (default: a cache folder)")
    ap.add_argument("--mode", choices=MODES, help=argparse.SUPPRESS)
    ap.add_argument("--clip", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--store", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--model", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.mode:  # child process
        print(json.dumps(run_mode(args.mode, args.clip, args.store, args.model)))
        return
    from faceplate.io import samples

    work = args.work or samples.cache_dir().parent / "derived" / f"bench_convert_{args.frames}"
    work.mkdir(parents=True, exist_ok=True)
    clip, store, model_dir = prepare(args.frames, work)
    results = []
    for mode in MODES:
        proc = subprocess.run([sys.executable, __file__, "--mode", mode, "--clip", str(clip),
                               "--store", str(store), "--model", str(model_dir)],
                              capture_output=True, text=True, check=True)
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    report = {
        "benchmark": "convert",
        "clip": {"path": str(clip), "width": 1920, "height": 1080, "frames": args.frames,
                 "faces_per_frame": 1},
        "model": {"architecture": "df", "size": SIZE, "weights": "random (untrained)"},
        "settings": "defaults: colour rct, blend overlay, mask extended, writer H.264 "
                    "ultrafast CRF 18",
        "machine": machine_info(),
        "results": {r["mode"]: r for r in results},
    }
    write_report(report, args.output)


if __name__ == "__main__":
    main()
