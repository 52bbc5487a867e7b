"""Mesh region maskers: face oval, skin, eyes, brows and mouth from mediapipe's 468-point mesh.

Each masker fills closed vertex loops of the face mesh (see :mod:`mesh_topology`) in crop pixels:

===========  ==============================================================================
masker       region
===========  ==============================================================================
mesh_oval    the mesh silhouette: forehead top to chin, temple to temple
mesh_skin    the oval minus the eye openings and the lips (optionally minus the brows)
mesh_eyes    both eyelid openings
mesh_brows   both brows
mesh_mouth   the lips (outer lip line; the open mouth included)
===========  ==============================================================================

Where the mesh comes from, in order:

1. the ``mesh`` argument (N×3 frame pixels from the aligner, N = 468 or 478 with irises):
   x, y are mapped into the crop with the crop matrix; z is ignored;
2. otherwise (or when the supplied mesh disagrees with the landmarks, see 3.) mediapipe's
   FaceMesh (static-image mode) is run on the aligned crop itself: the crop is a well-framed
   upright face, which the face mesh finds reliably (on the sample faces at 101-512 px and every
   centering, its eye centres land within 5 % of the interocular distance of the 68-point ones);
   when the plain crop fails it is retried with a 25 % black border;
3. when neither gives a mesh that agrees with the 68 landmarks (eye centres within 30 % of the
   interocular distance), the masker falls back to the equivalent 68-point shapes from
   :mod:`landmarks`: oval → the ``extended`` hulls; skin → that minus the eye and lip hulls;
   eyes → the two 6-point eye loops; brows → bands around the 5-point brow lines; mouth → the
   12-point outer lip loop. The fallback never fails, so a masker always returns a mask.

The mediapipe graph is created lazily, once per masker instance, and is used under a lock
(mediapipe graphs are not re-entrant).
"""

from __future__ import annotations

import threading
from abc import abstractmethod
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from faceplate.core.config import Config, option
from faceplate.core.geometry import LEFT_EYE as LM_LEFT_EYE
from faceplate.core.geometry import RIGHT_EYE as LM_RIGHT_EYE
from faceplate.core.geometry import transform_points
from faceplate.core.validate import check_matrix
from faceplate.extract import mediapipe_graphs
from faceplate.extract.mask import mesh_topology as topo
from faceplate.extract.mask.base import MASKERS, Masker
from faceplate.extract.mask.landmarks import (
    brow_regions,
    crop_points,
    eye_regions,
    mouth_region,
    oval_groups,
)
from faceplate.extract.mask.raster import Raster, grow

#: A mesh is accepted when both its eye centres lie within this fraction of the interocular
#: distance from the 68-point eye centres.
AGREEMENT = 0.3
#: Border added around the crop (fraction of its side) when the plain crop gives no mesh.
RETRY_PAD = 0.25

_MESH_RIGHT_EYE = np.array(topo.RIGHT_EYE)
_MESH_LEFT_EYE = np.array(topo.LEFT_EYE)


@dataclass(frozen=True)
class MeshConfig(Config):
    min_confidence: float = option(
        0.5, "Minimum face-detection confidence for the face mesh run on the aligned crop.",
        minimum=0.0, maximum=1.0)
    grow: float = option(
        0.0, "Grow (positive) or shrink (negative) the region by this percentage of the crop side.",
        minimum=-20.0, maximum=20.0)


@dataclass(frozen=True)
class MeshSkinConfig(MeshConfig):
    exclude_brows: bool = option(False, "Also cut the brows out of the skin region.")


class MeshRegionMasker(Masker):
    """Base of the mesh maskers: finds the mesh in crop pixels, then draws one region."""

    cfg: MeshConfig

    def __init__(self, cfg: MeshConfig) -> None:
        super().__init__(cfg)
        self._lock = threading.Lock()
        self._graph: Any = None

    # -- the mesh -----------------------------------------------------------------------------

    def _run_graph(self, rgb: np.ndarray) -> np.ndarray | None:
        """468×2 (x, y) pixel points of the first face mediapipe finds in ``rgb``, or None."""
        with self._lock:
            if self._graph is None:
                self._graph = mediapipe_graphs.face_mesh(1, self.cfg.min_confidence)
            result = self._graph.process(np.ascontiguousarray(rgb))
        faces = result.multi_face_landmarks
        if not faces:
            return None
        h, w = rgb.shape[:2]
        # mediapipe's normalised coordinates run 0..1 over the image edges, so x·w is already a
        # +0.5-centred pixel coordinate.
        pts = np.array([(p.x * w, p.y * h) for p in faces[0].landmark], dtype=np.float64)
        return pts[: topo.MESH_VERTICES]

    def mesh_in_crop(self, crop: np.ndarray, landmarks: np.ndarray, matrix: np.ndarray,
                     mesh: np.ndarray | None = None) -> np.ndarray | None:
        """The face mesh in crop pixels, or None when no usable mesh is found.

        Args:
            crop: size×size×3 uint8 RGB aligned face.
            landmarks: 68×2 float32 frame-pixel landmarks.
            matrix: 2×3 frame → crop matrix.
            mesh: Optional N×3 (or N×2) frame-pixel mesh from the aligner, N ≥ 468.

        Returns:
            468×2 float64 (x, y) crop pixels, pixel centres at +0.5, or None (fallback needed).
        """
        size, lm = crop_points(crop, landmarks, matrix)
        if mesh is not None:
            arr = np.asarray(mesh, dtype=np.float64)
            if arr.ndim != 2 or arr.shape[0] < topo.MESH_VERTICES or arr.shape[1] not in (2, 3):
                raise ValueError(f"mesh: expected N×3 points with N ≥ 468, got shape {arr.shape}")
            pts = transform_points(arr[: topo.MESH_VERTICES, :2], check_matrix(matrix))
            if np.all(np.isfinite(pts)) and _agrees(pts, lm):
                return pts
        found = self._run_graph(crop)
        if found is not None and _agrees(found, lm):
            return found
        pad = max(1, int(round(RETRY_PAD * size)))
        found = self._run_graph(
            cv2.copyMakeBorder(crop, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0))
        if found is not None and _agrees(found - pad, lm):
            return found - pad
        return None

    # -- drawing ------------------------------------------------------------------------------

    def mask(self, crop: np.ndarray, landmarks: np.ndarray, matrix: np.ndarray,
             mesh: np.ndarray | None = None) -> np.ndarray:
        """size×size uint8 mask of the region (0 outside, 255 inside, anti-aliased edges).

        Uses ``mesh`` (frame pixels) when given, else the mesh of the crop, else the 68-point
        fallback (see the module doc). ``crop`` is not modified.
        """
        size, lm = crop_points(crop, landmarks, matrix)
        pts = self.mesh_in_crop(crop, landmarks, matrix, mesh)
        raster = Raster(size)
        if pts is not None:
            self.draw_mesh(raster, pts)
        else:
            self.draw_landmarks(raster, lm)
        return grow(raster.result(), self.cfg.grow / 100.0 * size)

    @abstractmethod
    def draw_mesh(self, raster: Raster, pts: np.ndarray) -> None:
        """Draw the region from 468×2 crop-pixel mesh points."""

    @abstractmethod
    def draw_landmarks(self, raster: Raster, lm: np.ndarray) -> None:
        """Draw the 68-point fallback region from 68×2 crop-pixel landmarks."""

    def close(self) -> None:
        """Release the mediapipe graph (it is re-created on the next use)."""
        with self._lock:
            if self._graph is not None:
                self._graph.close()
                self._graph = None


def _agrees(pts: np.ndarray, lm: np.ndarray) -> bool:
    """Whether mesh eye centres match the 68-point eye centres (see :data:`AGREEMENT`)."""
    r_lm, l_lm = lm[LM_RIGHT_EYE].mean(axis=0), lm[LM_LEFT_EYE].mean(axis=0)
    iod = float(np.linalg.norm(l_lm - r_lm))
    if iod <= 1e-6:
        return False
    err = max(float(np.linalg.norm(pts[_MESH_RIGHT_EYE].mean(axis=0) - r_lm)),
              float(np.linalg.norm(pts[_MESH_LEFT_EYE].mean(axis=0) - l_lm)))
    return err <= AGREEMENT * iod


def _loop(pts: np.ndarray, loop: tuple[int, ...]) -> np.ndarray:
    return pts[np.asarray(loop)]


@MASKERS.register("mesh_oval", config=MeshConfig)
class MeshOvalMasker(MeshRegionMasker):
    """Face oval: the silhouette of mediapipe's face mesh, forehead to chin."""

    def draw_mesh(self, raster: Raster, pts: np.ndarray) -> None:
        raster.fill_polygon(_loop(pts, topo.FACE_OVAL), 255)

    def draw_landmarks(self, raster: Raster, lm: np.ndarray) -> None:
        for group in oval_groups(lm):
            raster.fill_hull(group)


@MASKERS.register("mesh_skin", config=MeshSkinConfig)
class MeshSkinMasker(MeshRegionMasker):
    """Skin: the face oval without the eye openings and lips (optionally without brows)."""

    cfg: MeshSkinConfig

    def draw_mesh(self, raster: Raster, pts: np.ndarray) -> None:
        raster.fill_polygon(_loop(pts, topo.FACE_OVAL), 255)
        holes = [topo.RIGHT_EYE, topo.LEFT_EYE, topo.LIPS_OUTER]
        if self.cfg.exclude_brows:
            holes += [topo.RIGHT_BROW, topo.LEFT_BROW]
        for hole in holes:
            raster.fill_polygon(_loop(pts, hole), 0)

    def draw_landmarks(self, raster: Raster, lm: np.ndarray) -> None:
        for group in oval_groups(lm):
            raster.fill_hull(group)
        for region in eye_regions(lm) + [mouth_region(lm)]:
            raster.fill_hull(region, 0)
        if self.cfg.exclude_brows:
            for band in brow_regions(lm):
                raster.fill_polygon(band, 0)


@MASKERS.register("mesh_eyes", config=MeshConfig)
class MeshEyesMasker(MeshRegionMasker):
    """Both eyelid openings from the face mesh."""

    def draw_mesh(self, raster: Raster, pts: np.ndarray) -> None:
        for loop in (topo.RIGHT_EYE, topo.LEFT_EYE):
            raster.fill_polygon(_loop(pts, loop), 255)

    def draw_landmarks(self, raster: Raster, lm: np.ndarray) -> None:
        for region in eye_regions(lm):
            raster.fill_polygon(region, 255)


@MASKERS.register("mesh_brows", config=MeshConfig)
class MeshBrowsMasker(MeshRegionMasker):
    """Both brows from the face mesh."""

    def draw_mesh(self, raster: Raster, pts: np.ndarray) -> None:
        for loop in (topo.RIGHT_BROW, topo.LEFT_BROW):
            raster.fill_polygon(_loop(pts, loop), 255)

    def draw_landmarks(self, raster: Raster, lm: np.ndarray) -> None:
        for band in brow_regions(lm):
            raster.fill_polygon(band, 255)


@MASKERS.register("mesh_mouth", config=MeshConfig)
class MeshMouthMasker(MeshRegionMasker):
    """The lips (outer lip line) from the face mesh, open mouth included."""

    def draw_mesh(self, raster: Raster, pts: np.ndarray) -> None:
        raster.fill_polygon(_loop(pts, topo.LIPS_OUTER), 255)

    def draw_landmarks(self, raster: Raster, lm: np.ndarray) -> None:
        raster.fill_polygon(mouth_region(lm), 255)
