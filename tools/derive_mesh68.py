"""Derive the mesh → iBUG-68 mapping, the 3-D 68-point pose model and the fallback box placement.

For every still of the sample media and every 4th frame of ``WolfgangLanger_Pexels.mp4`` and
``single_face.mp4``, dlib's HOG detector gives boxes; on each box we run the ``dlib68`` aligner
(the reference 68 points) and the MediaPipe face mesh of the ``mesh68`` aligner (468 vertices).
Each face is normalised by the similarity that maps its dlib inner points onto the mean-face
template (so coordinates are in template units, where the inner face spans 1).

* **Mapping** (``MESH_TO_68`` in ``extract/align/mesh68.py``): for each iBUG point, the single
  vertex with the least mean distance, or a convex combination (non-negative weights summing to 1,
  least squares) of 2 or 3 vertices drawn from the 12 nearest candidates when it lowers the RMS
  error by more than 5 % per added vertex.
* **3-D model** (``MODEL_68_3D`` in ``extract/pose.py``): the mapped 3-D points (x, y in pixels,
  z the mesh depth in the same pixel scale) of near-frontal faces (dlib nose tip within 4 % of the
  inter-ocular distance of the eye midline, jaw-to-nose distances within 10 % left to right),
  aligned by 3-D Procrustes, averaged, symmetrised with the iBUG mirror permutation, centred and
  scaled to unit outer-eye-corner distance.
* **Fallback box placement** (``BOX_TEMPLATE`` in ``extract/align/base.py``): medians of where the
  template sits in the dlib box.

Usage: python tools/derive_mesh68.py   (prints the constants)
"""

from __future__ import annotations

import itertools

import av
import cv2
import dlib
import numpy as np
from scipy.optimize import nnls

from faceplate.core.geometry import MIRROR_68, template_matrix, umeyama
from faceplate.core.types import Detection
from faceplate.extract.align import ALIGNERS
from faceplate.extract.align.dlib68 import bbox_from_dlib
from faceplate.io import samples

STILLS = ("obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg", "single_face.jpg",
          "multi_face.jpg", "astronaut.png", "einstein.jpg", "takeo.ppm")
VIDEOS = ("WolfgangLanger_Pexels.mp4", "single_face.mp4")


def images() -> list[np.ndarray]:
    out = []
    for name in STILLS:
        img = cv2.imread(str(samples.path(name)), cv2.IMREAD_COLOR)
        out.append(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
    for name in VIDEOS:
        with av.open(str(samples.path(name))) as c:
            for i, f in enumerate(c.decode(video=0)):
                if i % 4 == 0:
                    out.append(f.to_ndarray(format="rgb24"))
    return out


def collect() -> tuple[list[np.ndarray], list[np.ndarray], list[tuple[float, float, float]]]:
    """Per face: dlib 68×2, mesh 468×3 (frame pixels), box placement (ox, oy, unit)."""
    det = dlib.get_frontal_face_detector()
    ref = ALIGNERS.create("dlib68")
    mesh = ALIGNERS.create("mesh68")
    lms, meshes, boxes = [], [], []
    total = [0]
    for img in images():
        dets = [Detection(bbox_from_dlib(r), 1.0, "dlib") for r in det(img, 1)]
        for d, a, b in zip(dets, ref.align(img, dets), mesh.align(img, dets)):
            total[0] += 1
            if b.mesh is None or b.confidence == 0.0:
                continue
            lms.append(a.landmarks.astype(np.float64))
            meshes.append(b.mesh.astype(np.float64))
            m = template_matrix(a.landmarks)
            cx, cy = d.bbox.center
            ox, oy = m[:, :2] @ np.array([cx, cy]) + m[:, 2]
            unit = 1.0 / np.sqrt(abs(np.linalg.det(m[:, :2]))) / d.bbox.size
            boxes.append((float(ox), float(oy), float(unit)))
    print(f"# {total[0]} dlib faces, {len(lms)} with a mesh")
    return lms, meshes, boxes


def convex_fit(cands: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, float]:
    """Non-negative weights summing to 1: ``cands`` is m×n×2, ``target`` n×2; (w, rms)."""
    m = cands.shape[0]
    a = cands.reshape(m, -1).T
    b = target.reshape(-1)
    lam = 1e3
    a_aug = np.vstack([a, lam * np.ones((1, m))])
    b_aug = np.concatenate([b, [lam]])
    w, _ = nnls(a_aug, b_aug)
    w = w / w.sum()
    pred = np.tensordot(w, cands, axes=1)
    return w, float(np.sqrt(np.mean(np.sum((pred - target) ** 2, axis=1))))


def derive_mapping(lms: list[np.ndarray],
                   meshes: list[np.ndarray]) -> list[list[tuple[int, float]]]:
    tgt, src = [], []
    for lm, me in zip(lms, meshes):
        m = template_matrix(lm)
        tgt.append(lm @ m[:, :2].T + m[:, 2])
        src.append(me[:, :2] @ m[:, :2].T + m[:, 2])
    t = np.array(tgt)  # n×68×2
    s = np.array(src)  # n×468×2
    mapping = []
    for k in range(68):
        err = np.sqrt(np.mean(np.sum((s - t[:, k : k + 1]) ** 2, axis=2), axis=0))  # 468
        order = np.argsort(err)[:12]
        best = ([(int(order[0]), 1.0)], float(err[order[0]]))
        for n in (2, 3):
            cand_best = None
            for combo in itertools.combinations(order, n):
                w, rms = convex_fit(s[:, list(combo)].transpose(1, 0, 2), t[:, k])
                if cand_best is None or rms < cand_best[1]:
                    cand_best = ([(int(v), float(x)) for v, x in zip(combo, w) if x > 1e-3],
                                 rms)
            assert cand_best is not None
            if cand_best[1] < 0.95 * best[1]:
                total = sum(x for _, x in cand_best[0])
                best = ([(v, x / total) for v, x in cand_best[0]], cand_best[1])
        mapping.append(best[0])
        print(f"# {k:2d}: rms {best[1]:.4f} template units, single-vertex {err[order[0]]:.4f}")
    return mapping


def mapped(mesh: np.ndarray, mapping: list[list[tuple[int, float]]]) -> np.ndarray:
    return np.array([sum(w * mesh[v] for v, w in terms) for terms in mapping])


def derive_model(lms: list[np.ndarray], meshes: list[np.ndarray],
                 mapping: list[list[tuple[int, float]]]) -> tuple[np.ndarray, int]:
    pts3 = []
    for lm, me in zip(lms, meshes):
        iod = np.linalg.norm(lm[45] - lm[36])
        mid = 0.5 * (lm[36, 0] + lm[45, 0])
        left, right = np.linalg.norm(lm[30] - lm[0]), np.linalg.norm(lm[30] - lm[16])
        if abs(lm[30, 0] - mid) / iod < 0.04 and 0.9 < left / right < 1.1:
            pts3.append(mapped(me, mapping))
    ref = pts3[0]
    for _ in range(10):
        aligned = []
        for p in pts3:
            tr = umeyama(p, ref, True)
            aligned.append(p @ tr[:3, :3].T + tr[:3, 3])
        mean = np.mean(aligned, axis=0)
        mir = mean * np.array([-1.0, 1.0, 1.0])
        mir = mir[MIRROR_68]
        tr = umeyama(mir, mean, False)
        ref = 0.5 * (mean + mir @ tr[:3, :3].T + tr[:3, 3])
    model = ref - ref.mean(axis=0)
    model /= np.linalg.norm(model[45] - model[36])
    # Exact left/right symmetry about x = 0.
    mir = model * np.array([-1.0, 1.0, 1.0])
    model = 0.5 * (model + mir[MIRROR_68])
    return model, len(pts3)


def main() -> None:
    lms, meshes, boxes = collect()
    print(f"# {len(lms)} faces")
    mapping = derive_mapping(lms, meshes)
    print("MESH_TO_68 = (")
    for k, terms in enumerate(mapping):
        inner = ", ".join(f"({v}, {w:.3f})" for v, w in terms)
        print(f"    ({inner},),  # {k}")
    print(")")
    model, n = derive_model(lms, meshes, mapping)
    print(f"# 3-D model from {n} near-frontal faces")
    print("MODEL_68_3D = np.array([")
    for x, y, z in model:
        print(f"    [{x:.5f}, {y:.5f}, {z:.5f}],")
    print("], dtype=np.float64)")
    b = np.median(np.array(boxes), axis=0)
    print(f"BOX_TEMPLATE = ({b[0]:.4f}, {b[1]:.4f}, {b[2]:.4f})")


if __name__ == "__main__":
    main()
