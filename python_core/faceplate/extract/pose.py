"""Head pose (yaw, pitch, roll) from 68 iBUG landmarks, by perspective-n-point on a 3-D face model.

Conventions (``core.types.FaceRecord``), in degrees:
    * yaw: positive when the face turns to its own left, i.e. the nose moves towards image right;
    * pitch: positive when the face looks up;
    * roll: positive when the face is rotated counter-clockwise as seen in the image (y down).

The rotation ``R`` (model → camera, model axes x right, y down, z away from the camera) is
decomposed as ``R = Rz(-roll) · Ry(-yaw) · Rx(-pitch)`` (angles about the camera axes x right,
y down, z forward, right-handed), so roll is applied last and equals the in-image rotation.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

from faceplate.core.geometry import INNER
from faceplate.core.validate import check_points

# The 3-D iBUG-68 model, derived by tools/derive_mesh68.py from the MediaPipe face mesh: the
# mesh → 68 mapping (extract/align/mesh68.py MESH_TO_68) applied to the mesh x, y and z (depth in
# the x pixel scale) of near-frontal sample faces, 3-D Procrustes-aligned, averaged, made exactly
# left/right symmetric with the iBUG mirror permutation, centred on its centroid and scaled to a
# unit distance between the outer eye corners (36, 45). Axes: x right, y down, z away from the
# camera (the nose tip has the smallest z). Frontal (yaw = pitch = roll = 0) is the pose of the
# average near-frontal sample face.
# 3-D model from 33 near-frontal faces
MODEL_68_3D = np.array([
    [-0.76756, -0.36032, 0.62568],
    [-0.76498, -0.15541, 0.48911],
    [-0.74832, 0.05228, 0.45349],
    [-0.70425, 0.24225, 0.38210],
    [-0.61098, 0.45016, 0.44940],
    [-0.49561, 0.58615, 0.29311],
    [-0.34356, 0.71255, 0.15006],
    [-0.17649, 0.80066, 0.02612],
    [0.00000, 0.82895, -0.01217],
    [0.17649, 0.80066, 0.02612],
    [0.34356, 0.71255, 0.15006],
    [0.49561, 0.58615, 0.29311],
    [0.61098, 0.45016, 0.44940],
    [0.70425, 0.24225, 0.38210],
    [0.74832, 0.05228, 0.45349],
    [0.76498, -0.15541, 0.48911],
    [0.76756, -0.36032, 0.62568],
    [-0.65859, -0.56671, 0.13715],
    [-0.57142, -0.66813, 0.02443],
    [-0.42651, -0.71267, -0.07556],
    [-0.27520, -0.70382, -0.14153],
    [-0.13436, -0.64552, -0.15365],
    [0.13436, -0.64552, -0.15365],
    [0.27520, -0.70382, -0.14153],
    [0.42651, -0.71267, -0.07556],
    [0.57142, -0.66813, 0.02443],
    [0.65859, -0.56671, 0.13715],
    [0.00000, -0.45869, -0.19198],
    [0.00000, -0.32756, -0.28722],
    [0.00000, -0.19848, -0.39678],
    [0.00000, -0.07005, -0.45382],
    [-0.16723, 0.03966, -0.22341],
    [-0.08658, 0.07267, -0.24790],
    [0.00000, 0.09599, -0.26699],
    [0.08658, 0.07267, -0.24790],
    [0.16723, 0.03966, -0.22341],
    [-0.49986, -0.40306, 0.04886],
    [-0.41139, -0.45132, -0.00730],
    [-0.31362, -0.45417, -0.02610],
    [-0.21174, -0.40046, 0.00777],
    [-0.30954, -0.38388, -0.02222],
    [-0.41321, -0.38039, -0.00213],
    [0.21174, -0.40046, 0.00777],
    [0.31362, -0.45417, -0.02610],
    [0.41139, -0.45132, -0.00730],
    [0.49986, -0.40306, 0.04886],
    [0.41321, -0.38039, -0.00213],
    [0.30954, -0.38388, -0.02222],
    [-0.33313, 0.30226, -0.00704],
    [-0.21901, 0.24563, -0.16328],
    [-0.08862, 0.22243, -0.22824],
    [0.00000, 0.24370, -0.22644],
    [0.08862, 0.22243, -0.22824],
    [0.21901, 0.24563, -0.16328],
    [0.33313, 0.30226, -0.00704],
    [0.21996, 0.43370, -0.08142],
    [0.09627, 0.49124, -0.15539],
    [0.00000, 0.50360, -0.14274],
    [-0.09627, 0.49124, -0.15539],
    [-0.21996, 0.43370, -0.08142],
    [-0.29524, 0.30331, -0.03738],
    [-0.09029, 0.28835, -0.18937],
    [0.00000, 0.29962, -0.18715],
    [0.09029, 0.28835, -0.18937],
    [0.29524, 0.30331, -0.03738],
    [0.09579, 0.38322, -0.14770],
    [0.00000, 0.40166, -0.19004],
    [-0.09579, 0.38322, -0.14770],
], dtype=np.float64)

#: Points used for the fit: the 51 inner points. The jaw (0–16) is a silhouette that slides with
#: yaw, so a fixed 3-D jaw would bias the estimate.
POSE_POINTS = np.arange(68)[INNER]


def camera_matrix(frame_size: tuple[int, int], centre: tuple[float, float]) -> np.ndarray:
    """Pinhole intrinsics assumed for a face: focal length = the frame's long side.

    The principal point is put on the face (``centre``), so the angles are measured against the
    line of sight: a face looking straight at the camera reads 0 wherever it sits in the frame
    (with the true frame centre, a face near the top edge looking into the lens would read as
    pitched down by the angle between the optical axis and its line of sight).

    Args:
        frame_size: ``(width, height)`` in pixels.
        centre: (x, y) principal point in frame pixels (pixel centres at +0.5).

    Returns:
        3×3 float64 matrix in our pixel convention.
    """
    w, h = frame_size
    if w < 1 or h < 1:
        raise ValueError(f"frame_size: expected positive (width, height), got {frame_size}")
    f = float(max(w, h))
    return np.array([[f, 0.0, centre[0]], [0.0, f, centre[1]], [0.0, 0.0, 1.0]])


def rotation_to_angles(rot: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees from a 3×3 model → camera rotation (module conventions)."""
    theta = np.arcsin(np.clip(-rot[2, 0], -1.0, 1.0))
    phi = np.arctan2(rot[2, 1], rot[2, 2])
    psi = np.arctan2(rot[1, 0], rot[0, 0])
    return (float(-np.degrees(theta)), float(-np.degrees(phi)), float(-np.degrees(psi)))


def angles_to_rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """The 3×3 model → camera rotation for (yaw, pitch, roll) in degrees; inverse of the above."""
    t, p, r = np.radians([-yaw, -pitch, -roll])
    rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    ry = np.array([[np.cos(t), 0, np.sin(t)], [0, 1, 0], [-np.sin(t), 0, np.cos(t)]])
    rz = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    return rz @ ry @ rx


def estimate_pose(landmarks: np.ndarray, frame_size: tuple[int, int]) -> tuple[float, float, float]:
    """Yaw, pitch and roll of a face in degrees (module docstring for the signs).

    Args:
        landmarks: 68×2 (x, y) frame pixels, iBUG order, pixel centres at +0.5.
        frame_size: ``(width, height)`` of the frame in pixels (not NumPy's (rows, cols)).

    Returns:
        ``(yaw, pitch, roll)`` in degrees; yaw and pitch in [-90, 90], roll in (-180, 180].

    Raises:
        ValueError: ``landmarks`` is not 68×2 finite, or ``frame_size`` is not positive.
    """
    pts = check_points(landmarks, 68).astype(np.float64)
    return _pose(pts.tobytes(), (frame_size[0], frame_size[1]))


@functools.lru_cache(maxsize=16)
def _pose(points: bytes, frame_size: tuple[int, int]) -> tuple[float, float, float]:
    """:func:`estimate_pose` of 68×2 float64 points given as bytes (memoised: extraction asks
    again for the same face, e.g. following a face checks its pose before its record gets
    it)."""
    pts = np.frombuffer(points, np.float64).reshape(68, 2)[POSE_POINTS]
    obj = MODEL_68_3D[POSE_POINTS]
    centre = pts.mean(axis=0)
    cam = camera_matrix(frame_size, (float(centre[0]), float(centre[1])))
    # Start from the model facing the camera on the optical axis at the distance its size
    # implies, then refine with Levenberg-Marquardt.
    iod = float(np.linalg.norm(pts[45 - 17] - pts[36 - 17])) or 1.0
    tvec0 = np.array([0.0, 0.0, cam[0, 0] / iod])
    rvec0 = np.zeros(3)
    ok, rvec, _ = cv2.solvePnP(obj, pts, cam, None, rvec0.reshape(3, 1), tvec0.reshape(3, 1),
                               useExtrinsicGuess=True, flags=cv2.SOLVEPNP_ITERATIVE)
    if not ok:
        raise ValueError("landmarks: the pose fit did not converge (degenerate points)")
    rot, _ = cv2.Rodrigues(rvec)
    return rotation_to_angles(rot)
