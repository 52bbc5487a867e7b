"""Mask labels (vector, :mod:`faceplate.core.labels`) to and from mask images.

:func:`labels_to_mask` rasterises a label set into any crop of the same face (the Studio's
overlay, the exported mask images, the occlusion mask's training targets): the shapes are mapped
from the crop they were drawn in to the target crop through the frame (their stored matrix,
inverted, then the target's), so a change of crop size or centering loses nothing.
:func:`mask_to_labels` turns a mask image back into include/exclude polygons (outer contours
include, holes exclude), which is how mask images are imported.

Conventions: masks are size×size ``uint8``, 255 = face, 0 = not face (occluder or background);
points are (x, y) crop pixels, x right, y down, pixel centres at +0.5; matrices are 2×3 float64
frame → crop.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from faceplate.core.geometry import compose_affine, invert_affine, transform_points
from faceplate.core.labels import validate_labels
from faceplate.core.types import Centering
from faceplate.core.validate import check_matrix

_SHIFT = 4  # OpenCV fixed-point bits: 1/16 pixel
_UP = 4  # contour tracing resolution of mask_to_labels


def _fixed(pts: np.ndarray) -> np.ndarray:
    """Crop points (centres at +0.5) → OpenCV fixed-point integer points (centres at 0)."""
    return np.round((pts - 0.5) * (1 << _SHIFT)).astype(np.int32)


def labels_to_mask(labels: dict[str, Any], size: int, matrix: np.ndarray | None = None
                   ) -> np.ndarray:
    """Rasterise a label set.

    Args:
        labels: A label set (validated here).
        size: Side of the output mask in pixels.
        matrix: 2×3 frame → output-crop matrix; None draws in the labels' own crop scaled to
            ``size``.

    Returns:
        size×size ``uint8``: 255 where the last shape covering a pixel is ``include``, 0 where
        it is ``exclude`` or no shape covers it.
    """
    lab = validate_labels(labels)
    own = check_matrix(np.asarray(lab["matrix"], np.float64))
    if matrix is None:
        k = size / lab["size"]
        target = compose_affine(np.array([[k, 0.0, 0.0], [0.0, k, 0.0]]), own)
    else:
        target = check_matrix(matrix)
    to_target = compose_affine(target, invert_affine(own))
    scale = float(np.sqrt(abs(np.linalg.det(to_target[:, :2]))))
    out = np.zeros((size, size), np.uint8)
    for sh in lab["shapes"]:
        pts = transform_points(np.asarray(sh["points"], np.float64), to_target)
        value = 255 if sh["mode"] == "include" else 0
        if sh["kind"] == "polygon":
            cv2.fillPoly(out, [_fixed(pts)], value, lineType=cv2.LINE_8, shift=_SHIFT)
        else:
            radius = max(1, int(round(sh["radius"] * scale)))
            ipts = np.round(pts - 0.5).astype(np.int32)
            if len(ipts) > 1:
                cv2.polylines(out, [ipts], False, value, thickness=2 * radius,
                              lineType=cv2.LINE_8)
            for p in ipts:
                cv2.circle(out, (int(p[0]), int(p[1])), radius, value, -1, cv2.LINE_8)
    return out


def mask_to_labels(mask: np.ndarray, matrix: np.ndarray, centering: Centering,
                   tolerance: float = 0.75) -> dict[str, Any]:
    """Turn a face-aligned mask image into a label set of polygons.

    Args:
        mask: size×size ``uint8`` (or bool), face > 127.
        matrix: 2×3 frame → crop matrix of that mask's crop.
        centering: The crop's centering.
        tolerance: Polygon simplification in pixels (Douglas–Peucker).

    Returns:
        A validated label set: every outer contour an ``include`` polygon, every hole an
        ``exclude`` polygon drawn after it.

    Raises:
        ValueError: Not a square 2-D mask.
    """
    m = np.asarray(mask)
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] < 8:
        raise ValueError(f"mask: expected a square size×size image, got shape {m.shape}")
    binary = (m > 127).astype(np.uint8) if m.dtype != bool else m.astype(np.uint8)
    # traced on a 4× nearest-neighbour copy, the contour runs 1/8 pixel inside the true edge
    # (on the original it would run through the edge pixels' centres and lose half of each)
    up = cv2.resize(binary, None, fx=_UP, fy=_UP, interpolation=cv2.INTER_NEAREST)
    contours, hierarchy = cv2.findContours(up, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_NONE)
    shapes: list[dict[str, Any]] = []
    if hierarchy is not None:
        outer = [i for i in range(len(contours)) if hierarchy[0][i][3] < 0]
        for i in outer:
            for j in [i] + [k for k in range(len(contours)) if hierarchy[0][k][3] == i]:
                c = cv2.approxPolyDP(contours[j], tolerance * _UP, True).reshape(-1, 2)
                if len(c) < 3:
                    continue
                shapes.append({"kind": "polygon", "mode": "include" if j == i else "exclude",
                               "points": ((c.astype(np.float64) + 0.5) / _UP).tolist()})
    return validate_labels({"size": int(m.shape[0]), "centering": centering,
                            "matrix": check_matrix(matrix).tolist(), "shapes": shapes})


#: A label covering less than this fraction of its crop is "empty"; more than
#: :data:`FULL_FRACTION` is "all white" (a label marks the face *and* what is not face).
EMPTY_FRACTION = 0.01
FULL_FRACTION = 0.98


def label_problem(mask: np.ndarray) -> str | None:
    """Why a rasterised label (or an imported mask image) cannot be trained on, or None.

    Args:
        mask: size×size ``uint8`` (face > 127) or bool.

    Returns:
        ``"empty: ..."`` when under :data:`EMPTY_FRACTION` of the crop is face (an all-black or
        blank label), ``"all white: ..."`` when over :data:`FULL_FRACTION` is (nothing marked as
        not face: the label says nothing about occluders or background), else None.
    """
    m = np.asarray(mask)
    fill = float((m > 127).mean()) if m.dtype != bool else float(m.mean())
    if fill < EMPTY_FRACTION:
        return f"empty: {fill:.1%} of the crop is marked as face"
    if fill > FULL_FRACTION:
        return f"all white: {fill:.1%} of the crop is marked as face, nothing as occluder"
    return None


#: Extensions of the mask images :func:`import_label_images` reads.
MASK_IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def import_label_images(faces_dir: Path, masks_dir: Path
                        ) -> tuple[int, list[tuple[Path, str]]]:
    """Import black-and-white mask images as the mask labels of the faces they are named after.

    ``MASKS_DIR/<face file stem>.<png|jpg|...>`` is the mask of ``FACES_DIR/<face file
    stem>.png``: the same aligned crop at any square size, white (> 127) = face, black = not
    face (occluder or background). Each becomes include/exclude polygons
    (:func:`mask_to_labels`) in the face's own store (the one its record names), one undoable
    step per store, as the Studio's own imports are.

    Returns:
        ``(imported, skipped)``: faces labelled, and ``(file, reason)`` of the mask images not
        imported: unreadable, not square ("wrong size"), empty or all white
        (:func:`label_problem`), no face named like it, or a face whose store is missing.

    Raises:
        InputError: a folder is missing, or nothing could be imported.
    """
    import dataclasses

    from faceplate.core.errors import InputError
    from faceplate.io.faceset import scan_faceset
    from faceplate.io.labelled import face_store
    from faceplate.io.store import AlignmentsStore, FaceChange

    if not Path(masks_dir).is_dir():
        raise InputError("mask image folder not found", masks_dir)
    good, _bad = scan_faceset(Path(faces_dir))
    images = {p.stem: p for p in sorted(Path(masks_dir).iterdir())
              if p.is_file() and p.suffix.lower() in MASK_IMAGE_EXTS
              and not p.name.startswith(".")}
    skipped: list[tuple[Path, str]] = []
    per_store: dict[Path, list[tuple[Any, dict[str, Any]]]] = {}
    used: set[str] = set()
    for path, meta in good:
        img_path = images.get(path.stem)
        if img_path is None:
            continue
        used.add(path.stem)
        data = np.fromfile(img_path, dtype=np.uint8)
        img = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE) if data.size else None
        if img is None:
            skipped.append((img_path, "not an image OpenCV can read"))
            continue
        h, w = img.shape[:2]
        if h != w or h < 8:
            skipped.append((img_path, f"wrong size: {w}×{h}, expected a square mask of the "
                                      f"{meta.size}×{meta.size} face {path.name}"))
            continue
        why = label_problem(img)
        if why is not None:
            skipped.append((img_path, f"bad label, not imported ({why})"))
            continue
        store = face_store(path, meta)
        if store is None:
            skipped.append((img_path, f"the face's alignments store "
                                      f"{meta.source.get('store')!r} is not found"))
            continue
        k = h / meta.size
        m = compose_affine(np.array([[k, 0.0, 0.0], [0.0, k, 0.0]]), meta.matrix)
        per_store.setdefault(store, []).append((meta.record,
                                                mask_to_labels(img, m, meta.centering)))
    for stem, p in images.items():
        if stem not in used:
            skipped.append((p, "no face PNG named like it in the faces folder"))
    n = 0
    for store, items in sorted(per_store.items()):
        with AlignmentsStore.open(store) as st:
            changes = []
            for rec, labels in items:
                before = st.face_state(rec.frame_index, rec.face_index)
                if before is None:
                    skipped.append((Path(masks_dir) / f"{rec.key}.png",
                                    f"frame {rec.frame_index} face {rec.face_index} is no "
                                    f"longer in {store}"))
                    continue
                changes.append(FaceChange(rec.frame_index, rec.face_index, before,
                                          dataclasses.replace(before, labels=labels)))
            if changes:
                st.edit(f"import {len(changes)} mask label(s)", changes)
                n += len(changes)
    if n == 0:
        why = "; ".join(f"{p.name}: {r}" for p, r in skipped[:3])
        raise InputError(f"no mask image imported from {masks_dir}"
                         + (f" ({why})" if why else " (none is named like a face of "
                            f"{faces_dir})"))
    return n, skipped


def hull_labels(landmarks: np.ndarray, masker: str = "extended", size: int = 256,
                centering: Centering = "face") -> dict[str, Any]:
    """Labels that call a face's whole landmark mask face (a face with nothing in front of it).

    The quick label for the unoccluded faces of a shot (the Studio's "accept the hull" and the
    demo's and tests' generated labels); occluded faces need their occluders cut out by hand.

    Args:
        landmarks: 68×2 frame-pixel landmarks.
        masker: A landmark masker of :data:`faceplate.extract.mask.MASKERS`.
        size: Crop the mask is drawn in, px (the labels map to any other crop).
        centering: Its centering.

    Returns:
        A validated, frame-anchored label set.
    """
    from faceplate.core.geometry import crop_matrix
    from faceplate.extract.mask import MASKERS

    m = crop_matrix(np.asarray(landmarks, np.float64), size, centering)
    mask = MASKERS.create(masker).mask(np.zeros((size, size, 3), np.uint8), landmarks, m)
    return mask_to_labels(mask, m, centering)
