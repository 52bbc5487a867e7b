"""The face watermark on REAL swaps: detection after each attack, false positives, PSNR, cost.

Frames are swapped by the real ``swap_frame`` with a really trained 64 px model (the test
suite's ``tests.convert_model.trained_model``: B = the man of single_face.mp4 → A = the woman;
it converts any face), faces found on the fly by the default ``Extractor`` (chain detector,
dlib68, extended mask), default ``ConvertConfig`` (rct colour, overlay blend). Two working
resolutions, reported separately: 1920×1080 (the 1080p test footage ``samples.upscaled_clip``
of single_face.mp4 and of the woman's head-turn clip) and 640×360 (the sample videos as they
are). Each attack of issue #6 is applied (JPEG 75, H.264 CRF 23, 0.5× area downscale, ±10 %
exposure in linear light with ±10 % saturation) and ``detect_frame`` looks for the mark with
its own detection and landmarks; each frame is judged alone (``detected``) and with the video
verdict of ``faceplate verify`` (``detected_video``: ``watermark.pool_tracks`` within each
source clip). False positives: every frame of every sample video and every sample photo,
unmarked, judged both ways. PSNR: over the matte (> 0.5), marked against the same swap without the
mark. Embed cost: ``embed_in_frame`` (landmark refinement included) on the 1080p swaps, and the
``watermark`` stage time inside ``swap_frame``. ``reduced_set`` (issue 16, point 1): both
pattern sets' thresholds and their combined false-positive rate per face, and for the cases
the full set may not fit (:data:`FIT_CASES`: the matte eroded from below or above, a
mouth-only mask, downscaled frames) the faces left unmarked with the full set alone and with
both, what the verifier finds, and the attacks on the erode-bottom faces marked with both.
Writes JSON (``--output``) and prints it. Never asserts.

Usage: python benchmarks/provenance.py [--quick] [--step N] [--fit-only | --skip-fit]
[--output bench_out/provenance.json]
(the default is the full run: 190 swapped frames per resolution, about 5 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from bench_common import machine_info, write_report

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.convert_model

VIDEOS = ("WolfgangLanger_Pexels.mp4", "single_face.mp4", "face_noface.mov", "no_face.mp4")
PHOTOS = ("obama.jpg", "obama2.jpg", "obama3.jpg", "obama_partial_face.jpg",
          "obama_partial_face2.jpg", "biden.jpg", "single_face.jpg", "multi_face.jpg",
          "einstein.jpg", "astronaut.png", "takeo.ppm", "Image_with_alpha.png", "32bit.png")
#: (resolution, source clip, frames of the source to read (0: the 640×360 original), swap
#: every Nth × step): the full run swaps every frame of single_face.mp4 (72) and every 4th of
#: the woman's clip (118 of 472), at both resolutions.
CLIPS = (("1920x1080", "single_face.mp4", 72, 1), ("1920x1080", "WolfgangLanger_Pexels.mp4",
                                                   472, 4),
         ("640x360", "single_face.mp4", 0, 1), ("640x360", "WolfgangLanger_Pexels.mp4", 0, 4))


def one_face_frames(ex: Any, step: int) -> Iterator[tuple[str, Iterator[tuple[Any, list[Any]]]]]:
    """Per clip of ``CLIPS``: (its resolution, an iterator over (frame RGB uint8, its face
    records) of every ``step``·mult-th frame in which ``ex`` finds exactly one face). Consume
    each clip's iterator before asking for the next clip."""
    from tests import provenance_attacks as attacks

    from faceplate.io import samples

    for res, name, first, mult in CLIPS:
        path = samples.upscaled_clip(name, first) if first else samples.path(name)
        yield res, attacks.one_face_frames(ex, path, step * mult)


def swapped_clips(step: int) -> tuple[dict[str, list[Any]], dict[str, list[int]],
                                      dict[str, Any], str, dict[str, Any]]:
    """{resolution: [Swapped]}, {resolution: where each source clip starts in that list}, the
    swap_frame watermark stage times, the model id, and per resolution the faces swap_frame
    left without the mark ({"faces", "unmarked", "reasons"})."""
    from tests import provenance_attacks as attacks
    from tests.convert_model import trained_model

    from faceplate.convert.swap import ConvertConfig, SwapContext, TorchPredictor, swap_frame
    from faceplate.extract.pipeline import ExtractConfig, Extractor

    pred = TorchPredictor(trained_model(None))
    ex = Extractor(ExtractConfig(masks=("extended",), write_faces=False, thumbnails=False))
    cfg = ConvertConfig()
    out: dict[str, list[Any]] = {}
    starts: dict[str, list[int]] = {}
    stage: dict[str, list[float]] = {}
    unmarked: dict[str, Any] = {}
    for res, frames in one_face_frames(ex, step):
        starts.setdefault(res, []).append(len(out.get(res, [])))
        for rgb, recs in frames:
            out.setdefault(res, []).append(attacks.real_swap(rgb, recs, pred, cfg))
            ctx = SwapContext.create(cfg)
            r = swap_frame(rgb, recs, pred, cfg, frame_is_linear=False, context=ctx)
            stage.setdefault(res, []).append(ctx.times.get("watermark", 0.0))
            u = unmarked.setdefault(res, {"faces": 0, "unmarked": 0, "reasons": {}})
            u["faces"] += r.faces_swapped
            u["unmarked"] += len(r.unmarked)
            for _, why in r.unmarked:
                u["reasons"][why] = u["reasons"].get(why, 0) + 1
    times = {f"swap_frame_watermark_stage_ms_median_{k}": float(np.median(v))
             for k, v in stage.items()}
    return out, starts, times, pred.model_id, unmarked


def flicker(model_id: str) -> dict[str, Any]:
    """The frame-to-frame change the mark adds on a static face after a grade
    (``tests.provenance_attacks.mark_flicker``: obama.jpg, 12 frames of σ 1.5 grain, ×1.1
    exposure and saturation), with the landmarks held (a smoothed store) and found on each
    frame (on-the-fly detection); code values over the matte."""
    from tests import provenance_attacks as attacks

    from faceplate.io import samples
    from faceplate.io.media import read_image
    from faceplate.provenance import watermark as wm

    rgb = read_image(samples.path("obama.jpg")).rgb
    (lm,) = wm.frame_landmarks(rgb)
    out: dict[str, Any] = {}
    for name, track in (("landmarks_held", False), ("landmarks_per_frame", True)):
        m = attacks.mark_flicker(rgb, lm, model_id, frames=12, track=track)
        out[name] = {k: {"mean": float(np.mean(v)), "max": float(np.max(v))}
                     for k, v in m.items()}
    return out


def _video_verdict(marks: list[list[Any]], starts: list[int]) -> list[list[Any]]:
    """``watermark.pool_tracks`` over each source clip's frames (never across two clips)."""
    from faceplate.provenance import watermark as wm

    bounds = [*starts, len(marks)]
    return [row for a, b in zip(bounds, bounds[1:]) for row in wm.pool_tracks(marks[a:b])]


def detection(clips: dict[str, list[np.ndarray]], starts: dict[str, list[int]],
              model_id: str) -> dict[str, Any]:
    """Per attack and resolution: frames whose face is detected on its own (``detected``) and
    with the video verdict over its clip (``detected_video``: ``watermark.pool_tracks``, the
    same face in the 2 frames on each side; the woman's clip is swapped every 4th frame, so
    its pooled neighbours are 4 source frames apart)."""
    from tests import provenance_attacks as attacks

    from faceplate.provenance import watermark as wm

    def best(marks: list[Any]) -> Any:
        return max(marks, key=lambda m: m.score, default=None)

    out: dict[str, Any] = {}
    for attack in attacks.ATTACKS:
        row: dict[str, Any] = {}
        for res, clip in clips.items():
            marks = [wm.detect_frame(f) for f in attacks.attack(attack, clip)]
            found = payload = wrong = 0
            scores = []
            for m in map(best, marks):
                scores.append(m.score if m is not None else 0.0)
                if m is not None and m.detected:
                    found += 1
                    payload += m.payload == model_id
                    wrong += m.payload not in (None, model_id)
            video = sum(1 for ms in _video_verdict(marks, starts[res])
                        if any(m.detected for m in ms))
            row[res] = {"frames": len(clip), "detected": found,
                        "detection_rate": found / max(1, len(clip)),
                        "detected_video": video,
                        "detection_rate_video": video / max(1, len(clip)),
                        "payload_rate": payload / max(1, len(clip)), "wrong_payloads": wrong,
                        "score_min": float(np.min(scores)),
                        "score_median": float(np.median(scores))}
        out[attack] = row
    return out


def false_positives() -> dict[str, Any]:
    """Every unmarked frame of the sample videos and every sample photo, judged alone and
    with the video verdict; reported in all and split into the frames the null was fitted
    on (``fit``) and the rest (``held_out``)."""
    from faceplate.io import samples
    from faceplate.io.media import open_source, read_image
    from faceplate.provenance import watermark as wm

    faces = detected = frames = video = 0
    top: list[float] = []
    by_set: dict[str, list[float]] = {p.name: [] for p in wm.PATTERN_SETS}
    per: dict[str, int] = {}
    split: dict[str, dict[str, Any]] = {k: {"frames": 0, "faces": 0, "detected": 0,
                                            "scores": []} for k in ("fit", "held_out")}
    sources: list[tuple[str, Any, bool]] = []
    from faceplate.provenance.watermark.calibration import calibration_frame

    for name in VIDEOS:
        with open_source(samples.path(name)) as src:
            sources += [(name, f.rgb, calibration_frame(name, f.info.index)) for f in src]
    for name in PHOTOS:
        sources.append((name, read_image(samples.path(name)).rgb, False))
    by_video: dict[str, list[list[Any]]] = {}
    for name, rgb, fit in sources:
        frames += 1
        part = split["fit" if fit else "held_out"]
        part["frames"] += 1
        marks = wm.detect_frame(rgb)
        if name in VIDEOS:
            by_video.setdefault(name, []).append(marks)
        for mark in marks:
            faces += 1
            part["faces"] += 1
            part["scores"].append(mark.score)
            top.append(mark.score)
            for ps, x in zip(wm.PATTERN_SETS, mark.set_scores):
                by_set[ps.name].append(x)
            if mark.detected:
                detected += 1
                part["detected"] += 1
                per[name] = per.get(name, 0) + 1
    # The video verdict on every unmarked video (photos are judged alone either way).
    for marks_seq in by_video.values():
        video += sum(m.detected for row in wm.pool_tracks(marks_seq) for m in row)
    video += sum(n for name, n in per.items() if name not in VIDEOS)
    return {"frames": frames, "faces": faces, "detected": detected,
            "false_positive_rate": detected / max(1, faces), "by_source": per,
            "detected_video_verdict": video,
            "false_positive_rate_video_verdict": video / max(1, faces),
            "score_max": float(max(top, default=0.0)),
            "score_p99": float(np.quantile(top, 0.99)) if top else 0.0,
            "threshold": wm.SCORE_THRESHOLD,
            # Each pattern set's own score on every face (``score_max`` above is the full
            # set's, the reported score of a face no set detects).
            "by_set": {k: {"score_max": float(max(v, default=0.0)),
                           "score_p99": float(np.quantile(v, 0.99)) if v else 0.0,
                           "threshold": wm.NULLS[k].threshold,
                           "at_or_above_threshold": int(sum(x >= wm.NULLS[k].threshold
                                                            for x in v))}
                       for k, v in by_set.items()},
            "split": {k: {"frames": v["frames"], "faces": v["faces"],
                          "detected": v["detected"],
                          "false_positive_rate": v["detected"] / max(1, v["faces"]),
                          "score_max": float(max(v["scores"], default=0.0)),
                          "score_p99": float(np.quantile(v["scores"], 0.99))
                          if v["scores"] else 0.0} for k, v in split.items()}}


#: The cases of issue 16, point 1 whose faces the full pattern set may not fit: (name,
#: ConvertConfig options, frame scale). ``erode_bottom_30`` and ``erode_top_40`` erode the
#: matte from below / above (% of the crop side), ``mouth_only`` pastes only the stored
#: ``mesh_mouth`` mask, ``small_0.3``/``small_0.2`` swap the frame downscaled (area) to that
#: factor with the default matte.
FIT_CASES: tuple[tuple[str, dict[str, Any], float], ...] = (
    ("erode_bottom_30", {"erode_bottom": 30.0}, 1.0),
    ("erode_top_40", {"erode_top": 40.0}, 1.0),
    ("mouth_only", {"mask": ("mesh_mouth",)}, 1.0),
    ("small_0.3", {}, 0.3),
    ("small_0.2", {}, 0.2),
)
#: Sample clips (640×360) the cases are measured on, and every Nth frame of each (× step).
FIT_CLIPS = (("single_face.mp4", 3), ("WolfgangLanger_Pexels.mp4", 16))


def fit_cases(step: int, model_id_out: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Faces left unmarked with the full pattern set alone (``before``) and with every set
    (``after``: ``watermark.mark_fitted``, what ``swap_frame`` does), per case of
    :data:`FIT_CASES`; each face is swapped once (the real ``swap_frame`` with the mark left
    out), marked both ways on copies, and the verifier (``detect_frame``, its own detection
    and landmarks) judges both. Returns (the counts, {case: [(clip, frame marked with every
    set)]} for the attacks)."""
    from tests import provenance_attacks as attacks
    from tests.convert_model import trained_model

    from faceplate.convert.swap import ConvertConfig, TorchPredictor
    from faceplate.extract.pipeline import ExtractConfig, Extractor
    from faceplate.io import samples
    from faceplate.io.media import open_source
    from faceplate.provenance import watermark as wm

    pred = TorchPredictor(trained_model(None))
    model_id_out.append(pred.model_id)
    ex = Extractor(ExtractConfig(masks=("extended", "mesh_mouth"), write_faces=False,
                                 thumbnails=False))
    out: dict[str, Any] = {}
    marked_frames: dict[str, list[Any]] = {}
    frames: list[tuple[str, np.ndarray]] = []
    for name, every in FIT_CLIPS:
        with open_source(samples.path(name)) as src:
            frames += [(name, f.rgb) for f in src if f.info.index % (every * step) == 0]
    for case, opts, scale in FIT_CASES:
        cfg = ConvertConfig(**opts)
        row: dict[str, Any] = {"faces": 0, "frames": 0, "options": {k: list(v) if isinstance(
            v, tuple) else v for k, v in opts.items()}, "frame_scale": scale}
        for key in ("before", "after"):
            row[key] = {"unmarked": 0, "verified": 0, "by_set": {}}
        for clip, rgb in frames:
            if scale != 1.0:
                import cv2

                h, w = rgb.shape[:2]
                rgb = cv2.resize(rgb, (round(w * scale), round(h * scale)),
                                 interpolation=cv2.INTER_AREA)
            recs = attacks.face_records(ex, rgb)
            if len(recs) != 1:
                continue
            sw = attacks.real_swap(rgb, recs, pred, cfg)
            ys, xs = np.nonzero(sw.matte > 0.0)
            if not len(xs):
                continue
            row["frames"] += 1
            row["faces"] += 1
            box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
            matte = np.ascontiguousarray(sw.matte[box[1]:box[3], box[0]:box[2]])
            for key, sets in (("before", ("full",)), ("after", None)):
                f = sw.plain.copy()
                mark, found = wm.mark_fitted(f, box, matte, recs[0].landmarks, pred.model_id,
                                             frame_is_linear=False, seed_box=recs[0].bbox,
                                             pattern_sets=sets)
                r = row[key]
                if not isinstance(mark, wm.FrameMark) or not found:
                    r["unmarked"] += 1
                else:
                    r["by_set"][mark.pattern_set] = r["by_set"].get(mark.pattern_set, 0) + 1
                r["verified"] += any(m.detected for m in wm.detect_frame(f))
                if isinstance(mark, wm.FrameMark):
                    r.setdefault("psnr", []).append(attacks.face_psnr(f, sw.plain, sw.matte))
                if key == "after":
                    marked_frames.setdefault(case, []).append((clip, f))
        for key in ("before", "after"):  # over the matte (> 0.5), marked against unmarked
            ps = row[key].pop("psnr", [])
            row[key]["psnr_face_db"] = ({"mean": float(np.mean(ps)), "min": float(np.min(ps))}
                                        if ps else None)
        out[case] = row
    return out, marked_frames


def _attacks_on(marked: list[tuple[str, np.ndarray]], model_id: str) -> dict[str, Any]:
    """:func:`detection` on [(clip, marked frame)] (the video verdict within each clip)."""
    starts = [i for i, (clip, _) in enumerate(marked) if i == 0 or marked[i - 1][0] != clip]
    return detection({"640x360": [f for _, f in marked]}, {"640x360": starts}, model_id)


def timing(big: list[Any], model_id: str) -> dict[str, Any]:
    """embed_in_frame on the 1080p swaps' unmarked frames (median of repeats per frame), and
    detect_frame on the marked ones."""
    from faceplate.core.types import Frame, FrameInfo
    from faceplate.extract.pipeline import ExtractConfig, Extractor
    from faceplate.provenance import watermark as wm

    ex = Extractor(ExtractConfig(masks=(), write_faces=False, thumbnails=False))
    per_frame: list[float] = []
    sizes: list[float] = []
    for sw in big[::max(1, len(big) // 16)]:
        h, w = sw.plain.shape[:2]
        recs = ex.process(Frame(FrameInfo(0, "f", None, w, h, 0), sw.plain)).records
        if len(recs) != 1:
            continue
        rec = recs[0]
        ys, xs = np.nonzero(sw.matte > 0.0)
        box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
        matte = np.ascontiguousarray(sw.matte[box[1]:box[3], box[0]:box[2]])
        ts = []
        for _ in range(15):
            f = sw.plain.copy()
            t = time.perf_counter()
            wm.embed_in_frame(f, box, matte, rec.landmarks, model_id, frame_is_linear=False,
                              seed_box=rec.bbox)
            ts.append(time.perf_counter() - t)
        per_frame.append(1000.0 * float(np.median(ts[3:])))
        sizes.append(float(rec.bbox.size))
    t = time.perf_counter()
    for sw in big[:5]:
        wm.detect_frame(sw.marked)
    small = [t for t, s in zip(per_frame, sizes) if s < 450.0]
    large = [t for t, s in zip(per_frame, sizes) if s >= 450.0]
    return {"embed_in_frame_ms_1080p_median": float(np.median(per_frame)),
            "embed_in_frame_ms_1080p_max": float(np.max(per_frame)),
            "embed_in_frame_ms_1080p_median_face_under_450px":
                float(np.median(small)) if small else None,
            "embed_in_frame_ms_1080p_median_face_450px_or_more":
                float(np.median(large)) if large else None,
            "embed_timed_frames": len(per_frame),
            "face_box_px_median": float(np.median(sizes)) if sizes else None,
            "detect_frame_ms_1080p_one_face": 1000.0 * (time.perf_counter() - t) / 5}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--step", type=int, default=1,
                    help="swap every Nth frame of the full run's frames")
    ap.add_argument("--quick", action="store_true",
                    help="a smaller run: every 6th of the full run's frames (~64 swaps)")
    ap.add_argument("--output", type=Path, default=Path("bench_out/provenance.json"))
    ap.add_argument("--fit-only", action="store_true",
                    help="only the faces the mark fits (issue 16, point 1: fit_cases, the "
                         "attacks on the erode-bottom faces) and the false positives")
    ap.add_argument("--skip-fit", action="store_true",
                    help="leave out the fit cases (reduced_set)")
    args = ap.parse_args()

    from tests import provenance_attacks as attacks

    from faceplate.provenance import watermark as wm

    t0 = time.perf_counter()
    step = max(args.step, 6) if args.quick else args.step
    fit_step = 2 if args.quick else 1
    ids: list[str] = []
    # Both pattern sets' thresholds and their combined false-positive rate per face.
    reduced: dict[str, Any] = {
        "combined_false_positive_rate": wm.combined_rate(),
        "thresholds": {k: {"threshold": n.threshold,
                           "second_pass_threshold": n.second_pass_threshold,
                           "tail_at_threshold": wm.null_tail(n.threshold, k),
                           "fitted_on": n.fitted_on} for k, n in wm.NULLS.items()}}
    if not args.skip_fit:
        fitted, fitted_frames = fit_cases(fit_step, ids)
        reduced.update({
            "fit_cases": fitted, "fit_clips": [list(c) for c in FIT_CLIPS],
            "fit_step": fit_step,
            # The faces marked with every set under erode_bottom_30 (mostly the upper set),
            # after each attack (the video verdict within each clip).
            "attacks_erode_bottom_30": _attacks_on(fitted_frames.get("erode_bottom_30", []),
                                                   ids[0])})
    if args.fit_only:
        report = {"benchmark": "provenance", "machine": machine_info(), "fit_only": True,
                  "quick": args.quick, "reduced_set": reduced,
                  "false_positives": false_positives()}
        report["seconds"] = time.perf_counter() - t0
        write_report(report, args.output)
        return
    swaps, starts, stage_times, model_id, unmarked = swapped_clips(step)
    psnr = {res: [attacks.face_psnr(s.marked, s.plain, s.matte) for s in v]
            for res, v in swaps.items()}
    report: dict[str, Any] = {
        "benchmark": "provenance", "machine": machine_info(),
        "swap": "real: swap_frame, trained 64 px model (tests.convert_model.trained_model), "
                "default ConvertConfig, faces from the default Extractor",
        "scheme": {"canon_size": wm.CANON_SIZE, "marker_bits": wm.MARKER_BITS,
                   "id_bits": wm.ID_BITS, "crc_bits": wm.CRC_BITS, "band_px": wm.BAND,
                   "psnr_target_db": wm.PSNR_TARGET, "psnr_floor_db": wm.PSNR_FLOOR,
                   "score_threshold": wm.SCORE_THRESHOLD,
                   "second_pass_threshold": wm.SECOND_PASS_THRESHOLD,
                   "embed_passes": wm.EMBED_PASSES,
                   "refine_iterations": wm.REFINE_ITERATIONS, "refine_box": wm.REFINE_BOX},
        "swapped_frames": {k: len(v) for k, v in swaps.items()}, "quick": args.quick,
        "step": step,
        "psnr_face_db": {k: {"mean": float(np.mean(v)), "min": float(np.min(v))}
                         for k, v in psnr.items()},
        "detection": detection({k: [s.marked for s in v] for k, v in swaps.items()}, starts,
                               model_id),
        "false_positives": false_positives(),
        "unmarked": unmarked,
        "reduced_set": reduced,
        "flicker": flicker(model_id),
        "timing": {**timing(swaps.get("1920x1080", []), model_id), **stage_times},
    }
    report["seconds"] = time.perf_counter() - t0
    write_report(report, args.output)


if __name__ == "__main__":
    main()
