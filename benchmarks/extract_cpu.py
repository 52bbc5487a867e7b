"""Thread CPU time a frame of the tracked extract's two compute stages, for A/B of code changes.

Decodes the 1080p benchmark clip (``extract.py``'s, built and cached by it) once, then runs
``Extractor.process`` (``--track on``, the main thread's work: scene test, follow check or
detection, alignment, filters, pose, masks) over every frame and ``Extractor.finish`` (the
writer thread's crop and thumbnail) over the results, ``--passes`` times in this process, and
reports the pass with the least total. Thread CPU time (``time.thread_time``), not wall time:
other work on the cores moves it far less. To compare two versions, run this script with each
one's ``PYTHONPATH`` in turn, several rounds interleaved, on the same machine.

Writes JSON (``--output``) and prints it. Never asserts on time.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import cv2

import faceplate
from bench_common import machine_info, write_report
from extract import build_clip
from faceplate.extract.follow import FollowConfig
from faceplate.extract.pipeline import ExtractConfig, Extractor
from faceplate.io.media import open_source


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--passes", type=int, default=5)
    ap.add_argument("--output", type=Path, default=Path("bench_out/extract_cpu.json"))
    args = ap.parse_args()
    cv2.setNumThreads(1)
    clip = build_clip(args.frames)
    ex = Extractor(ExtractConfig(), follow_cfg=FollowConfig(track="on"))
    with open_source(clip) as src:
        frames = list(src)
    load = [os.getloadavg()[0]]
    passes = []
    for _ in range(args.passes):
        follow, tracks = ex.new_follow(), ex.new_tracks()
        t0 = time.thread_time()
        results = [ex.process(f, tracks, follow, defer_crops=True) for f in frames]
        t1 = time.thread_time()
        for r in results:
            ex.finish(r, crops=True)
        t2 = time.thread_time()
        n = len(frames)
        passes.append({"process_ms": 1000 * (t1 - t0) / n, "finish_ms": 1000 * (t2 - t1) / n})
    load.append(os.getloadavg()[0])
    best = min(passes, key=lambda p: p["process_ms"] + p["finish_ms"])
    report = {
        "clip": str(clip), "frames": len(frames), "passes": passes,
        "best": {**best, "total_ms": best["process_ms"] + best["finish_ms"]},
        "load_average": load, "source": str(Path(faceplate.__file__).parent),
        "machine": machine_info(),
    }
    write_report(report, args.output)


if __name__ == "__main__":
    main()
