"""Extraction speed at 1920×1080 and tracking's quality guard, in one run.

Builds a one-face 1080p H.264 clip from the sample media (WolfgangLanger_Pexels.mp4 upscaled,
cached), then runs each mode in its own subprocess so that every figure has its own peak memory:
decode only, detect only, detect + align, the full extract with per-frame detection
(``--track off``, the default) and with tracking between detections (``--track on``). The
ratios of each full extract's frames/s to decode-only's are measured in the same run
(target for tracking: ≥ 0.50).

Quality guard (tracking against per-frame detection on the same frames):

* on the 1080p clip, from the two full extracts' stores: frames where per-frame detection kept
  a face and tracking did not (target 0), the mean landmark distance between the two (over the
  inter-ocular distance) and the landmark jitter of each (``smoothing.landmark_jitter``);
* on the held-back annotated clips of ``benchmarks/detect.py`` (the real head-turn clip, box
  truth on every frame, and the synthetic head-turn clips, landmark truth) and on synthetic
  variants: a scene cut (the real clip cut into the synthetic clips and back) and a face that
  enters (a second face sliding in from the right while the first is followed): recall against
  the truth, the frames lost against per-frame detection, NME against the truth landmarks
  (inner 51 points, outer-eye-corner normalised), jitter, and how late an entering face is
  found.

Writes JSON (``--output``) and prints it. Never asserts on time.

The full modes run in ``--rounds`` rounds (default 3), each followed by decode-only again; a
round's ratios divide by the mean of the decode-only runs around it, and the JSON gives every
round's and their median (the machine is often shared: the load drifts). Each mode also
reports its CPU time a frame (all threads). The full modes load the detectors' models before
their clock starts (``model_load``, reported apart), so every mode's rate is the per-frame rate
a long shot converges to.

Crop quality (``crop_quality``): on every 10th frame's face, extraction's 512 px aligned crop
and the plain bicubic warp it replaced, each against an area-correct crop (a bicubic warp at 4×
the size, area-averaged down): RMSE in 8-bit levels and CPU ms a crop.

Usage: python benchmarks/extract.py [--frames 120] [--detect-every 5] [--rounds 3]
       [--output bench_out/extract.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench_common import machine_info, write_report
from extract_quality import compare_runs

#: The full modes: (--track, --png-compression).
FULL = {"full": ("off", 1), "full_track": ("on", 1), "full_track_png0": ("on", 0)}


def build_clip(frames: int) -> Path:
    """The cached one-face 1080p benchmark clip (the woman's clip upscaled, H.264)."""
    from faceplate.io import samples

    return samples.upscaled_clip("WolfgangLanger_Pexels.mp4", frames)


def run_mode(mode: str, clip: Path, store: Path | None = None,
             detect_every: int = 5) -> dict[str, object]:
    """Run one mode in this process; returns its figures (the full modes keep their store at
    ``store`` for the quality comparison)."""
    from faceplate.extract.follow import FollowConfig
    from faceplate.extract.pipeline import ExtractConfig, Extractor, run_extract
    from faceplate.io.media import open_source

    result: dict[str, object] = {"mode": mode}
    if mode in FULL:
        track, png = FULL[mode]
        follow = FollowConfig(track=track, detect_every=detect_every)  # type: ignore[arg-type]
        full = Extractor(ExtractConfig(png_compression=png), follow_cfg=follow)
        assert store is not None
        # The models load on first use (mediapipe's import and graphs, the CenterFace sessions
        # of the detector and of the verifier's crop check, the aligner's): load them before
        # the clock starts, by running the extractor once on the clip's first frame (a face is
        # in it, so every stage runs), so every mode reports the per-frame rate a long shot
        # converges to; the load is reported apart, and its stage times are not counted.
        t, cpu = time.perf_counter(), time.process_time()
        with open_source(clip) as src:
            first = next(iter(src))
        warm = full.process(first)
        full.times.ms.clear()
        result["model_load"] = {"seconds": time.perf_counter() - t,
                                "cpu_seconds": time.process_time() - cpu,
                                "faces_in_warm_up_frame": len(warm.records)}
        with tempfile.TemporaryDirectory() as tmp:
            t, cpu = time.perf_counter(), time.process_time()
            stats = run_extract(clip, Path(tmp) / "faces", store, extractor=full)
            secs, cpu = time.perf_counter() - t, time.process_time() - cpu
        n = stats.frames
        result.update(frames=n, faces=stats.faces, seconds=secs, fps=n / secs,
                      cpu_ms_per_frame=1000 * cpu / n,
                      track=follow.track, detect_every=detect_every if track == "on" else 1,
                      png_compression=png, detection_frames=stats.detection_frames,
                      detection_reasons=stats.detection_reasons, followed=stats.followed,
                      stage_ms_per_frame={k: v / n for k, v in sorted(stats.stage_ms.items())})
    else:
        ex = Extractor(ExtractConfig(masks=())) if mode != "decode" else None
        n = faces = 0
        stage = {"decode": 0.0, "detect": 0.0, "align": 0.0}
        with open_source(clip) as src:
            t, cpu = time.perf_counter(), time.process_time()
            t_dec = time.perf_counter()
            for frame in src:
                stage["decode"] += time.perf_counter() - t_dec
                n += 1
                if ex is not None:
                    t0 = time.perf_counter()
                    dets = ex.detector.detect(frame.rgb)
                    t1 = time.perf_counter()
                    stage["detect"] += t1 - t0
                    if mode == "detect_align" and dets:
                        faces += len(ex.aligner.align(frame.rgb, dets))
                        stage["align"] += time.perf_counter() - t1
                    else:
                        faces += len(dets)
                t_dec = time.perf_counter()
            secs, cpu = time.perf_counter() - t, time.process_time() - cpu
        result.update(frames=n, faces=faces, seconds=secs, fps=n / secs,
                      cpu_ms_per_frame=1000 * cpu / n,
                      stage_ms_per_frame={k: 1000 * v / n for k, v in stage.items() if v})
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def crop_quality(clip: Path, every: int = 10, size: int = 512) -> dict[str, Any]:
    """The aligned crop against an area-correct one, on the clip's faces: extraction's crop
    (``warp_to_crop``'s default, scale-aware resampling) and the plain bicubic warp it replaced,
    each against a bicubic warp at 4× the size area-averaged down; RMSE in 8-bit levels and
    CPU ms a crop (median of 5 runs)."""
    import cv2

    from faceplate.core.geometry import compose_affine, crop_matrix, matrix_scale, to_cv2
    from faceplate.extract.crops import warp_to_crop
    from faceplate.extract.pipeline import ExtractConfig, Extractor
    from faceplate.io.media import open_source

    ex = Extractor(ExtractConfig(masks=()))
    ways = {"scale_aware": lambda rgb, m: warp_to_crop(rgb, m, size),
            "bicubic": lambda rgb, m: warp_to_crop(rgb, m, size, cv2.INTER_CUBIC)}
    rmse: dict[str, list[float]] = {k: [] for k in ways}
    cpu: dict[str, list[float]] = {k: [] for k in ways}
    scales = []
    with open_source(clip) as src:
        for i, frame in enumerate(src):
            if i % every:
                continue
            rgb = frame.rgb
            dets = ex.detector.detect(rgb)
            if not dets:
                continue
            m = crop_matrix(ex.aligner.align(rgb, dets[:1])[0].landmarks, size, "face")
            scales.append(matrix_scale(m))
            k4 = compose_affine(np.diag([4.0, 4.0, 1.0])[:2], m)
            big = cv2.warpAffine(rgb, to_cv2(k4), (4 * size, 4 * size), flags=cv2.INTER_CUBIC,
                                 borderMode=cv2.BORDER_REPLICATE)
            ref = cv2.resize(big, (size, size), interpolation=cv2.INTER_AREA).astype(np.float64)
            for k, fn in ways.items():
                runs = []
                for _ in range(5):
                    c = time.process_time()
                    out = fn(rgb, m)
                    runs.append(1000 * (time.process_time() - c))
                cpu[k].append(float(np.median(runs)))
                rmse[k].append(float(np.sqrt(np.mean((out.astype(np.float64) - ref) ** 2))))
    return {"faces": len(scales), "size": size,
            "scale_crop_px_per_frame_px": [float(min(scales)), float(max(scales))],
            "rmse_vs_area_reference": {k: float(np.mean(v)) for k, v in rmse.items()},
            "rmse_vs_area_reference_max": {k: float(np.max(v)) for k, v in rmse.items()},
            "cpu_ms_per_crop": {k: float(np.median(v)) for k, v in cpu.items()}}



def _faces_by_frame(store_path: Path) -> dict[int, list[Any]]:
    from faceplate.io.store import AlignmentsStore

    with AlignmentsStore.open(store_path) as st:
        return {i: st.faces(i) for i in sorted(st.done_frame_indices())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--output", type=Path, default=Path("bench_out/extract.json"))
    ap.add_argument("--detect-every", type=int, default=5,
                    help="--detect-every of the tracking mode (default: 5, the CLI default)")
    ap.add_argument("--rounds", type=int, default=3,
                    help="rounds of the full modes, each with decode-only after it (default 3)")
    ap.add_argument("--no-quality", action="store_true",
                    help="skip the quality guard on the annotated clips")
    ap.add_argument("--mode", choices=("decode", "detect", "detect_align", *FULL, "quality",
                                       "crop"),
                    help=argparse.SUPPRESS)
    ap.add_argument("--clip", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--store", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.mode == "quality":  # child process
        from extract_quality import quality

        print(json.dumps(quality(args.detect_every)))
        return
    if args.mode == "crop":  # child process
        print(json.dumps(crop_quality(args.clip)))
        return
    if args.mode:  # child process
        print(json.dumps(run_mode(args.mode, args.clip, args.store, args.detect_every)))
        return
    clip = build_clip(args.frames)
    load = {"start": list(os.getloadavg())}

    def run(mode: str, store: Path | None = None) -> dict[str, Any]:
        cmd = [sys.executable, __file__, "--mode", mode, "--clip", str(clip),
               "--detect-every", str(args.detect_every)]
        if store is not None:
            cmd += ["--store", str(store)]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
        out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
        return out

    with tempfile.TemporaryDirectory() as tmp:
        stores = {m: Path(tmp) / f"{m}.fpstore" for m in FULL}
        by_mode: dict[str, Any] = {m: run(m) for m in ("decode", "detect", "detect_align")}
        # Rounds of the full modes, each followed by decode-only again: a round's ratios use
        # the mean of the decode-only runs around it, so a load that drifts during the run
        # moves numerator and denominator together; the reported ratio is the median round's.
        rounds: list[dict[str, Any]] = []
        before = by_mode["decode"]
        for r in range(args.rounds):
            rnd: dict[str, Any] = {
                m: run(m, stores[m] if r == 0 else Path(tmp) / f"{m}_{r}.fpstore")
                for m in FULL}
            after = run("decode")
            rnd["decode_mean_fps"] = (float(before["fps"]) + float(after["fps"])) / 2
            rnd["decode_mean_cpu_ms_per_frame"] = (float(before["cpu_ms_per_frame"])
                                                   + float(after["cpu_ms_per_frame"])) / 2
            rnd["decode_after"] = after
            rounds.append(rnd)
            before = after

        def ratio(rnd: dict[str, Any], key: str) -> float:
            if key.endswith("_cpu"):  # CPU time a frame, all threads
                m = key.removesuffix("_vs_decode_cpu")
                return float(rnd["decode_mean_cpu_ms_per_frame"]) / float(
                    rnd[m]["cpu_ms_per_frame"])
            if key == "full_track_vs_full":
                return float(rnd["full_track"]["fps"]) / float(rnd["full"]["fps"])
            m = key.removesuffix("_vs_decode")
            return float(rnd[m]["fps"]) / float(rnd["decode_mean_fps"])

        keys = [*(f"{m}_vs_decode" for m in FULL), "full_track_vs_full",
                *(f"{m}_vs_decode_cpu" for m in FULL)]
        per_round = {k: [ratio(rnd, k) for rnd in rounds] for k in keys}
        ratios = {k: float(np.median(v)) for k, v in per_round.items()}
        for m in FULL:
            by_mode[m] = rounds[0][m]
        by_mode["decode_end"] = rounds[-1]["decode_after"]
        guard_1080 = compare_runs(_faces_by_frame(stores["full"]),
                                  _faces_by_frame(stores["full_track"]))
    crops = run("crop")
    load["after_speed"] = list(os.getloadavg())
    report: dict[str, Any] = {
        "benchmark": "extract",
        "clip": {"path": str(clip), "width": 1920, "height": 1080, "frames": args.frames,
                 "faces_per_frame": 1},
        "machine": machine_info(),
        "results": by_mode,
        "rounds": [{m: {k: rnd[m][k] for k in ("fps", "cpu_ms_per_frame")} for m in FULL}
                   | {"decode_mean_fps": rnd["decode_mean_fps"]} for rnd in rounds],
        "ratios": ratios,
        "ratios_per_round": per_round,
        "targets": {"full_track_vs_decode": 0.50, "frames_lost": 0},
        "quality_1080p": guard_1080,
        "crop_quality": crops,
    }
    if not args.no_quality:
        proc = subprocess.run([sys.executable, __file__, "--mode", "quality",
                               "--detect-every", str(args.detect_every)],
                              capture_output=True, text=True, check=True)
        report["quality_clips"] = json.loads(proc.stdout.strip().splitlines()[-1])
    load["end"] = list(os.getloadavg())
    report["load_average"] = load
    write_report(report, args.output)


if __name__ == "__main__":
    main()
