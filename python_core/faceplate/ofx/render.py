"""Per-frame render functions the ``faceplate-worker`` calls (and the in-process bridge).

Frames are H×W×4 ``float32`` scene-linear RGBA, **top-down** rows (row 0 is the top of the
image; the C++ shell flips OFX's bottom-up rows), straight (unpremultiplied) alpha. Results have
the same shape and dtype. Detection runs on the display-sRGB ``uint8`` version of the frame
(:func:`faceplate.core.colorspace.linear_to_display_u8`); output pixels are never re-encoded.

Loaded models are kept per (detector, aligner, mask) in this module, process-wide, because the
worker serves one request at a time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from faceplate.convert import maskops
from faceplate.convert.maskops import MaskOpsConfig
from faceplate.core.colorspace import linear_to_display_u8
from faceplate.core.errors import InputError
from faceplate.core.records import decode_mask, encode_mask
from faceplate.core.types import Frame, FrameInfo, StoredMask
from faceplate.extract.mask import mask_to_frame
from faceplate.extract.pipeline import ExtractConfig, Extractor
from faceplate.ofx.effects import MASK, MASK_ID, SWAP, SWAP_ID, MaskConfig

_extractors: dict[tuple[str, str, str], Extractor] = {}


@dataclass(frozen=True)
class RenderResult:
    """A rendered frame and a one-line status for the host ("" when all is well)."""

    image: np.ndarray
    status: str
    faces: int


def _check_frame(frame: Any) -> np.ndarray:
    if not isinstance(frame, np.ndarray) or frame.dtype != np.float32 or frame.ndim != 3 \
            or frame.shape[2] != 4 or frame.shape[0] < 1 or frame.shape[1] < 1:
        got = (f"{frame.dtype} {frame.shape}" if isinstance(frame, np.ndarray)
               else type(frame).__name__)
        raise InputError(f"frame: expected an H×W×4 float32 RGBA array, got {got}")
    return frame


def _extractor(cfg: MaskConfig) -> Extractor:
    key = (cfg.detector, cfg.aligner, cfg.mask)
    ex = _extractors.get(key)
    if ex is None:
        ex = Extractor(ExtractConfig(detector=cfg.detector, aligner=cfg.aligner,
                                     masks=(cfg.mask,), thumbnails=False, write_faces=False))
        _extractors[key] = ex
    return ex


def _face_matte(frame: np.ndarray, cfg: MaskConfig, ops: MaskOpsConfig) -> tuple[np.ndarray, int]:
    """H×W float32 [0, 1] union (max) of every face's processed mask, and the face count."""
    h, w = frame.shape[:2]
    rgb, _ = linear_to_display_u8(frame)
    info = FrameInfo(index=0, name="ofx", timestamp=None, width=w, height=h, frame_number=0)
    res = _extractor(cfg).process(Frame(info, rgb))
    matte = np.zeros((h, w), np.float32)
    for rec in res.records:
        sm = rec.masks[cfg.mask]
        crop = decode_mask(sm).astype(np.float32) / np.float32(255.0)
        done = maskops.apply(crop, ops)
        done_u8 = (np.clip(done, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
        processed = StoredMask(sm.name, encode_mask(done_u8), sm.size, sm.affine, sm.centering)
        np.maximum(matte, mask_to_frame(processed, (h, w)), out=matte)
    return matte, len(res.records)


def render_mask(frame_rgba_linear: np.ndarray, params: dict[str, Any]) -> np.ndarray:
    """Faceplate Mask on one frame.

    Args:
        frame_rgba_linear: H×W×4 ``float32`` scene-linear RGBA, top-down rows.
        params: Schema name → value for Faceplate Mask (missing names take their defaults;
            ``mix`` / ``maskInvert`` are accepted and ignored: the shell applies them).

    Returns:
        A new H×W×4 ``float32`` frame: ``output="alpha"`` keeps RGB and puts the mask (in
        [0, 1]) in alpha; ``output="matte"`` writes the mask into all four channels. A frame
        without faces gets a mask of 0 everywhere.
    """
    return _render_mask(frame_rgba_linear, params).image


def _render_mask(frame: np.ndarray, values: dict[str, Any]) -> RenderResult:
    frame = _check_frame(frame)
    cfgs = MASK.configs(values)
    cfg: MaskConfig = cfgs[MaskConfig]
    matte, n = _face_matte(frame, cfg, cfgs[MaskOpsConfig])
    if cfg.output == "matte":
        out = np.repeat(matte[..., None], 4, axis=2)
    else:
        out = frame.copy()
        out[..., 3] = matte
    return RenderResult(out, "" if n else "no face found", n)


def _render_swap(frame: np.ndarray, values: dict[str, Any]) -> RenderResult:
    frame = _check_frame(frame)
    SWAP.configs(values)  # validate the values even though no converter runs yet
    return RenderResult(frame.copy(), SWAP.status, 0)


def render(effect_id: str, frame: np.ndarray, params: dict[str, Any]) -> RenderResult:
    """Render one frame for the effect ``effect_id`` (``org.faceplate.Mask`` or
    ``org.faceplate.Swap``).

    Faceplate Swap returns the source unchanged with the status
    :data:`faceplate.ofx.effects.SWAP_STATUS` until the converter exists.

    Raises:
        ConfigError: Unknown effect, unknown parameter or a value out of range.
        InputError: The frame is not H×W×4 float32.
    """
    if effect_id == MASK_ID:
        return _render_mask(frame, params)
    if effect_id == SWAP_ID:
        return _render_swap(frame, params)
    from faceplate.ofx.effects import effect

    effect(effect_id)  # raises ConfigError naming the known effects
    raise AssertionError("unreachable")


def render_into(effect_id: str, frame: np.ndarray, params: dict[str, Any],
                out: np.ndarray) -> tuple[str, int]:
    """:func:`render` writing into a preallocated H×W×4 float32 ``out`` (the worker's reply
    buffer). Returns (status, face count)."""
    res = render(effect_id, frame, params)
    if out.shape != res.image.shape or out.dtype != np.float32:
        raise InputError(f"out: expected {res.image.shape} float32, got {out.dtype} {out.shape}")
    np.copyto(out, res.image)
    return res.status, res.faces
