"""Synthetic variants of real faces for the detection benchmark.

Every function is deterministic for its arguments (random choices come from a
``numpy.random.Generator`` the caller seeds) and returns the new image with the exact place of
the given points in it, so ground truth follows every variant.

Conventions:
    Images are H×W×3 ``uint8`` RGB, display-referred sRGB, top-left origin. Points are (x, y)
    frame pixels, x right, y down, pixel centres at +0.5 (landmarks 68×2 in iBUG order). Face
    meshes are mediapipe's 468×3 (x, y frame pixels, z relative depth in the x pixel scale,
    smaller = nearer the camera).

Variants:
    * :func:`turn_head` re-renders a face through its face mesh turned by a yaw (and pitch): the
      image becomes a dense 2.5-D surface (the mesh's depth inside the face, a head-shaped depth
      falling to the rotation axis at the head's outline, the background still), which is
      rotated about a vertical axis behind the face and drawn back to front. What was hidden
      in the source (the far side of the head) cannot appear: the near side of the head shows
      the source's outline stretched.
    * :func:`affine_variant` (in-plane rotation and scale onto a canvas), :func:`blur`,
      :func:`relight`, :func:`add_eyewear`, :func:`line_drawing` / :func:`smiley` (drawings,
      negatives).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy.interpolate import LinearNDInterpolator

from faceplate.core.geometry import invert_affine, to_cv2, transform_points

#: Where the yaw axis sits behind the face, in face-mesh widths (the head's turning axis runs
#: through the neck, roughly level with the ears).
AXIS_DEPTH = 0.55
#: The head outline around the face mesh: semi-axes in mesh widths / heights and the upward
#: shift of its centre in mesh heights (hair above the forehead).
HEAD_AXES = (0.62, 0.72)
HEAD_RAISE = 0.10
#: Beyond the head outline the turn fades out over this many head radii (hair, neck, shoulders
#: are dragged a little; the background stays put).
FADE = 0.45


@dataclass(frozen=True, eq=False)
class SurfaceWarp:
    """A dense 2.5-D warp of one image: source pixels to output pixels with depth.

    Attributes:
        src: N×2 float64 grid vertices in source pixels.
        dst: N×2 float64 the same vertices in output pixels.
        depth: N float64 output depth (smaller = nearer).
        shape: Grid rows × columns (``N = rows * cols``).
        size: Output (height, width).
    """

    src: np.ndarray
    dst: np.ndarray
    depth: np.ndarray
    shape: tuple[int, int]
    size: tuple[int, int]

    def render(self, rgb: np.ndarray) -> np.ndarray:
        """The warped image (pixels the grid does not cover keep the source's)."""
        h, w = self.size
        rows, cols = self.shape
        idx = np.arange(rows * cols).reshape(rows, cols)
        quads = np.stack([idx[:-1, :-1], idx[:-1, 1:], idx[1:, 1:], idx[1:, :-1]], -1)
        quads = quads.reshape(-1, 4)
        tris = np.concatenate([quads[:, [0, 1, 2]], quads[:, [0, 2, 3]]])
        order = np.argsort(-self.depth[tris].mean(axis=1), kind="stable")  # far first
        tris = tris[order]
        buf = np.full((h, w), -1, np.int32)
        shift = 4
        pts = np.round(self.dst * (1 << shift) - 0.5 * (1 << shift)).astype(np.int32)
        for t, tri in enumerate(tris):
            cv2.fillConvexPoly(buf, pts[tri], int(t), lineType=cv2.LINE_8, shift=shift)
        ys, xs = np.nonzero(buf >= 0)
        tri = tris[buf[ys, xs]]
        p = np.stack([xs + 0.5, ys + 0.5], axis=1)
        a, b, c = self.dst[tri[:, 0]], self.dst[tri[:, 1]], self.dst[tri[:, 2]]
        v0, v1, v2 = b - a, c - a, p - a
        den = v0[:, 0] * v1[:, 1] - v1[:, 0] * v0[:, 1]
        den = np.where(np.abs(den) < 1e-9, 1e-9, den)
        l1 = (v2[:, 0] * v1[:, 1] - v1[:, 0] * v2[:, 1]) / den
        l2 = (v0[:, 0] * v2[:, 1] - v2[:, 0] * v0[:, 1]) / den
        l1, l2 = np.clip(l1, 0, 1), np.clip(l2, 0, 1)
        l0 = 1.0 - l1 - l2
        sa, sb, sc = self.src[tri[:, 0]], self.src[tri[:, 1]], self.src[tri[:, 2]]
        s = l0[:, None] * sa + l1[:, None] * sb + l2[:, None] * sc
        mx, my = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        mx[ys, xs] = s[:, 0] - 0.5
        my[ys, xs] = s[:, 1] - 0.5
        return cv2.remap(rgb, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)


@dataclass(frozen=True, eq=False)
class HeadTurn:
    """The turn of one head: maps points and builds the :class:`SurfaceWarp`.

    Attributes:
        centre: Rotation centre (x, y, z): x the face's middle, z behind the face.
        rotation: 3×3 rotation applied about ``centre`` (x right, y down, z away).
        head: Head outline ellipse (cx, cy, a, b) in source pixels.
        depth_of: Interpolator (x, y) → z of the head surface (NaN outside its support).
    """

    centre: np.ndarray
    rotation: np.ndarray
    head: tuple[float, float, float, float]
    depth_of: LinearNDInterpolator

    def weight(self, xy: np.ndarray) -> np.ndarray:
        """How much each point turns: 1 on the head, fading to 0 outside its outline."""
        cx, cy, a, b = self.head
        r = np.hypot((xy[:, 0] - cx) / a, (xy[:, 1] - cy) / b)
        t = np.clip((r - 1.0) / FADE, 0.0, 1.0)
        return 1.0 - t * t * (3.0 - 2.0 * t)

    def map_points(self, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Source points → (output points N×2, output depth N)."""
        xy = np.asarray(xy, np.float64).reshape(-1, 2)
        z = self.depth_of(xy)
        z = np.where(np.isfinite(z), z, self.centre[2])
        p = np.column_stack([xy, z]) - self.centre
        q = p @ self.rotation.T + self.centre
        w = self.weight(xy)[:, None]
        out = np.column_stack([xy, z]) * (1.0 - w) + q * w
        return out[:, :2], out[:, 2]

    def warp(self, size: tuple[int, int], step: float = 3.0) -> SurfaceWarp:
        """The dense warp over the head and its fade band (``step`` px grid)."""
        h, w = size
        cx, cy, a, b = self.head
        ext = 1.0 + FADE + 0.05
        x0, x1 = max(0.0, cx - a * ext), min(float(w), cx + a * ext)
        y0, y1 = max(0.0, cy - b * ext), min(float(h), cy + b * ext)
        xs = np.linspace(x0, x1, max(2, int(np.ceil((x1 - x0) / step)) + 1))
        ys = np.linspace(y0, y1, max(2, int(np.ceil((y1 - y0) / step)) + 1))
        gx, gy = np.meshgrid(xs, ys)
        src = np.column_stack([gx.ravel(), gy.ravel()])
        dst, depth = self.map_points(src)
        return SurfaceWarp(src, dst, depth, (len(ys), len(xs)), (h, w))


def rotation_matrix(yaw: float, pitch: float = 0.0, roll: float = 0.0) -> np.ndarray:
    """3×3 rotation in the pose convention of ``faceplate.extract.pose`` (degrees).

    Positive yaw turns the face to its own left (the nose moves to image right), positive pitch
    makes it look up, positive roll turns it counter-clockwise in the image (axes x right, y
    down, z away from the camera).
    """
    t, p, r = np.radians([yaw, pitch, roll])
    ry = np.array([[np.cos(t), 0.0, -np.sin(t)], [0.0, 1.0, 0.0], [np.sin(t), 0.0, np.cos(t)]])
    rx = np.array([[1.0, 0.0, 0.0], [0.0, np.cos(p), np.sin(p)], [0.0, -np.sin(p), np.cos(p)]])
    rz = np.array([[np.cos(r), np.sin(r), 0.0], [-np.sin(r), np.cos(r), 0.0], [0.0, 0.0, 1.0]])
    return rz @ ry @ rx


def head_turn(mesh: np.ndarray, yaw: float, pitch: float = 0.0) -> HeadTurn:
    """The turn of the head whose face mesh is ``mesh`` (468×3, see the module docstring)."""
    mesh = np.asarray(mesh, np.float64)
    if mesh.shape != (468, 3) or not np.all(np.isfinite(mesh)):
        raise ValueError(f"mesh: expected 468×3 finite vertices, got shape {mesh.shape}")
    fw, fh = float(np.ptp(mesh[:, 0])), float(np.ptp(mesh[:, 1]))
    cx, cy = mesh[:, :2].mean(axis=0)
    z_axis = float(np.median(mesh[:, 2])) + AXIS_DEPTH * fw
    a, b = HEAD_AXES[0] * fw, HEAD_AXES[1] * fh
    hcy = cy - HEAD_RAISE * fh
    # Depth anchors: the mesh itself, the head outline at the axis depth (the silhouette turns
    # about the axis), and a ring beyond the fade band at the same depth.
    ang = np.linspace(0.0, 2.0 * np.pi, 72, endpoint=False)
    ring = []
    for k in (1.0, 1.0 + FADE + 0.3):
        ring.append(np.column_stack([cx + k * a * np.cos(ang), hcy + k * b * np.sin(ang),
                                     np.full(ang.shape, z_axis)]))
    anchors = np.vstack([mesh, *ring])
    depth_of = LinearNDInterpolator(anchors[:, :2], anchors[:, 2])
    centre = np.array([cx, cy + 0.35 * fh, z_axis])  # pitch turns about the neck
    return HeadTurn(centre, rotation_matrix(yaw, pitch), (float(cx), float(hcy), a, b), depth_of)


def turn_head(rgb: np.ndarray, mesh: np.ndarray, points: np.ndarray, yaw: float,
              pitch: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Re-render the face of ``mesh`` turned by ``yaw`` / ``pitch`` degrees.

    Args:
        rgb: H×W×3 uint8 RGB image holding the face.
        mesh: Its 468×3 face mesh.
        points: N×2 points to carry along (e.g. the 68 ground-truth landmarks).
        yaw: Added yaw in degrees (pose convention of ``faceplate.extract.pose``).
        pitch: Added pitch in degrees.

    Returns:
        The H×W×3 uint8 image and the N×2 float64 points in it.
    """
    turn = head_turn(mesh, yaw, pitch)
    out = turn.warp(rgb.shape[:2]).render(rgb)
    return out, turn.map_points(points)[0]


def affine_variant(rgb: np.ndarray, points: np.ndarray, matrix: np.ndarray,
                   size: tuple[int, int], border: np.ndarray | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Warp ``rgb`` by the 2×3 ``matrix`` (source → output pixels, centres at +0.5) onto an
    output of ``size`` (height, width), over ``border`` (an image of that size; black when
    None). Downscaling pre-filters (area) so small faces are not aliased."""
    h, w = size
    scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    src, m = rgb, np.asarray(matrix, np.float64)
    if scale < 0.7:
        f = max(1, int(np.floor(1.0 / scale)))
        if f > 1:
            src = cv2.resize(rgb, (max(1, rgb.shape[1] // f), max(1, rgb.shape[0] // f)),
                             interpolation=cv2.INTER_AREA)
            kx, ky = src.shape[1] / rgb.shape[1], src.shape[0] / rgb.shape[0]
            m = m @ np.diag([1.0 / kx, 1.0 / ky, 1.0])
    out = cv2.warpAffine(src, to_cv2(m), (w, h), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_CONSTANT)
    if border is not None:
        cover = cv2.warpAffine(np.full(src.shape[:2], 255, np.uint8), to_cv2(m), (w, h),
                               flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        a = (cover.astype(np.float32) / 255.0)[..., None]
        out = (out * a + border * (1.0 - a) + 0.5).astype(np.uint8)
    return out, transform_points(points, matrix)


def rotate_scale_matrix(centre: tuple[float, float], angle: float, scale: float,
                        to: tuple[float, float]) -> np.ndarray:
    """2×3 matrix turning about ``centre`` by ``angle`` degrees counter-clockwise (as seen,
    y down), scaling by ``scale`` and moving ``centre`` to ``to``."""
    t = np.radians(angle)
    c, s = np.cos(t) * scale, np.sin(t) * scale
    lin = np.array([[c, s], [-s, c]])
    off = np.asarray(to, np.float64) - lin @ np.asarray(centre, np.float64)
    return np.hstack([lin, off[:, None]])


def blur(rgb: np.ndarray, sigma: float, motion: float = 0.0, angle: float = 0.0) -> np.ndarray:
    """Gaussian blur of ``sigma`` px, then a linear motion blur ``motion`` px long at
    ``angle`` degrees (0 = horizontal)."""
    out = rgb
    if sigma > 0:
        out = cv2.GaussianBlur(out, (0, 0), sigma)
    if motion >= 2:
        n = int(round(motion)) | 1
        k: np.ndarray = np.zeros((n, n), np.float32)
        k[n // 2, :] = 1.0
        rot = cv2.getRotationMatrix2D(((n - 1) / 2, (n - 1) / 2), angle, 1.0)
        k = cv2.warpAffine(k, rot, (n, n))
        out = cv2.filter2D(out, -1, k / max(k.sum(), 1e-6))
    return out


def relight(rgb: np.ndarray, gain: float, gamma: float, side: float, angle: float,
            tint: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> np.ndarray:
    """Re-light in linear light: exposure ``gain``, a directional falloff ``side`` (0 = flat,
    0.8 = the far side of the frame at 20 %) across ``angle`` degrees, a white-balance ``tint``,
    then a display ``gamma`` (> 1 darkens the mid-tones)."""
    h, w = rgb.shape[:2]
    lin = (rgb.astype(np.float32) / 255.0) ** 2.2
    t = np.radians(angle)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    u = ((xx - w / 2) * np.cos(t) + (yy - h / 2) * np.sin(t)) / max(w, h)
    light = np.clip(1.0 - side * (u + 0.5), 0.05, None)
    lin = lin * gain * light[..., None] * np.asarray(tint, np.float32)
    out = np.clip(lin, 0.0, 1.0) ** (1.0 / (2.2 * gamma))
    return (out * 255.0 + 0.5).astype(np.uint8)


def add_eyewear(rgb: np.ndarray, landmarks: np.ndarray, rng: np.random.Generator,
                kind: str = "clear") -> np.ndarray:
    """Draw glasses over the eyes of a face with 68 landmarks.

    ``kind`` is ``"clear"`` (a frame with faintly tinted lenses) or ``"sun"`` (dark lenses).
    Frame colour, thickness and lens shape are drawn from ``rng``. Lenses follow the eye
    corners and brows, so they turn and scale with the face; the temples run to the jaw's
    outline.
    """
    lm = np.asarray(landmarks, np.float64)
    iod = float(np.linalg.norm(lm[45] - lm[36]))
    out: np.ndarray = rgb.astype(np.float32)
    h, w = rgb.shape[:2]
    ss = 4  # supersampled masks for smooth edges
    frame_mask = np.zeros((h * ss, w * ss), np.uint8)
    lens_mask = np.zeros((h * ss, w * ss), np.uint8)
    thick = max(1, int(round(rng.uniform(0.025, 0.06) * iod * ss)))
    rect = rng.uniform(0.0, 1.0)  # 0 = oval lenses, 1 = rectangular
    ends = []
    for eye, brow in ((slice(36, 42), slice(17, 22)), (slice(42, 48), slice(22, 27))):
        e = lm[eye]
        c = e.mean(axis=0)
        c[1] -= 0.02 * iod + 0.1 * (c[1] - lm[brow][:, 1].mean())
        d = e[3] - e[0]
        ang = np.arctan2(d[1], d[0])
        half_w = 0.6 * np.linalg.norm(d) + 0.08 * iod
        half_h = max(0.55 * abs(c[1] - lm[brow][:, 1].mean()), 0.1 * iod)
        t = np.linspace(0, 2 * np.pi, 64, endpoint=False)
        px = np.sign(np.cos(t)) * np.abs(np.cos(t)) ** (1.0 - 0.7 * rect)
        py = np.sign(np.sin(t)) * np.abs(np.sin(t)) ** (1.0 - 0.7 * rect)
        loc = np.column_stack([px * half_w, py * half_h])
        rot = np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
        poly = (loc @ rot.T + c) * ss
        cv2.fillPoly(lens_mask, [np.round(poly).astype(np.int32)], 255, cv2.LINE_AA)
        cv2.polylines(frame_mask, [np.round(poly).astype(np.int32)], True, 255, thick,
                      cv2.LINE_AA)
        ends.append((poly[np.argmin(loc[:, 0])], poly[np.argmax(loc[:, 0])]))
    bridge = np.array([ends[0][1], ends[1][0]])
    cv2.polylines(frame_mask, [np.round(bridge).astype(np.int32)], False, 255, thick,
                  cv2.LINE_AA)
    for outer, jaw in ((ends[0][0], lm[1]), (ends[1][1], lm[15])):
        seg = np.array([outer, jaw * ss + (outer - jaw * ss) * 0.15])
        cv2.polylines(frame_mask, [np.round(seg).astype(np.int32)], False, 255, thick,
                      cv2.LINE_AA)
    fm = cv2.resize(frame_mask, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    lmask = cv2.resize(lens_mask, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    colour = rng.choice(np.array([[20, 20, 22], [60, 35, 20], [150, 150, 155], [110, 20, 30],
                                  [200, 170, 90]], np.float32))
    if kind == "sun":
        lens = np.array([18, 20, 22], np.float32) + rng.uniform(0, 25, 3).astype(np.float32)
        alpha = rng.uniform(0.8, 0.93)
    else:
        lens = np.array([200, 215, 230], np.float32)
        alpha = rng.uniform(0.06, 0.15)
    out = out * (1 - alpha * lmask[..., None]) + lens * alpha * lmask[..., None]
    # A highlight across each lens (reflections make real glasses harder than a dark ring).
    out = out * (1 - fm[..., None]) + colour * fm[..., None]
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


#: iBUG 68-point polylines (closed when the flag is True) for line drawings.
_STROKES: tuple[tuple[range, bool], ...] = (
    (range(17), False), (range(17, 22), False), (range(22, 27), False),
    (range(27, 31), False), (range(31, 36), False), (range(36, 42), True),
    (range(42, 48), True), (range(48, 60), True), (range(60, 68), True),
)


def line_drawing(landmarks: np.ndarray, size: tuple[int, int], rng: np.random.Generator
                 ) -> np.ndarray:
    """A pen drawing of a face on paper: the 68-point outline of a real face, wobbled.

    A drawing is not a face to swap, so the benchmark uses these as negatives. Returns an
    H×W×3 uint8 image of ``size`` (height, width).
    """
    h, w = size
    paper = np.array([245, 240, 228], np.float32) + rng.normal(0, 3, (h, w, 1)).astype(np.float32)
    img = np.ascontiguousarray(np.clip(paper, 0, 255).astype(np.uint8))
    lm = np.asarray(landmarks, np.float64)
    iod = float(np.linalg.norm(lm[45] - lm[36]))
    thick = max(1, int(round(rng.uniform(0.02, 0.05) * iod)))
    ink = tuple(int(v) for v in rng.choice([[30, 30, 35], [40, 40, 120], [90, 50, 30]]))
    for idx, closed in _STROKES:
        p = lm[list(idx)] + rng.normal(0, 0.015 * iod, (len(idx), 2))
        cv2.polylines(img, [np.round(p * 4).astype(np.int32)], closed, ink, thick,
                      cv2.LINE_AA, shift=2)
    # Hair line and pupils, as a quick sketch would have them.
    top = lm[17:27].copy()
    top[:, 1] -= rng.uniform(0.5, 0.9) * iod
    cv2.polylines(img, [np.round(top * 4).astype(np.int32)], False, ink, thick, cv2.LINE_AA,
                  shift=2)
    for eye in (slice(36, 42), slice(42, 48)):
        c = lm[eye].mean(axis=0)
        cv2.circle(img, (int(c[0]), int(c[1])), max(1, int(0.06 * iod)), ink, -1, cv2.LINE_AA)
    return img


def smiley(size: tuple[int, int], rng: np.random.Generator, n: int = 1) -> np.ndarray:
    """A drawing of ``n`` cartoon faces (round heads, dot eyes, a mouth) on a plain ground."""
    h, w = size
    bg = rng.integers(150, 256, 3)
    img = np.empty((h, w, 3), np.uint8)
    img[:] = bg
    for _ in range(n):
        r = int(rng.uniform(0.12, 0.35) * min(h, w) / max(1.0, np.sqrt(n)))
        cx, cy = int(rng.uniform(r, w - r)), int(rng.uniform(r, h - r))
        skin = tuple(int(v) for v in rng.integers(60, 256, 3))
        ink = (20, 20, 20)
        cv2.circle(img, (cx, cy), r, skin, -1, cv2.LINE_AA)
        cv2.circle(img, (cx, cy), r, ink, max(1, r // 25), cv2.LINE_AA)
        ex, ey = int(0.35 * r), int(0.25 * r)
        for sx in (-1, 1):
            cv2.ellipse(img, (cx + sx * ex, cy - ey), (max(1, r // 9), max(1, r // 6)), 0, 0,
                        360, ink, -1, cv2.LINE_AA)
        cv2.line(img, (cx, cy - r // 12), (cx - r // 12, cy + r // 8), ink, max(1, r // 30),
                 cv2.LINE_AA)
        cv2.ellipse(img, (cx, cy + int(0.3 * r)), (int(0.4 * r), int(0.2 * r)), 0, 10, 170,
                    ink, max(1, r // 20), cv2.LINE_AA)
    return img


def inverse(m: np.ndarray) -> np.ndarray:
    """Inverse of a 2×3 affine (re-exported for callers mapping boxes back)."""
    return invert_affine(m)
