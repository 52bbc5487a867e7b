"""Face detection and landmarks on the held-back benchmark: the default chain, each single
detector and each verifier the chain can use, in one run.

The data (``faceplate.evaluate.detection``): annotated real images and clips from the sample
media and scikit-image's non-face images, plus synthetic variants of them (faces re-rendered
turned through their face mesh, eyewear, rotation, scale, blur, re-lighting, group frames,
drawings, the cat re-framed). The split into a tuning part and a held-back part was fixed
before any tuning (``faceplate/evaluate/detection/split.py``); this script reports the
held-back part (``--part tune`` exists for development). Real and synthetic figures are kept
apart in the JSON.

Figures, per detector (targets in brackets, on the held-back part):
    * recall for faces ≥ 48 px inner-face width with |yaw| ≤ 60°, glasses included [≥ 0.98],
      overall, real / synthetic, per tag and per yaw bin;
    * false faces per 20 negative images (animals, drawings, textures, title cards) [≤ 1];
    * on head-turn clips, the share of frames with a visible face that keep it [≥ 99 %]: the
      chain runs as extraction runs it (per-frame detection plus the track search) and also
      per frame alone; single detectors per frame;
    * landmark error (inter-ocular NME, dlib's 68-point model run on each detector's boxes) per
      |yaw| bin; the ``dlib_hog`` row is dlib alone (its own detector and landmarks); for the
      chain also with the ``mesh68`` aligner.
Speed at 1080p is ``benchmarks/extract.py``'s job. Never asserts anything.

Usage: python benchmarks/detect.py [--part held] [--output bench_out/detect.json]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench_common import machine_info, write_report
from faceplate.core.types import Detection, Frame, FrameInfo
from faceplate.evaluate.detection import dataset, run
from faceplate.evaluate.detection.split import SPLIT
from faceplate.extract.align import ALIGNERS
from faceplate.extract.detect import DETECTORS
from faceplate.extract.detect.chain import ChainConfig
from faceplate.extract.pipeline import ExtractConfig, Extractor
from faceplate.extract.track import TrackConfig

SINGLE = ("blazeface", "centerface", "dlib_hog", "dlib_cnn")
VERIFIERS = ("families", "agreement", "presence", "hog_landmarks")  # the default first
TARGETS = {"recall": 0.98, "false_per_20_negatives": 1.0, "clip_keep_rate": 0.99}


def _landmarker(name: str = "dlib68") -> run.Landmarker:
    aligner = ALIGNERS.create(name)
    return lambda rgb, dets: [a.landmarks for a in aligner.align(rgb, dets)]


def _clips_chain(clips: list[dataset.Clip], verifier: str, search: bool) -> list[dict[str, Any]]:
    """The chain as extraction runs it: per-frame detection, the track search on or off, the
    tracks fed with the kept faces (filters applied as ``faceplate extract`` applies them)."""
    ex = Extractor(ExtractConfig(masks=(), thumbnails=False, size=64),
                   detector_cfg=ChainConfig(verifier=verifier),
                   track_cfg=TrackConfig(track_search=search))
    out = []
    for clip in clips:
        window = ex.new_tracks()

        def step(i: int, rgb: np.ndarray, window: Any = window) -> list[Detection]:
            info = FrameInfo(i, f"f{i:06d}", None, rgb.shape[1], rgb.shape[0], i)
            res = ex.process(Frame(info, rgb), window)
            return [Detection(r.bbox, r.score, r.detector) for r in res.records]

        out.append(run.evaluate_clip(clip, step))
    return out


def _clips_single(clips: list[dataset.Clip], name: str) -> list[dict[str, Any]]:
    det = DETECTORS.create(name)
    return [run.evaluate_clip(c, lambda _i, rgb: det.detect(rgb)) for c in clips]


def _keep(results: list[dict[str, Any]], synthetic: bool | None = None) -> dict[str, Any]:
    sel = [r for r in results if synthetic is None or r["synthetic"] == synthetic]
    frames = sum(r["frames_with_face"] for r in sel)
    kept = sum(r["kept"] for r in sel)
    return {"frames_with_face": frames, "kept": kept,
            "keep_rate": round(kept / frames, 4) if frames else None}


def _block(summary: dict[str, Any], clips: list[dict[str, Any]]) -> dict[str, Any]:
    return {"images": summary, "clips": clips,
            "clip_keep": {"all": _keep(clips), "real": _keep(clips, False),
                          "synthetic": _keep(clips, True)}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", choices=tuple(SPLIT), default="held")
    ap.add_argument("--output", type=Path, default=Path("bench_out/detect.json"))
    ap.add_argument("--detectors", nargs="*", default=list(SINGLE),
                    help="single detectors to compare with the chain")
    ap.add_argument("--verifiers", nargs="*", default=list(VERIFIERS),
                    help="chain verifiers to measure (the first is the default chain's)")
    args = ap.parse_args()
    start = time.perf_counter()
    items = dataset.items(args.part)
    clips = dataset.clips(args.part)
    for it in items:  # build the synthetic images once, before any timing
        it.load()
    for c in clips:
        for _ in c.frames():
            pass
    lm = _landmarker()
    report: dict[str, Any] = {
        "benchmark": "detect", "part": args.part,
        "data": {
            "images": len(items), "real": sum(not i.synthetic for i in items),
            "synthetic": sum(i.synthetic for i in items),
            "negative_images": sum(i.negative for i in items),
            "clips": [{"id": c.id, "frames": c.length, "synthetic": c.synthetic}
                      for c in clips],
            "split": "faceplate/evaluate/detection/split.py (fixed before tuning)",
            "annotations": f"annotations.json {dataset.annotations_hash()}",
        },
        "targets": TARGETS,
        "machine": machine_info(),
        "chain": {}, "verifiers": {}, "detectors": {},
    }
    for k, verifier in enumerate(args.verifiers):
        det = DETECTORS.create("chain", ChainConfig(verifier=verifier))
        t = time.perf_counter()
        summary = run.summarise_items(run.evaluate_items(det.detect, items, lm))
        per_frame = _clips_chain(clips, verifier, search=False)
        entry = _block(summary, per_frame)
        if k == 0:
            mesh = run.summarise_items(run.evaluate_items(det.detect, items,
                                                          _landmarker("mesh68")))
            entry["nme_mesh68"] = mesh["nme"]
            tracked = _clips_chain(clips, verifier, search=True)
            entry["clips_with_track_search"] = tracked
            entry["clip_keep_with_track_search"] = {
                "all": _keep(tracked), "real": _keep(tracked, False),
                "synthetic": _keep(tracked, True)}
            report["chain"] = entry | {"verifier": verifier}
        report["verifiers"][verifier] = entry
        print(f"chain/{verifier}: recall {summary['recall']['all']['recall']}, false/20 "
              f"{summary['false']['all']['per_20_images']}, clips "
              f"{_keep(per_frame)['keep_rate']} ({time.perf_counter() - t:.0f} s)", flush=True)
    for name in args.detectors:
        det = DETECTORS.create(name)
        t = time.perf_counter()
        summary = run.summarise_items(run.evaluate_items(det.detect, items, lm))
        entry = _block(summary, _clips_single(clips, name))
        report["detectors"][name] = entry
        print(f"{name}: recall {summary['recall']['all']['recall']}, false/20 "
              f"{summary['false']['all']['per_20_images']}, clips "
              f"{entry['clip_keep']['all']['keep_rate']} ({time.perf_counter() - t:.0f} s)",
              flush=True)
    chain = report["chain"]
    if chain:
        keep = chain["clip_keep_with_track_search"]["all"]["keep_rate"]
        report["targets_met"] = {
            "recall": chain["images"]["recall"]["all"]["recall"] >= TARGETS["recall"],
            "false_per_20_negatives": chain["images"]["false"]["all"]["per_20_images"]
            <= TARGETS["false_per_20_negatives"],
            "clip_keep_rate": keep is not None and keep >= TARGETS["clip_keep_rate"],
        }
    report["seconds"] = round(time.perf_counter() - start, 1)
    write_report(report, args.output)


if __name__ == "__main__":
    main()
