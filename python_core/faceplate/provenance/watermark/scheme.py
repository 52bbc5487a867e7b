"""The mark's fixed parts: the constants, the pattern bank, the payload and the canonical frame.

Canonical space: ``CANON_SIZE``×``CANON_SIZE`` pixels, ``crop_matrix(landmarks, CANON_SIZE,
"face", 1.0)`` (:func:`canonical_matrix`): the mean face fills the same place in every frame,
whatever the frame's resolution. Points (x, y), x right, y down, pixel centres at +0.5, as in
:mod:`faceplate.core.geometry`; matrices map source → destination.

The bank (:func:`_bank`, built once from ``SEED``): ``K = MARKER_BITS + ID_BITS + CRC_BITS``
pseudo-random fields band-limited to wavelengths of ``BAND`` canonical pixels, multiplied by an
elliptic window over the inner face, high-passed and orthonormalised (the detection vectors
``d_k``); the quantiser step Δ from the energy budget ``PSNR_TARGET`` over the face; the
per-bit dithers; the fixed marker bits.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import cv2
import numpy as np

from faceplate.core.geometry import (
    MEAN_FACE_68,
    compose_affine,
    crop_matrix,
    invert_affine,
    template_to_crop,
)
from faceplate.core.validate import check_matrix, check_points

#: Side of the canonical face crop in pixels.
CANON_SIZE: int = 128
#: Bits of the fixed Faceplate marker, of the model id, and of the id's CRC.
MARKER_BITS = 32
ID_BITS = 16
CRC_BITS = 8
#: Wavelengths (canonical pixels) the patterns are limited to: (shortest, longest).
BAND: tuple[float, float] = (12.0, 40.0)
#: σ (canonical pixels) of the Gaussian whose blur the detector subtracts (the high-pass).
HP_SIGMA = 4.0
#: Mean PSNR of the mark over the face the quantiser step is chosen for, and the hard floor.
PSNR_TARGET = 46.5
PSNR_FLOOR = 45.3
#: Divide projections by the host's brightness (:func:`_gain`); the reference brightness.
GAIN_NORM = True
GAIN_REF = 0.5
#: Low-pass a source before warping when it has more than AA_FROM pixels per canonical pixel,
#: with σ = AA_SIGMA source pixels per canonical pixel (small: the embedder sees a crop at
#: about canonical scale, the detector the frame; a stronger blur on one side only would
#: change the projections of the band by percent, i.e. a tenth of Δ). Warps are bicubic.
AA_FROM = 1.25
AA_SIGMA = 0.3
INTERP = cv2.INTER_CUBIC
#: The patterns' seed ("FPWM").
SEED = 0x4650574D
#: BT.709 luma weights (on display sRGB values); they sum to 1, so adding w to R, G and B adds
#: w to the luma.
LUMA = np.array([0.2126, 0.7152, 0.0722], np.float32)

_K = MARKER_BITS + ID_BITS + CRC_BITS
#: What the embedder and the detector take: display-sRGB bytes or float32 (sRGB or linear).
_FRAME_DTYPES: tuple[type, ...] = (np.uint8, np.float32)
_ID_HEX = ID_BITS // 4


@dataclass(frozen=True)
class PatternSet:
    """One set of patterns the mark can be embedded with (:data:`PATTERN_SETS`).

    Every set carries the same payload (``K`` bits: the marker, the model id, its CRC) with
    the same quantiser step Δ (the same energy budget over the face), on its own
    pseudo-random patterns over its own elliptic window; the verifier searches every set
    and each has its own calibrated null (:mod:`.calibration`).

    Attributes:
        name: The set's name (``"full"``, ``"upper"``), as reports and calibration tables
            name it.
        centre: The window's centre (x, y) in the mean face's template units (x 0 → 1 from
            the right brow's outer end to the left's, y 0 at the brows, 0.22–0.28 the eyes,
            0.65 the nose tip, 0.75–1.0 the mouth).
        radii: The ellipse's half-axes (x, y) in template units (weight 1 inside 0.65 of
            them, a cosine taper to 0 at the ellipse).
        seed: The patterns' and dithers' seed.
    """

    name: str
    centre: tuple[float, float]
    radii: tuple[float, float]
    seed: int


#: The pattern sets, in the order the embedder tries them: ``full`` over the inner face
#: (brows to chin), and ``upper``, over the forehead, the eyes and the nose down to its tip
#: (the part of the face a matte eroded from below, or a lower-face occluder, leaves): a face
#: whose matte leaves the full set's area partly uncovered gets the upper set when the full
#: set's mark would be too weak to detect. Same payload and Δ; the upper window is about 70 %
#: of the full one's area, so its mark is that much denser over it.
PATTERN_SETS: tuple[PatternSet, ...] = (
    PatternSet("full", (0.5, 0.62), (0.46, 0.60), SEED),
    PatternSet("upper", (0.5, 0.25), (0.46, 0.44), SEED + 1),
)
_SETS = {p.name: p for p in PATTERN_SETS}


def pattern_set(name: str) -> PatternSet:
    """The :class:`PatternSet` called ``name``.

    Raises:
        ValueError: no such set.
    """
    try:
        return _SETS[name]
    except KeyError:
        raise ValueError(f"pattern set: {name!r} is not one of "
                         f"{', '.join(_SETS)}") from None


def _window(n: int, ps: PatternSet | None = None) -> np.ndarray:
    """n×n float32 weight in [0, 1]: an ellipse over (part of) the face, cosine-tapered edge."""
    ps = PATTERN_SETS[0] if ps is None else ps
    t = template_to_crop(n, "face")
    k = t[0, 0]
    cx, cy = k * ps.centre[0] + t[0, 2], k * ps.centre[1] + t[1, 2]
    yy, xx = np.mgrid[0:n, 0:n] + 0.5
    r = np.sqrt(((xx - cx) / (ps.radii[0] * k)) ** 2 + ((yy - cy) / (ps.radii[1] * k)) ** 2)
    ramp = np.clip((1.0 - r) / 0.35, 0.0, 1.0)
    return (0.5 - 0.5 * np.cos(np.pi * ramp)).astype(np.float32)


def _face_area(n: int) -> float:
    """Canonical pixels of the face (brows to chin, the mean face's outline) the PSNR is over."""
    t = template_to_crop(n, "face")
    pts = MEAN_FACE_68 @ t[:, :2].T + t[:, 2]
    hull = cv2.convexHull(pts.astype(np.float32))
    return float(cv2.contourArea(hull))


def _highpass(img: np.ndarray) -> np.ndarray:
    return img - cv2.GaussianBlur(img, (0, 0), HP_SIGMA, borderType=cv2.BORDER_REFLECT)


@dataclass(frozen=True)
class _Bank:
    """The fixed patterns and quantiser (built once from ``SEED``)."""

    patterns: np.ndarray  # K×n² float32, orthonormal rows (detection vectors d_k)
    dither: np.ndarray  # K float64, in [0, Δ)
    delta: float
    max_energy: float  # Σ w² over canonical pixels allowed at PSNR_FLOOR
    marker: np.ndarray  # MARKER_BITS uint8
    window: np.ndarray  # n² float32, the window normalised to sum 1
    # Where the patterns and the window live (+1 px margin, for the detector's gradients):
    # every projection is taken on this box (both are ~0 outside it).
    box: tuple[int, int, int, int]  # canonical (x0, y0, x1, y1)
    patterns_box: np.ndarray  # K×(box pixels) float32
    window_box: np.ndarray  # (box pixels) float32
    name: str = "full"  # the PatternSet's
    centre: tuple[float, float] = (CANON_SIZE / 2.0, CANON_SIZE * 0.55)  # canonical: the
    # registration search rotates and scales about it (the window's centre)


def _bank(name: str = "full") -> _Bank:
    """The bank of pattern set ``name`` (:data:`PATTERN_SETS`), built once."""
    return _build_bank(pattern_set(name))


@functools.cache
def _build_bank(ps: PatternSet) -> _Bank:
    n = CANON_SIZE
    rng = np.random.default_rng(ps.seed)
    win = _window(n, ps)
    fy = np.fft.fftfreq(n)[:, None]
    fx = np.fft.rfftfreq(n)[None, :]
    fr = np.hypot(fx, fy)
    band = ((fr >= 1.0 / BAND[1]) & (fr <= 1.0 / BAND[0])).astype(np.float64)
    fields = np.empty((n * n, _K))
    for k in range(_K):
        z = np.fft.irfft2(np.fft.rfft2(rng.standard_normal((n, n))) * band, s=(n, n))
        # High-passed after the window: no DC or shading component (the face's own shading
        # would dominate the projection otherwise).
        fields[:, k] = _highpass((z * win).astype(np.float32)).ravel()
    q, _ = np.linalg.qr(fields)  # n²×K orthonormal columns
    d = np.ascontiguousarray(q.T, dtype=np.float32)
    area = _face_area(n)
    mse_target = 10.0 ** (-PSNR_TARGET / 10.0)
    delta = math.sqrt(12.0 * mse_target * area / _K)
    max_energy = 10.0 ** (-PSNR_FLOOR / 10.0) * area
    dither = rng.uniform(0.0, delta, _K)
    marker = rng.integers(0, 2, MARKER_BITS).astype(np.uint8)
    if ps is not PATTERN_SETS[0]:
        marker = _build_bank(PATTERN_SETS[0]).marker  # one marker (one payload) for every set
    wsum = (win / win.sum()).ravel().astype(np.float32)
    amp = np.abs(d).max(axis=0).reshape(n, n)
    ys, xs = np.nonzero((amp > 1e-3 * amp.max()) | (win > 0.0))
    box = (max(0, int(xs.min()) - 1), max(0, int(ys.min()) - 1), min(n, int(xs.max()) + 2),
           min(n, int(ys.max()) + 2))
    cut = (slice(box[1], box[3]), slice(box[0], box[2]))
    pbox = np.ascontiguousarray(d.reshape(_K, n, n)[:, cut[0], cut[1]].reshape(_K, -1))
    wbox = np.ascontiguousarray(wsum.reshape(n, n)[cut].ravel())
    t = template_to_crop(n, "face")
    # The full set keeps its original centre (about the nose, as calibrated).
    centre = ((n / 2.0, n * 0.55) if ps is PATTERN_SETS[0] else
              (t[0, 0] * ps.centre[0] + t[0, 2], t[1, 1] * ps.centre[1] + t[1, 2]))
    return _Bank(d, dither, delta, max_energy, marker, wsum, box, pbox, wbox, ps.name,
                 (float(centre[0]), float(centre[1])))


def _gain(canon: np.ndarray, window: np.ndarray) -> float:
    """The host's brightness scale: (window-mean luma + 0.055) / ``GAIN_REF``.

    ``canon`` is the canonical luma (n×n, with ``bank.window``) or its support box (with
    ``bank.window_box``).

    A grade that multiplies linear light by k scales display-sRGB values about −0.055 by
    about k^(1/2.4) (the sRGB curve's power segment), so projections divided by this track it.
    """
    if not GAIN_NORM:
        return 1.0
    return max(float(window @ canon.ravel()) + 0.055, 0.05) / GAIN_REF



# --------------------------------------------------------------------------------------------
# Payload


def payload_id(model_sha256: str) -> str:
    """The short id a model's faces carry: the first 4 hex digits of its sha256, lower case.

    Raises:
        ValueError: fewer than 4 leading hex digits.
    """
    s = str(model_sha256).strip().lower()
    head = s[:_ID_HEX]
    if len(head) != _ID_HEX or any(ch not in "0123456789abcdef" for ch in head):
        raise ValueError(f"model_sha256: expected a hex digest, got {model_sha256!r}")
    return head


def _crc8(value: int, nbits: int) -> int:
    """CRC-8 (polynomial x⁸+x²+x+1, 0x07) of ``nbits`` bits of ``value``, MSB first."""
    crc = 0
    for i in range(nbits - 1, -1, -1):
        bit = (value >> i) & 1
        top = (crc >> 7) & 1
        crc = (crc << 1) & 0xFF
        if top ^ bit:
            crc ^= 0x07
    return crc


def _bits(value: int, n: int) -> np.ndarray:
    return np.array([(value >> (n - 1 - i)) & 1 for i in range(n)], np.uint8)


def _value(bits: np.ndarray) -> int:
    v = 0
    for b in bits:
        v = (v << 1) | int(b)
    return v


def payload_bits(model_id: str) -> np.ndarray:
    """The K embedded bits (uint8 0/1, read-only): marker, id, CRC-8 of the id."""
    return _payload_bits(payload_id(model_id))


@functools.lru_cache(maxsize=64)
def _payload_bits(ident_hex: str) -> np.ndarray:
    ident = int(ident_hex, 16)
    bits = np.concatenate([_bank().marker, _bits(ident, ID_BITS),
                           _bits(_crc8(ident, ID_BITS), CRC_BITS)])
    bits.flags.writeable = False  # shared by every call with this id
    return bits



# --------------------------------------------------------------------------------------------
# Geometry


def canonical_matrix(landmarks: np.ndarray) -> np.ndarray:
    """2×3 float64 frame → canonical crop matrix (``CANON_SIZE``, centering "face", coverage 1).

    Args:
        landmarks: 68×2 (x, y) frame pixels, iBUG order, pixel centres at +0.5.
    """
    return crop_matrix(check_points(landmarks, 68), CANON_SIZE, "face", 1.0)


def canon_to_crop(landmarks: np.ndarray, frame_to_crop: np.ndarray) -> np.ndarray:
    """The 2×3 canonical → model-crop matrix :func:`embed_face` takes.

    ``compose_affine(frame_to_crop, invert_affine(canonical_matrix(landmarks)))``: canonical
    pixels → frame pixels → crop pixels.

    Args:
        landmarks: The face's 68×2 frame landmarks (those its crop matrix was built from).
        frame_to_crop: 2×3 frame → crop matrix the face crop is pasted with (in
            ``swap_frame``: ``paste_matrix(m_out[i], s_out, cfg)``).
    """
    return compose_affine(check_matrix(frame_to_crop, "frame_to_crop"),
                          invert_affine(canonical_matrix(landmarks)))
