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
* ``store_int8``: ``--precision int8``: the int8 export (quantised here once, calibrated on the
  clip's own faces, written as a faceset: the model is untrained, it has no training faces);
* ``on_the_fly``: no store, faces detected per frame (detect + align + masks).

Beside them, in the same run: ``model_only``, each precision's own rate in faces/s (the
predictor alone on the clip's face crops, run the way convert runs it: ``--jobs`` threads at
once, each inference on its share of the cores; no learned mask, as convert's default: the
ONNX and int8 predictors run their face-only graphs, and ``int8_with_mask`` is the full int8
graph), so the pipeline's overhead is a ratio (``pipeline_vs_model`` = steady frames/s ÷ model
faces/s, one face a frame), and ``int8_vs_bf16_steady`` (``--modes`` with no mode,
``--profile`` with none and ``--no-quality`` run ``model_only`` alone); and ``quality``: the
int8 guard of :mod:`faceplate.evaluate.precision` (face PSNR against fp32, identity distance
and skin ΔE of the composites) on this clip with this model, and on the man's sample clip with
the trained test model (``tests/convert_model.py``, when its cache exists: it has real
training faces).

``--rounds N`` runs the modes and ``model_only`` N times, interleaved (A B A B: on a loaded
machine each ratio's two halves run close in time); ``ratios`` are the rounds' medians,
``ratios_per_round`` each round's. Each ratio also comes from CPU time (``*_cpu``: the
process's CPU milliseconds a frame or a face, every thread counted), which other work on a
shared machine disturbs far less than wall time. ``stage_profile`` (``--profile``, default
bf16 and int8): CPU milliseconds a frame of each stage of the convert loop run in one thread
(:func:`stage_profile`), with cProfile's top functions.

Each reports end-to-end frames/s (``run_convert`` from its call to its return: the imports it
triggers, the model load, decode → faces → swap → H.264 ``ultrafast`` write, the signing), the
steady rate inside the frame loop (``fps_steady``: frames written after the first
``WARM_FRAMES`` over the time they took; what a long clip converges to), the seconds before
the first frame (``startup_seconds``: imports, model and watermark set-up, opening the
writers), the swap's own frames/s (``swap_frame`` only, per job), milliseconds per frame for
every stage, the process's CPU milliseconds a frame in the steady part (every thread:
``cpu_ms_per_frame_steady``), and peak RSS.
Writes JSON (``--output``) and prints it. Never asserts on time.

Usage: python benchmarks/convert.py [--frames 48] [--rounds 1] [--modes ...] [--profile bf16 int8]
       [--output bench_out/convert.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_common import calibration, machine_info, write_report

MODES = ("store", "store_bf16", "store_bf16_jobs1", "store_onnx", "store_int8", "on_the_fly")
#: The precisions ``model_only`` measures: (mode name, predictor, precision, learned mask
#: wanted). Convert's default wants no learned mask: the ONNX and int8 predictors then run the
#: face-only graph; ``int8_with_mask`` is the full int8 graph (face and mask), as before it.
MODEL_ONLY = (("fp32", "torch", "fp32", False), ("bf16", "torch", "bf16", False),
              ("onnx_fp32", "onnx", "fp32", False), ("int8", "torch", "int8", False),
              ("int8_with_mask", "torch", "int8", True))
#: Convert modes whose steady rate is compared with each model-only rate.
PIPELINE_OF = {"store": "fp32", "store_bf16": "bf16", "store_onnx": "onnx_fp32",
               "store_int8": "int8"}
#: Precisions the per-stage profile can run (``onnx_fp32``: the ONNX predictor's fp32 graph).
PROFILE_PRECISIONS = ("fp32", "bf16", "onnx_fp32", "int8")
SIZE = 128
#: ``fps_steady`` counts from the frame written after these (the first frames carry the
#: inference engine's one-time set-up).
WARM_FRAMES = 8
#: Frames the stage profile runs swap_frame under cProfile for.
PROFILE_FRAMES = 8


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
    else:  # a store cached by an older Faceplate: migrate it (opening it writable does)
        from faceplate.io.store import AlignmentsStore

        AlignmentsStore.open(store).close()
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
        from faceplate.io.paths import sha256_file

        mf.write_manifest(model_dir, manifest.__class__(**{
            **manifest.to_dict(), "onnx": {"file": "model.onnx", "direction": "b2a",
                                           "sha256": sha256_file(onnx_path)}}))
    manifest = mf.read_manifest(model_dir)
    if manifest.onnx is not None and not manifest.onnx.get("face_only"):  # older code's cache
        from faceplate.io.paths import sha256_file
        from faceplate.train.export import face_only_graph

        face = face_only_graph(model_dir / manifest.onnx["file"], model_dir / mf.ONNX_FACE)
        mf.write_manifest(model_dir, manifest.__class__(**{**manifest.to_dict(), "onnx": {
            **manifest.onnx, "sha256": sha256_file(model_dir / manifest.onnx["file"]),
            "face_only": {"file": mf.ONNX_FACE, "sha256": sha256_file(face)}}}))
    int8 = mf.read_manifest(model_dir).int8
    if int8 is None or not int8.get("face_only"):  # none yet, or made by older code
        faces = work / "faces"
        if not any(faces.glob("*.png")):
            run_extract(clip, faces, work / "faces.fpstore",
                        extractor=Extractor(ExtractConfig(size=256, thumbnails=False)))
        from faceplate.train.trainer import export_int8

        export_int8(model_dir, faces)
    return clip, store, model_dir


def run_mode(mode: str, clip: Path, store: Path, model_dir: Path) -> dict[str, object]:
    """Run one mode in this process; returns its figures."""
    import torch

    from faceplate.convert.run import run_convert
    from faceplate.convert.swap import ConvertConfig
    from faceplate.convert.writers.video import VideoConfig

    cfg = ConvertConfig(predictor="onnx" if mode == "store_onnx" else "torch",
                        precision="bf16" if mode.startswith("store_bf16") else
                        "int8" if mode == "store_int8" else "fp32",
                        jobs=1 if mode.endswith("_jobs1") else 0)
    with tempfile.TemporaryDirectory() as tmp:
        src = clip
        if mode == "on_the_fly":  # a link in an empty folder: no store beside it
            src = Path(tmp) / clip.name
            src.symlink_to(clip)
        started: list[float] = []
        written: list[float] = []
        cpu: list[float] = []  # process CPU seconds (every thread) when each frame was written

        def on_frame(_i: int, _r: object) -> None:
            written.append(time.perf_counter())
            cpu.append(time.process_time())

        t = time.perf_counter()
        stats = run_convert(model_dir, src, Path(tmp) / "out.mp4",
                            None if mode == "on_the_fly" else store, cfg,
                            video_cfg=VideoConfig(preset="ultrafast"),
                            on_start=lambda _n: started.append(time.perf_counter()),
                            on_frame=on_frame)
        secs = time.perf_counter() - t
    n = stats.frames
    swap_ms = sum(v for k, v in stats.stage_ms.items() if k.startswith("swap."))
    steady = (len(written) - 1 - WARM_FRAMES) / (written[-1] - written[WARM_FRAMES]) \
        if len(written) > WARM_FRAMES + 1 else None
    cpu_steady = 1000.0 * (cpu[-1] - cpu[WARM_FRAMES]) / (len(cpu) - 1 - WARM_FRAMES) \
        if len(cpu) > WARM_FRAMES + 1 else None
    return {
        "mode": mode, "frames": n, "faces": stats.faces, "seconds": secs,
        "fps_end_to_end": n / secs, "fps_steady": steady,
        # CPU time of the whole process (every thread: swaps, decode, writer, encoder) per
        # frame in the steady part: beside the model's own CPU ms a face, what the rest costs.
        "cpu_ms_per_frame_steady": cpu_steady,
        "startup_seconds": started[0] - t if started else None,
        "first_frame_seconds": written[0] - started[0] if started and written else None,
        "finish_seconds": t + secs - written[-1] if written else None, "jobs": stats.jobs,
        # The swap's stage times are summed over the frames swapped at once: per job.
        "fps_swap_only": 1000.0 * n * stats.jobs / swap_ms if swap_ms else None,
        "stage_ms_per_frame": {k: v / n for k, v in sorted(stats.stage_ms.items())},
        "torch_threads": torch.get_num_threads(),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }



def stage_profile(clip: Path, store: Path, model_dir: Path, precision: str,
                  frames: int = 40, warm: int = 4) -> dict[str, object]:
    """CPU milliseconds a frame of each stage of the convert loop, run in one thread.

    The steady loop of ``run_convert``, one stage after the other in this thread, the model on
    one thread (as each of convert's two jobs runs it): decode (PyAV, to RGB), the store's
    faces, :func:`swap_frame`'s stages (its ``SwapContext`` read with ``time.thread_time``),
    and the H.264 ``ultrafast`` write (the video writer's own call). ``write_other_threads`` and
    ``swap_other_threads``: the process's CPU beside this thread's during the write (x264's
    frame threads, PyAV's decoding threads) and during the swap (OpenCV's worker threads).
    ``rest_ms`` is everything but ``swap.predict``. cProfile's top
    functions (own time a frame) over :func:`swap_frame` on a few more frames come with it.
    """
    import cProfile
    import pstats

    from faceplate.convert.run import encoder_threads, swap_jobs
    from faceplate.convert.swap import ConvertConfig, SwapContext, make_predictor, swap_frame
    from faceplate.convert.writers import WRITERS
    from faceplate.convert.writers.video import VideoConfig
    from faceplate.core.cpu import blas_threads, keep_freed_memory, opencv_threads, usable_cores
    from faceplate.io.media import open_source
    from faceplate.io.store import AlignmentsStore
    from faceplate.provenance.watermark import prepare

    kind = "torch" if precision != "onnx_fp32" else "onnx"
    prec = "fp32" if precision == "onnx_fp32" else precision
    pred = make_predictor(kind, model_dir, threads=1, precision=prec)  # type: ignore[arg-type]
    cfg = ConvertConfig(predictor=kind, precision=prec)  # type: ignore[arg-type]
    ctx = SwapContext.create(cfg)
    ctx.clock = time.thread_time
    prepare()
    blas_threads(1)  # as run_convert runs, with each of its two jobs' share of OpenCV's pool
    opencv_threads(max(1, usable_cores() // 2))
    keep_freed_memory()
    st = AlignmentsStore.open(store, readonly=True)
    acc: dict[str, float] = {}
    prof = cProfile.Profile()
    with tempfile.TemporaryDirectory() as tmp, open_source(clip) as src:
        # The encoder's threads as run_convert resolves them for its two jobs on these cores.
        vcfg = encoder_threads(VideoConfig(preset="ultrafast").replace(input_space="srgb"),
                               swap_jobs(cfg)[0], usable_cores())
        w = WRITERS.create("video", vcfg)
        w.open(Path(tmp) / "out.mp4", width=src.width, height=src.height, fps=src.fps or 25.0,
               frame_count_hint=frames, source=None)
        n = 0
        it = iter(src)
        while n < warm + frames:
            t0 = time.thread_time()
            frame = next(it, None)
            if frame is None:
                break
            t1 = time.thread_time()
            faces = st.faces_at(src.number_of(frame.info.index)) or []
            if n == warm:
                ctx.times.clear()
                acc.clear()
            c2, t2 = time.process_time(), time.thread_time()
            res = swap_frame(frame.rgb, faces, pred, cfg, frame_is_linear=False, context=ctx)
            c3, t3 = time.process_time(), time.thread_time()
            w.write(n, res.frame, frame.info, {"provenance": {"model_id": pred.model_id}})
            t4, c4 = time.thread_time(), time.process_time()
            for k, v in (("decode", t1 - t0), ("faces", t2 - t1), ("write", t4 - t3),
                         ("write_other_threads", max(0.0, (c4 - c3) - (t4 - t3))),
                         ("swap_other_threads", max(0.0, (c3 - c2) - (t3 - t2)))):
                acc[k] = acc.get(k, 0.0) + 1000.0 * v
            n += 1
        w.close()
    st.close()
    timed = max(1, n - warm)
    ms = {k: v / timed for k, v in acc.items()}
    ms.update({f"swap.{k}": v / timed for k, v in ctx.times.items()})
    model = ms.get("swap.predict", 0.0)
    rest = sum(v for k, v in ms.items() if k != "swap.predict")
    # cProfile of the swap: one more pass over a few frames.
    with open_source(clip) as src:
        st = AlignmentsStore.open(store, readonly=True)
        for i, frame in enumerate(src):
            if i >= PROFILE_FRAMES:
                break
            faces = st.faces_at(src.number_of(i)) or []
            prof.enable()
            swap_frame(frame.rgb, faces, pred, cfg, frame_is_linear=False, context=ctx)
            prof.disable()
        st.close()
    stats = pstats.Stats(prof)
    top = sorted(((v[2], f"{Path(k[0]).name}:{k[1]}({k[2]})") for k, v in
                  stats.stats.items()),  # type: ignore[attr-defined]
                 reverse=True)[:15]
    return {"precision": precision, "frames": timed, "threads": 1,
            "cpu_ms_per_frame": {k: round(v, 2) for k, v in sorted(ms.items())},
            "model_ms": round(model, 2), "rest_ms": round(rest, 2),
            "rest_vs_model": rest / model if model else None,
            "cprofile_swap_top_own_ms": {name: round(1000.0 * t / PROFILE_FRAMES, 2)
                                         for t, name in top}}


def _clip_faces(clip: Path, store: Path, every: int) -> list[tuple[Any, list[Any]]]:
    """(frame RGB, its stored faces) for every ``every``-th frame of the clip."""
    from faceplate.io.media import open_source
    from faceplate.io.store import AlignmentsStore

    out: list[tuple[Any, list[Any]]] = []
    st = AlignmentsStore.open(store, readonly=True)
    try:
        with open_source(clip) as src:
            for i, frame in enumerate(src):
                if i % every == 0:
                    out.append((frame.rgb, st.faces_at(src.number_of(i)) or []))
    finally:
        st.close()
    return out


def model_only(clip: Path, store: Path, model_dir: Path, calls: int) -> dict[str, object]:
    """Faces/s of each precision's predictor alone, ``jobs`` threads at once as in convert."""
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    from faceplate.convert.run import swap_jobs
    from faceplate.convert.swap import ConvertConfig, make_predictor, model_inputs
    from faceplate.core.cpu import keep_freed_memory

    jobs, threads = swap_jobs(ConvertConfig())
    keep_freed_memory()  # as run_convert runs
    frames = _clip_faces(clip, store, 6)
    out: dict[str, object] = {"jobs": jobs, "threads_per_job": threads, "calls_per_job": calls}
    for name, kind, prec, want_mask in MODEL_ONLY:
        pred = make_predictor(kind, model_dir, threads=threads, precision=prec)  # type: ignore[arg-type]
        crops = [model_inputs(f, faces, pred) for f, faces in frames if faces]

        def work(j: int, pred: object = pred, crops: list[np.ndarray] = crops,
                 want: bool = want_mask) -> None:
            for k in range(calls):
                pred.predict(crops[(j + k) % len(crops)][:1], mask=want)  # type: ignore[attr-defined]

        with ThreadPoolExecutor(jobs) as pool:
            list(pool.map(work, range(jobs)))  # warm-up: one-time set-up of each engine
            t, c = time.perf_counter(), time.process_time()
            list(pool.map(work, range(jobs)))
            secs, cpu = time.perf_counter() - t, time.process_time() - c
        out[name] = {"faces_per_second": jobs * calls / secs,
                     "ms_per_face_per_job": 1000.0 * secs / calls,
                     "cpu_ms_per_face": 1000.0 * cpu / (jobs * calls)}
        del pred
    return out


def quality(clip: Path, store: Path, model_dir: Path) -> dict[str, object]:
    """The int8 guard on this clip/model and on the trained test model's sample clip."""
    from faceplate.evaluate.precision import compare_precisions
    from faceplate.io import samples

    res: dict[str, object] = {
        "benchmark_model_1080p_clip": {
            "model": "df 128, untrained (int8 calibrated on this clip's faces)",
            **compare_precisions(model_dir, _clip_faces(clip, store, 8),
                                 candidate="int8").to_dict()}}
    root = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(root))
    from tests import convert_model
    from tests.train_facesets import cache_root

    trained = cache_root().parent.parent / "test_models" / convert_model.TRAINED_VERSION / "model"
    sets = cache_root()
    if not (trained / "manifest.json").is_file() or not (sets / "b.fpstore").is_file():
        res["trained_test_model"] = "skipped: run the tests once to train and cache it"
        return res
    import shutil

    from faceplate.train.trainer import export_int8

    with tempfile.TemporaryDirectory() as tmp:
        m = Path(tmp) / "model"
        shutil.copytree(trained, m)
        entry = export_int8(m, sets / "b")
        res["trained_test_model"] = {
            "model": "original 64 px, 600 iterations (tests/convert_model.py), int8 "
                     "calibrated on its faceset B", "export_psnr_db": entry["psnr_db"],
            "clip": "single_face.mp4 640x360, every 3rd frame",
            **compare_precisions(m, _clip_faces(samples.path("single_face.mp4"),
                                                sets / "b.fpstore", 3),
                                 candidate="int8").to_dict()}
    return res


def _child(mode: str, clip: Path, store: Path, model_dir: Path, *extra: str) -> dict[str, Any]:
    load = list(os.getloadavg())
    proc = subprocess.run([sys.executable, __file__, "--mode", mode, "--clip", str(clip),
                           "--store", str(store), "--model", str(model_dir), *extra],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        return {"mode": mode, "error": proc.stderr.strip().splitlines()[-5:]}
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    out["load_average_before"] = load
    return out


def _ratios(by_mode: dict[str, Any], model: dict[str, Any]) -> dict[str, float]:
    """One round's ratios (and each convert mode's ``pipeline_vs_model``, set in place)."""
    ratios: dict[str, float] = {}
    for mode, prec in PIPELINE_OF.items():
        r, m = by_mode.get(mode, {}), model.get(prec)
        if isinstance(m, dict) and r.get("fps_steady"):
            r["model_faces_per_second"] = m["faces_per_second"]
            r["pipeline_vs_model"] = r["fps_steady"] / m["faces_per_second"]
            ratios[f"pipeline_vs_model_{mode}"] = r["pipeline_vs_model"]
    bf, i8 = by_mode.get("store_bf16", {}), by_mode.get("store_int8", {})
    if bf.get("fps_steady") and i8.get("fps_steady"):
        ratios["int8_vs_bf16_steady"] = i8["fps_steady"] / bf["fps_steady"]
        ratios["int8_vs_bf16_end_to_end"] = i8["fps_end_to_end"] / bf["fps_end_to_end"]
    mb, mi = model.get("bf16"), model.get("int8")
    if isinstance(mb, dict) and isinstance(mi, dict):
        ratios["int8_vs_bf16_model_only"] = mi["faces_per_second"] / mb["faces_per_second"]
    # The same ratios from CPU time (every thread of the process): what the wall-time ratios
    # are on a machine this process has to itself, and nearly free of other work's share of
    # the cores on a loaded one.
    for mode, prec in PIPELINE_OF.items():
        r, m = by_mode.get(mode, {}), model.get(prec)
        if isinstance(m, dict) and r.get("cpu_ms_per_frame_steady") and m.get("cpu_ms_per_face"):
            ratios[f"pipeline_vs_model_cpu_{mode}"] = (m["cpu_ms_per_face"]
                                                      / r["cpu_ms_per_frame_steady"])
    if bf.get("cpu_ms_per_frame_steady") and i8.get("cpu_ms_per_frame_steady"):
        ratios["int8_vs_bf16_steady_cpu"] = (bf["cpu_ms_per_frame_steady"]
                                             / i8["cpu_ms_per_frame_steady"])
    if isinstance(mb, dict) and isinstance(mi, dict) and mi.get("cpu_ms_per_face"):
        ratios["int8_vs_bf16_model_only_cpu"] = mb["cpu_ms_per_face"] / mi["cpu_ms_per_face"]
    mw = model.get("int8_with_mask")  # the face-only int8 graph against the full one
    if isinstance(mw, dict) and isinstance(mi, dict) and mi.get("cpu_ms_per_face"):
        ratios["int8_face_only_vs_with_mask_model_only"] = (mi["faces_per_second"]
                                                            / mw["faces_per_second"])
        ratios["int8_face_only_vs_with_mask_model_only_cpu"] = (mw["cpu_ms_per_face"]
                                                                / mi["cpu_ms_per_face"])
    return ratios


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=48)
    ap.add_argument("--output", type=Path, default=Path("bench_out/convert.json"))
    ap.add_argument("--work", type=Path, default=None,
                    help="folder for the store and model (default: a cache folder)")
    ap.add_argument("--model-calls", type=int, default=8,
                    help="model-only: faces per job timed for each precision")
    ap.add_argument("--modes", nargs="*", choices=MODES, default=list(MODES))
    ap.add_argument("--rounds", type=int, default=1,
                    help="run the modes and model_only this many times, interleaved (A B A B: "
                         "on a loaded machine each ratio's halves run close in time); the "
                         "ratios are the rounds' medians")
    ap.add_argument("--profile", nargs="*", choices=PROFILE_PRECISIONS,
                    default=["bf16", "int8"],
                    help="precisions whose per-stage CPU profile is measured (one thread)")
    ap.add_argument("--no-quality", action="store_true", help="skip the int8 quality guard")
    ap.add_argument("--mode", choices=(*MODES, "model_only", "quality", "profile"),
                    help=argparse.SUPPRESS)
    ap.add_argument("--clip", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--store", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--model", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--precision", choices=PROFILE_PRECISIONS, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.mode == "model_only":  # child processes
        print(json.dumps(model_only(args.clip, args.store, args.model, args.model_calls)))
        return
    if args.mode == "quality":
        print(json.dumps(quality(args.clip, args.store, args.model)))
        return
    if args.mode == "profile":
        print(json.dumps(stage_profile(args.clip, args.store, args.model, args.precision)))
        return
    if args.mode:
        print(json.dumps(run_mode(args.mode, args.clip, args.store, args.model)))
        return
    from faceplate.io import samples

    cal_start = calibration()
    work = args.work or samples.cache_dir().parent / "derived" / f"bench_convert_{args.frames}"
    work.mkdir(parents=True, exist_ok=True)
    clip, store, model_dir = prepare(args.frames, work)
    # The model-only rates between the convert modes: each ratio's two halves close in time.
    rounds: list[dict[str, Any]] = []
    for _ in range(max(1, args.rounds)):
        results = []
        model: dict[str, Any] | None = None
        for i, mode in enumerate(args.modes):
            if i == len(args.modes) // 2:
                model = _child("model_only", clip, store, model_dir)
            results.append(_child(mode, clip, store, model_dir))
        if model is None:
            model = _child("model_only", clip, store, model_dir)
        by_mode = {r["mode"]: r for r in results}
        rounds.append({"results": by_mode, "model_only": model,
                       "ratios": _ratios(by_mode, model)})
    keys = sorted({k for r in rounds for k in r["ratios"]})
    ratios = {k: statistics.median(r["ratios"][k] for r in rounds if k in r["ratios"])
              for k in keys}
    profiles = {p: _child("profile", clip, store, model_dir, "--precision", p)
                for p in args.profile}
    qual = None if args.no_quality else _child("quality", clip, store, model_dir)
    report = {
        "benchmark": "convert",
        "clip": {"path": str(clip), "width": 1920, "height": 1080, "frames": args.frames,
                 "faces_per_frame": 1},
        "model": {"architecture": "df", "size": SIZE, "weights": "random (untrained)"},
        "settings": "defaults: colour rct, blend overlay, mask extended, writer H.264 "
                    "ultrafast CRF 18",
        "machine": machine_info(),
        "targets": {"int8_vs_bf16_steady": 1.6, "pipeline_vs_model": 0.85},
        "ratios": ratios,
        "ratios_per_round": [r["ratios"] for r in rounds],
        "results": rounds[0]["results"],
        "model_only": rounds[0]["model_only"],
        "rounds": rounds[1:],
        "stage_profile": profiles,
        "quality": qual,
    }
    report["calibration"] = {"start": cal_start, "end": calibration()}
    write_report(report, args.output)


if __name__ == "__main__":
    main()
