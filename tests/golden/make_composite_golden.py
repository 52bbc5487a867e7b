"""Regenerate tests/golden/composite_overlay.npy: an overlay paste at a sub-pixel matrix.

Run ``python tests/golden/make_composite_golden.py`` from the repository root after a deliberate
change to the paste-back (warp, box, blend); the test compares with atol 1e-5.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from faceplate.convert.composite import paste_back

OUT = Path(__file__).resolve().parent / "composite_overlay.npy"


def make() -> np.ndarray:
    """32×28×3 float32: a 16 px checker face with a feathered disc matte, rotated 17°, scaled
    1.3×, centred at frame (13.37, 15.61), over a scene-linear ramp reaching 4.0 and −0.1."""
    yy, xx = np.mgrid[:32, :28].astype(np.float32)
    frame = np.stack([xx / 27 * 4.1 - 0.1, yy / 31, np.full_like(xx, 0.25)], axis=2)
    s = 16
    cy, cx = np.mgrid[:s, :s].astype(np.float32)
    checker = ((cx // 4 + cy // 4) % 2).astype(np.float32)
    face = np.stack([checker, 1 - checker, checker * 0.5 + 0.25], axis=2)
    d = np.hypot(cx + 0.5 - s / 2, cy + 0.5 - s / 2)
    mask = np.clip((7.0 - d) / 2.5, 0.0, 1.0).astype(np.float32)
    a = np.radians(17.0)
    lin = 1.3 * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    t = np.array([s / 2, s / 2]) - lin @ np.array([13.37, 15.61])
    matrix = np.hstack([lin, t[:, None]])
    return paste_back(frame.astype(np.float32), face, mask, matrix, blend="overlay",
                      interpolation="cubic")


if __name__ == "__main__":
    np.save(OUT, make(), allow_pickle=False)
    print(f"wrote {OUT}")
