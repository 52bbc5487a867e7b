"""Tracking's quality guard for ``benchmarks/extract.py``: ``--track on`` against per-frame
detection (``--track off``) on the same frames.

Clips: the held-back annotated clips of ``benchmarks/detect.py`` (the real head-turn clip with
a truth box on every frame; synthetic head-turn clips with truth landmarks) and two synthetic
variants — ``cut``: the real clip (scaled 2× to 1280×720) cut into a synthetic clip and back;
``enter``: a 1280×360 canvas with the real clip on the left and, from frame
:data:`ENTER_AT`, the man of ``single_face.mp4`` sliding in from the right over
:data:`ENTER_FRAMES` frames while the woman is followed.

Both runs process the frames as ``faceplate extract`` does (``Extractor.process`` with the track
search, and for tracking the follow state), without writing. Never asserts anything.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import cv2
import numpy as np

#: Frame of the ``enter`` variant where the second face starts to slide in, and the frames
#: the slide takes.
ENTER_AT = 20
ENTER_FRAMES = 8
#: Frames of the real clip before and after the synthetic clip in the ``cut`` variant.
CUT_REAL = 60


def iod(lm: np.ndarray) -> float:
    """Outer-eye-corner distance (points 36 and 45) of a 68-point set."""
    return float(np.linalg.norm(np.asarray(lm)[45] - np.asarray(lm)[36]))


def pair(a: list[Any], b: list[Any]) -> list[tuple[Any, Any]]:
    """Each face of ``a`` with the face of ``b`` whose box matches its box nearest, by the
    detection benchmark's rule (``score.matches``: centre within 0.4 box sizes, size within
    2×): the same face found by both runs."""
    from faceplate.evaluate.detection.score import matches

    out = []
    for fa in a:
        dists = [(d, k) for k, fb in enumerate(b)
                 if (d := matches(fb.bbox, fa.bbox)) is not None]
        if dists:
            out.append((fa, b[min(dists)[1]]))
    return out


def _track(runs: dict[int, list[Any]], other: dict[int, list[Any]], frames: list[int]
           ) -> np.ndarray:
    """T×68×2 landmarks of the one face of each frame (NaN where this run or the ``other``
    has not exactly one, so both runs' jitter is measured on the same frames)."""
    nan = np.full((68, 2), np.nan)
    return np.array([np.asarray(runs[i][0].landmarks, np.float64)
                     if len(runs[i]) == 1 and len(other[i]) == 1 else nan for i in frames])


def compare_runs(off: dict[int, list[Any]], on: dict[int, list[Any]]) -> dict[str, Any]:
    """Tracking's faces (``on``: frame → records) against per-frame detection's (``off``):
    frames where ``off`` kept a face that ``on`` did not, landmark distance over the
    inter-ocular distance, and the jitter of each (frames where both kept exactly one face)."""
    from faceplate.extract.smoothing import landmark_jitter

    frames = sorted(set(off) & set(on))
    lost = [i for i in frames if len(pair(off[i], on[i])) < len(off[i])]
    extra = [i for i in frames if len(on[i]) > len(off[i])]
    dist = [float(np.linalg.norm(np.asarray(a.landmarks) - np.asarray(b.landmarks),
                                 axis=1).mean()) / iod(a.landmarks)
            for i in frames for a, b in pair(off[i], on[i])]
    return {"frames": len(frames), "frames_with_face_off": sum(bool(off[i]) for i in frames),
            "frames_lost": len(lost), "lost_frames": lost[:50],
            "frames_with_more_faces": len(extra),
            "landmark_distance_iod": {"mean": float(np.mean(dist)) if dist else None,
                                      "max": float(np.max(dist)) if dist else None},
            "jitter": {"off": landmark_jitter(_track(off, on, frames)),
                       "on": landmark_jitter(_track(on, off, frames))}}


def _scaled(truth: list[Any], k: float) -> list[Any]:
    from faceplate.core.types import BBox
    from faceplate.evaluate.detection.dataset import dataclass_replace

    out = []
    for f in truth:
        b = f.box
        lm = None if f.landmarks is None else np.asarray(f.landmarks) * k
        out.append(dataclass_replace(f, box=BBox(b.x * k, b.y * k, b.w * k, b.h * k),
                                     landmarks=lm, width=f.width * k))
    return out


def _cut_clip(real: Any, syn: Any) -> Iterator[tuple[np.ndarray, list[Any]]]:
    """Real frames 0..CUT_REAL-1 (2×), the synthetic clip, real frames CUT_REAL..2·CUT_REAL-1."""
    frames = list(real.frames())[:2 * CUT_REAL]

    def up(item: tuple[np.ndarray, list[Any]]) -> tuple[np.ndarray, list[Any]]:
        rgb, truth = item
        big = cv2.resize(rgb, (rgb.shape[1] * 2, rgb.shape[0] * 2),
                         interpolation=cv2.INTER_LINEAR)
        return big, _scaled(truth, 2.0)

    for item in frames[:CUT_REAL]:
        yield up(item)
    yield from syn.frames()
    for item in frames[CUT_REAL:]:
        yield up(item)


def _enter_clip(real: Any) -> Iterator[tuple[np.ndarray, list[Any]]]:
    """The real clip on the left of a 1280×360 canvas; the man slides in on the right."""
    from faceplate.evaluate.detection import media

    man = [rgb for _, rgb in media.clip_frames("single_face.mp4")]
    for t, (rgb, truth) in enumerate(real.frames()):
        if t >= len(man):
            return
        h, w = rgb.shape[:2]
        canvas = np.full((h, 2 * w, 3), 96, np.uint8)
        canvas[:, :w] = rgb
        if t >= ENTER_AT:
            shift = int(round(w * max(0.0, 1.0 - (t - ENTER_AT + 1) / ENTER_FRAMES)))
            other = cv2.resize(man[t], (w, h), interpolation=cv2.INTER_AREA)
            canvas[:, w + shift:] = other[:, :w - shift]
        yield canvas, truth


def _nmes(runs: dict[int, list[Any]], truths: list[list[Any]]) -> dict[tuple[int, int], float]:
    """(frame, truth face) → inner-51 NME of the matched face, where the truth has landmarks."""
    from faceplate.evaluate.detection.run import in_scope
    from faceplate.evaluate.detection.score import match, nme

    out = {}
    for i, truth in enumerate(truths):
        m = match([r.bbox for r in runs[i]], truth)
        for j, f in enumerate(truth):
            if m.found[j] >= 0 and f.landmarks is not None and in_scope(f):
                out[(i, j)] = nme(runs[i][m.found[j]].landmarks, f.landmarks, slice(17, 68))
    return out


def _mode_figures(runs: dict[int, list[Any]], truths: list[list[Any]],
                  both: set[tuple[int, int]]) -> dict[str, Any]:
    from faceplate.evaluate.detection.run import in_scope
    from faceplate.evaluate.detection.score import match

    frames = kept = false = 0
    for i, truth in enumerate(truths):
        m = match([r.bbox for r in runs[i]], truth)
        false += len(m.false)
        scoped = [j for j, f in enumerate(truth) if in_scope(f)]
        if scoped:
            frames += 1
            kept += all(m.found[j] >= 0 for j in scoped)
    nmes = _nmes(runs, truths)
    common = [v for k, v in nmes.items() if k in both]
    return {"frames_with_face": frames, "kept": kept,
            "keep_rate": kept / frames if frames else None, "false_faces": false,
            "nme_inner_mean": float(np.mean(list(nmes.values()))) if nmes else None,
            "nme_faces": len(nmes),
            "nme_inner_mean_both": float(np.mean(common)) if common else None,
            "nme_inner_median_both": float(np.median(common)) if common else None,
            "nme_faces_both": len(common)}


def _run_clip(name: str, synthetic: bool, frames: Iterator[tuple[np.ndarray, list[Any]]],
              ex_off: Any, ex_on: Any) -> dict[str, Any]:
    from faceplate.core.types import Frame, FrameInfo

    win_off, win_on, follow = ex_off.new_tracks(), ex_on.new_tracks(), ex_on.new_follow()
    off: dict[int, list[Any]] = {}
    on: dict[int, list[Any]] = {}
    truths = []
    detected = []
    for i, (rgb, truth) in enumerate(frames):
        info = FrameInfo(i, f"f{i:06d}", None, rgb.shape[1], rgb.shape[0], i)
        off[i] = ex_off.process(Frame(info, rgb), win_off).records
        res = ex_on.process(Frame(info, rgb), win_on, follow)
        on[i] = res.records
        detected.append(res.detection is not None)
        truths.append(truth)
    both = set(_nmes(off, truths)) & set(_nmes(on, truths))
    out = {"clip": name, "synthetic": synthetic, "frames": len(truths),
           "off": _mode_figures(off, truths, both), "on": _mode_figures(on, truths, both),
           "on_vs_off": compare_runs(off, on), "detection_frames": int(sum(detected)),
           "detection_reasons": dict(sorted(follow.reasons.items()))}
    if name == "enter":
        half = 640.0  # the canvas's left half is the real clip

        def first_right(runs: dict[int, list[Any]]) -> int | None:
            return next((i for i in sorted(runs)
                         if any(r.bbox.center[0] > half for r in runs[i])), None)

        a, b = first_right(off), first_right(on)
        out["entering_face"] = {"first_frame_off": a, "first_frame_on": b,
                                "frames_late": None if a is None or b is None else b - a}
    return out


def quality(detect_every: int) -> dict[str, Any]:
    """The guard's figures on every clip, and their totals."""
    from faceplate.evaluate.detection import dataset
    from faceplate.extract.follow import FollowConfig
    from faceplate.extract.pipeline import ExtractConfig, Extractor

    cfg = ExtractConfig(masks=(), thumbnails=False, size=64)
    ex_off = Extractor(cfg)
    ex_on = Extractor(cfg, follow_cfg=FollowConfig(track="on", detect_every=detect_every))
    clips = dataset.clips("held")
    real = next(c for c in clips if not c.synthetic)
    syn = [c for c in clips if c.synthetic]
    results = [_run_clip(c.id, c.synthetic, c.frames(), ex_off, ex_on) for c in clips]
    results.append(_run_clip("cut", True, _cut_clip(real, syn[0]), ex_off, ex_on))
    results.append(_run_clip("enter", True, _enter_clip(real), ex_off, ex_on))

    def mean_of(mode: str, key: str = "") -> float | None:
        vals = [(r[mode]["nme_inner_mean" + key], r[mode]["nme_faces" + key]) for r in results
                if r[mode]["nme_inner_mean" + key] is not None]
        n = sum(k for _, k in vals)
        return sum(v * k for v, k in vals) / n if n else None

    def jit(mode: str) -> float | None:
        vals = [r["on_vs_off"]["jitter"][mode] for r in results]
        vals = [v for v in vals if v == v]
        return float(np.mean(vals)) if vals else None

    return {
        "detect_every": detect_every,
        "clips": results,
        "totals": {
            "frames": sum(r["frames"] for r in results),
            "frames_lost_vs_off": sum(r["on_vs_off"]["frames_lost"] for r in results),
            "frames_lost_vs_off_excluding_enter": sum(
                r["on_vs_off"]["frames_lost"] for r in results if r["clip"] != "enter"),
            "kept_off": sum(r["off"]["kept"] for r in results),
            "kept_on": sum(r["on"]["kept"] for r in results),
            "frames_with_face": sum(r["off"]["frames_with_face"] for r in results),
            "nme_inner_off": mean_of("off"), "nme_inner_on": mean_of("on"),
            "nme_inner_both_off": mean_of("off", "_both"),
            "nme_inner_both_on": mean_of("on", "_both"),
            "jitter_mean_off": jit("off"), "jitter_mean_on": jit("on"),
            "detection_frames": sum(r["detection_frames"] for r in results),
        },
    }
