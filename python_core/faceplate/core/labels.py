"""Mask labels: what part of an aligned face is really face, as vector shapes (the one validator).

A label set is drawn on one face in face-aligned coordinates and keeps the frame → aligned matrix
it was drawn in, so it maps back to the frame exactly and to any other crop (size, centering) of
the same face; nothing is rasterised until it is used (:mod:`faceplate.extract.mask.labels`).
The Studio writes them, the store keeps them per face (``face_notes.labels``), the occlusion
mask trains on them.

Layout (:data:`LABELS_VERSION` 1), JSON::

    {"version": 1, "size": int, "centering": "face" | "whole_face" | "head",
     "matrix": [[a, b, c], [d, e, f]],          # frame → aligned pixels of a size×size crop
     "shapes": [{"kind": "polygon", "mode": "include" | "exclude", "points": [[x, y], ...]},
                {"kind": "stroke",  "mode": "include" | "exclude", "radius": float,
                 "points": [[x, y], ...]}]}

Points are (x, y) aligned-crop pixels, x right, y down, pixel centres at +0.5. Shapes are applied
in order over an empty (all "not face") mask: ``include`` paints face, ``exclude`` paints
occluder (hands, hair, glasses, microphones). A polygon has at least 3 points; a stroke is a
polyline with a round brush of ``radius`` pixels (one point is a dot).
"""

from __future__ import annotations

import math
from typing import Any

from faceplate.core.errors import RecordError
from faceplate.core.types import CENTERINGS

LABELS_VERSION = 1
#: Most shapes per face and points per shape (bounds a hostile or corrupt label set).
MAX_SHAPES = 512
MAX_POINTS = 8192
LABEL_MODES = ("include", "exclude")
SHAPE_KINDS = ("polygon", "stroke")


def _num(v: Any, where: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(float(v)):
        raise ValueError(f"{where}: expected a finite number, got {v!r}")
    return float(v)


def validate_labels(doc: Any, source: str | None = None) -> dict[str, Any]:
    """Check a label set and return it normalised (floats, version filled in).

    Args:
        doc: The parsed JSON value.
        source: File or store it came from, named in the error.

    Returns:
        A new dict in the layout of the module docstring.

    Raises:
        RecordError: Anything malformed: unknown keys, wrong types, non-finite numbers, a
            polygon with fewer than 3 points, too many shapes or points, coordinates further
            than one crop size outside the crop.
    """
    try:
        return _validate(doc)
    except ValueError as err:
        raise RecordError(f"mask labels: {err}", source) from None


def _validate(doc: Any) -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise ValueError(f"expected an object, got {type(doc).__name__}")
    allowed = {"version", "size", "centering", "matrix", "shapes"}
    unknown = sorted(set(doc) - allowed)
    if unknown:
        raise ValueError(f"unknown key(s) {', '.join(unknown)}")
    ver = doc.get("version", LABELS_VERSION)
    if isinstance(ver, bool) or not isinstance(ver, int) or not 1 <= ver <= LABELS_VERSION:
        raise ValueError(f"version: expected 1..{LABELS_VERSION}, got {ver!r}")
    size = doc.get("size")
    if isinstance(size, bool) or not isinstance(size, int) or not 8 <= size <= 8192:
        raise ValueError(f"size: expected an integer in [8, 8192], got {size!r}")
    if doc.get("centering") not in CENTERINGS:
        raise ValueError(f"centering: expected one of {', '.join(CENTERINGS)}, "
                         f"got {doc.get('centering')!r}")
    m = doc.get("matrix")
    if not isinstance(m, list) or len(m) != 2 or any(
            not isinstance(r, list) or len(r) != 3 for r in m):
        raise ValueError("matrix: expected [[a, b, c], [d, e, f]]")
    matrix = [[_num(v, "matrix") for v in row] for row in m]
    if abs(matrix[0][0] * matrix[1][1] - matrix[0][1] * matrix[1][0]) < 1e-12:
        raise ValueError("matrix: singular")
    shapes_in = doc.get("shapes")
    if not isinstance(shapes_in, list) or len(shapes_in) > MAX_SHAPES:
        raise ValueError(f"shapes: expected a list of at most {MAX_SHAPES}")
    lo, hi = -float(size), 2.0 * size
    shapes = []
    for i, sh in enumerate(shapes_in):
        where = f"shapes[{i}]"
        if not isinstance(sh, dict):
            raise ValueError(f"{where}: expected an object")
        kind, mode = sh.get("kind"), sh.get("mode")
        if kind not in SHAPE_KINDS:
            raise ValueError(f"{where}.kind: expected one of {', '.join(SHAPE_KINDS)}, "
                             f"got {kind!r}")
        if mode not in LABEL_MODES:
            raise ValueError(f"{where}.mode: expected include or exclude, got {mode!r}")
        keys = {"kind", "mode", "points"} | ({"radius"} if kind == "stroke" else set())
        if set(sh) != keys:
            raise ValueError(f"{where}: expected keys {', '.join(sorted(keys))}")
        pts = sh["points"]
        least = 3 if kind == "polygon" else 1
        if not isinstance(pts, list) or not least <= len(pts) <= MAX_POINTS:
            raise ValueError(f"{where}.points: expected {least}..{MAX_POINTS} [x, y] pairs")
        out_pts = []
        for j, p in enumerate(pts):
            if not isinstance(p, list) or len(p) != 2:
                raise ValueError(f"{where}.points[{j}]: expected [x, y]")
            x, y = _num(p[0], f"{where}.points[{j}]"), _num(p[1], f"{where}.points[{j}]")
            if not (lo <= x <= hi and lo <= y <= hi):
                raise ValueError(f"{where}.points[{j}]: ({x}, {y}) is far outside the crop")
            out_pts.append([x, y])
        shape: dict[str, Any] = {"kind": kind, "mode": mode, "points": out_pts}
        if kind == "stroke":
            r = _num(sh["radius"], f"{where}.radius")
            if not 0.1 <= r <= size:
                raise ValueError(f"{where}.radius: expected 0.1..{size}, got {r}")
            shape["radius"] = r
        shapes.append(shape)
    return {"version": LABELS_VERSION, "size": size, "centering": doc["centering"],
            "matrix": matrix, "shapes": shapes}
