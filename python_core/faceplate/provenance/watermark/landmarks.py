"""The landmark fixed point both sides reach: the face's 68 points re-found from a box.

The verifier re-detects the face on the output, and a swapped face's landmarks differ from the
plate's stored ones by more than the registration search covers (the benchmark's
``landmarks`` section measures by how much). So the embedder re-finds the landmarks on the
pasted result (:func:`refine_landmarks`, seeded with the record's detector box) and the
verifier runs the same procedure from its detector's box (:func:`frame_landmarks`): a
68-point landmark model on the area around the box, area-downscaled by an integer factor
(blocks on the frame's own grid), re-run from the box fitted to its own landmarks until that
(integer) box repeats, so both reach about the same fixed point whatever their seed boxes.

The landmark model is a *fix point* of the registry :data:`FIX_POINTS`, chosen by the model
profile (:mod:`faceplate.core.profile`): ``dlib68`` (dlib's 68-point predictor, evaluated by
:mod:`faceplate.extract.ert`; the default profile) or ``mesh68`` (the face mesh's landmark
network on a crop around the box, mapped to the 68 iBUG points by
:data:`faceplate.extract.align.mesh68.MESH_WEIGHTS`; the commercial profile). The embedder uses
its profile's ``mark_landmarks``; the verifier tries its profile's ``verify_landmarks`` in turn
(the default profile both, so a mark made under either profile is found without being told
which), and the calibrated null covers the best of those tries.

Landmarks are 68×2 float64 (x, y) frame pixels, iBUG order, pixel centres at +0.5.
"""

from __future__ import annotations

import functools
import math
import threading
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from faceplate.core.config import Config
from faceplate.core.geometry import MEAN_FACE_68
from faceplate.core.profile import active_profile
from faceplate.core.registry import Registry
from faceplate.provenance.watermark.sampling import _display_region, _u8_rgb
from faceplate.provenance.watermark.session import default_session


@functools.cache
def _box_template() -> tuple[np.ndarray, np.ndarray, float, float]:
    """(the mean face relative to its box's origin, centred; its mean; Σ|centred|²; the box
    unit) for :func:`_box_from_landmarks`."""
    from faceplate.extract.align.base import BOX_TEMPLATE

    ox, oy, unit = BOX_TEMPLATE
    t = MEAN_FACE_68 - np.array([ox, oy])
    tc = t - t.mean(axis=0)
    return tc, t.mean(axis=0), float((tc * tc).sum()), float(unit)


def _box_from_landmarks(lm: np.ndarray) -> Any:
    """The dlib-convention detector box the mean face would sit in (inverse of
    ``mean_face_in_box``): a least-squares centre and size."""
    from faceplate.core.types import BBox

    tc, tmean, tnorm, unit = _box_template()
    mean = lm.mean(axis=0)
    k = float(((lm - mean) * tc).sum() / tnorm)  # unit · box size
    cx, cy = mean - tmean * k
    size = k / unit
    return BBox(float(cx - size / 2.0), float(cy - size / 2.0), size, size)


#: At most this many extra landmark-model runs of :func:`refine_landmarks`, each from the box fitted
#: to the previous run's landmarks, stopping when the (integer) box repeats: a fixed-point
#: iteration, so the result no longer depends on the seed box (a cycle of boxes, seen on
#: faces that are barely faces, gives the mean over the cycle).
REFINE_ITERATIONS = 3
#: The least side (pixels) of the seed box in the image the aligner reads: a face more than
#: twice as large is area-downscaled by an integer factor first (fast, and the aligner then
#: reads about the same pixels at any resolution, before or after a 0.5× downscale).
REFINE_BOX = 192.0
#: Half-side of the area read around the box's centre, in box sizes (the dlib predictor's
#: features lie within x ∈ [0.03, 0.97], y ∈ [0.16, 1.07] of the box for the mean shape,
#: then follow the face's rotation; the iteration may move the box a little).
REFINE_REACH = 0.9


class FixPoint:
    """A landmark model the fixed point runs: 68 points from an image and a box.

    Subclasses implement :meth:`predict`; instances are built once per process (on first use,
    under a lock) and must be thread-safe.
    """

    registry_name: str = ""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg

    def predict(self, img: np.ndarray, rect: tuple[int, int, int, int]) -> np.ndarray:
        """68×2 float64 (x, y) landmarks in pixel-index coordinates (pixel centres at 0, as
        dlib gives them; NaN when the model sees no face).

        Args:
            img: H×W×3 ``uint8`` display-sRGB RGB image, C-contiguous.
            rect: (left, top, right, bottom) inclusive pixel indices of the face box, in dlib's
                frontal-face convention.
        """
        raise NotImplementedError


@dataclass(frozen=True)
class FixPointConfig(Config):
    """The fix points have no options (both sides must run exactly the same procedure)."""


#: The landmark models the watermark's fixed point can run (``dlib68``, ``mesh68``).
FIX_POINTS: Registry[FixPoint] = Registry("watermark landmark fix point")


@FIX_POINTS.register("dlib68", config=FixPointConfig)
class Dlib68FixPoint(FixPoint):
    """dlib's 68-point predictor (iBUG 300-W: non-commercial training data)."""

    def __init__(self, cfg: Config) -> None:
        super().__init__(cfg)
        from faceplate.extract.ert import shape_model

        self._model = shape_model(68)

    def predict(self, img: np.ndarray, rect: tuple[int, int, int, int]) -> np.ndarray:
        return np.asarray(self._model.predict(img, rect), np.float64)


#: The mesh fix point's crop: the face box is ``MESH_FACE`` of the network's 192-pixel input
#: (the framing of the chain's presence verifier; the face mesh's own region is similar).
MESH_FACE = 100.0 / 192.0


@FIX_POINTS.register("mesh68", config=FixPointConfig)
class Mesh68FixPoint(FixPoint):
    """The face mesh's landmark network (Apache 2.0, Google's data) mapped to 68 iBUG points.

    The box's square surroundings (side = box / ``MESH_FACE``, zero outside the image) are
    area-resampled to the network's input, so the network reads about the same pixels
    whatever the resolution; a face-presence below 0.5 gives NaN (no face).
    """

    def __init__(self, cfg: Config) -> None:
        super().__init__(cfg)
        from faceplate.core.profile import require_model
        from faceplate.extract.align.mesh68 import MESH_WEIGHTS
        from faceplate.extract.mediapipe_graphs import LANDMARK_INPUT, FaceLandmarkNet

        require_model("face_mesh")
        self._net = FaceLandmarkNet()
        self._weights = MESH_WEIGHTS
        self._side = LANDMARK_INPUT

    def predict(self, img: np.ndarray, rect: tuple[int, int, int, int]) -> np.ndarray:
        left, top, right, bottom = rect
        bw, bh = right - left + 1, bottom - top + 1
        side = max(8, int(round(math.sqrt(bw * bh) / MESH_FACE)))
        x0 = int(round((left + right + 1) / 2.0 - side / 2.0))
        y0 = int(round((top + bottom + 1) / 2.0 - side / 2.0))
        h, w = img.shape[:2]
        crop = np.zeros((side, side, 3), np.uint8)
        sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x0 + side, w), min(y0 + side, h)
        if sx1 > sx0 and sy1 > sy0:
            crop[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = img[sy0:sy1, sx0:sx1]
        n = self._side
        interp = cv2.INTER_AREA if side >= n else cv2.INTER_LINEAR
        pts, presence = self._net.run(cv2.resize(crop, (n, n), interpolation=interp))
        if presence < 0.5:
            return np.full((68, 2), np.nan)
        # Network points: crop edges at 0 and n (pixel centres at +0.5) → image pixel indices.
        xy = pts[:, :2] * (side / n) + np.array([x0, y0], np.float64) - 0.5
        return np.asarray(self._weights @ xy, np.float64)


_FIX_LOCK = threading.Lock()
_FIX_MODELS: dict[str, FixPoint] = {}


def fix_point_model(name: str | None = None) -> FixPoint:
    """The fix point ``name`` (None: the active profile's ``mark_landmarks``), built once per
    process. Raises :class:`~faceplate.core.profile.ProfileError` when the active profile
    excludes its model."""
    key = active_profile().mark_landmarks if name is None else name
    FIX_POINTS.entry(key)  # unknown names: a ConfigError listing the valid ones
    with _FIX_LOCK:
        model = _FIX_MODELS.get(key)
        if model is None:
            model = FIX_POINTS.create(key)
            _FIX_MODELS[key] = model
        return model


def _shape_predictor() -> Any:
    """The active profile's embedding fix point (loaded now)."""
    return fix_point_model()


def refine_landmarks(frame: np.ndarray, seed_box: Any, *, frame_is_linear: bool = False,
                     patch: tuple[tuple[int, int, int, int], np.ndarray] | None = None,
                     iterations: int | None = None,
                     fix_point: str | None = None) -> np.ndarray | None:
    """Re-find a face's 68 landmarks on ``frame`` with a fix point's landmark model, from a box.

    The embedder's procedure, also the verifier's (:func:`frame_landmarks`): the area around
    the box is converted to uint8 display sRGB, area-downscaled so that the box is about
    ``REFINE_BOX`` pixels, and aligned from the box, then ``iterations`` times more from the
    box fitted to the previous landmarks (a fixed point of "landmarks → box → landmarks").

    Args:
        frame: H×W×3/4 uint8 display sRGB, or float32 display sRGB / scene-linear.
        seed_box: :class:`faceplate.core.types.BBox` in dlib's frontal-face convention (a
            detector's box).
        frame_is_linear: Whether a float frame is scene-linear.
        patch: ((x0, y0, x1, y1), pixels): align as if this box of the frame held these
            pixels (float32, the frame's colour space; :func:`embed_in_frame`'s composite).
        iterations: At most this many extra runs from the landmarks' own box (None:
            ``REFINE_ITERATIONS``).
        fix_point: The landmark model (a :data:`FIX_POINTS` name; None: the active profile's
            ``mark_landmarks``, the embedder's).

    Returns:
        68×2 float64 (x, y) frame pixels, or None when the box is degenerate or off the frame.
    """
    h, w = frame.shape[:2]
    if seed_box.w < 4 or seed_box.h < 4:
        return None
    cx, cy = seed_box.center
    size = float(seed_box.size)
    reach = REFINE_REACH * size
    f = max(1, int(size / REFINE_BOX))  # integer area factor: OpenCV's fast path
    # The region's corners on multiples of f: the area blocks are the frame grid's own, so
    # any seed box (the embedder's, the verifier's) sees the same downscaled pixels.
    x0 = max(0, int(math.floor((cx - reach) / f)) * f)
    y0 = max(0, int(math.floor((cy - reach) / f)) * f)
    x1, y1 = min(w, int(math.ceil(cx + reach))), min(h, int(math.ceil(cy + reach)))
    if x1 - x0 < 8 or y1 - y0 < 8:
        return None
    region = frame[y0:y1, x0:x1, :3]
    if region.dtype != np.uint8 or patch is not None:
        disp = np.clip(_display_region(region, frame_is_linear), 0.0, 1.0)
        if patch is not None:
            (px0, py0, px1, py1), pix = patch
            ix0, iy0 = max(px0, x0), max(py0, y0)
            ix1, iy1 = min(px1, x1), min(py1, y1)
            if ix1 > ix0 and iy1 > iy0:
                lin = frame_is_linear and frame.dtype != np.uint8
                disp[iy0 - y0:iy1 - y0, ix0 - x0:ix1 - x0] = np.clip(_display_region(
                    pix[iy0 - py0:iy1 - py0, ix0 - px0:ix1 - px0, :3], lin), 0.0, 1.0)
        region = (disp * 255.0 + 0.5).astype(np.uint8)
    if f > 1:
        rh, rw = (y1 - y0) // f, (x1 - x0) // f
        if rw < 8 or rh < 8:
            return None
        img = cv2.resize(region[:rh * f, :rw * f], (rw, rh), interpolation=cv2.INTER_AREA)
    else:
        img = np.ascontiguousarray(region)
    kx = ky = 1.0 / f
    scale = np.array([kx, ky])
    origin = np.array([x0, y0], np.float64)
    model = fix_point_model(fix_point)
    bx, by, bw, bh = seed_box.x, seed_box.y, seed_box.w, seed_box.h
    runs: list[tuple[tuple[int, int, int, int], np.ndarray]] = []
    extra = REFINE_ITERATIONS if iterations is None else iterations
    for _ in range(1 + max(0, extra)):
        # The box in resampled pixels, as a dlib rectangle (inclusive pixel indices).
        left, top = (bx - x0) * kx, (by - y0) * ky
        r = (round(left), round(top), round(left + bw * kx) - 1, round(top + bh * ky) - 1)
        seen = [i for i, (ri, _) in enumerate(runs) if ri == r]
        if seen:
            # A fixed point (the same rectangle gives the same landmarks) or a cycle: the
            # mean over the cycle, whichever rectangle it was entered from.
            return np.mean([lm for _, lm in runs[seen[0]:]], axis=0)
        # Pixel-index landmarks (unrounded); pixel centres sit at +0.5 for us.
        pts = model.predict(img, r) + 0.5
        if not np.isfinite(pts).all():  # a broken model file: fall back to the record's
            return None
        lm = pts / scale + origin
        runs.append((r, lm))
        # The box the mean face would fill at these landmarks: re-aligning from it forgets
        # the detector's own box (its size and offset), so both sides reach the same point.
        nb = _box_from_landmarks(lm)
        bx, by, bw, bh = nb.x, nb.y, nb.w, nb.h
    return runs[-1][1]


def frame_landmarks(frame: np.ndarray, extractor: Any | None = None, *,
                    refine: bool = True, fix_point: str | None = None) -> list[np.ndarray]:
    """68-point landmarks of every face in a display-sRGB frame, in the extractor's order.

    The extractor's detector finds the faces; with ``refine`` each face's landmarks are then
    :func:`refine_landmarks` from its detector box with ``fix_point`` (None: the active
    profile's embedding fix point; the extractor's landmarks when that fails).
    """
    from faceplate.core.types import Frame, FrameInfo

    ex = extractor if extractor is not None else default_session().extractor()
    rgb = _u8_rgb(frame)
    h, w = rgb.shape[:2]
    res = ex.process(Frame(FrameInfo(0, "frame", None, w, h, 0), rgb))
    out = []
    for r in res.records:
        lm = refine_landmarks(rgb, r.bbox, fix_point=fix_point) if refine else None
        out.append(lm if lm is not None else r.landmarks.astype(np.float64))
    return out
