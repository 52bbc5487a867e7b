"""The invisible face watermark: embedded in every swapped face, detected on any frame.

Why not the ``invisible-watermark`` package (DWT-DCT): it marks fixed blocks of the frame's own
pixel grid, so a 0.5× downscale (or any crop/re-frame) moves every coefficient to another block
and the mark is gone, and it is blind to where the face is. We build our own, in **face-aligned
canonical coordinates**, so frame size, face size and a resize do not matter.

Canonical space:
    ``CANON_SIZE``×``CANON_SIZE`` pixels, ``crop_matrix(landmarks, CANON_SIZE, "face", 1.0)``
    (:func:`canonical_matrix`): the mean face fills the same place in every frame, whatever the
    frame's resolution. Points (x, y), x right, y down, pixel centres at +0.5, as in
    :mod:`faceplate.core.geometry`; matrices map source → destination.

What is embedded (spread-transform dither modulation, an *informed* scheme):
    ``K = MARKER_BITS + ID_BITS + CRC_BITS`` patterns ``d_k`` (canonical pixels), each a
    pseudo-random field band-limited to wavelengths of ``BAND`` canonical pixels (so JPEG,
    H.264 and a 0.5× resize keep it), multiplied by a smooth elliptic window over the inner
    face (cheeks, eyes, nose, mouth; well inside the swap mask), high-passed
    (``x − G_σ * x``, σ = ``HP_SIGMA``: no shading component) and orthonormalised; fixed seed.
    The detector's statistic for bit ``k`` is the projection ``c_k = <d_k, Y>`` of the
    canonical luma, divided by its brightness (below). The face's own projections are ~6×
    larger than anything invisible (measured on the sample media), so blind additive spread
    spectrum cannot work at 45 dB. Because the embedder sees the host face, it instead moves
    each ``c_k`` to the nearest point of the lattice ``Δ·(j + b_k/2) + dither_k`` for its bit
    ``b_k`` (quantisation index modulation; plain spread spectrum at the same energy, from
    the measured host projections: a per-bit SNR of ~0.17, hopeless). The cost is ``Δ²/12``
    per bit on average *whatever the host*, and the luma change ``w = Σ δc_k d_k`` (the
    minimum-norm change, exact for the orthonormal detector) is added equally to R, G and B.
    ``Δ`` is set from the energy budget (``PSNR_TARGET`` dB over the face); a face whose
    move would cost more than ``PSNR_FLOOR`` allows is scaled down to it. The price of an
    informed scheme: the host's projections (≈ 2.5 Δ) must be re-measured to a tenth of Δ,
    so sampling is alike on both sides (:func:`_source`), and the detector must re-register
    the face (below).

Payload:
    a fixed 32-bit Faceplate marker (detection), then a 16-bit id (the first 4 hex digits of the
    model's sha256, :func:`payload_id`) protected by a CRC-8: K = 56 patterns. Measured: 32
    marker bits instead of 24 raise the marked faces' median score by ~0.9 at the same
    false-positive threshold.

Gain: projections are divided by the window's mean luma (+0.055, the sRGB offset): an exposure
change of k in linear light scales display values by about k^(1/2.4) around −0.055, so the
grade attack leaves the normalised projections almost unchanged (residual error 0.13Δ → 0.03Δ).

Where it is embedded (:func:`embed_in_frame`, called by ``swap_frame`` after every face is
pasted): on the frame's final pixels, where the verifier will look. The verifier re-detects
the face on the output and its landmarks come from the *swapped* face, which differ from the
plate's stored ones by 1.7–2.8 canonical px RMS (up to 8 px on head turns; measured on real
swaps with the trained test model), more than the registration search covers. So the embedder
re-finds the landmarks on the pasted result (:func:`refine_landmarks`, seeded with the
record's detector box; no detection): dlib's 68-point predictor (its weights, evaluated by
our own :mod:`faceplate.extract.ert`: 2–3× faster than dlib's) on the area
around the box, area-downscaled by an integer factor (blocks on the frame's own grid) so the
box is 192–383 px, re-run from the box fitted to its own landmarks until that (integer) box
repeats. The verifier uses the same procedure from its detector's box
(:func:`frame_landmarks`), so both reach about the same fixed point whatever their seed
boxes: 0.3–0.65 canonical px RMS apart on 1080p real swaps. The host projections are
measured on the frame's own display-sRGB luma around the face, sampled exactly as the
detector samples it (:func:`_source`: f×f block means on the frame's grid, then bicubic into
the canonical crop's support box), the change is multiplied by the face's matte (the frame stays
bit-exact where the matte is 0) and added in display sRGB (a scene-linear box is converted,
marked and converted back only where the matte is > 0). ``EMBED_PASSES`` passes re-measure
and correct in canonical space (the matte's attenuation). A ``raw`` paste (matte left to the
user) is aligned and measured on the composite it will become and marked without the matte.
:func:`mark_crop` puts the same mark on the crop-space patch. :func:`embed_face` (marking a
crop before the paste with the plate's landmarks) is kept for callers without a frame.

Detection (:func:`detect_faces`):
    the frame's luma is sampled into the canonical crop from the detected landmarks (block
    means and a low-pass first when the face is larger than the crop, :func:`_source`) and
    projected. The embedder's and the
    verifier's landmarks still differ a little (and by ~1.5 px more after a 0.5× downscale),
    which moves the host's projections by more than Δ/4, so the detector
    registers: a coarse grid of exact similarity warps (shift ±1 px, rotation ±1.5°, scale
    ±2 %) with a first-order fine grid around each, keeping the alignment that best fits the
    marker. Each bit gives ``s_k = cos(2π(c_k − dither_k)/Δ)`` (+1 for a 0 bit, −1 for a 1).
    The marker score ``score = Σ_marker ±s_k / sqrt(MARKER_BITS/2)`` is N(0, 1) at one
    alignment on an unmarked face (the projections spread far wider than Δ, so the phases are
    uniform); the search takes the best of many correlated alignments, so its null is
    calibrated on unmarked faces of the sample media with random stand-in markers
    (:func:`null_scores`, table ``NULL_TAIL``): ``SCORE_THRESHOLD`` sits where its tail is
    below ``FP_TARGET``, and ``confidence = 1 − null_tail(score)``. The payload is reported
    when the id's bits pass the CRC. (Recalibrate with ``tools/calibrate_watermark_null.py``
    whenever the sampling or the search changes.)

Second pass (:func:`detect_frame`): a swapped face can fail the extractor's detector check
    (e.g. the 64 px model's blurred face half hidden by a hand, frame 112 of the woman's clip at
    1080p: upright it is rejected, and the rotation retry finds an upside-down "face" above it
    where the mark cannot be). So the raw upright BlazeFace candidates are also aligned (same
    procedure) and scored when they are not a first-pass face, against the stricter
    ``SECOND_PASS_THRESHOLD`` (null tail 4e-5: with up to two extra candidates per face
    the calibrated false-positive rate per face stays ≤ 1.5e-4 + 2·4e-5, well under
    ``FP_TARGET``); only detections are reported.

What a detection proves, and what it does not:
    a detected mark says that this face was, with overwhelming likelihood (false-positive
    rate measured 0 on 634 unmarked faces, calibrated ≤ 1e-3 per face), output by Faceplate's
    swap, and the payload (when its CRC checks) names the model by 4 hex digits of its sha256
    (65,536 values: a hint to match against a manifest, not an identity). It is not
    cryptographic: the pattern seed is public in this source, so anyone can embed, remove or
    forge the mark on purpose; it proves nothing about who ran the swap or when (that is the
    signed C2PA manifest's job, :mod:`faceplate.provenance.c2pa_sign`). An absent mark proves
    nothing either: heavy compression, a strong re-grade, a crop that loses the face, a
    re-detection that fails, or another tool's swap all read as "not found".

Measured (``benchmarks/provenance.py``, full run, REAL swaps: ``swap_frame`` with the trained
64 px test model, default settings; 190 frames per resolution: all 72 of single_face.mp4 and
every 4th of the woman's 472-frame head-turn clip, at 1920×1080 (upscaled test footage) and at
640×360; 2-core CPU). PSNR over the face 46.8 dB mean, 46.1 min (both resolutions). Detection
at 1920×1080: 190/190 (100 %) clean, JPEG 75, H.264 CRF 23, 0.5× downscale and both grades
(lowest score 6.35 against 5.25); payload decoded on 88–100 %, never a wrong one. At 640×360:
190/190 for every attack except H.264 CRF 23 judged frame by frame, 179–186/190 (94–98 %
across runs and variants; payload ~35 %); with the video verdict (:func:`pool_tracks`, what
``faceplate verify`` does on videos and sequences) 190/190. There the codec adds noise of
0.10–0.18 Δ RMS to the projections of the failing faces (their landmarks agree with the
embedder's to 0.3–0.7 canonical px, so registration is not the cause); tried and measured on
those 190 frames without a gain beyond the spread: 0.8 dB more energy, bands of 16–48 and
20–64 canonical px (worse: 182 and 155), 10–32 (185), a larger step for the marker bits than
for the id bits. Those losses are single frames inside marked tracks, which the video verdict
recovers.
False positives: 0 of 634 unmarked faces on all 821 frames/photos of the sample media (top
score 4.85), alone and with the video verdict. At 1080p (faces 490–710 px) the ``watermark``
stage inside ``swap_frame``, where everything comes cold out of memory after the model, takes
4.4–4.9 ms a frame over six full runs; ``embed_in_frame`` alone 3.8–4.5 ms per face over
repeated runs (the landmark fixed point about half of it; 9.9 ms with dlib's own evaluator and
a full-resolution Gaussian prefilter). Verify: 46–53 ms per 1080p frame (one face, no
second-pass candidate).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import cv2
import numpy as np

from faceplate.core.colorspace import linear_to_srgb, srgb_to_linear
from faceplate.core.geometry import (
    MEAN_FACE_68,
    compose_affine,
    crop_matrix,
    invert_affine,
    matrix_scale,
    template_to_crop,
    to_cv2,
)
from faceplate.core.validate import check_image, check_matrix, check_points

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
#: Allowed false-positive rate per unmarked face.
FP_TARGET = 1e-3
#: Divide projections by the host's brightness (see "Gain" above); the reference brightness.
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


def _window(n: int) -> np.ndarray:
    """n×n float32 weight in [0, 1]: an ellipse over the inner face, cosine-tapered edge."""
    t = template_to_crop(n, "face")
    k = t[0, 0]
    cx, cy = k * 0.5 + t[0, 2], k * 0.62 + t[1, 2]  # between the eyes and the mouth
    yy, xx = np.mgrid[0:n, 0:n] + 0.5
    r = np.sqrt(((xx - cx) / (0.46 * k)) ** 2 + ((yy - cy) / (0.60 * k)) ** 2)
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


@functools.cache
def _bank() -> _Bank:
    n = CANON_SIZE
    rng = np.random.default_rng(SEED)
    win = _window(n)
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
    wsum = (win / win.sum()).ravel().astype(np.float32)
    amp = np.abs(d).max(axis=0).reshape(n, n)
    ys, xs = np.nonzero((amp > 1e-3 * amp.max()) | (win > 0.0))
    box = (max(0, int(xs.min()) - 1), max(0, int(ys.min()) - 1), min(n, int(xs.max()) + 2),
           min(n, int(ys.max()) + 2))
    cut = (slice(box[1], box[3]), slice(box[0], box[2]))
    pbox = np.ascontiguousarray(d.reshape(_K, n, n)[:, cut[0], cut[1]].reshape(_K, -1))
    wbox = np.ascontiguousarray(wsum.reshape(n, n)[cut].ravel())
    return _Bank(d, dither, delta, max_energy, marker, wsum, box, pbox, wbox)


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


def _finite(x: np.ndarray) -> np.ndarray:
    """``x`` with NaN → 0, +inf → 1, −inf → 0 (the array itself when all finite: one pass)."""
    if np.isfinite(x).all():
        return x
    return np.nan_to_num(x, nan=0.0, posinf=1.0, neginf=0.0)


_LUMA_U8 = (LUMA / np.float32(255.0)).reshape(1, 3)
_LUMA_F = LUMA.reshape(1, 3)


def _luma(rgb: np.ndarray) -> np.ndarray:
    """H×W float32 luma in [0, 1]-ish from H×W×C uint8 or float display sRGB (C ≥ 3)."""
    x = rgb[..., :3]
    if x.dtype == np.uint8:
        xf, m = x.astype(np.float32), _LUMA_U8
    else:
        xf, m = np.ascontiguousarray(_finite(x.astype(np.float32, copy=False))), _LUMA_F
    y: np.ndarray = cv2.transform(xf, m)  # OpenCV's SIMD per-pixel dot product
    return y[..., 0] if y.ndim == 3 else y


def _antialias(luma: np.ndarray, canon_to_src: np.ndarray) -> np.ndarray:
    """Low-pass a source luma image that is sampled more coarsely by the canonical crop."""
    scale = matrix_scale(canon_to_src)  # source pixels per canonical pixel
    if scale > AA_FROM:
        return cv2.GaussianBlur(luma, (0, 0), AA_SIGMA * scale, borderType=cv2.BORDER_REPLICATE)
    return luma


def _area_factor(canon_to_frame: np.ndarray) -> int:
    """The block side f (frame pixels) a source is area-averaged over before the canonical
    warp: ⌊frame pixels per canonical pixel⌋, at least 1."""
    return max(1, int(matrix_scale(canon_to_frame) + 1e-9))


def _source(luma: np.ndarray, origin: tuple[int, int], canon_to_frame: np.ndarray
            ) -> tuple[np.ndarray, np.ndarray]:
    """The image the canonical crop is sampled from, and the canonical → image matrix.

    Args:
        luma: H×W float32 piece of the frame's luma whose pixel (0, 0) is frame pixel
            ``origin`` (x, y).
        canon_to_frame: 2×3 canonical → frame matrix.

    A face f ≥ 2 frame pixels per canonical pixel (:func:`_area_factor`) is first
    area-averaged over f×f blocks of the *frame's* pixel grid (blocks start at frame
    coordinates that are multiples of f, whatever piece of the frame ``luma`` is, so the
    embedder's region and the detector's larger one give the same block values; a block
    average has zeros at the frequencies that would alias into the pattern band); what is
    left of the scale (< 2) is low-passed as before (:func:`_antialias`). Embedder and
    detector both sample through here (the embedder's float luma exactly as the detector's:
    8-bit block means before the luma were tried, within 1.5 % of Δ, and turned a marginal id
    bit on one test swap).
    """
    ox, oy = int(origin[0]), int(origin[1])
    to_local = compose_affine(_translate(-ox, -oy), canon_to_frame)
    f = _area_factor(canon_to_frame)
    if f > 1:
        ax, ay = -ox % f, -oy % f  # the first whole block aligned to the frame grid
        h, w = luma.shape
        nw, nh = (w - ax) // f, (h - ay) // f
        if nw >= 4 and nh >= 4:
            luma = cv2.resize(luma[ay:ay + nh * f, ax:ax + nw * f], (nw, nh),
                              interpolation=cv2.INTER_AREA)
            k = 1.0 / f
            to_local = compose_affine(np.array([[k, 0.0, -ax * k], [0.0, k, -ay * k]]),
                                      to_local)
    return _antialias(luma, to_local), to_local


def _warp(src: np.ndarray, canon_to_src: np.ndarray) -> np.ndarray:
    n = CANON_SIZE
    return cv2.warpAffine(src, to_cv2(canon_to_src), (n, n),
                          flags=INTERP | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)


def _warp_box(src: np.ndarray, canon_to_src: np.ndarray, bank: _Bank,
              interpolation: int = INTERP) -> np.ndarray:
    """The canonical crop's support box (``bank.box``) sampled from ``src``: (y1 − y0)×(x1 − x0)
    float32, the same pixels as ``_warp(src, canon_to_src)[y0:y1, x0:x1]``."""
    x0, y0, x1, y1 = bank.box
    m = compose_affine(canon_to_src, _translate(x0, y0))
    return cv2.warpAffine(src, to_cv2(m), (x1 - x0, y1 - y0),
                          flags=interpolation | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)


def _to_canonical(luma: np.ndarray, canon_to_src: np.ndarray) -> np.ndarray:
    """Warp a source luma image into the canonical crop (low-passed first when larger).

    ``canon_to_src`` maps canonical pixels → source pixels.
    """
    return _warp(_antialias(luma, canon_to_src), canon_to_src)


def prepare() -> None:
    """Build the pattern bank and load the landmark model now (otherwise the first face marked
    pays for both, ~0.3 s): converters call this once before their first frame."""
    _bank()
    _shape_predictor()


def _translate(dx: float, dy: float) -> np.ndarray:
    return np.array([[1.0, 0.0, dx], [0.0, 1.0, dy]])


# --------------------------------------------------------------------------------------------
# Embedding


def embed_face(face: np.ndarray, canon_to_crop: np.ndarray, model_id: str) -> np.ndarray:
    """Mark a swapped face crop before it is pasted.

    Args:
        face: S×S×3 float32 display sRGB, roughly [0, 1] (the model's crop after colour and
            post). Never modified.
        canon_to_crop: 2×3 canonical → crop matrix (:func:`canon_to_crop`).
        model_id: The model's sha256 hex digest or its :func:`payload_id`.

    Returns:
        A new S×S×3 float32 array: ``face`` plus the same luma change on R, G and B (at most
        ~1.5/255 RMS over the face); pixels inside [0, 1] stay inside it.
    """
    if not isinstance(face, np.ndarray) or face.ndim != 3 or face.shape[2] != 3 \
            or face.dtype != np.float32 or face.shape[0] < 8 or face.shape[1] < 8:
        got = (face.dtype, face.shape) if isinstance(face, np.ndarray) else type(face).__name__
        raise ValueError(f"face: expected an S×S×3 float32 array (S ≥ 8), got {got}")
    m = check_matrix(canon_to_crop, "canon_to_crop")
    bank = _bank()
    bits = payload_bits(model_id)
    host = _to_canonical(_luma(face), m)
    g = _gain(host, bank.window)
    c = bank.patterns @ host.ravel() / g
    # Nearest point of bit b's coset Δ·(j + b/2) + dither.
    u = (c - bank.dither) / bank.delta - bits * 0.5
    move = (np.round(u) - u) * bank.delta
    coeff = (move * g).astype(np.float32)
    w = coeff @ bank.patterns  # minimum-norm change giving exactly these moves
    energy = float(w @ w)
    if energy > bank.max_energy:
        w *= np.float32(math.sqrt(bank.max_energy / energy))
    n = CANON_SIZE
    h, wd = face.shape[:2]
    wc = cv2.warpAffine(w.reshape(n, n), to_cv2(m), (wd, h), flags=cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    out = face + wc[..., None]
    np.clip(out, np.minimum(face, 0.0), np.maximum(face, 1.0), out=out)
    return out


@dataclass(frozen=True, eq=False)
class FrameMark:
    """What :func:`embed_in_frame` added to one face.

    Attributes:
        landmarks: 68×2 float64 frame landmarks the canonical frame was built from (re-found
            on the pasted face by the dlib68 aligner; the record's own when that failed).
        to_canon: 2×3 float64 frame → canonical matrix (:func:`canonical_matrix` of them).
        change: ``CANON_SIZE``×``CANON_SIZE`` float32, the luma change in canonical pixels
            (display-sRGB units, added equally to R, G and B), before the matte.
        refined: Whether the landmarks were re-found (False: the aligner failed, the record's
            landmarks were used).
    """

    landmarks: np.ndarray
    to_canon: np.ndarray
    change: np.ndarray
    refined: bool


#: Passes of the informed embedding: each re-measures the projections on the frame's final
#: pixels (after the matte, clipping and uint8 rounding) and moves them the rest of the way.
EMBED_PASSES = 2
#: A further pass is skipped when what it could still move (a bound, see
#: :func:`embed_in_frame`) is below this fraction of Δ (the usual case: the matte is 1 under
#: the patterns; measured on real swaps, the marks then land 2 % of Δ from their targets on
#: average either way, from uint8 rounding and resampling).
PASS_SKIP = 0.01


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


def _display_region(region: np.ndarray, frame_is_linear: bool) -> np.ndarray:
    """An H×W×3 frame region → float32 display sRGB (finite; not clipped)."""
    if region.dtype == np.uint8:
        return region.astype(np.float32) * np.float32(1.0 / 255.0)
    x = _finite(region.astype(np.float32, copy=False))
    return linear_to_srgb(x) if frame_is_linear else x


#: At most this many extra dlib68 runs of :func:`refine_landmarks`, each from the box fitted
#: to the previous run's landmarks, stopping when the (integer) box repeats: a fixed-point
#: iteration, so the result no longer depends on the seed box (measured: each run moves the
#: landmarks ~0.65 canonical px until the box repeats, usually after 1–2 extra runs; a
#: cycle of boxes, seen on faces that are barely faces, gives the mean over the cycle).
REFINE_ITERATIONS = 3
#: The least side (pixels) of the seed box in the image the aligner reads: a face more than
#: twice as large is area-downscaled by an integer factor first (fast, and the aligner then
#: reads about the same pixels at any resolution, before or after a 0.5× downscale).
REFINE_BOX = 192.0
#: Half-side of the area read around the box's centre, in box sizes (the dlib predictor's
#: features lie within x ∈ [0.03, 0.97], y ∈ [0.16, 1.07] of the box for the mean shape,
#: then follow the face's rotation; the iteration may move the box a little). Measured: 0.9
#: gives the same landmarks as 1.0 on all of 135 sample and real-swap faces, 0.8 moves some by
#: half a pixel.
REFINE_REACH = 0.9


def _shape_predictor() -> Any:
    from faceplate.extract.ert import shape_model

    return shape_model(68)


def refine_landmarks(frame: np.ndarray, seed_box: Any, *, frame_is_linear: bool = False,
                     patch: tuple[tuple[int, int, int, int], np.ndarray] | None = None,
                     iterations: int | None = None) -> np.ndarray | None:
    """Re-find a face's 68 landmarks on ``frame`` with dlib's 68-point predictor, from a box.

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
    model = _shape_predictor()
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


def embed_in_frame(frame: np.ndarray, box: tuple[int, int, int, int], matte_box: np.ndarray,
                   landmarks: np.ndarray, model_id: str, *, frame_is_linear: bool,
                   seed_box: Any = None, seen: np.ndarray | None = None,
                   by_hand: bool = False) -> FrameMark | None:
    """Mark a face on the frame's final pixels, in place, where the verifier will look.

    The canonical frame comes from landmarks re-found on the pasted face
    (:func:`refine_landmarks`, seeded with ``seed_box``), the host projections are measured on
    the frame's own pixels (display sRGB luma, exactly as the detector warps them), and the
    luma change, multiplied by the matte, is added to R, G and B; ``EMBED_PASSES`` passes
    re-measure and correct (matte, clipping, uint8 rounding).

    Args:
        frame: H×W×3/4 ``uint8`` display sRGB, or ``float32`` display sRGB or scene-linear
            (``frame_is_linear``: the box is converted to display sRGB, marked, and converted
            back only where the matte is > 0). Alpha is never touched. Modified in place.
        box: (x0, y0, x1, y1) half-open frame pixels of ``matte_box``.
        matte_box: (y1 − y0)×(x1 − x0) float32 in [0, 1], the face's matte in the frame: the
            frame is bit-exact wherever it is 0.
        landmarks: The face's 68×2 (x, y) frame landmarks (the record's; the fallback).
        model_id: The model's sha256 hex digest or its :func:`payload_id`.
        frame_is_linear: Whether a float frame is scene-linear (False for uint8).
        seed_box: The record's detector box (:class:`faceplate.core.types.BBox`, dlib
            convention) to re-align from; when None, a box fitted to ``landmarks``.
        seen: The box's pixels as they will be seen, (y1 − y0)×(x1 − x0)×3 float32 in the
            frame's colour space (display [0, 1] for a uint8 frame): measured instead of the
            frame's own (with ``by_hand``, the composite over the plate; ``swap_frame``
            passes nothing else). None: the frame's pixels, as the verifier reads them.
        by_hand: The paste leaves the matte to the user (the ``raw`` blend: the box holds the
            straight face wherever the matte is > 0, and ``seen`` is the composite): the mark
            is aligned and measured on ``seen`` and added *without* the matte (compositing by
            hand multiplies by it), so the composite carries the default blend's mark.

    Returns:
        A :class:`FrameMark`, or None when the box is empty (nothing changed).
    """
    check_image(frame, "frame", dtypes=_FRAME_DTYPES, channels=(3, 4))
    if frame.dtype == np.uint8 and frame_is_linear:
        raise ValueError("frame: a uint8 frame is display sRGB; frame_is_linear must be False")
    bits = payload_bits(model_id)
    lm0 = check_points(landmarks, 68).astype(np.float64)
    h, w = frame.shape[:2]
    bx0, by0, bx1, by1 = (int(v) for v in box)
    bx0, by0, bx1, by1 = max(bx0, 0), max(by0, 0), min(bx1, w), min(by1, h)
    matte = np.asarray(matte_box, np.float32)
    if matte.shape != (int(box[3]) - int(box[1]), int(box[2]) - int(box[0])):
        raise ValueError(f"matte_box: expected shape {(box[3] - box[1], box[2] - box[0])}, "
                         f"got {matte.shape}")
    matte = matte[by0 - int(box[1]):by1 - int(box[1]), bx0 - int(box[0]):bx1 - int(box[0])]
    if bx1 <= bx0 or by1 <= by0:
        return None
    if seen is not None and seen.shape[:2] != matte_box.shape:
        raise ValueError(f"seen: expected {matte_box.shape} pixels, got {seen.shape[:2]}")
    if by_hand and seen is None:
        raise ValueError("by_hand: needs the composite as `seen`")
    seed = seed_box if seed_box is not None else _box_from_landmarks(lm0)
    bxy = (int(box[0]), int(box[1]), int(box[2]), int(box[3]))
    # A uint8 frame already holds the 8-bit rendering of `seen` (unless composited by hand).
    lm = refine_landmarks(frame, seed, frame_is_linear=frame_is_linear,
                          patch=(bxy, seen) if by_hand and seen is not None else None)
    refined = lm is not None
    if lm is None:
        lm = lm0
    bank = _bank()
    to_canon = canonical_matrix(lm)
    to_src = invert_affine(to_canon)
    # The work region: the matte's box ∩ the patterns' support, plus the reach of the area
    # blocks, their grid alignment, the residual low-pass and the bicubic kernel.
    f = _area_factor(to_src)
    u0, v0, u1, v1 = bank.box
    corners = np.array([[u0, v0], [u1, v0], [u0, v1], [u1, v1]], np.float64)
    pts = corners @ to_src[:, :2].T + to_src[:, 2]
    pad = f * (4 + int(math.ceil(3.0 * AA_SIGMA * matrix_scale(to_src) / f)))
    rx0 = max(bx0, int(math.floor(pts[:, 0].min())) - pad)
    ry0 = max(by0, int(math.floor(pts[:, 1].min())) - pad)
    rx1 = min(bx1, int(math.ceil(pts[:, 0].max())) + pad)
    ry1 = min(by1, int(math.ceil(pts[:, 1].max())) + pad)
    if rx1 - rx0 < 4 * f or ry1 - ry0 < 4 * f:
        return None
    view = frame[ry0:ry1, rx0:rx1, :3]
    mat = matte[ry0 - by0:ry1 - by0, rx0 - bx0:rx1 - bx0]
    if not mat.any():  # nothing of the face where the mark would go
        return None
    # The detector's view of the host: display luma in [0, 1], sampled as the detector
    # samples it (:func:`_source`).
    base = None if view.dtype == np.uint8 else _display_region(view, frame_is_linear)
    if seen is not None:
        part = seen[ry0 - bxy[1]:ry1 - bxy[1], rx0 - bxy[0]:rx1 - bxy[0], :3]
        lin = frame_is_linear and frame.dtype != np.uint8
        luma0 = _luma(np.clip(_display_region(part, lin), 0.0, 1.0))
    elif base is None:
        luma0 = _luma(view)
    else:
        luma0 = _luma(np.clip(base, 0.0, 1.0))
    src, canon_to_img = _source(luma0, (rx0, ry0), to_src)
    host = _warp_box(src, canon_to_img, bank).ravel()
    canon_to_region = compose_affine(_translate(-rx0, -ry0), to_src)
    # The matte seen from canonical space (the change lands multiplied by it).
    matte_c = _warp_box(mat, canon_to_region, bank, cv2.INTER_LINEAR).ravel()
    pb = bank.patterns_box
    total = np.zeros(pb.shape[1], np.float32)
    target: np.ndarray | None = None
    for _ in range(max(1, EMBED_PASSES)):
        # The host plus the change so far, as the detector will measure it (the change is the
        # same on R, G and B and the luma weights sum to 1; a band-limited change survives
        # the canonical → frame → canonical round trip; clipping and uint8 rounding are far
        # below Δ). Products by einsum: single-threaded, no BLAS thread start-up.
        cur = host + total * matte_c
        g = _gain(cur, bank.window_box)
        c = np.einsum("kp,p->k", pb, cur) / g
        if target is None:
            # Nearest point of bit b's coset Δ·(j + b/2) + dither.
            u = (c - bank.dither) / bank.delta - bits * 0.5
            target = (np.round(u) + bits * 0.5) * bank.delta + bank.dither
        coeff = ((target - c) * g).astype(np.float32)
        total = total + np.einsum("k,kp->p", coeff, pb)
        energy = float(np.dot(total, total))
        if energy > bank.max_energy:
            total *= np.float32(math.sqrt(bank.max_energy / energy))
            continue  # capped: the next pass re-measures what the cap left
        # What this pass left: exactly −P·((1 − matte)·total)/g (P's rows orthonormal,
        # ``total`` in their span), so at most ‖(1 − matte)·total‖/g. A matte that is 1
        # under the patterns leaves nothing worth another pass.
        if float(np.linalg.norm((1.0 - matte_c) * total)) / g < PASS_SKIP * bank.delta:
            break
    n = CANON_SIZE
    change = np.zeros((n, n), np.float32)
    change[v0:v1, u0:u1] = total.reshape(v1 - v0, u1 - u0)
    d = _change_in_region(change, canon_to_region, (rx1 - rx0, ry1 - ry0), f)
    weight = (mat > 0.0).astype(np.float32) if by_hand else mat
    if base is None:
        # k/255 + d clipped to [0, 1] and rounded: q = 255·d·matte rounded to an integer and
        # added to the bytes with saturation; d·matte = 0 (matte 0) gives k back exactly. As
        # two saturating byte operations (faster than one in 16 bits): add max(q, 0), then
        # subtract max(−q, 0) (OpenCV saturates each product to [0, 255] with the same
        # round-to-nearest, and at most one of the two is non-zero at a pixel).
        up = cv2.multiply(d, weight, scale=255.0, dtype=cv2.CV_8U)
        down = cv2.multiply(d, weight, scale=-255.0, dtype=cv2.CV_8U)
        up3, down3 = cv2.merge([up, up, up]), cv2.merge([down, down, down])
        if view.strides[1] == 3:  # packed RGB rows: OpenCV writes into the frame itself
            cv2.add(view, up3, dst=view)
            cv2.subtract(view, down3, dst=view)
        else:  # RGBA: the RGB channels are not a matrix OpenCV can write in place
            view[...] = cv2.subtract(cv2.add(view, up3), down3)
    else:
        d = d * weight
        new_disp = base + d[..., None]
        np.clip(new_disp, np.minimum(base, 0.0), np.maximum(base, 1.0), out=new_disp)
        out = srgb_to_linear(new_disp) if frame_is_linear else new_disp
        np.copyto(view, out, where=(mat > 0.0)[..., None])
    return FrameMark(lm, to_canon, change, refined)


def _change_in_region(change: np.ndarray, canon_to_region: np.ndarray, size: tuple[int, int],
                      f: int) -> np.ndarray:
    """The canonical change (n×n float32) resampled onto a frame region of ``size`` (w, h).

    Bilinear; with ``f`` > 1 it is sampled on the region's f×f block grid and bilinearly
    enlarged (the change is band-limited to wavelengths of ≥ 12 canonical ≥ 12·f region
    pixels, so the two agree to about a percent, for a fraction of the cost).
    """
    w, h = size
    if f <= 1:
        return cv2.warpAffine(change, to_cv2(invert_affine(canon_to_region)), (w, h),
                              flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    sw, sh = -(-w // f), -(-h // f)
    k = 1.0 / f
    to_small = compose_affine(np.array([[k, 0.0, 0.0], [0.0, k, 0.0]]), canon_to_region)
    small = cv2.warpAffine(change, to_cv2(invert_affine(to_small)), (sw, sh),
                           flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    big = cv2.resize(small, (sw * f, sh * f), interpolation=cv2.INTER_LINEAR)
    return big[:h, :w]


def mark_crop(face: np.ndarray, mark: FrameMark, frame_to_crop: np.ndarray) -> np.ndarray:
    """The same mark on a crop-space face (e.g. the patch a patch writer exports), so that
    pasting it with its matte gives the marked frame.

    Args:
        face: S×S×3 float32 display sRGB crop. Never modified.
        mark: What :func:`embed_in_frame` returned for this face.
        frame_to_crop: 2×3 frame → crop matrix the face is pasted with.

    Returns:
        A new S×S×3 float32 array (values inside [0, 1] stay inside it).
    """
    m = compose_affine(check_matrix(frame_to_crop, "frame_to_crop"), invert_affine(mark.to_canon))
    hh, ww = face.shape[:2]
    wc = cv2.warpAffine(mark.change, to_cv2(m), (ww, hh), flags=cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    out = face + wc[..., None]
    np.clip(out, np.minimum(face, 0.0), np.maximum(face, 1.0), out=out)
    return out


# --------------------------------------------------------------------------------------------
# Detection


@dataclass(frozen=True)
class FaceMark:
    """The watermark verdict for one face.

    Attributes:
        detected: Whether the Faceplate marker is present (``score ≥ SCORE_THRESHOLD``).
        confidence: 1 − the calibrated p-value of the score under "no mark"
            (:func:`null_tail`), in [0, 1].
        payload: The model id (4 hex digits) when detected and its CRC checks, else None.
        box: The face's box in frame pixels (x, y, w, h), from its landmarks.
        score: The marker statistic after the registration search (unmarked faces: mean ≈ 3.6,
            s.d. ≈ 0.39; marked faces: ≈ 7).
        marker_errors: Marker bits decoded wrong at the best offset (0 on a clean mark).
        offset: The canonical sub-pixel offset (dx, dy) that scored best.
        track_score: The mean score of the face's track over neighbouring checked frames
            (:func:`pool_tracks`; None for a single image or a face with no neighbour).
        by_track: Detected through its track only (its own score is below the threshold).
    """

    detected: bool
    confidence: float
    payload: str | None
    box: tuple[int, int, int, int]
    score: float = 0.0
    marker_errors: int = MARKER_BITS
    offset: tuple[float, float] = (0.0, 0.0)
    track_score: float | None = None
    by_track: bool = False


#: The registration search (canonical units): coarse exact warps, then a linearised fine grid
#: around each. Shifts in pixels, rotations in degrees, scales as factors − 1.
COARSE_SHIFTS: tuple[float, ...] = (-1.0, 0.0, 1.0)
COARSE_ROTS: tuple[float, ...] = (-1.5, 0.0, 1.5)
COARSE_SCALES: tuple[float, ...] = (-0.02, 0.0, 0.02)
FINE_SHIFTS: tuple[float, ...] = (-0.4, -0.2, 0.0, 0.2, 0.4)
FINE_ROTS: tuple[float, ...] = (-0.6, 0.0, 0.6)
FINE_SCALES: tuple[float, ...] = (-0.008, 0.0, 0.008)


def _q(x: float) -> float:
    """Upper tail of the standard normal."""
    return 0.5 * math.erfc(x / math.sqrt(2.0))


#: The calibrated null: (score, fraction of unmarked searches scoring at least that), from
#: 33,792 searches (66 unmarked faces of the two sample videos × 512 random stand-in markers:
#: ``tools/calibrate_watermark_null.py``; mean 3.57, s.d. 0.385).
NULL_TAIL: tuple[tuple[float, float], ...] = (
    (2.5, 0.997), (3.0, 0.939), (3.25, 0.81), (3.5, 0.571), (3.75, 0.309), (4.0, 0.129),
    (4.25, 0.0436), (4.5, 0.0126), (4.75, 0.00349), (5.0, 0.000681), (5.25, 0.000148),
    (5.5, 2.96e-05))
#: Beyond the table the tail is taken as N_EFFECTIVE·Q(score) (the best of N_EFFECTIVE
#: independent N(0, 1) alignments), matched to the table's last point.
N_EFFECTIVE: float = 1559.0
#: Score at or above which a face is "detected": the calibrated tail there is 1.5e-4, kept
#: well under FP_TARGET because unmarked photos and other people score a little higher than
#: the calibration faces (at 5.1 one of the 634 faces of the sample media, 0.16 %, passed).
SCORE_THRESHOLD: float = 5.25
#: The threshold for the second pass's extra candidates (:func:`detect_frame`): its tail is
#: 4e-5, so a face with up to two extra candidates stays ≤ 2.3e-4 in all (≤ FP_TARGET).
SECOND_PASS_THRESHOLD: float = 5.45


def null_tail(score: float) -> float:
    """P(score ≥ ``score``) on an unmarked face (log-linear in the calibrated table)."""
    pts = NULL_TAIL
    if score <= pts[0][0]:
        return 1.0
    if score >= pts[-1][0]:
        return min(pts[-1][1], N_EFFECTIVE * _q(score))
    xs = [p[0] for p in pts]
    logs = [math.log(p[1]) for p in pts]
    return float(math.exp(np.interp(score, xs, logs)))


def _similarity(cx: float, cy: float, dx: float, dy: float, rot_deg: float,
                scale: float) -> np.ndarray:
    """2×3 canonical → canonical map: rotate by ``rot_deg`` and scale by 1 + ``scale`` about
    (cx, cy), then shift by (dx, dy)."""
    r = math.radians(rot_deg)
    k = 1.0 + scale
    a, b = k * math.cos(r), k * math.sin(r)
    return np.array([[a, -b, cx - a * cx + b * cy + dx], [b, a, cy - b * cx - a * cy + dy]])


@functools.cache
def _fine_grid() -> np.ndarray:
    """F×4 (dx, dy, rotation in radians, scale) of the linearised search."""
    g = [(dx, dy, math.radians(r), sc) for dx in FINE_SHIFTS for dy in FINE_SHIFTS
         for r in FINE_ROTS for sc in FINE_SCALES]
    return np.array(g, np.float64)


def _search(src: np.ndarray, to_src: np.ndarray, markers: np.ndarray
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Find the alignment that best fits each marker.

    Args:
        src: Source luma (float32), already area-averaged and low-passed (:func:`_source`).
        to_src: 2×3 canonical → source matrix from the landmarks.
        markers: R×MARKER_BITS 0/1 marker codes to score (row 0 is normally the real one).

    Returns:
        (R best scores, R×4 best fine parameters, the K projections at row 0's best).
    """
    bank = _bank()
    n = CANON_SIZE
    c0 = (n / 2.0, n * 0.55)  # about the nose: the window's centre
    x0, y0, x1, y1 = bank.box
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32) + np.float32(0.5)
    rx, ry = xx - np.float32(c0[0]), yy - np.float32(c0[1])
    pm = bank.patterns_box[:MARKER_BITS]
    signs = 1.0 - 2.0 * markers.astype(np.float64)  # R×M
    norm = math.sqrt(MARKER_BITS / 2.0)
    fine = _fine_grid()
    best = np.full(len(markers), -np.inf)
    best_p = np.zeros((len(markers), 4))
    for dx in COARSE_SHIFTS:
        for dy in COARSE_SHIFTS:
            for rot in COARSE_ROTS:
                for sc in COARSE_SCALES:
                    aln = compose_affine(to_src, _similarity(*c0, dx, dy, rot, sc))
                    z = _warp_box(src, aln, bank)
                    g = _gain(z, bank.window_box)
                    # The support box has a 1 px margin where the patterns are ~0, so the
                    # gradients' own border handling does not matter.
                    gx = cv2.Sobel(z, cv2.CV_32F, 1, 0, ksize=3, scale=0.125)
                    gy = cv2.Sobel(z, cv2.CV_32F, 0, 1, ksize=3, scale=0.125)
                    # d z(p + u)/dθ for θ = (dx, dy, rotation, scale) about the centre.
                    jac = np.stack([gx, gy, -ry * gx + rx * gy, rx * gx + ry * gy])
                    cm = (pm @ z.ravel()).astype(np.float64) / g
                    jm = (pm @ jac.reshape(4, -1).T).astype(np.float64) / g  # M×4
                    cc = cm[None, :] + fine @ jm.T  # F×M
                    s = np.cos(2.0 * np.pi * (cc - bank.dither[:MARKER_BITS]) / bank.delta)
                    scores = (s @ signs.T) / norm  # F×R
                    idx = np.argmax(scores, axis=0)
                    top = scores[idx, np.arange(len(markers))]
                    better = top > best
                    best[better] = top[better]
                    base = np.array([dx, dy, math.radians(rot), sc])
                    best_p[better] = base + fine[idx[better]]
    # Row 0's projections at its best alignment, all K bits (first-order around its warp).
    p = best_p[0]
    aln = compose_affine(to_src, _similarity(*c0, p[0], p[1], math.degrees(p[2]), p[3]))
    z = _warp_box(src, aln, bank)
    c = (bank.patterns_box.astype(np.float64) @ z.ravel().astype(np.float64)
         / _gain(z, bank.window_box))
    return best, best_p, c


def _soft_bits(c: np.ndarray, bank: _Bank) -> np.ndarray:
    """Per-bit cos(2π(c − dither)/Δ): +1 at a 0-bit lattice point, −1 at a 1-bit one."""
    return np.cos(2.0 * np.pi * (c - bank.dither) / bank.delta)


def _face_source(luma: np.ndarray, landmarks: np.ndarray
                 ) -> tuple[tuple[int, int, int, int], np.ndarray | None, np.ndarray]:
    """(face box x, y, w, h; the image the canonical crop is sampled from (:func:`_source` of
    the frame's luma around it) or None; the canonical → image matrix)."""
    lm = check_points(landmarks, 68).astype(np.float64)
    x0, y0 = np.floor(lm.min(axis=0))
    x1, y1 = np.ceil(lm.max(axis=0))
    box = (int(x0), int(y0), int(x1 - x0), int(y1 - y0))
    to_src = invert_affine(canonical_matrix(lm))
    n = CANON_SIZE
    corners = np.array([[0.0, 0.0], [n, 0.0], [0.0, n], [n, n]])
    pts = corners @ to_src[:, :2].T + to_src[:, 2]
    h, w = luma.shape
    pad = 8 * _area_factor(to_src)
    bx0 = max(0, int(math.floor(pts[:, 0].min())) - pad)
    by0 = max(0, int(math.floor(pts[:, 1].min())) - pad)
    bx1 = min(w, int(math.ceil(pts[:, 0].max())) + pad)
    by1 = min(h, int(math.ceil(pts[:, 1].max())) + pad)
    if bx1 - bx0 < 4 or by1 - by0 < 4:
        return box, None, compose_affine(_translate(-bx0, -by0), to_src)
    src, to_img = _source(np.ascontiguousarray(luma[by0:by1, bx0:bx1]), (bx0, by0), to_src)
    return box, src, to_img


def _score_face(luma: np.ndarray, landmarks: np.ndarray,
                threshold: float = SCORE_THRESHOLD) -> FaceMark:
    bank = _bank()
    box, sub, to_sub = _face_source(luma, landmarks)
    if sub is None:
        return FaceMark(False, 0.0, None, box)
    scores, params, c = _search(sub, to_sub, bank.marker[None, :])
    score = float(scores[0])
    s = _soft_bits(c, bank)
    confidence = 1.0 - null_tail(score)
    detected = score >= threshold
    bits = (s < 0).astype(np.uint8)
    marker_errors = int(np.count_nonzero(bits[:MARKER_BITS] != bank.marker))
    payload = None
    if detected:
        ident = _value(bits[MARKER_BITS:MARKER_BITS + ID_BITS])
        if _crc8(ident, ID_BITS) == _value(bits[MARKER_BITS + ID_BITS:]):
            payload = f"{ident:0{_ID_HEX}x}"
    p = params[0]
    return FaceMark(detected, float(confidence), payload, box, score, marker_errors,
                    (float(p[0]), float(p[1])))


def null_scores(frame: np.ndarray, landmarks: np.ndarray, markers: np.ndarray) -> np.ndarray:
    """The search's best score on one face for each of R stand-in markers (R×MARKER_BITS 0/1):
    on an unmarked face these are samples of the score's null distribution (calibration)."""
    luma = _luma(frame)
    _, sub, to_sub = _face_source(luma, landmarks)
    if sub is None:
        return np.zeros(0)
    return _search(sub, to_sub, np.asarray(markers, np.uint8))[0]


def detect_faces(frame: np.ndarray, landmarks: Sequence[np.ndarray]) -> list[FaceMark]:
    """Look for the mark on faces whose landmarks are known.

    Args:
        frame: H×W×3 (or ×4, alpha ignored) ``uint8`` or ``float32`` display sRGB.
        landmarks: 68×2 (x, y) frame-pixel landmarks per face (pixel centres at +0.5).

    Returns:
        One :class:`FaceMark` per landmark set, in the same order.
    """
    check_image(frame, "frame", dtypes=_FRAME_DTYPES, channels=(3, 4))
    if not landmarks:
        return []
    luma = _luma(frame)
    return [_score_face(luma, lm) for lm in landmarks]


@functools.cache
def _second_detector() -> Any:
    from faceplate.extract.detect.base import DETECTORS

    return DETECTORS.create("blazeface")


def _same_face(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two landmark sets are one registration hypothesis (within 2 canonical px RMS)."""
    m = canonical_matrix(b)
    d = (a - b) @ m[:, :2].T
    return bool(np.sqrt((d**2).sum(axis=1).mean()) < 2.0)


@functools.cache
def _default_extractor() -> Any:
    from faceplate.extract.pipeline import ExtractConfig, Extractor

    return Extractor(ExtractConfig(masks=(), write_faces=False, thumbnails=False))


def frame_landmarks(frame: np.ndarray, extractor: Any | None = None, *,
                    refine: bool = True) -> list[np.ndarray]:
    """68-point landmarks of every face in a display-sRGB frame, in the extractor's order.

    The extractor's detector finds the faces; with ``refine`` each face's landmarks are then
    :func:`refine_landmarks` from its detector box (the embedder's own procedure; the
    extractor's landmarks when that fails).
    """
    from faceplate.core.types import Frame, FrameInfo

    ex = extractor if extractor is not None else _default_extractor()
    rgb = _u8_rgb(frame)
    h, w = rgb.shape[:2]
    res = ex.process(Frame(FrameInfo(0, "frame", None, w, h, 0), rgb))
    out = []
    for r in res.records:
        lm = refine_landmarks(rgb, r.bbox) if refine else None
        out.append(lm if lm is not None else r.landmarks.astype(np.float64))
    return out


def _u8_rgb(frame: np.ndarray) -> np.ndarray:
    rgb = frame[..., :3]
    if rgb.dtype != np.uint8:
        rgb = (np.clip(np.nan_to_num(rgb), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return np.ascontiguousarray(rgb)


def detect_frame(frame: np.ndarray, extractor: Any | None = None) -> list[FaceMark]:
    """Find every face in ``frame`` and look for the mark on each.

    Args:
        frame: H×W×3/4 ``uint8`` or ``float32`` display sRGB.
        extractor: A :class:`faceplate.extract.pipeline.Extractor` to detect and align with;
            when None, one with the default detector and aligner (no masks) is built once per
            process and reused.

    Returns:
        One :class:`FaceMark` per face found, left to right (empty when there is none).

    Two passes. First, every face the extractor finds (its detector verifies candidates), its
    landmarks re-found from its box as the embedder does (:func:`frame_landmarks`), scored
    against ``SCORE_THRESHOLD``. Second, the raw upright candidates of the fast detector
    (BlazeFace, no verification: a swapped face, e.g. blurred by a small model or half
    hidden by a hand, can fail the extractor's check and be found only upside down by its
    rotation retries), aligned the same way; those that are not a first-pass face are scored
    against the stricter ``SECOND_PASS_THRESHOLD`` and reported only when detected.
    """
    check_image(frame, "frame", dtypes=_FRAME_DTYPES, channels=(3, 4))
    rgb = _u8_rgb(frame)  # once: the landmarks of both passes are found on it
    lms = frame_landmarks(rgb, extractor)
    luma = _luma(frame) if lms else None  # once: both passes score on it
    marks = [_score_face(luma, lm) for lm in lms] if luma is not None else []
    for det in _second_detector().detect(rgb):
        if det.angle != 0.0:
            continue
        lm = refine_landmarks(rgb, det.bbox)
        if lm is None or any(_same_face(lm, o) for o in lms):
            continue
        lms.append(lm)
        luma = _luma(frame) if luma is None else luma
        mark = _score_face(luma, lm, SECOND_PASS_THRESHOLD)
        if mark.detected:
            marks.append(mark)
    return sorted(marks, key=lambda m: m.box[0])


#: The video verdict (:func:`pool_tracks`): neighbouring checked frames on each side whose
#: scores are pooled, and the least box overlap (intersection over union) that makes a face in
#: a neighbouring frame the same face.
TRACK_RADIUS = 2
TRACK_MIN_IOU = 0.3


def pool_tracks(frames: Sequence[Sequence[FaceMark]], radius: int = TRACK_RADIUS,
                min_iou: float = TRACK_MIN_IOU) -> list[list[FaceMark]]:
    """The video verdict: each face's score pooled with the same face in neighbouring frames.

    Codec noise hits single frames: at 640×360 after H.264 CRF 23 a few marked faces score
    just under the threshold between neighbours that score well above it. Here a face's
    *track window* is itself plus, in each of the ``radius`` checked frames before and after
    it, the face whose box overlaps its own the most (IoU ≥ ``min_iou``); the face is also
    detected when the window's mean score reaches ``SCORE_THRESHOLD``.

    False positives stay bounded without a new calibration: a mean at or above the threshold
    needs at least one member at or above it, i.e. a face detected on its own, so an unmarked
    face is detected through its track with probability at most (2·radius + 1) times the
    per-face rate at the threshold (5 × 1.5e-4 = 7.5e-4 ≤ ``FP_TARGET`` with the defaults);
    its confidence is 1 − that union bound at the mean, (window size) × :func:`null_tail`.
    The payload stays the face's own (None unless its own id bits pass the CRC).

    Args:
        frames: Per checked frame, in order, its faces' marks (:func:`detect_frame`).
        radius: Checked frames pooled on each side (0: the marks come back unchanged).
        min_iou: Least box overlap for a neighbouring face to be the same face.

    Returns:
        The same structure of new :class:`FaceMark` values, ``track_score`` and ``by_track`` set.
    """
    from faceplate.core.types import BBox

    boxes = [[BBox(*(float(v) for v in m.box)) for m in marks] for marks in frames]
    out: list[list[FaceMark]] = []
    n = len(frames)
    for t, marks in enumerate(frames):
        row: list[FaceMark] = []
        for m, box in zip(marks, boxes[t]):
            scores = [m.score]
            for u in range(max(0, t - radius), min(n, t + radius + 1)):
                if u == t or not frames[u]:
                    continue
                overlaps = [box.iou(b) for b in boxes[u]]
                j = int(np.argmax(overlaps))  # the most overlapping face (the first on a tie)
                if overlaps[j] >= min_iou:
                    scores.append(frames[u][j].score)
            if len(scores) < 2:
                row.append(m)
                continue
            mean = float(np.mean(scores))
            if m.detected or mean < SCORE_THRESHOLD:
                row.append(replace(m, track_score=mean))
                continue
            p = min(1.0, len(scores) * null_tail(mean))
            row.append(replace(m, detected=True, by_track=True, track_score=mean,
                               confidence=max(m.confidence, 1.0 - p)))
        out.append(row)
    return out


__all__ = [
    "CANON_SIZE",
    "SCORE_THRESHOLD",
    "SECOND_PASS_THRESHOLD",
    "FrameMark",
    "TRACK_RADIUS",
    "pool_tracks",
    "embed_in_frame",
    "mark_crop",
    "refine_landmarks",
    "null_scores",
    "null_tail",
    "FaceMark",
    "canon_to_crop",
    "canonical_matrix",
    "detect_faces",
    "detect_frame",
    "embed_face",
    "frame_landmarks",
    "payload_bits",
    "payload_id",
    "prepare",
]
