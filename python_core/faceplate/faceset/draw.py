"""Draw a store's landmarks, boxes and stored masks onto its frames (the ``draw`` job).

Coordinates: records hold (x, y) frame pixels with pixel centres at +0.5; OpenCV draws with
integer pixel centres, so points are shifted by −0.5 and drawn with 4 bits of sub-pixel precision.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from faceplate.core.errors import OutputError
from faceplate.core.types import FaceRecord
from faceplate.faceset.frames import frames_with_pixels
from faceplate.io.paths import ensure_output_dir

_SHIFT = 4
_ONE = 1 << _SHIFT

#: iBUG-68 polylines: (start, end exclusive, closed).
LANDMARK_LINES: tuple[tuple[int, int, bool], ...] = (
    (0, 17, False),   # jaw
    (17, 22, False),  # right brow (image left)
    (22, 27, False),  # left brow
    (27, 31, False),  # nose bridge
    (31, 36, False),  # nose base
    (36, 42, True),   # right eye
    (42, 48, True),   # left eye
    (48, 60, True),   # outer lips
    (60, 68, True),   # inner lips
)

BOX_COLOUR = (0, 255, 0)
LINE_COLOUR = (0, 200, 255)
POINT_COLOUR = (255, 40, 40)
#: Tints for the masks, in order of the names drawn (RGB).
MASK_TINTS: tuple[tuple[int, int, int], ...] = (
    (255, 0, 255), (0, 128, 255), (255, 255, 0), (0, 255, 128), (255, 128, 0), (128, 0, 255))
MASK_OPACITY = 0.4


def _fixed(pts: np.ndarray) -> np.ndarray:
    """(x, y) +0.5-centred float points → OpenCV fixed-point int32 (integer centres)."""
    return np.round((np.asarray(pts, np.float64) - 0.5) * _ONE).astype(np.int32)


def draw_faces(rgb: np.ndarray, faces: Sequence[FaceRecord],
               masks: Sequence[str] | None = None, *, thickness: int = 1) -> np.ndarray:
    """Draw faces onto a copy of a frame.

    Masks first (tinted overlays of the stored masks warped back to the frame), then the
    detector box, the 68 landmarks' connecting lines and the points.

    Args:
        rgb: H×W×3 uint8 RGB frame.
        faces: Records of that frame.
        masks: Names of the stored masks to overlay; ``None`` = every stored mask, ``()`` = none.
            Names a face does not have are skipped.
        thickness: Line thickness in pixels.

    Returns:
        A new H×W×3 uint8 RGB image.
    """
    from faceplate.extract.mask import mask_to_frame

    out = np.ascontiguousarray(rgb.copy())
    h, w = out.shape[:2]
    names: list[str] = sorted({n for f in faces for n in f.masks}) if masks is None \
        else list(masks)
    if names:
        acc = out.astype(np.float32)
        for rec in faces:
            for k, name in enumerate(names):
                sm = rec.masks.get(name)
                if sm is None:
                    continue
                alpha = mask_to_frame(sm, (h, w))[..., None] * MASK_OPACITY
                tint = np.array(MASK_TINTS[k % len(MASK_TINTS)], np.float32)
                acc = (acc * (1.0 - alpha) + tint * alpha).astype(np.float32)
        out = np.ascontiguousarray(np.clip(acc + 0.5, 0, 255).astype(np.uint8))
    radius = max(1, int(round(thickness * 1.5)))
    for rec in faces:
        b = rec.bbox
        corners = _fixed(np.array([[b.x, b.y], [b.x + b.w, b.y + b.h]]))
        cv2.rectangle(out, tuple(int(v) for v in corners[0]), tuple(int(v) for v in corners[1]),
                      BOX_COLOUR, thickness, cv2.LINE_AA, _SHIFT)
        pts = _fixed(rec.landmarks)
        for a, z, closed in LANDMARK_LINES:
            cv2.polylines(out, [pts[a:z].reshape(-1, 1, 2)], closed, LINE_COLOUR, thickness,
                          cv2.LINE_AA, _SHIFT)
        for p in pts:
            cv2.circle(out, (int(p[0]), int(p[1])), radius * _ONE, POINT_COLOUR, -1, cv2.LINE_AA,
                       _SHIFT)
    return out


@dataclass(frozen=True)
class DrawReport:
    """What :func:`draw_store` wrote: frames drawn, faces drawn, files, seconds."""

    frames: int
    faces: int
    files: list[Path]
    seconds: float


def write_rgb_png(path: Path, rgb: np.ndarray) -> None:
    """Write an H×W×3 uint8 RGB image as PNG.

    Raises:
        OutputError: The file cannot be written.
    """
    try:
        ok = cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    except cv2.error as err:
        raise OutputError(f"cannot write PNG ({err})", path) from None
    if not ok:
        raise OutputError("cannot write PNG", path)


def draw_store(store: Any, source: Any, out_dir: Path, *, masks: Sequence[str] | None = None,
               frames: Callable[[int], bool] | None = None, include_empty: bool = False,
               progress: Callable[[int], None] | None = None) -> DrawReport:
    """Draw every selected frame of a store and write ``<out_dir>/<frame stem>.png``.

    Args:
        store: An open ``AlignmentsStore``.
        source: The open ``FrameSource`` of the clip the store was made from.
        out_dir: Output folder (created).
        masks: Mask names to overlay (``None`` = all stored masks).
        frames: Predicate on frame indices (see ``frames.parse_frame_range``); ``None`` = all.
        include_empty: Also write frames without faces.
        progress: Called with 1 after each frame written.

    Raises:
        InputError: The input does not match the store.
        OutputError: ``out_dir`` cannot be written.
    """
    t0 = time.perf_counter()
    ensure_output_dir(out_dir)
    wanted = [(info, faces) for info, faces in store.iter_frames()
              if (frames is None or frames(info.index)) and (faces or include_empty)]
    files: list[Path] = []
    n_faces = 0
    for info, faces, frame in frames_with_pixels(source, wanted, store.path):
        img = draw_faces(frame.rgb, faces, masks)
        stem = info.name.rsplit(".", 1)[0] if "." in info.name else info.name
        path = out_dir / f"{stem}.png"
        write_rgb_png(path, img)
        files.append(path)
        n_faces += len(faces)
        if progress is not None:
            progress(1)
    return DrawReport(len(files), n_faces, files, time.perf_counter() - t0)
