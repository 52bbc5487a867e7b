"""What the watermark must survive, and the swaps to mark footage with.

Used by the watermark tests and ``benchmarks/provenance.py``; each attack is what issue #6
names: JPEG at a quality, H.264 at a CRF (PyAV, in memory), a resize, and a grade (exposure in
linear light plus a saturation change). :func:`real_swap` runs the real ``swap_frame`` with a
trained model and also returns the same swap without the mark (the PSNR reference);
:func:`swap_face` is a cheap stand-in (the plate's own face re-pasted) for unit tests.

Conventions: frames are H×W×3 ``uint8`` display sRGB (RGB, top-left origin); landmarks 68×2
(x, y) frame pixels, pixel centres at +0.5.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

from faceplate.convert.composite import paste_back, paste_region
from faceplate.convert.swap import ConvertConfig, Predictor
from faceplate.core.colorspace import linear_to_srgb, srgb_to_linear
from faceplate.core.geometry import crop_matrix, to_cv2
from faceplate.core.types import FaceRecord, Frame, FrameInfo
from faceplate.extract.mask import MASKERS
from faceplate.provenance.watermark import Unmarked, embed_in_frame


def _u8(x: np.ndarray) -> np.ndarray:
    return (np.clip(x, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def jpeg(frame: np.ndarray, quality: int) -> np.ndarray:
    """Encode and decode with OpenCV's JPEG (4:2:0) at ``quality``."""
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(frame[..., ::-1]),
                           [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError("jpeg: OpenCV could not encode the frame")
    dec = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if dec is None:
        raise ValueError("jpeg: OpenCV could not decode its own JPEG")
    return np.ascontiguousarray(dec[..., ::-1])


def h264(frames: Sequence[np.ndarray], crf: int, fps: int = 25) -> list[np.ndarray]:
    """Encode a clip with libx264 (yuv420p, preset medium) at ``crf`` and decode it back."""
    h, w = frames[0].shape[:2]
    w2, h2 = w - w % 2, h - h % 2
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w2, h2, "yuv420p"
        stream.options = {"crf": str(int(crf)), "preset": "medium"}
        for f in frames:
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(f[:h2, :w2]), format="rgb24")
            for packet in stream.encode(vf):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    buf.seek(0)
    with av.open(buf, "r") as inp:
        return [f.to_ndarray(format="rgb24") for f in inp.decode(video=0)]


def downscale(frame: np.ndarray, factor: float) -> np.ndarray:
    """Resize by ``factor`` with area averaging (what a delivery down-res does)."""
    h, w = frame.shape[:2]
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    return cv2.resize(frame, size, interpolation=cv2.INTER_AREA)


def grade(frame: np.ndarray, exposure: float, saturation: float) -> np.ndarray:
    """Multiply linear light by ``exposure`` and scale chroma (around linear luminance) by
    ``saturation``; back to display sRGB uint8."""
    lin = srgb_to_linear(frame.astype(np.float32) / np.float32(255.0)) * np.float32(exposure)
    y = lin @ np.array([0.2126, 0.7152, 0.0722], np.float32)
    lin = y[..., None] + (lin - y[..., None]) * np.float32(saturation)
    return _u8(linear_to_srgb(np.clip(lin, 0.0, None)))


#: The attacks of issue #6 by name, in the order the benchmark reports them: a clip of uint8
#: frames → the attacked frames (H.264 encodes the clip as one video).
_ATTACKS: dict[str, Callable[[Sequence[np.ndarray]], list[np.ndarray]]] = {
    "none": list,
    "jpeg75": lambda clip: [jpeg(f, 75) for f in clip],
    "h264_crf23": lambda clip: h264(clip, 23),
    "downscale_0.5": lambda clip: [downscale(f, 0.5) for f in clip],
    "grade_dark": lambda clip: [grade(f, 0.9, 0.9) for f in clip],
    "grade_bright": lambda clip: [grade(f, 1.1, 1.1) for f in clip],
}
ATTACKS = tuple(_ATTACKS)


def attack(name: str, clip: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Apply the attack ``name`` (one of :data:`ATTACKS`) to a clip of uint8 frames: JPEG
    quality 75, H.264 CRF 23 (the clip as one video), a 0.5× area downscale, or a grade of
    ×0.9 / ×1.1 exposure with the same factor on saturation."""
    if name not in _ATTACKS:
        raise ValueError(f"attack: {name!r} is not one of {', '.join(ATTACKS)}")
    return _ATTACKS[name](clip)


@dataclass(frozen=True)
class Swapped:
    """A swapped frame for the watermark tests.

    Attributes:
        marked: H×W×3 uint8 frame with the marked face pasted.
        plain: The same swap without the mark (the reference for the PSNR).
        matte: H×W float32 in [0, 1], where faces were pasted.
    """

    marked: np.ndarray
    plain: np.ndarray
    matte: np.ndarray


def face_records(extractor: Any, rgb: np.ndarray) -> list[FaceRecord]:
    """The face records ``extractor`` (a ``faceplate.extract.pipeline.Extractor``) finds in
    one H×W×3 uint8 sRGB frame."""
    h, w = rgb.shape[:2]
    return list(extractor.process(Frame(FrameInfo(0, "f", None, w, h, 0), rgb)).records)


def one_face_frames(extractor: Any, path: Path, every: int
                    ) -> Iterator[tuple[np.ndarray, list[FaceRecord]]]:
    """(frame RGB uint8, its records) of every ``every``-th frame of the video at ``path`` in
    which ``extractor`` finds exactly one face."""
    from faceplate.io.media import open_source

    with open_source(path) as src:
        for frame in src:
            if frame.info.index % every:
                continue
            recs = face_records(extractor, frame.rgb)
            if len(recs) == 1:
                yield frame.rgb, recs


def real_swap(frame: np.ndarray, faces: Sequence[FaceRecord], predictor: Predictor,
              cfg: ConvertConfig | None = None) -> Swapped:
    """Swap a uint8 frame with ``swap_frame`` (the mark included), and the same without it.

    The unmarked reference is the same ``swap_frame`` call with the watermark step skipped
    (the swap module's ``mark_fitted`` swapped for a no-op for that one call): every other
    pixel is the product's.
    """
    from faceplate.convert import swap as swap_mod

    cfg = cfg if cfg is not None else ConvertConfig()
    res = swap_mod.swap_frame(frame, faces, predictor, cfg, frame_is_linear=False)
    real = swap_mod.mark_fitted
    try:
        swap_mod.mark_fitted = _no_mark
        plain = swap_mod.swap_frame(frame, faces, predictor, cfg, frame_is_linear=False)
    finally:
        swap_mod.mark_fitted = real
    return Swapped(res.frame, plain.frame, res.matte())


def _no_mark(*args: object, **kwargs: object) -> tuple[Unmarked, bool]:
    return Unmarked("left out for the reference"), True


def swap_face(frame: np.ndarray, landmarks: np.ndarray, model_id: str,
              size: int = 128) -> Swapped:
    """Imitate ``swap_frame`` on one face with an identity "model" (cheap, for unit tests).

    The face is cropped as a model would see it (``crop_matrix(landmarks, size, "face", 1.0)``,
    bicubic), pasted back with the ``extended`` landmark mask and the default (overlay) blend,
    and marked on the frame with :func:`embed_in_frame` (landmarks re-found on the result).
    """
    m = crop_matrix(landmarks, size, "face", 1.0)
    crop_u8 = cv2.warpAffine(frame, to_cv2(m), (size, size), flags=cv2.INTER_CUBIC,
                             borderMode=cv2.BORDER_REPLICATE)
    face = crop_u8.astype(np.float32) / np.float32(255.0)
    mask = MASKERS.create("extended").mask(crop_u8, landmarks.astype(np.float32), m)
    mask_f = np.clip(cv2.GaussianBlur(mask.astype(np.float32) / 255.0, (0, 0), size / 64.0),
                     0.0, 1.0)
    plate = frame.astype(np.float32) / np.float32(255.0)
    plain = _u8(paste_back(plate, face, mask_f, m))
    reg = paste_region(frame.shape, mask_f[..., None], mask_f, m, interpolation="nearest")
    matte = np.zeros(frame.shape[:2], np.float32)
    marked = plain.copy()
    if reg is not None:
        matte[reg.box.slices] = reg.mask
        b = reg.box
        embed_in_frame(marked, (b.x0, b.y0, b.x1, b.y1), reg.mask, landmarks, model_id,
                       frame_is_linear=False)
    return Swapped(marked, plain, matte)


def face_psnr(marked: np.ndarray, plain: np.ndarray, matte: np.ndarray,
              threshold: float = 0.5) -> float:
    """PSNR (dB, peak 255) of ``marked`` against ``plain`` over the pixels where
    ``matte > threshold`` (all three channels)."""
    sel = matte > threshold
    diff = marked[sel].astype(np.float64) - plain[sel].astype(np.float64)
    mse = float(np.mean(diff**2)) if diff.size else 0.0
    return float("inf") if mse == 0.0 else float(10.0 * np.log10(255.0**2 / mse))


def mark_flicker(frame: np.ndarray, landmarks: np.ndarray, model_id: str, *, frames: int = 8,
                 grain: float = 1.5, exposure: float = 1.1, saturation: float = 1.1,
                 track: bool = False, seed: int = 0) -> dict[str, list[float]]:
    """The frame-to-frame change the mark adds on a static face (issue 16, point 4).

    ``frames`` copies of ``frame`` (uint8 RGB), each with its own Gaussian grain of σ =
    ``grain`` code values, are swapped with :func:`swap_face` (the face's ``landmarks`` on
    every frame, as a smoothed store gives them; ``track``: landmarks found on each frame
    instead, as on-the-fly detection gives them) and graded (:func:`grade`). On the pixels
    where the matte is > 0.5, in code values (0–255): ``mark_rms``, the RMS of the mark on each
    frame (graded marked − graded plain); ``flicker_rms``, the RMS of the frame-to-frame
    change of that difference (what the mark adds to the clip's temporal change); and
    ``grain_rms``, the RMS of the graded plain swap's own frame-to-frame change.
    """
    from faceplate.provenance.watermark import frame_landmarks

    rng = np.random.default_rng(seed)
    marks: list[np.ndarray] = []
    plains: list[np.ndarray] = []
    sel: np.ndarray | None = None
    for _ in range(frames):
        noisy = _u8(frame.astype(np.float32) / np.float32(255.0)
                    + rng.normal(0.0, grain / 255.0, frame.shape).astype(np.float32))
        lm = landmarks
        if track:
            found = frame_landmarks(noisy)
            lm = found[0] if found else landmarks
        sw = swap_face(noisy, lm, model_id)
        if sel is None:
            sel = sw.matte > 0.5
        gm = grade(sw.marked, exposure, saturation).astype(np.float32)
        gp = grade(sw.plain, exposure, saturation).astype(np.float32)
        marks.append((gm - gp)[sel])
        plains.append(gp[sel])

    def rms(x: np.ndarray) -> float:
        return float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))

    return {"mark_rms": [rms(m) for m in marks],
            "flicker_rms": [rms(b - a) for a, b in zip(marks, marks[1:])],
            "grain_rms": [rms(b - a) for a, b in zip(plains, plains[1:])]}


__all__ = ["ATTACKS", "Swapped", "attack", "downscale", "face_psnr", "grade", "h264", "jpeg",
           "mark_flicker", "real_swap", "swap_face"]
