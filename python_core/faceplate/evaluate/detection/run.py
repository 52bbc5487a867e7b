"""Running a detector over the benchmark and computing its figures.

:func:`evaluate_items` runs a detector on still items and returns per-item outcomes;
:func:`summarise_items` turns them into the figures ``benchmarks/detect.py`` reports;
:func:`evaluate_clip` runs a frame-by-frame detection function over a clip and returns the
frames kept. Everything here is plain measurement: nothing is tuned.

Figures (see :func:`summarise_items`):
    * ``recall`` — over truth faces in the target scope (inner-face width ≥ ``MIN_WIDTH`` px,
      |yaw| ≤ ``MAX_YAW``°, not ignored): the share with a matching detection, overall, for real
      and synthetic images apart, and per tag (``turned``, ``glasses``, …).
    * ``false_per_20_negatives`` — detections on negative images (animals, drawings, textures,
      title cards) per 20 images, overall and per tag; false faces on images *with* faces
      (a detection matching no face) are counted apart.
    * ``nme`` — landmark error of the aligner run on the detector's boxes, against the truth, per
      |yaw| bin: inter-ocular NME over the 51 inner points (the jaw of a re-rendered face is not
      its turned outline, so it is left out everywhere for comparability) and over all 68 on
      real images.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from faceplate.core.types import Detection
from faceplate.evaluate.detection.dataset import Clip, Item
from faceplate.evaluate.detection.score import TruthFace, match, nme

MIN_WIDTH = 48.0
MAX_YAW = 60.0
YAW_BINS = ((0.0, 15.0), (15.0, 30.0), (30.0, 45.0), (45.0, 60.0))

Landmarker = Callable[[np.ndarray, list[Detection]], list[np.ndarray]]


def in_scope(face: TruthFace) -> bool:
    """A face the recall target is about (see the module docstring)."""
    return (not face.ignore and face.width >= MIN_WIDTH and np.isfinite(face.yaw)
            and abs(face.yaw) <= MAX_YAW)


@dataclass
class ItemOutcome:
    """One item's result for one detector.

    Attributes:
        item: The item id.
        synthetic / negative / tags: Copied from the item.
        faces: ``(truth face, found)`` for every truth face.
        false: Detections matching no truth face.
        nme: ``(|yaw|, nme inner, nme 68 or NaN)`` per matched face with truth landmarks.
        seconds: Detection time of this image.
    """

    item: str
    synthetic: bool
    negative: bool
    tags: tuple[str, ...]
    faces: list[tuple[TruthFace, bool]] = field(default_factory=list)
    false: int = 0
    nme: list[tuple[float, float, float]] = field(default_factory=list)
    seconds: float = 0.0


def evaluate_items(detect: Callable[[np.ndarray], list[Detection]], items: Iterable[Item],
                   landmarks: Landmarker | None = None) -> list[ItemOutcome]:
    """Run ``detect`` on every item (and ``landmarks`` on what it finds)."""
    out = []
    for it in items:
        rgb, truth = it.load()
        t = time.perf_counter()
        dets = detect(rgb)
        secs = time.perf_counter() - t
        m = match([d.bbox for d in dets], truth)
        oc = ItemOutcome(it.id, it.synthetic, it.negative, it.tags, seconds=secs,
                         false=len(m.false))
        oc.faces = [(f, m.found[j] >= 0) for j, f in enumerate(truth)]
        if landmarks is not None:
            pairs = [(f, dets[m.found[j]]) for j, f in enumerate(truth)
                     if m.found[j] >= 0 and f.landmarks is not None and not f.ignore]
            if pairs:
                pts = landmarks(rgb, [d for _, d in pairs])
                for (f, _), p in zip(pairs, pts):
                    assert f.landmarks is not None
                    full = nme(p, f.landmarks) if not it.synthetic else float("nan")
                    oc.nme.append((abs(f.yaw), nme(p, f.landmarks, slice(17, 68)), full))
        out.append(oc)
    return out


def _share(found: Sequence[bool]) -> dict[str, Any]:
    n = len(found)
    k = int(sum(found))
    return {"found": k, "faces": n, "recall": round(k / n, 4) if n else None}


def summarise_items(outcomes: Sequence[ItemOutcome]) -> dict[str, Any]:
    """The figures of one detector over one part (see the module docstring)."""
    scoped = [(o, f, ok) for o in outcomes for f, ok in o.faces if in_scope(f)]
    rec: dict[str, Any] = {
        "all": _share([ok for _, _, ok in scoped]),
        "real": _share([ok for o, _, ok in scoped if not o.synthetic]),
        "synthetic": _share([ok for o, _, ok in scoped if o.synthetic]),
    }
    tags = sorted({t for _, f, _ in scoped for t in f.tags} | {t for o, _, _ in scoped
                                                             for t in o.tags})
    rec["by_tag"] = {t: _share([ok for o, f, ok in scoped if t in f.tags or t in o.tags])
                     for t in tags}
    rec["by_yaw"] = {f"{lo:g}-{hi:g}": _share([ok for _, f, ok in scoped
                                               if lo <= abs(f.yaw) < hi + (hi == MAX_YAW)])
                     for lo, hi in YAW_BINS}
    missed = [o.item for o, _, ok in scoped if not ok]
    neg = [o for o in outcomes if o.negative]
    neg_tags = sorted({t for o in neg for t in o.tags})

    def per20(group: Sequence[ItemOutcome]) -> dict[str, Any]:
        n = len(group)
        k = sum(o.false for o in group)
        return {"images": n, "false_faces": k,
                "per_20_images": round(20.0 * k / n, 3) if n else None,
                "images_with_false": [o.item for o in group if o.false]}

    false = {"all": per20(neg), "real": per20([o for o in neg if not o.synthetic]),
             "synthetic": per20([o for o in neg if o.synthetic]),
             "by_tag": {t: per20([o for o in neg if t in o.tags]) for t in neg_tags},
             "on_face_images": sum(o.false for o in outcomes if not o.negative)}
    nmes: dict[str, Any] = {}
    pts = [v for o in outcomes for v in o.nme]
    if pts:
        for lo, hi in YAW_BINS:
            sel = [v for v in pts if lo <= v[0] < hi + (hi == MAX_YAW)]
            full = [v[2] for v in sel if np.isfinite(v[2])]
            nmes[f"{lo:g}-{hi:g}"] = {
                "faces": len(sel),
                "nme_inner_mean": round(float(np.mean([v[1] for v in sel])), 4) if sel else None,
                "nme_inner_median": round(float(np.median([v[1] for v in sel])), 4)
                if sel else None,
                "nme_68_real_mean": round(float(np.mean(full)), 4) if full else None,
            }
    secs = [o.seconds for o in outcomes]
    return {"recall": rec, "false": false, "nme": nmes, "missed": missed,
            "images": len(outcomes), "ms_per_image": round(1000 * float(np.mean(secs)), 2)}


def evaluate_clip(clip: Clip, step: Callable[[int, np.ndarray], list[Detection]]
                  ) -> dict[str, Any]:
    """Frames of ``clip`` whose visible faces are kept by ``step(frame_index, rgb)``.

    A frame counts when it holds a face in the target scope; it is *kept* when every such face
    has a matching detection.
    """
    frames = kept = false = 0
    lost: list[int] = []
    for i, (rgb, truth) in enumerate(clip.frames()):
        dets = step(i, rgb)
        m = match([d.bbox for d in dets], truth)
        false += len(m.false)
        scoped = [j for j, f in enumerate(truth) if in_scope(f)]
        if not scoped:
            continue
        frames += 1
        if all(m.found[j] >= 0 for j in scoped):
            kept += 1
        else:
            lost.append(i)
    return {"clip": clip.id, "synthetic": clip.synthetic, "frames_with_face": frames,
            "kept": kept, "keep_rate": round(kept / frames, 4) if frames else None,
            "lost_frames": lost, "false_faces": false}
