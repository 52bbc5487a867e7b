"""Quality metrics of a face swap, as pure functions on NumPy arrays.

Every function here works on one face of one frame (or one landmark track) and knows nothing about
files; :mod:`faceplate.evaluate.run` feeds it frames and :mod:`faceplate.evaluate.report` writes
the results.

Conventions:
    * Images are H×W×3 RGB, display-referred sRGB, either ``uint8`` (0..255) or float (nominal
      0..1), top-left origin.
    * Points are (x, y) frame pixels, x right, y down, pixel centres at +0.5; landmarks are 68×2 in
      iBUG order.
    * Regions are computed inside a box of frame pixels, half-open ``[x0, x1) × [y0, y1)``
      (:class:`FaceRegions`); region arrays are box-sized H×W ``bool``.
    * Sizes relative to the face are fractions of :func:`face_scale`, the span of the 51 inner
      landmarks in pixels (``faceplate.extract.smoothing.face_size``; about 0.75 × the dlib box
      side, 130 px for the face of ``single_face.mp4``).

Metrics:
    * :func:`landmark_error` — mean point-to-point distance over the inter-ocular distance (outer
      eye corners, 36 and 45), the 300-W normalisation.
    * :func:`delta_e_2000` — CIEDE2000 (Sharma, Wu & Dalal 2005), and :func:`colour_delta`: ΔE2000
      between the mean L*a*b* colour of the face's skin (the landmark ``components`` hull, eroded)
      and the mean colour of a ring of plate just outside it.
    * :func:`seam_score` — Sobel colour-gradient energy on a band straddling the mask border in
      the output against the same band in the input (1 = no edge added).
    * :func:`jitter_per_frame` — temporal jitter of a landmark track per frame, from
      ``faceplate.extract.smoothing.landmark_jitter`` on three-sample windows.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from faceplate.core.colorspace import srgb_to_lab
from faceplate.core.validate import check_points
from faceplate.extract.mask.landmarks import component_groups
from faceplate.extract.mask.raster import grow, union_of_hulls
from faceplate.extract.smoothing import face_size, landmark_jitter

#: iBUG indices of the outer eye corners (subject's right, left): the inter-ocular distance.
OUTER_EYE_CORNERS = (36, 45)



# --------------------------------------------------------------------------- colour difference


def delta_e_2000(lab1: np.ndarray, lab2: np.ndarray, *, kl: float = 1.0, kc: float = 1.0,
                 kh: float = 1.0) -> np.ndarray:
    """CIEDE2000 colour difference between L*a*b* colours.

    Implements the formula as written out in Sharma, Wu & Dalal, "The CIEDE2000 color-difference
    formula: implementation notes, supplementary test data, and mathematical observations",
    Color Res. Appl. 30(1), 2005 (eqs. 1-21), including its conventions for zero chroma (hue 0,
    hue difference 0, mean hue = sum of hues) and the hue mean across the 0°/360° seam. It is
    symmetric in its arguments.

    Args:
        lab1: ...×3 L*, a*, b* (any float dtype; broadcasts against ``lab2``).
        lab2: ...×3 L*, a*, b*.
        kl: Parametric lightness weight (1 for the reference conditions).
        kc: Parametric chroma weight.
        kh: Parametric hue weight.

    Returns:
        float64 array of the broadcast leading shape (a 0-d array for two single colours).
    """
    a = np.asarray(lab1, dtype=np.float64)
    b = np.asarray(lab2, dtype=np.float64)
    if a.shape[-1:] != (3,) or b.shape[-1:] != (3,):
        raise ValueError(f"delta_e_2000: expected ...×3 L*a*b* arrays, got {a.shape}, {b.shape}")
    l1, a1, b1 = a[..., 0], a[..., 1], a[..., 2]
    l2, a2, b2 = b[..., 0], b[..., 1], b[..., 2]
    c1 = np.hypot(a1, b1)
    c2 = np.hypot(a2, b2)
    c_bar7 = ((c1 + c2) / 2.0) ** 7
    g = 0.5 * (1.0 - np.sqrt(c_bar7 / (c_bar7 + 25.0**7)))
    a1p = (1.0 + g) * a1
    a2p = (1.0 + g) * a2
    c1p = np.hypot(a1p, b1)
    c2p = np.hypot(a2p, b2)
    h1p = np.degrees(np.arctan2(b1, a1p)) % 360.0
    h2p = np.degrees(np.arctan2(b2, a2p)) % 360.0
    zero = (c1p * c2p) == 0.0
    # atan2(0, 0) is 0 already; the modulo keeps -0.0 at 0.
    dl = l2 - l1
    dc = c2p - c1p
    dh = h2p - h1p
    dh = np.where(dh > 180.0, dh - 360.0, np.where(dh < -180.0, dh + 360.0, dh))
    dh = np.where(zero, 0.0, dh)
    d_hue = 2.0 * np.sqrt(c1p * c2p) * np.sin(np.radians(dh) / 2.0)

    l_bar = (l1 + l2) / 2.0
    c_bar_p = (c1p + c2p) / 2.0
    h_sum = h1p + h2p
    h_bar = np.where(np.abs(h1p - h2p) <= 180.0, h_sum / 2.0,
                     np.where(h_sum < 360.0, (h_sum + 360.0) / 2.0, (h_sum - 360.0) / 2.0))
    h_bar = np.where(zero, h_sum, h_bar)
    t = (1.0 - 0.17 * np.cos(np.radians(h_bar - 30.0)) + 0.24 * np.cos(np.radians(2.0 * h_bar))
         + 0.32 * np.cos(np.radians(3.0 * h_bar + 6.0))
         - 0.20 * np.cos(np.radians(4.0 * h_bar - 63.0)))
    d_theta = 30.0 * np.exp(-(((h_bar - 275.0) / 25.0) ** 2))
    c_bar_p7 = c_bar_p**7
    r_c = 2.0 * np.sqrt(c_bar_p7 / (c_bar_p7 + 25.0**7))
    l50 = (l_bar - 50.0) ** 2
    s_l = 1.0 + 0.015 * l50 / np.sqrt(20.0 + l50)
    s_c = 1.0 + 0.045 * c_bar_p
    s_h = 1.0 + 0.015 * c_bar_p * t
    r_t = -np.sin(np.radians(2.0 * d_theta)) * r_c
    tl = dl / (kl * s_l)
    tc = dc / (kc * s_c)
    th = d_hue / (kh * s_h)
    return np.asarray(np.sqrt(np.maximum(tl * tl + tc * tc + th * th + r_t * tc * th, 0.0)))


def to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB (``uint8`` 0..255 or float 0..1) ...×3 → L*a*b* (D65) float32, same shape."""
    return srgb_to_lab(_unit(rgb))


def _unit(rgb: np.ndarray) -> np.ndarray:
    """``uint8`` → float32 /255; ``uint16`` → /65535; float → float32 as is."""
    arr = np.asarray(rgb)
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) * np.float32(1.0 / 255.0)
    if arr.dtype == np.uint16:
        return arr.astype(np.float32) * np.float32(1.0 / 65535.0)
    if not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"expected uint8, uint16 or float sRGB, got {arr.dtype}")
    return arr.astype(np.float32, copy=False)


# --------------------------------------------------------------------------- geometry


def inter_ocular(landmarks: np.ndarray) -> float:
    """Distance in pixels between the outer eye corners (iBUG 36 and 45) of 68×2 landmarks."""
    pts = check_points(landmarks, 68).astype(np.float64)
    i, j = OUTER_EYE_CORNERS
    return float(np.linalg.norm(pts[i] - pts[j]))


def face_scale(landmarks: np.ndarray) -> float:
    """Face size in pixels (span of the 51 inner points, see the module docstring)."""
    return float(face_size(check_points(landmarks, 68).astype(np.float64)))


def landmark_error(reference: np.ndarray, measured: np.ndarray) -> float:
    """Normalised mean error: mean ‖measured − reference‖ over the reference's inter-ocular
    distance (outer eye corners).

    Args:
        reference: 68×2 (x, y) frame pixels (the input face).
        measured: 68×2 (x, y) frame pixels (the output face).

    Returns:
        Unitless, ≥ 0 (0.05 ≈ 5 % of the eye distance); NaN when the reference's eye corners
        coincide.
    """
    ref = check_points(reference, 68).astype(np.float64)
    got = check_points(measured, 68).astype(np.float64)
    iod = inter_ocular(ref)
    if iod <= 1e-9:
        return float("nan")
    return float(np.linalg.norm(got - ref, axis=1).mean() / iod)


# --------------------------------------------------------------------------- regions


@dataclass(frozen=True, eq=False)
class FaceRegions:
    """The masks one face's colour and seam metrics are measured on.

    Attributes:
        box: (x0, y0, x1, y1) half-open frame pixels the arrays cover (clipped to the frame).
        mask: box-sized float32 in [0, 1]: the landmark ``components`` hull, anti-aliased.
        skin: box-sized bool: the hull eroded by ``skin_erode`` × scale (the face's skin).
        ring: box-sized bool: plate just outside the hull, from ``ring_gap`` to
            ``ring_gap + ring_width`` × scale away from it.
        band: box-sized bool: the border band, within ``band_width`` × scale of the hull's
            outline on either side (of either hull when an ``other`` face was given).
        scale: The face size in pixels (:func:`face_scale`).
    """

    box: tuple[int, int, int, int]
    mask: np.ndarray
    skin: np.ndarray
    ring: np.ndarray
    band: np.ndarray
    scale: float

    @property
    def slices(self) -> tuple[slice, slice]:
        """``frame[regions.slices]`` is the box's view of an H×W(×C) frame."""
        x0, y0, x1, y1 = self.box
        return slice(y0, y1), slice(x0, x1)


def face_regions(landmarks: np.ndarray, frame_shape: tuple[int, ...], *,
                 other: np.ndarray | None = None, skin_erode: float = 0.08,
                 ring_gap: float = 0.03, ring_width: float = 0.12,
                 band_width: float = 0.06) -> FaceRegions:
    """Skin, ring and border band of one face, drawn in a box around it.

    The hull is the ``components`` mask (faceplate.extract.mask.landmarks.component_groups:
    brows to chin, each jaw half hulled separately), rasterised directly in frame pixels.
    Morphology uses elliptical kernels; each radius is at least 1 pixel.

    The border band follows the hull of ``landmarks`` and, when ``other`` is given (the output
    face paired with the input face), the hull of ``other`` too: a paste that moved the face
    leaves its edges along either outline, and measuring both images on the union keeps a moved
    face contour inside the band instead of letting it drop out.

    Args:
        landmarks: 68×2 (x, y) frame pixels (the input face).
        frame_shape: (H, W, ...) of the frame.
        other: Optional 68×2 frame-pixel landmarks of the paired output face (band only).
        skin_erode: Erosion of the hull for the skin region, in face sizes.
        ring_gap: Gap between the hull and the ring, in face sizes.
        ring_width: Width of the ring, in face sizes.
        band_width: Half-width of the border band, in face sizes.

    Returns:
        The regions; arrays are empty (0-sized) when the face lies wholly outside the frame.
    """
    pts = check_points(landmarks, 68).astype(np.float64)
    h, w = int(frame_shape[0]), int(frame_shape[1])
    scale = face_scale(pts)
    r_skin = max(1, int(round(skin_erode * scale)))
    r_gap = max(1, int(round(ring_gap * scale)))
    r_ring = r_gap + max(1, int(round(ring_width * scale)))
    r_band = max(1, int(round(band_width * scale)))
    reach = max(r_ring, r_band) + 3  # every region stays inside the box, away from its edge
    both = pts if other is None else np.vstack([pts, check_points(other, 68).astype(np.float64)])
    if not np.all(np.isfinite(both)):
        raise ValueError("face_regions: landmarks must be finite")
    x0 = max(0, int(np.floor(both[:, 0].min())) - reach)
    y0 = max(0, int(np.floor(both[:, 1].min())) - reach)
    x1 = min(w, int(np.ceil(both[:, 0].max())) + reach + 1)
    y1 = min(h, int(np.ceil(both[:, 1].max())) + reach + 1)
    if x1 <= x0 or y1 <= y0:
        empty = np.zeros((0, 0), dtype=bool)
        return FaceRegions((0, 0, 0, 0), empty.astype(np.float32), empty, empty, empty, scale)
    bw, bh = x1 - x0, y1 - y0
    origin = np.array([x0, y0], dtype=np.float64)
    hull = union_of_hulls(max(bw, bh), component_groups(pts - origin))[:bh, :bw]
    inside = (hull >= 128).astype(np.uint8)
    skin = grow(inside, -r_skin) > 0
    near = grow(inside, r_gap) > 0
    far = grow(inside, r_ring) > 0
    ring = far & ~near
    band = _band(inside, r_band)
    if other is not None:
        hull2 = union_of_hulls(max(bw, bh), component_groups(
            check_points(other, 68).astype(np.float64) - origin))[:bh, :bw]
        band |= _band((hull2 >= 128).astype(np.uint8), r_band)
    mask = hull.astype(np.float32) * np.float32(1.0 / 255.0)
    return FaceRegions((x0, y0, x1, y1), mask, skin, ring, band, scale)


def _band(inside: np.ndarray, radius: int) -> np.ndarray:
    """Pixels within ``radius`` of the outline of a 0/1 ``uint8`` region (bool)."""
    return (grow(inside, radius) > 0) & ~(grow(inside, -radius) > 0)


# --------------------------------------------------------------------------- colour / seam


@dataclass(frozen=True)
class ColourDelta:
    """Result of :func:`colour_delta`.

    Attributes:
        delta_e: CIEDE2000 between the two mean colours (NaN when a region is empty).
        skin_lab: Mean L*a*b* of the skin region.
        ring_lab: Mean L*a*b* of the ring.
    """

    delta_e: float
    skin_lab: tuple[float, float, float]
    ring_lab: tuple[float, float, float]


def colour_delta(rgb: np.ndarray, regions: FaceRegions) -> ColourDelta:
    """ΔE2000 between the mean L*a*b* colour of the skin and that of the ring around it.

    Args:
        rgb: H×W×3 sRGB frame (``uint8`` or float 0..1) the regions were drawn for.
        regions: From :func:`face_regions`.
    """
    nan3 = (float("nan"),) * 3
    if not regions.skin.any() or not regions.ring.any():
        return ColourDelta(float("nan"), nan3, nan3)
    lab = to_lab(np.asarray(rgb)[regions.slices][..., :3])
    skin = lab[regions.skin].astype(np.float64).mean(axis=0)
    ring = lab[regions.ring].astype(np.float64).mean(axis=0)
    return ColourDelta(float(delta_e_2000(skin, ring)),
                       (float(skin[0]), float(skin[1]), float(skin[2])),
                       (float(ring[0]), float(ring[1]), float(ring[2])))


def gradient_magnitude(rgb: np.ndarray, regions: FaceRegions) -> np.ndarray:
    """Colour gradient magnitude on the border band.

    Per pixel ``sqrt(Σ_c (Sx I_c)² + (Sy I_c)²) / sqrt(3)`` over the R, G, B channels (sRGB 0..1),
    with 3×3 Sobel kernels divided by 8: a grey unit step across a vertical edge gives 0.5 on
    the two pixel columns beside it, and a step in chroma alone (a colour seam) counts too.

    Args:
        rgb: H×W×3 sRGB frame (``uint8`` or float 0..1).
        regions: From :func:`face_regions`.

    Returns:
        1-D float64: the magnitude at every band pixel (row-major order within the box).
    """
    if not regions.band.any():
        return np.zeros(0, dtype=np.float64)
    crop = np.ascontiguousarray(_unit(np.asarray(rgb)[regions.slices][..., :3]))
    gx = cv2.Sobel(crop, cv2.CV_32F, 1, 0, ksize=3, scale=0.125, borderType=cv2.BORDER_REPLICATE)
    gy = cv2.Sobel(crop, cv2.CV_32F, 0, 1, ksize=3, scale=0.125, borderType=cv2.BORDER_REPLICATE)
    mag = np.sqrt((gx * gx + gy * gy).sum(axis=2) * np.float32(1.0 / 3.0))
    return mag[regions.band].astype(np.float64)


def gradient_energy(rgb: np.ndarray, regions: FaceRegions) -> float:
    """Mean :func:`gradient_magnitude` on the border band (NaN when the band is empty)."""
    mag = gradient_magnitude(rgb, regions)
    return float(mag.mean()) if mag.size else float("nan")


@dataclass(frozen=True)
class Seam:
    """Result of :func:`seam_score`.

    Attributes:
        score: ``mean(max(G_out, G_in)) / mean(G_in)`` on the band, ≥ 1: the output's gradient
            energy where it exceeds the input's, against the input's. 1 = no edge added; a seam
            (a step where the pasted face meets the plate, or a face contour moved off its
            place) raises it, smoothing does not lower it.
        ratio: ``mean(G_out) / mean(G_in)``: the plain energy ratio (< 1: the border got
            smoother, > 1: busier). Edges that moved within the band cancel out here, which is
            why ``score`` is the seam measure.
        energy_input: ``mean(G_in)``.
        energy_output: ``mean(G_out)``.
    """

    score: float
    ratio: float
    energy_input: float
    energy_output: float


def seam_score(input_rgb: np.ndarray, output_rgb: np.ndarray, regions: FaceRegions,
               floor: float = 1e-4) -> Seam:
    """Gradient energy on the border band of the output against the same band of the input.

    Args:
        input_rgb: H×W×3 sRGB original frame.
        output_rgb: H×W×3 sRGB converted frame, same size.
        regions: From :func:`face_regions` (drawn from the input face, and the paired output
            face for the band).
        floor: Smallest input energy divided by (a flat plate would otherwise divide by 0).

    Returns:
        The scores (NaN when the band is empty).
    """
    g_in = gradient_magnitude(input_rgb, regions)
    g_out = gradient_magnitude(output_rgb, regions)
    if not g_in.size:
        nan = float("nan")
        return Seam(nan, nan, nan, nan)
    e_in, e_out = float(g_in.mean()), float(g_out.mean())
    den = max(e_in, floor)
    return Seam(float(np.maximum(g_in, g_out).mean()) / den, e_out / den, e_in, e_out)


# --------------------------------------------------------------------------- temporal


def jitter_per_frame(track: np.ndarray) -> np.ndarray:
    """Per-sample jitter of a landmark track.

    Sample t gets ``landmark_jitter(track[t-1 : t+2])`` — its second difference over the face
    size — so the mean of the finite values equals ``landmark_jitter(track)``.

    Args:
        track: T×68×2 frame pixels, NaN where the face is missing.

    Returns:
        T float64; NaN at both ends and wherever a neighbour is missing.
    """
    lm = np.asarray(track, dtype=np.float64)
    out = np.full(lm.shape[0], np.nan)
    for t in range(1, lm.shape[0] - 1):
        out[t] = landmark_jitter(lm[t - 1:t + 2])
    return out


__all__ = [
    "OUTER_EYE_CORNERS",
    "ColourDelta",
    "FaceRegions",
    "Seam",
    "colour_delta",
    "delta_e_2000",
    "face_regions",
    "face_scale",
    "gradient_energy",
    "gradient_magnitude",
    "inter_ocular",
    "jitter_per_frame",
    "landmark_error",
    "seam_score",
    "to_lab",
]
