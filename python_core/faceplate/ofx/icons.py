"""The node icons Natron shows: ``Contents/Resources/<identifier>.png`` for each effect and
``<grouping>.png`` for the Faceplate group (drawn here at build time, 128×128 RGBA PNG).

Natron looks for ``Resources/<plugin id>.png`` and for the top group's ``Resources/<group>.png``
(openfx-notes.md, "Natron"). Drawn with OpenCV, anti-aliased, on a transparent background.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from faceplate.io.paths import ensure_output_dir
from faceplate.ofx.effects import GROUPING, MASK_ID, SWAP_ID

SIZE = 128
_BG = (52, 58, 72, 255)  # RGBA
_FACE = (236, 196, 164, 255)
_ACCENT = (255, 170, 40, 255)
_WHITE = (245, 245, 245, 255)


def _base() -> np.ndarray:
    img = np.zeros((SIZE, SIZE, 4), np.uint8)
    cv2.rectangle(img, (10, 10), (SIZE - 11, SIZE - 11), _BG, -1, cv2.LINE_AA)
    for cx, cy in ((10, 10), (SIZE - 11, 10), (10, SIZE - 11), (SIZE - 11, SIZE - 11)):
        cv2.circle(img, (cx, cy), 10, _BG, -1, cv2.LINE_AA)
    cv2.rectangle(img, (0, 10), (SIZE - 1, SIZE - 11), _BG, -1)
    cv2.rectangle(img, (10, 0), (SIZE - 11, SIZE - 1), _BG, -1)
    return img


def _face(img: np.ndarray, fill: bool) -> None:
    centre, axes = (SIZE // 2, SIZE // 2 + 4), (32, 42)
    if fill:
        cv2.ellipse(img, centre, axes, 0, 0, 360, _FACE, -1, cv2.LINE_AA)
        for ex in (SIZE // 2 - 13, SIZE // 2 + 13):
            cv2.circle(img, (ex, SIZE // 2 - 4), 4, _BG, -1, cv2.LINE_AA)
        cv2.ellipse(img, (SIZE // 2, SIZE // 2 + 22), (12, 6), 0, 0, 180, _BG, 3, cv2.LINE_AA)
    else:
        for a0 in range(0, 360, 30):
            cv2.ellipse(img, centre, axes, 0, a0, a0 + 18, _WHITE, 5, cv2.LINE_AA)


def draw(identifier: str) -> np.ndarray:
    """The icon of an effect identifier or of the group: 128×128×4 uint8 RGBA."""
    img = _base()
    if identifier == SWAP_ID:
        _face(img, True)
        pts = np.array([[86, 30], [112, 30], [112, 18], [124, 36], [112, 54], [112, 42],
                        [86, 42]], np.int32)
        cv2.fillPoly(img, [pts], _ACCENT, cv2.LINE_AA)
    elif identifier == MASK_ID:
        _face(img, False)
    else:
        _face(img, True)
    return img


def write_icons(folder: str | Path) -> list[Path]:
    """Write every effect's icon and the group icon into ``folder`` (the bundle's Resources).

    Returns:
        The files written.
    """
    out = Path(folder)
    ensure_output_dir(out)
    written = []
    for name in (MASK_ID, SWAP_ID, GROUPING):
        path = out / f"{name}.png"
        bgra = cv2.cvtColor(draw(name), cv2.COLOR_RGBA2BGRA)
        if not cv2.imwrite(str(path), bgra):
            raise OSError(f"cannot write the icon {path}")
        written.append(path)
    return written
