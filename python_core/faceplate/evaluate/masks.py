"""How good is a mask: IoU and boundary F-score against labels, the learned mask beside the hull.

``faceplate mask eval`` runs a mask model on the labelled faces of some faceset folders that it
was not trained on (its manifest lists those it was) and compares each prediction with the face's
label, and so does the landmark hull (the ``extended`` masker, what convert masks with by
default) on the same faces: the gap between the two on *occluded* faces (those whose label cuts
at least :data:`OCCLUDED` of the hull away) is what the occlusion mask is for.

Metrics, on the model's crop (its size, centering and coverage), masks thresholded at 0.5:

* IoU: |pred ∧ label| / |pred ∨ label| (1 when both are empty).
* Boundary F-score (Perazzi et al., DAVIS 2016): the mask outlines' precision and recall within a
  tolerance of :data:`BOUNDARY_TOLERANCE` of the crop's diagonal (2.7 px at 256 px), combined as
  their harmonic mean.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from faceplate.core.errors import FaceplateError, InputError
from faceplate.extract.mask import MASKERS
from faceplate.extract.mask.labels import labels_to_mask
from faceplate.extract.mask.occlusion import OcclusionPredictor
from faceplate.io.faceset import recut_face
from faceplate.io.labelled import FaceKey, labelled_faces

#: A face is "occluded" when its label leaves out at least this fraction of the hull.
OCCLUDED = 0.05
#: Boundary match tolerance, fraction of the crop's diagonal.
BOUNDARY_TOLERANCE = 0.0075


def iou(pred: np.ndarray, truth: np.ndarray) -> float:
    """IoU of two boolean masks of one shape (1.0 when both are empty)."""
    p, t = np.asarray(pred, bool), np.asarray(truth, bool)
    union = int(np.count_nonzero(p | t))
    return 1.0 if union == 0 else int(np.count_nonzero(p & t)) / union


def _outline(m: np.ndarray) -> np.ndarray:
    u8 = m.astype(np.uint8)
    return (u8 - cv2.erode(u8, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_CONSTANT,
                           borderValue=0)).astype(bool)


def boundary_f(pred: np.ndarray, truth: np.ndarray, tolerance: float | None = None) -> float:
    """Boundary F-score of two boolean masks of one square shape.

    Args:
        pred: The predicted mask.
        truth: The label.
        tolerance: Match distance in pixels (default :data:`BOUNDARY_TOLERANCE` × diagonal).

    Returns:
        The harmonic mean of outline precision and recall in [0, 1] (1 when neither has an
        outline, 0 when only one has).
    """
    p, t = np.asarray(pred, bool), np.asarray(truth, bool)
    tol = tolerance if tolerance is not None else BOUNDARY_TOLERANCE * float(np.hypot(*p.shape))
    bp, bt = _outline(p), _outline(t)
    if not bp.any() and not bt.any():
        return 1.0
    if not bp.any() or not bt.any():
        return 0.0
    # distance of every pixel to the nearest outline pixel of the other mask
    dt = cv2.distanceTransform((~bt).astype(np.uint8), cv2.DIST_L2, 5)
    dp = cv2.distanceTransform((~bp).astype(np.uint8), cv2.DIST_L2, 5)
    precision = float((dt[bp] <= tol).mean())
    recall = float((dp[bt] <= tol).mean())
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def _summary(vals: Sequence[float]) -> dict[str, float | None]:
    if not vals:
        return {"mean": None, "median": None, "min": None}
    a = np.asarray(vals, np.float64)
    return {"mean": round(float(a.mean()), 4), "median": round(float(np.median(a)), 4),
            "min": round(float(a.min()), 4)}


def _block(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {"faces": len(rows),
            "occlusion": {"iou": _summary([r["iou"] for r in rows]),
                          "boundary_f": _summary([r["boundary_f"] for r in rows])},
            "hull": {"iou": _summary([r["hull_iou"] for r in rows]),
                     "boundary_f": _summary([r["hull_boundary_f"] for r in rows])}}


def evaluate_mask_model(model_dir: str | os.PathLike[str], folders: Sequence[Path], *,
                        include_trained: bool = False,
                        on_face: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Compare a mask model and the landmark hull with the labels of faces it was not trained on.

    Args:
        model_dir: A mask model directory.
        folders: Faceset folders whose faces carry labels in their stores.
        include_trained: Also evaluate the faces the model was trained on.
        on_face: Called with (faces done, faces to do) after each face.

    Returns:
        JSON-ready report: ``model``, ``faces`` (evaluated), ``left_out`` (trained on, not
        evaluated), ``skipped`` ([{file, reason}]), ``all`` and ``occluded`` blocks
        (``faces``, ``occlusion`` and ``hull``: ``iou`` and ``boundary_f`` mean / median /
        min), ``occluded_threshold``, ``boundary_tolerance_px`` and ``per_face`` rows
        (``file``, ``frame``, ``face``, ``occluded_fraction``, ``iou``, ``boundary_f``,
        ``hull_iou``, ``hull_boundary_f``).

    Raises:
        InputError: no labelled face to evaluate.
        ModelError: not a mask model.
    """
    pred = OcclusionPredictor(model_dir)
    s = pred.size
    trained = {FaceKey(str(t["store"]), int(t["frame"]), int(t["face"]))
               for t in pred.manifest.trained_on}
    found, _, skipped = labelled_faces(folders)
    todo = [f for f in found if include_trained or f[2] not in trained]
    if not todo:
        raise InputError(f"no labelled face to evaluate in {', '.join(map(str, folders))} "
                         f"({len(found)} labelled, {len(found) - len(todo)} of them trained on)")
    hull_masker = MASKERS.create("extended")
    rows: list[dict[str, Any]] = []
    tol = BOUNDARY_TOLERANCE * float(np.hypot(s, s))
    for n, (path, meta, key, labels) in enumerate(todo):
        try:
            crop, m, _, _ = recut_face(path, meta, s, pred.centering, pred.coverage)
            truth = labels_to_mask(labels, s, m) > 127
        except (FaceplateError, ValueError) as err:
            skipped.append((path, str(err)))
            continue
        mask = pred.predict(crop[None])[0] > 0.5
        hull = hull_masker.mask(crop, meta.record.landmarks, m) > 127
        cut = int(np.count_nonzero(hull & ~truth)) / max(1, int(np.count_nonzero(hull)))
        rows.append({"file": path.name, "store": key.store, "frame": key.frame,
                     "face": key.face, "occluded_fraction": round(float(cut), 4),
                     "iou": round(iou(mask, truth), 4),
                     "boundary_f": round(boundary_f(mask, truth, tol), 4),
                     "hull_iou": round(iou(hull, truth), 4),
                     "hull_boundary_f": round(boundary_f(hull, truth, tol), 4)})
        if on_face is not None:
            on_face(n + 1, len(todo))
    occluded = [r for r in rows if r["occluded_fraction"] >= OCCLUDED]
    return {"model": str(pred.model_dir.resolve()), "engine": pred.engine, "size": s,
            "faces": len(rows), "left_out": len(found) - len(todo),
            "skipped": [{"file": str(p), "reason": r} for p, r in skipped],
            "occluded_threshold": OCCLUDED, "boundary_tolerance_px": round(tol, 2),
            "all": _block(rows), "occluded": _block(occluded), "per_face": rows}


__all__ = ["BOUNDARY_TOLERANCE", "OCCLUDED", "boundary_f", "evaluate_mask_model", "iou"]
