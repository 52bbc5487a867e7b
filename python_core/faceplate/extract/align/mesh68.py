"""MediaPipe face mesh (468 vertices) with a derived mapping to the 68-point iBUG layout.

The ``mesh68`` aligner runs MediaPipe's face mesh (its own BlazeFace detector, then the
468-vertex mesh regressor) on a square crop around each detection box, keeps the mesh nearest the
box, maps it back to frame pixels (``Alignment.mesh``: 468×3, x and y in frame pixels, z the
mesh's relative depth in the same pixel scale, smaller = nearer the camera) and converts it to
the 68 iBUG points with the fixed table :data:`MESH_TO_68`.

How the table was made (``tools/derive_mesh68.py``): dlib's HOG detector and the ``dlib68``
predictor gave reference iBUG points on 148 faces (the sample stills and every 4th frame of
``WolfgangLanger_Pexels.mp4`` and ``single_face.mp4``); the mesh ran on the same boxes. Each face
was normalised by the similarity taking its dlib inner points to the mean-face template (inner
face ≈ 1 unit). For each iBUG point we kept the single mesh vertex with the least mean distance,
or a convex combination (non-negative least squares, weights summing to 1) of 2–3 of the 12
nearest vertices when that lowered the RMS error by more than 5 % per added vertex. The comment
on each row gives the RMS residual in template units. The table was fitted per point, so left and
right rows are not exact mirror images of each other.

Caveats:
    * iBUG jaw points (0–16) are *silhouette* points: annotators put them on the visible outline
      of the cheek and chin, so they slide over the skin as the head yaws. Mesh vertices are fixed
      on the surface, so mapped jaw points agree with dlib's on frontal faces and drift towards
      the inside of the outline on turned faces (residual 0.05–0.07 template units, against
      0.015–0.04 for the inner points). The brows have a milder version of the same problem
      (iBUG brows follow the hair line of the brow, the mesh its skin).
    * The residual includes dlib's own error and mouth-shape differences between annotators,
      so it is an upper bound on the mapping error, not a measure of it alone.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from faceplate.core.config import option
from faceplate.core.types import BBox
from faceplate.extract import mediapipe_graphs
from faceplate.extract.align.base import ALIGNERS, Aligner, AlignerConfig, Alignment

#: MESH_TO_68[k] = ((vertex, weight), ...) for iBUG point k; weights are non-negative, sum to 1.
MESH_TO_68: tuple[tuple[tuple[int, float], ...], ...] = (
    ((127, 1.000),),  # 0 jaw, rms 0.0469
    ((137, 0.700), (127, 0.300),),  # 1 jaw, rms 0.0500
    ((177, 0.702), (93, 0.298),),  # 2 jaw, rms 0.0519
    ((215, 1.000),),  # 3 jaw, rms 0.0589
    ((172, 1.000),),  # 4 jaw, rms 0.0636
    ((136, 0.648), (150, 0.352),),  # 5 jaw, rms 0.0675
    ((149, 1.000),),  # 6 jaw, rms 0.0701
    ((148, 0.706), (176, 0.294),),  # 7 jaw, rms 0.0690
    ((152, 1.000),),  # 8 jaw, rms 0.0655
    ((377, 0.670), (400, 0.330),),  # 9 jaw, rms 0.0669
    ((378, 1.000),),  # 10 jaw, rms 0.0616
    ((365, 0.651), (379, 0.349),),  # 11 jaw, rms 0.0539
    ((397, 1.000),),  # 12 jaw, rms 0.0545
    ((435, 1.000),),  # 13 jaw, rms 0.0503
    ((401, 0.710), (366, 0.290),),  # 14 jaw, rms 0.0494
    ((366, 0.676), (356, 0.324),),  # 15 jaw, rms 0.0481
    ((356, 1.000),),  # 16 jaw, rms 0.0500
    ((70, 0.725), (139, 0.275),),  # 17 right brow, rms 0.0205
    ((53, 0.702), (54, 0.298),),  # 18 right brow, rms 0.0211
    ((66, 0.654), (68, 0.346),),  # 19 right brow, rms 0.0238
    ((65, 0.703), (108, 0.297),),  # 20 right brow, rms 0.0228
    ((9, 0.528), (222, 0.390), (108, 0.082),),  # 21 right brow, rms 0.0188
    ((336, 0.771), (168, 0.229),),  # 22 left brow, rms 0.0254
    ((296, 0.629), (336, 0.371),),  # 23 left brow, rms 0.0245
    ((334, 0.670), (296, 0.330),),  # 24 left brow, rms 0.0253
    ((293, 0.908), (444, 0.092),),  # 25 left brow, rms 0.0237
    ((300, 0.634), (383, 0.366),),  # 26 left brow, rms 0.0222
    ((168, 0.681), (6, 0.319),),  # 27 nose bridge, rms 0.0158
    ((6, 0.539), (195, 0.461),),  # 28 nose bridge, rms 0.0173
    ((5, 0.600), (195, 0.400),),  # 29 nose bridge, rms 0.0218
    ((4, 1.000),),  # 30 nose bridge, rms 0.0284
    ((240, 0.809), (60, 0.191),),  # 31 nose base, rms 0.0217
    ((97, 1.000),),  # 32 nose base, rms 0.0229
    ((164, 0.581), (141, 0.419),),  # 33 nose base, rms 0.0233
    ((326, 0.781), (370, 0.219),),  # 34 nose base, rms 0.0223
    ((455, 0.590), (326, 0.410),),  # 35 nose base, rms 0.0237
    ((7, 0.720), (130, 0.280),),  # 36 right eye, rms 0.0172
    ((160, 0.855), (158, 0.145),),  # 37 right eye, rms 0.0259
    ((158, 1.000),),  # 38 right eye, rms 0.0242
    ((155, 1.000),),  # 39 right eye, rms 0.0158
    ((23, 0.562), (157, 0.438),),  # 40 right eye, rms 0.0183
    ((144, 1.000),),  # 41 right eye, rms 0.0192
    ((362, 0.867), (452, 0.133),),  # 42 left eye, rms 0.0145
    ((385, 0.877), (256, 0.123),),  # 43 left eye, rms 0.0236
    ((386, 0.743), (249, 0.257),),  # 44 left eye, rms 0.0273
    ((263, 0.136), (466, 0.478), (339, 0.386),),  # 45 left eye, rms 0.0147
    ((387, 0.526), (450, 0.474),),  # 46 left eye, rms 0.0171
    ((451, 0.511), (385, 0.489),),  # 47 left eye, rms 0.0169
    ((61, 1.000),),  # 48 outer lips, rms 0.0423
    ((39, 0.724), (184, 0.276),),  # 49 outer lips, rms 0.0304
    ((38, 0.609), (167, 0.391),),  # 50 outer lips, rms 0.0269
    ((37, 0.520), (268, 0.480),),  # 51 outer lips, rms 0.0279
    ((267, 0.802), (12, 0.198),),  # 52 outer lips, rms 0.0271
    ((269, 0.607), (272, 0.393),),  # 53 outer lips, rms 0.0283
    ((306, 0.807), (273, 0.193),),  # 54 outer lips, rms 0.0278
    ((406, 0.569), (319, 0.431),),  # 55 outer lips, rms 0.0361
    ((314, 0.857), (18, 0.143),),  # 56 outer lips, rms 0.0403
    ((85, 0.059), (200, 0.490), (14, 0.451),),  # 57 outer lips, rms 0.0405
    ((180, 0.346), (16, 0.306), (201, 0.348),),  # 58 outer lips, rms 0.0422
    ((182, 0.584), (95, 0.416),),  # 59 outer lips, rms 0.0432
    ((62, 1.000),),  # 60 inner lips, rms 0.0399
    ((38, 0.862), (178, 0.138),),  # 61 inner lips, rms 0.0339
    ((13, 0.883), (87, 0.117),),  # 62 inner lips, rms 0.0326
    ((312, 1.000),),  # 63 inner lips, rms 0.0334
    ((407, 0.586), (375, 0.414),),  # 64 inner lips, rms 0.0300
    ((316, 0.869), (312, 0.131),),  # 65 inner lips, rms 0.0345
    ((16, 0.705), (13, 0.295),),  # 66 inner lips, rms 0.0359
    ((15, 0.524), (88, 0.476),),  # 67 inner lips, rms 0.0377
)


def _mapping_matrix() -> np.ndarray:
    w = np.zeros((68, 468), np.float64)
    for k, terms in enumerate(MESH_TO_68):
        for v, wt in terms:
            w[k, v] = wt
    return w / w.sum(axis=1, keepdims=True)  # the table is printed to 3 decimals


#: 68×468 float64 matrix: ``landmarks68 = MESH_WEIGHTS @ mesh[:, :2]`` (also works on x, y, z).
MESH_WEIGHTS = _mapping_matrix()


def mesh_to_68(mesh: np.ndarray) -> np.ndarray:
    """Map a 468×D mesh (D = 2 or 3, any coordinates) to 68×D iBUG points (float64)."""
    mesh = np.asarray(mesh, dtype=np.float64)
    if mesh.ndim != 2 or mesh.shape[0] != 468:
        raise ValueError(f"mesh: expected 468×D vertices, got shape {mesh.shape}")
    return MESH_WEIGHTS @ mesh


@dataclass(frozen=True)
class Mesh68Config(AlignerConfig):
    """MediaPipe face-mesh options (plus the shared aligner options)."""

    min_confidence: float = option(
        0.5, "Minimum MediaPipe face-detection confidence inside the crop.",
        minimum=0.0, maximum=1.0)


@ALIGNERS.register("mesh68", config=Mesh68Config)
class Mesh68(Aligner):
    """MediaPipe 468-vertex face mesh, mapped to 68 iBUG points (mesh kept on the Alignment)."""

    crop_margins = (0.6, 1.0, 0.3)

    def __init__(self, cfg: Mesh68Config) -> None:
        super().__init__(cfg)
        # Still-image mode: the crop moves with the detection box and one graph serves every
        # face of a frame, so the graph's own frame-to-frame tracking (video mode) would carry
        # a region of interest from another face or an out-of-date crop position.
        self._graph: Any = mediapipe_graphs.face_mesh(2, cfg.min_confidence)
        self._lock = threading.Lock()

    def close(self) -> None:
        """Release the MediaPipe graph (the instance is unusable afterwards)."""
        with self._lock:
            self._graph.close()

    def _align_crop(self, crop: np.ndarray, box: BBox) -> Alignment | None:
        side_h, side_w = crop.shape[:2]
        with self._lock:
            result = self._graph.process(crop)
        faces = result.multi_face_landmarks
        if not faces:
            return None
        meshes = []
        for face in faces:
            # MediaPipe normalises x by the width and y by the height (edges at 0 and 1, which is
            # our pixel-centre-at-+0.5 convention once scaled); z uses the x scale.
            a = np.array([[p.x, p.y, p.z] for p in face.landmark], np.float64)
            meshes.append(a[:468] * np.array([side_w, side_h, side_w]))
        cx, cy = box.center
        dist = [float(np.hypot(*(m[:, :2].mean(0) - (cx, cy)))) for m in meshes]
        best = meshes[int(np.argmin(dist))]
        if min(dist) > 0.5 * box.size:  # the mesh found some other face in the crop
            return None
        lm = mesh_to_68(best[:, :2]).astype(np.float32)
        return Alignment(lm, 1.0, best.astype(np.float32))
