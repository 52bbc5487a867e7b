"""The model profiles side by side: ``default`` against ``commercial`` (issue 16, point 7).

Each section runs both profiles in the same process (``FACEPLATE_PROFILE`` set per section),
so the ratios are from one run on one machine:

* ``detection`` — the detection benchmark's **held-back** part (``benchmarks/detect.py``'s data
  and figures): each profile's detector chain (default: BlazeFace + CenterFace, ``families``
  verifier; commercial: BlazeFace only, verified by the face mesh's face presence) with its
  aligner (dlib68 / mesh68): recall (all, real, synthetic, per |yaw| bin), false faces on the
  negative images, landmark error (inter-ocular NME over the 51 inner points against the
  annotated truth, per |yaw| bin) and the clip keep rate as ``faceplate extract`` runs
  (per-frame detection and the track search).
* ``jitter`` — each profile's extraction over the sample clips (``single_face.mp4``, the
  woman's head-turn clip): the landmark track's mean |second difference| over the face size
  (``extract.smoothing.landmark_jitter``), frames with exactly one face.
* ``watermark`` — real swaps (the test suite's trained 64 px model, faces found by each
  profile's extractor) marked under each profile (its landmark fix point), then every attack of
  ``benchmarks/provenance.py`` and ``detect_frame`` under each profile's verifier (default: both
  fix points at the raised thresholds; commercial: mesh68 alone): the detection rate per frame
  alone and with the video verdict, for the four pairs (marked under → verified under).
* ``false_positives`` — unmarked sample frames (every ``--step``-th frame of the sample videos,
  every sample photo) under each profile's verifier.

Writes JSON (``--output``) and prints it; never asserts.

Usage: python benchmarks/profiles.py [--step 8] [--sections detection jitter watermark
false_positives] [--commercial-recall blazeface_tiles] [--output bench_out/profiles.json]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench_common import machine_info, write_report

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.*

PROFILE_NAMES = ("default", "commercial")
SECTIONS = ("detection", "jitter", "watermark", "false_positives")


def _use(name: str) -> None:
    from faceplate.core.profile import PROFILE_ENV

    os.environ[PROFILE_ENV] = name


def _extractor(recall: str | None = None, **kw: Any) -> Any:
    """The active profile's extractor (``recall``: another recall detector for its chain)."""
    from faceplate.core.profile import configured
    from faceplate.extract.detect.chain import ChainConfig
    from faceplate.extract.pipeline import ExtractConfig, Extractor

    chain = None if recall is None else configured(ChainConfig, recall=recall)
    return Extractor(configured(ExtractConfig, thumbnails=False, write_faces=False, **kw),
                     detector_cfg=chain)


def detection(commercial_recall: str | None = None) -> dict[str, Any]:
    from faceplate.core.types import Detection, Frame, FrameInfo
    from faceplate.evaluate.detection import dataset, run

    items = dataset.items("held")
    clips = dataset.clips("held")
    for it in items:
        it.load()
    out: dict[str, Any] = {}
    for name in PROFILE_NAMES:
        _use(name)
        ex = _extractor(commercial_recall if name == "commercial" else None, masks=(), size=64)
        t = time.perf_counter()

        def landmarks(rgb: np.ndarray, dets: list[Any], ex: Any = ex) -> list[np.ndarray]:
            return [a.landmarks for a in ex.aligner.align(rgb, dets)]

        summary = run.summarise_items(run.evaluate_items(ex.detector.detect, items, landmarks))
        kept = []
        for clip in clips:
            window = ex.new_tracks()

            def step(i: int, rgb: np.ndarray, window: Any = window, ex: Any = ex
                     ) -> list[Detection]:
                info = FrameInfo(i, f"f{i:06d}", None, rgb.shape[1], rgb.shape[0], i)
                res = ex.process(Frame(info, rgb), window)
                return [Detection(r.bbox, r.score, r.detector) for r in res.records]

            kept.append(run.evaluate_clip(clip, step))
        frames = {k: sum(r["frames_with_face"] for r in kept if r["synthetic"] == s)
                  for k, s in (("real", False), ("synthetic", True))}
        keep = {k: sum(r["kept"] for r in kept if r["synthetic"] == s)
                for k, s in (("real", False), ("synthetic", True))}
        out[name] = {
            "detector": ex.cfg.detector, "aligner": ex.cfg.aligner,
            "chain": ex.detector.cfg.to_dict() if hasattr(ex.detector.cfg, "to_dict") else {},
            "images": summary,
            "clip_keep_with_track_search": {
                k: {"frames_with_face": frames[k], "kept": keep[k],
                    "keep_rate": round(keep[k] / frames[k], 4) if frames[k] else None}
                for k in frames},
            "seconds": round(time.perf_counter() - t, 1)}
        rec = summary["recall"]
        print(f"detection/{name}: recall {rec['all']['recall']}, false/20 "
              f"{summary['false']['all']['per_20_images']}, nme {summary['nme']}", flush=True)
    return out


def jitter() -> dict[str, Any]:
    from faceplate.extract.smoothing import landmark_jitter
    from faceplate.io import samples
    from faceplate.io.media import open_source

    out: dict[str, Any] = {}
    for name in PROFILE_NAMES:
        _use(name)
        ex = _extractor(masks=())
        row: dict[str, Any] = {}
        for clip in ("single_face.mp4", "WolfgangLanger_Pexels.mp4"):
            track = []
            with open_source(samples.path(clip)) as src:
                for frame in src:
                    recs = ex.process(frame).records
                    if len(recs) == 1:
                        track.append(recs[0].landmarks.astype(np.float64))
            row[clip] = {"frames": len(track),
                         "jitter": round(float(landmark_jitter(np.array(track))), 5)}
        out[name] = row
        print(f"jitter/{name}: {row}", flush=True)
    return out


def _swaps(step: int) -> tuple[dict[str, list[Any]], dict[str, list[int]], str]:
    """Real swaps of the 640×360 and 1080p sample clips, faces found and marks embedded under
    the active profile: ({resolution: [Swapped]}, {resolution: clip starts}, model id)."""
    from tests import provenance_attacks as attacks
    from tests.convert_model import trained_model

    import provenance as pb  # benchmarks/provenance.py
    from faceplate.convert.swap import ConvertConfig, TorchPredictor

    pred = TorchPredictor(trained_model(None))
    ex = _extractor(masks=("extended",))
    cfg = ConvertConfig()
    out: dict[str, list[Any]] = {}
    starts: dict[str, list[int]] = {}
    for res, frames in pb.one_face_frames(ex, step):
        starts.setdefault(res, []).append(len(out.get(res, [])))
        for rgb, recs in frames:
            out.setdefault(res, []).append(attacks.real_swap(rgb, recs, pred, cfg))
    return out, starts, pred.model_id


def watermark(step: int) -> dict[str, Any]:
    import provenance as pb  # benchmarks/provenance.py

    out: dict[str, Any] = {}
    for marked in PROFILE_NAMES:
        _use(marked)
        swaps, starts, model_id = _swaps(step)
        clips = {res: [s.marked for s in v] for res, v in swaps.items()}
        for verified in PROFILE_NAMES:
            _use(verified)
            t = time.perf_counter()
            out[f"{marked}->{verified}"] = pb.detection(clips, starts, model_id)
            rates = {a: {r: round(v["detection_rate"], 3) for r, v in row.items()}
                     for a, row in out[f"{marked}->{verified}"].items()}
            print(f"watermark/{marked}->{verified}: {rates} "
                  f"({time.perf_counter() - t:.0f} s)", flush=True)
    return out


def false_positives(step: int) -> dict[str, Any]:
    import provenance as pb  # benchmarks/provenance.py
    from faceplate.core.profile import active_profile
    from faceplate.io import samples
    from faceplate.io.media import open_source, read_image
    from faceplate.provenance import watermark as wm

    frames: list[np.ndarray] = []
    for name in pb.VIDEOS:
        with open_source(samples.path(name)) as src:
            frames += [f.rgb for f in src if f.info.index % step == 0]
    frames += [read_image(samples.path(n)).rgb for n in pb.PHOTOS]
    out: dict[str, Any] = {}
    for name in PROFILE_NAMES:
        _use(name)
        ses = wm.DetectSession()
        marks = [m for f in frames for m in wm.detect_frame(f, session=ses)]
        scores = [m.score for m in marks]
        thr = wm.verify_thresholds(len(active_profile().verify_landmarks))[0]
        out[name] = {"frames": len(frames), "faces": len(marks),
                     "detected": sum(m.detected for m in marks), "threshold": thr,
                     "score_max": round(float(max(scores, default=0.0)), 3),
                     "score_p99": round(float(np.quantile(scores, 0.99)), 3) if scores else 0.0}
        print(f"false_positives/{name}: {out[name]}", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--step", type=int, default=8,
                    help="swap / check every Nth frame (times each clip's own stride)")
    ap.add_argument("--sections", nargs="*", default=list(SECTIONS), choices=SECTIONS)
    ap.add_argument("--output", type=Path, default=Path("bench_out/profiles.json"))
    ap.add_argument("--commercial-recall", default=None,
                    help="detection: another recall detector for the commercial chain (e.g. "
                         "blazeface_tiles; default: the profile's, none)")
    args = ap.parse_args()
    start = time.perf_counter()
    report: dict[str, Any] = {"benchmark": "profiles", "step": args.step,
                              "machine": machine_info()}
    report["commercial_recall"] = args.commercial_recall
    run = {"detection": lambda: detection(args.commercial_recall), "jitter": jitter,
           "watermark": lambda: watermark(args.step),
           "false_positives": lambda: false_positives(args.step)}
    for section in args.sections:
        t = time.perf_counter()
        report[section] = run[section]()
        report.setdefault("seconds_by_section", {})[section] = round(
            time.perf_counter() - t, 1)
    report["seconds"] = round(time.perf_counter() - start, 1)
    write_report(report, args.output)


if __name__ == "__main__":
    main()
