"""Derive the woman's clip's real-occlusion mask labels from hand-drawn polygons.

The procedure (the labels in ``python_core/faceplate/io/sample_labels/`` were made this way):

1. ``faceplate extract WolfgangLanger_Pexels.mp4 -o faces --alignments woman.fpstore --size 256``
   (default detector and aligner): 256 px "face"-centred crops.
2. For each labelled frame, the crop is viewed at 2× with a 16 px grid (``--grid FRAME``), and
   the outline of what covers the face (her hand) is drawn as a polygon in crop pixels, into
   ``tools/labels/woman_hands_polygons.json``.
3. This script snaps each polygon to the image's edges within ±3 px (a marker watershed in a
   band around the outline: inside shrunk by 3 px is hand, outside grown by 3 px is not), takes
   it out of the face (the ``extended`` landmark hull, the face region every generated label
   uses), turns what is left into label polygons (``mask_to_labels``, frame-anchored: the labels
   keep the frame → crop matrix) and writes an overlay sheet.
4. Every overlay is checked by eye; a polygon whose outline strayed is corrected and the script
   run again (two of the 23 frames needed a second pass).

Usage::

    python tools/label_hands.py --alignments woman.fpstore \
        --polygons tools/labels/woman_hands_polygons.json \
        --output python_core/faceplate/io/sample_labels/WolfgangLanger_Pexels_hands.json \
        --sheet hands_sheet.png
    python tools/label_hands.py --alignments woman.fpstore --grid 100 --sheet grid_100.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from faceplate.core.geometry import crop_matrix
from faceplate.extract.crops import warp_to_crop
from faceplate.extract.mask import MASKERS
from faceplate.extract.mask.labels import labels_to_mask, mask_to_labels
from faceplate.io.media import open_source
from faceplate.io.paths import sha256_file
from faceplate.io.store import AlignmentsStore


def polygon_mask(polys: list[list[list[float]]], size: int) -> np.ndarray:
    """size×size bool: inside any of the polygons (crop pixels, centres at +0.5)."""
    m = np.zeros((size, size), np.uint8)
    for p in polys:
        pts = np.round((np.asarray(p, np.float64) - 0.5) * 16).astype(np.int32)
        cv2.fillPoly(m, [pts], 1, cv2.LINE_8, 4)
    return m.astype(bool)


def snap(img: np.ndarray, rough: np.ndarray, band: int = 3) -> np.ndarray:
    """The polygon's region with its outline moved to the strongest edges within ``band``
    pixels (marker watershed), lightly cleaned (3×3 open and close)."""
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * band + 1, 2 * band + 1))
    inside = cv2.erode(rough.astype(np.uint8), k).astype(bool)
    outside = ~cv2.dilate(rough.astype(np.uint8), k).astype(bool)
    markers = np.zeros(rough.shape, np.int32)
    markers[outside] = 1
    markers[inside] = 2
    bgr = cv2.cvtColor(cv2.GaussianBlur(img, (0, 0), 0.7), cv2.COLOR_RGB2BGR)
    ws = cv2.watershed(bgr, markers)
    hand = ((ws == 2) | ((ws == -1) & rough)).astype(np.uint8)
    hand = cv2.morphologyEx(hand, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    return cv2.morphologyEx(hand, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8)).astype(bool)


def _crops(store: AlignmentsStore, frames: list[int], size: int, centering: str):
    src_path = store.get_meta("source")
    with open_source(src_path) as src:
        for fr in src.frames(frames):
            rec = store.faces(fr.info.index)[0]
            m = crop_matrix(rec.landmarks, size, centering)  # type: ignore[arg-type]
            yield fr.info.index, warp_to_crop(fr.rgb, m, size), rec, m


def grid_view(img: np.ndarray, scale: int = 2) -> np.ndarray:
    """The crop at ``scale``× with a 16 px grid (every 64 px brighter, labelled every 32)."""
    big = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    n = img.shape[0]
    for v in range(0, n, 16):
        c = (255, 255, 0) if v % 64 == 0 else (90, 90, 90)
        cv2.line(big, (v * scale, 0), (v * scale, n * scale), c, 1)
        cv2.line(big, (0, v * scale), (n * scale, v * scale), c, 1)
        if v % 32 == 0:
            cv2.putText(big, str(v), (v * scale + 2, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                        (255, 255, 0), 1)
            cv2.putText(big, str(v), (2, v * scale + 12), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                        (255, 255, 0), 1)
    return big


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--alignments", type=Path, required=True, help="the clip's store (256 px)")
    ap.add_argument("--polygons", type=Path, default=None)
    ap.add_argument("--output", type=Path, default=None, help="the labels JSON to write")
    ap.add_argument("--sheet", type=Path, default=None, help="overlay (or grid) PNG")
    ap.add_argument("--grid", type=int, default=None, metavar="FRAME",
                    help="only write FRAME's gridded crop to --sheet (step 2)")
    args = ap.parse_args()
    with AlignmentsStore.open(args.alignments, readonly=True) as st:
        if args.grid is not None:
            for _, img, _, _ in _crops(st, [args.grid], 256, "face"):
                cv2.imwrite(str(args.sheet), cv2.cvtColor(grid_view(img), cv2.COLOR_RGB2BGR))
            return 0
        spec = json.loads(args.polygons.read_text())
        size, centering = int(spec["crop"]["size"]), spec["crop"]["centering"]
        frames = sorted(int(k) for k in spec["frames"])
        hull_masker = MASKERS.create("extended")
        faces, tiles = [], []
        for index, img, rec, m in _crops(st, frames, size, centering):
            hull = hull_masker.mask(img, rec.landmarks, m) > 127
            hand = snap(img, polygon_mask(spec["frames"][str(index)], size))
            face = (hull & ~hand).astype(np.uint8) * 255
            labels = mask_to_labels(face, m, centering)
            faces.append({"frame": index, "face": int(rec.face_index), "labels": labels})
            back = labels_to_mask(labels, size, m) > 127
            big = cv2.resize(img, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC)
            outline = cv2.resize(back.astype(np.uint8), None, fx=2, fy=2,
                                 interpolation=cv2.INTER_NEAREST)
            cs, _ = cv2.findContours(outline, cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
            over = big.copy()
            cv2.drawContours(over, cs, -1, (255, 40, 40), 1)
            cv2.putText(over, str(index), (5, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6,
                        (255, 255, 0), 2)
            tiles.append(np.hstack([big, over]))
        media = Path(st.get_meta("source"))
    if args.output is not None:
        doc = {"format": "faceplate-sample-labels", "version": 1, "media": media.name,
               "media_sha256": sha256_file(media),
               "made_by": "tools/label_hands.py from tools/labels/" + args.polygons.name,
               "faces": faces}
        lines = ["{" + ", ".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in doc.items()
                                 if k != "faces") + ', "faces": [']
        for i, f in enumerate(faces):
            lines.append(" " + json.dumps(f, separators=(",", ":"))
                         + ("," if i < len(faces) - 1 else ""))
        lines.append("]}")
        args.output.write_text("\n".join(lines) + "\n")
        print(f"{len(faces)} labelled faces -> {args.output}")
    if args.sheet is not None:
        rows = [np.hstack(tiles[i:i + 2]) if i + 1 < len(tiles)
                else np.hstack([tiles[i], np.zeros_like(tiles[i])])
                for i in range(0, len(tiles), 2)]
        cv2.imwrite(str(args.sheet), cv2.cvtColor(np.vstack(rows), cv2.COLOR_RGB2BGR))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
