"""Calibrate each detector's box mapping onto dlib's frontal-HOG box (the aligner convention).

For every sample still and every 6th frame of the sample videos (the dlib CNN: every 18th), runs
dlib's HOG detector (upsample 1 on the frame scaled to at most 1280 px) as the reference, and each
detector's native (unmapped) boxes. Native boxes are matched one-to-one to HOG boxes (the native
box must contain the HOG centre; best centre distance relative to size). With the native centre
``(cx, cy)`` and size ``(w, h)`` and the HOG box ``(cx*, cy*, w*, h*)``, the least-squares
solutions of ``cx* - cx = dx w``, ``cy* - cy = dy h``, ``w* = sw w``, ``h* = sh h``, each pair
weighted by ``q`` = 1 / (pairs from its source file) so that every still and every video counts
equally (videos would otherwise dominate with near-identical frames), are::

    dx = Σ q (cx* - cx) w / Σ q w²      sw = Σ q w* w / Σ q w²     (and dy, sh alike with h)

Prints, per detector, the constants to paste as ``BOX_MAP`` into its module, the number of pairs
and the mean IoU with the HOG box before and after mapping.

Usage: python tools/calibrate_boxes.py [detector ...]
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import av
import cv2
import dlib
import numpy as np

from faceplate.core.types import BBox
from faceplate.extract.detect import DETECTORS
from faceplate.extract.detect.common import BoxMap, fit_max_side
from faceplate.io import samples

STILLS = ("obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg", "single_face.jpg",
          "multi_face.jpg", "astronaut.png", "einstein.jpg", "takeo.ppm", "Image_with_alpha.png")
VIDEOS = ("single_face.mp4", "WolfgangLanger_Pexels.mp4", "face_noface.mov")

Native = tuple[float, float, float, float]


def load_images(video_step: int) -> list[tuple[str, np.ndarray]]:
    """(source name, H×W×3 uint8 RGB) for the stills and every ``video_step``-th video frame."""
    out = []
    for name in STILLS:
        img = cv2.imread(str(samples.path(name)), cv2.IMREAD_COLOR)
        if img is None:
            raise SystemExit(f"cannot read {samples.path(name)}")
        out.append((name, np.ascontiguousarray(img[:, :, ::-1])))
    for name in VIDEOS:
        with av.open(str(samples.path(name))) as c:
            for i, f in enumerate(c.decode(video=0)):
                if name == "face_noface.mov" and i >= 72:  # the cartoon follows
                    break
                if i % video_step == 0:
                    out.append((name, f.to_ndarray(format="rgb24")))
    return out


def hog_boxes(img: np.ndarray, det: object) -> list[BBox]:
    """Reference boxes: dlib HOG, upsample 1, on the image scaled to ≤ 1280 px."""
    small, k = fit_max_side(img, 1280)
    rects = det(small, 1)  # type: ignore[operator]
    return [BBox(r.left() / k, r.top() / k, r.width() / k, r.height() / k) for r in rects]


def match(native: list[Native], ref: list[BBox]) -> list[tuple[Native, BBox]]:
    """One-to-one pairs: the native box contains the HOG centre, closest relative centre."""
    pairs = []
    used: set[int] = set()
    for n in native:
        x, y, w, h = n
        best, best_d = -1, np.inf
        for j, r in enumerate(ref):
            cx, cy = r.center
            if j in used or not (x <= cx <= x + w and y <= cy <= y + h):
                continue
            if not 0.5 < r.w / w < 2.0:
                continue
            d = np.hypot(cx - (x + w / 2), cy - (y + h / 2)) / w
            if d < best_d:
                best, best_d = j, d
        if best >= 0:
            used.add(best)
            pairs.append((n, ref[best]))
    return pairs


def fit(pairs: list[tuple[Native, BBox]], q: np.ndarray) -> BoxMap:
    """Weighted least-squares ``BoxMap`` from (native, reference) pairs with weights ``q``."""
    a = np.array([[x + w / 2, y + h / 2, w, h] for (x, y, w, h), _ in pairs])
    b = np.array([[*r.center, r.w, r.h] for _, r in pairs])
    w, h = a[:, 2], a[:, 3]
    return BoxMap(dx=float(np.sum(q * (b[:, 0] - a[:, 0]) * w) / np.sum(q * w * w)),
                  dy=float(np.sum(q * (b[:, 1] - a[:, 1]) * h) / np.sum(q * h * h)),
                  sw=float(np.sum(q * b[:, 2] * w) / np.sum(q * w * w)),
                  sh=float(np.sum(q * b[:, 3] * h) / np.sum(q * h * h)))


def native_fn(name: str) -> Callable[[np.ndarray], list[Native]]:
    det = DETECTORS.create(name)
    raw = getattr(det, "raw", None)
    if raw is None:
        raise SystemExit(f"{name} has no raw() method: it needs no calibration")
    return lambda img: [tuple(r[:4]) for r in raw(img)]


def main(names: list[str]) -> None:
    hog = dlib.get_frontal_face_detector()
    images = {step: load_images(step) for step in (6, 18)}
    refs = {step: [hog_boxes(img, hog) for _, img in imgs] for step, imgs in images.items()}
    for name in names:
        step = 18 if name == "dlib_cnn" else 6
        find = native_fn(name)
        pairs: list[tuple[Native, BBox]] = []
        sources: list[str] = []
        for (source, img), ref in zip(images[step], refs[step]):
            found = match(find(img), ref)
            pairs += found
            sources += [source] * len(found)
        if len(pairs) < 5:
            print(f"{name}: only {len(pairs)} matched boxes, no fit")
            continue
        q = np.array([1.0 / sources.count(s) for s in sources])
        m = fit(pairs, q)
        before = np.sum(q * [BBox(*n).iou(r) for n, r in pairs]) / q.sum()
        after = np.sum(q * [m.apply(*n).iou(r) for n, r in pairs]) / q.sum()
        print(f"{name}: {len(pairs)} pairs from {len(set(sources))} sources, source-weighted "
              f"mean IoU with HOG {before:.3f} -> {after:.3f}")
        print(f"    BOX_MAP = BoxMap(dx={m.dx:.4f}, dy={m.dy:.4f}, sw={m.sw:.4f}, sh={m.sh:.4f})")


if __name__ == "__main__":
    main(sys.argv[1:] or ["blazeface", "centerface", "dlib_cnn"])
