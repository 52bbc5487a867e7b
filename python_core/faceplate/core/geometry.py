"""Face geometry: similarity fits, the 68-point mean face, crop matrices and their inverse.

Convention:
    Points are (x, y) in pixel coordinates, x right, y down, pixel centres at +0.5 (the centre of
    the top-left pixel is (0.5, 0.5)). A 2×3 affine ``M`` maps a source point ``p`` to
    ``M[:, :2] @ p + M[:, 2]``. Crop matrices map **frame → crop**. OpenCV's ``warpAffine`` uses
    integer pixel centres, so :func:`to_cv2` converts a matrix before warping.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from faceplate.core.types import Centering
from faceplate.core.validate import check_matrix, check_points

#: iBUG-68 left/right mirror permutation: ``pts_mirrored[MIRROR_68]`` restores iBUG order.
MIRROR_68 = np.array(
    list(range(16, -1, -1))  # jaw
    + [26, 25, 24, 23, 22, 21, 20, 19, 18, 17]  # brows
    + [27, 28, 29, 30]  # nose bridge
    + [35, 34, 33, 32, 31]  # nose base
    + [45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40]  # eyes
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55]  # outer lips
    + [64, 63, 62, 61, 60, 67, 66, 65],  # inner lips
    dtype=np.intp,
)

#: Index groups of the iBUG 68-point layout.
JAW = slice(0, 17)
RIGHT_BROW = slice(17, 22)  # the subject's right: image left
LEFT_BROW = slice(22, 27)
NOSE = slice(27, 36)
RIGHT_EYE = slice(36, 42)
LEFT_EYE = slice(42, 48)
MOUTH = slice(48, 68)
INNER = slice(17, 68)

# The mean face: derived by tools/derive_mean_face.py (generalised Procrustes over the sample
# media's dlib 68-point shapes, symmetrised), normalised so the 51 inner points fill [0, 1]².
# (derived from 149 faces.)
MEAN_FACE_68 = np.array([
    [-0.090989, 0.299794],
    [-0.093046, 0.466298],
    [-0.078530, 0.632762],
    [-0.049106, 0.797999],
    [0.006100, 0.954726],
    [0.094474, 1.094428],
    [0.208064, 1.209453],
    [0.344077, 1.291710],
    [0.500000, 1.316111],
    [0.655923, 1.291710],
    [0.791936, 1.209453],
    [0.905526, 1.094428],
    [0.993900, 0.954726],
    [1.049106, 0.797999],
    [1.078530, 0.632762],
    [1.093046, 0.466298],
    [1.090989, 0.299794],
    [0.000000, 0.123429],
    [0.070516, 0.037193],
    [0.177950, 0.000000],
    [0.292520, 0.006982],
    [0.399925, 0.052245],
    [0.600075, 0.052245],
    [0.707480, 0.006982],
    [0.822050, 0.000000],
    [0.929484, 0.037193],
    [1.000000, 0.123429],
    [0.500000, 0.206329],
    [0.500000, 0.308551],
    [0.500000, 0.407112],
    [0.500000, 0.510747],
    [0.372027, 0.605831],
    [0.434034, 0.626748],
    [0.500000, 0.646787],
    [0.565966, 0.626748],
    [0.627973, 0.605831],
    [0.118187, 0.258334],
    [0.186982, 0.221280],
    [0.264636, 0.218294],
    [0.340897, 0.259445],
    [0.264312, 0.272631],
    [0.186140, 0.275794],
    [0.659103, 0.259445],
    [0.735364, 0.218294],
    [0.813018, 0.221280],
    [0.881813, 0.258334],
    [0.813860, 0.275794],
    [0.735688, 0.272631],
    [0.236169, 0.831311],
    [0.329656, 0.774212],
    [0.430373, 0.752549],
    [0.500000, 0.768263],
    [0.569627, 0.752549],
    [0.670344, 0.774212],
    [0.763831, 0.831311],
    [0.674965, 0.943102],
    [0.576072, 0.992521],
    [0.500000, 1.000000],
    [0.423928, 0.992521],
    [0.325035, 0.943102],
    [0.271456, 0.835034],
    [0.429679, 0.819171],
    [0.500000, 0.825863],
    [0.570321, 0.819171],
    [0.728544, 0.835034],
    [0.572263, 0.903237],
    [0.500000, 0.911957],
    [0.427737, 0.903237],
], dtype=np.float64)


def umeyama(src: np.ndarray, dst: np.ndarray, estimate_scale: bool = True) -> np.ndarray:
    """Least-squares similarity (or rigid) transform mapping ``src`` onto ``dst``.

    Umeyama (1991), "Least-squares estimation of transformation parameters between two point
    patterns", with the reflection correction.

    Args:
        src: N×D float points.
        dst: N×D float points, same N and D.
        estimate_scale: Fit a uniform scale (similarity) or keep scale 1 (rigid).

    Returns:
        (D+1)×(D+1) float64 homogeneous matrix ``T`` with ``dst ≈ T[:D, :D] @ src + T[:D, D]``.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[0] < 2:
        raise ValueError(
            f"umeyama: need two N×D arrays of equal shape, got {src.shape}, {dst.shape}"
        )
    n, d = src.shape
    mu_s, mu_d = src.mean(axis=0), dst.mean(axis=0)
    s_c, d_c = src - mu_s, dst - mu_d
    if d == 2 and estimate_scale:
        # The plane's similarity in closed form: the same least-squares answer as the SVD
        # below (whose reflection correction picks the best proper rotation, as this does),
        # to rounding, several times faster (every crop and watermark matrix goes through it).
        den = float((s_c * s_c).sum())
        if den > 0.0:
            a = float((s_c * d_c).sum()) / den
            b = float((s_c[:, 0] * d_c[:, 1] - s_c[:, 1] * d_c[:, 0]).sum()) / den
            t = np.eye(3)
            t[:2, :2] = ((a, -b), (b, a))
            t[:2, 2] = mu_d - t[:2, :2] @ mu_s
            return t
    cov = d_c.T @ s_c / n
    u, sig, vt = np.linalg.svd(cov)
    e = np.ones(d)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        e[-1] = -1.0
    rot = u @ np.diag(e) @ vt
    var_s = (s_c**2).sum() / n
    scale = float((sig * e).sum() / var_s) if estimate_scale and var_s > 0 else 1.0
    t = np.eye(d + 1)
    t[:d, :d] = scale * rot
    t[:d, d] = mu_d - scale * rot @ mu_s
    return t


def invert_affine(m: np.ndarray) -> np.ndarray:
    """Exact inverse of a 2×3 affine matrix (float64).

    Raises:
        numpy.linalg.LinAlgError: a singular matrix.
    """
    m = check_matrix(m)
    a, b, c, d = m[0, 0], m[0, 1], m[1, 0], m[1, 1]
    det = a * d - b * c
    if det == 0.0:
        raise np.linalg.LinAlgError("Singular matrix")
    lin = np.array([[d, -b], [-c, a]]) / det
    return np.hstack([lin, -(lin @ m[:, 2])[:, None]])


def compose_affine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The 2×3 matrix applying ``b`` first, then ``a``."""
    a = check_matrix(a)
    out = a[:, :2] @ check_matrix(b)
    out[:, 2] += a[:, 2]
    return out


def transform_points(pts: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Apply 2×3 affine ``m`` to N×2 points; returns float64 N×2."""
    pts = np.asarray(pts, dtype=np.float64)
    return pts @ m[:, :2].T + m[:, 2]


def to_cv2(m: np.ndarray) -> np.ndarray:
    """Convert a pixel-centre-at-+0.5 matrix to OpenCV's integer-centre convention.

    ``cv2.warpAffine(img, to_cv2(M), ...)`` then samples the source exactly where ``M`` says.
    """
    m = check_matrix(m)
    out = m.copy()
    out[:, 2] += 0.5 * (m[:, 0] + m[:, 1]) - 0.5
    return out


#: Framing of each centering in mean-face template units: (centre x, centre y, side).
#: The 51 inner points of the template span [0, 1]²; "face" shows brows to chin, "whole_face"
#: adds the forehead (DeepFaceLab's WF), "head" the whole head with hair and ears.
CENTERING_FRAMES: dict[str, tuple[float, float, float]] = {
    "face": (0.5, 0.52, 1.75),
    "whole_face": (0.5, 0.42, 2.1),
    "head": (0.5, 0.36, 2.7),
}


def template_matrix(landmarks: np.ndarray) -> np.ndarray:
    """2×3 similarity mapping frame pixels to mean-face template units.

    Fitted on the 51 inner points only: the jaw line moves with pose and would skew the fit.

    Args:
        landmarks: 68×2 (x, y) frame pixels.
    """
    pts = check_points(landmarks, 68)
    return _template_matrix(pts.tobytes()).copy()


@functools.lru_cache(maxsize=16)
def _template_matrix(points: bytes) -> np.ndarray:
    """:func:`template_matrix` of 68×2 float32 points given as bytes (memoised: extraction
    asks again for the same face, for its crop, its masks, its filters and its follow check;
    callers get a copy)."""
    pts = np.frombuffer(points, np.float32).reshape(68, 2)
    return umeyama(pts[INNER], MEAN_FACE_68[INNER], True)[:2]


def template_to_crop(size: int, centering: Centering, coverage: float = 1.0) -> np.ndarray:
    """2×3 matrix mapping mean-face template units to ``size``×``size`` crop pixels."""
    cx, cy, side = CENTERING_FRAMES[centering]
    k = size / (side * coverage)
    return np.array([[k, 0.0, size / 2.0 - k * cx], [0.0, k, size / 2.0 - k * cy]])


def crop_matrix(landmarks: np.ndarray, size: int, centering: Centering = "face",
                coverage: float = 1.0) -> np.ndarray:
    """2×3 float64 matrix mapping frame pixels to an aligned ``size``×``size`` crop.

    Args:
        landmarks: 68×2 (x, y) frame pixels, iBUG order.
        size: Crop side in pixels.
        centering: "face", "whole_face" or "head" (see ``CENTERING_FRAMES``).
        coverage: Fraction of the centering's frame to keep (1.0 = all; 0.8 zooms in).

    Returns:
        M with crop = M @ [x, y, 1]; invert with :func:`invert_affine` for crop → frame.
    """
    if size < 1:
        raise ValueError(f"crop size must be positive, got {size}")
    if not 0.1 <= coverage <= 1.0:
        raise ValueError(f"coverage must be in [0.1, 1], got {coverage}")
    return compose_affine(template_to_crop(size, centering, coverage), template_matrix(landmarks))


def recentre(matrix: np.ndarray, size: int, src: Centering, dst: Centering,
             dst_size: int | None = None) -> np.ndarray:
    """Turn a ``src``-centering crop matrix into the ``dst`` one for the same face.

    Both centerings are fixed framings of the same template, so the conversion is exact.
    """
    dst_size = size if dst_size is None else dst_size
    crop_to_tmpl = invert_affine(template_to_crop(size, src))
    return compose_affine(template_to_crop(dst_size, dst), compose_affine(crop_to_tmpl, matrix))


def matrix_scale(m: np.ndarray) -> float:
    """The uniform scale of a similarity matrix (sqrt of |det| of its linear part)."""
    m = np.asarray(m)
    return math.sqrt(abs(float(m[0, 0] * m[1, 1] - m[0, 1] * m[1, 0])))


def roll_degrees(landmarks: np.ndarray) -> float:
    """In-image rotation of the face in degrees, counter-clockwise positive (y down image)."""
    m = template_matrix(landmarks)
    # m maps frame → template; the face's rotation in the frame is the inverse rotation.
    return float(np.degrees(np.arctan2(m[1, 0], m[0, 0])))


def distance_from_mean(landmarks: np.ndarray) -> float:
    """Mean distance of the inner points from the mean face after a similarity fit.

    In template units (the inner face spans 1), so 0.05 means 5 % of the face size.
    """
    pts = transform_points(check_points(landmarks, 68)[INNER], template_matrix(landmarks))
    return float(np.mean(np.linalg.norm(pts - MEAN_FACE_68[INNER], axis=1)))
