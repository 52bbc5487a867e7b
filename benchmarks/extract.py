"""Extraction speed at 1920×1080: detect only, detect+align, and the full extract.

Builds a one-face 1080p H.264 clip from the sample media (WolfgangLanger_Pexels.mp4 upscaled,
cached), then runs each mode in its own subprocess so that every figure has its own peak memory.
Writes JSON (``--output``) and prints it. Never asserts on time.

Usage: python benchmarks/extract.py [--frames 120] [--output bench_out/extract.json]
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

MODES = ("decode", "detect", "detect_align", "full")


def build_clip(frames: int) -> Path:
    """The cached one-face 1080p benchmark clip (the woman's clip upscaled, H.264)."""
    from faceplate.io import samples

    return samples.upscaled_clip("WolfgangLanger_Pexels.mp4", frames)


def run_mode(mode: str, clip: Path) -> dict[str, object]:
    """Run one mode in this process; returns its figures."""
    from faceplate.extract.pipeline import ExtractConfig, Extractor, run_extract
    from faceplate.io.media import open_source

    result: dict[str, object] = {"mode": mode}
    if mode == "full":
        ex = Extractor(ExtractConfig())
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            stats = run_extract(clip, Path(tmp) / "faces", Path(tmp) / "a.fpstore", extractor=ex)
            secs = time.perf_counter() - t
        n = stats.frames
        result.update(frames=n, faces=stats.faces, seconds=secs, fps=n / secs,
                      stage_ms_per_frame={k: v / n for k, v in sorted(stats.stage_ms.items())})
    else:
        ex = Extractor(ExtractConfig(masks=())) if mode != "decode" else None
        n = faces = 0
        stage = {"decode": 0.0, "detect": 0.0, "align": 0.0}
        with open_source(clip) as src:
            t = time.perf_counter()
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
            secs = time.perf_counter() - t
        result.update(frames=n, faces=faces, seconds=secs, fps=n / secs,
                      stage_ms_per_frame={k: 1000 * v / n for k, v in stage.items() if v})
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result



def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--output", type=Path, default=Path("bench_out/extract.json"))
    ap.add_argument("--mode", choices=MODES, help=argparse.SUPPRESS)
    ap.add_argument("--clip", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.mode:  # child process
        print(json.dumps(run_mode(args.mode, args.clip)))
        return
    clip = build_clip(args.frames)
    results = []
    for mode in MODES:
        proc = subprocess.run([sys.executable, __file__, "--mode", mode, "--clip", str(clip)],
                              capture_output=True, text=True, check=True)
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    report = {
        "benchmark": "extract",
        "clip": {"path": str(clip), "width": 1920, "height": 1080, "frames": args.frames,
                 "faces_per_frame": 1},
        "machine": machine_info(),
        "results": {r["mode"]: r for r in results},
    }
    write_report(report, args.output)


if __name__ == "__main__":
    main()
