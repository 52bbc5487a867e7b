"""Pasting a face back into the frame, inside the face's box only.

Convention:
    Frames are H×W×C float32 (C = 1, 3 or 4; RGB(A), top-left origin), scene-linear or display
    sRGB, any finite values (> 1 and < 0 included). ``matrix`` is the 2×3 **frame → crop**
    affine of :func:`faceplate.core.geometry.crop_matrix`: points are (x, y), x right, y down,
    pixel centres at +0.5 on both sides. A box is half-open integer frame pixels
    ``[x0, x1) × [y0, y1)``.

How (after FaceFusion's ``paste_back``): the crop's corners, or the corners of the mask's
non-zero part, are mapped back into the frame to find the box of frame pixels the face can
reach; face and mask are warped into that box only (``cv2.warpAffine`` with ``WARP_INVERSE_MAP``
and the box-offset matrix, converted by ``to_cv2``), the blender merges them with the plate
there, and the box is written into a copy of the frame. Pixels outside the box are never read
into arithmetic, so they come back bit-exact; inside the box the blender's contract keeps every
pixel whose warped mask is 0 bit-exact as well. :func:`paste_bands` hands the face over in bands
of rows (the same values), so a per-pixel blend can run band by band while its arrays are in
the CPU's cache.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from faceplate.convert.blend import BLEND, AlphaMode, Blender
from faceplate.core.geometry import compose_affine, invert_affine, to_cv2, transform_points
from faceplate.core.validate import check_matrix

Interpolation = Literal["nearest", "linear", "cubic", "lanczos"]
INTERPOLATIONS: tuple[Interpolation, ...] = ("nearest", "linear", "cubic", "lanczos")
_CV2_INTERP = {"nearest": cv2.INTER_NEAREST, "linear": cv2.INTER_LINEAR,
               "cubic": cv2.INTER_CUBIC, "lanczos": cv2.INTER_LANCZOS4}
#: Interpolations whose multi-channel warps run plane by plane (see :func:`_warp_face`):
#: bilinear and Lanczos are faster as one multi-channel call.
_PLANAR: frozenset[Interpolation] = frozenset({"cubic"})
#: The mask is always warped bilinearly (no overshoot, known support): a warped value is non-zero
#: only within 1 source pixel of a non-zero mask pixel's centre.
_MASK_SUPPORT = 1.0


@dataclass(frozen=True)
class Box:
    """A half-open box of frame pixels ``[x0, x1) × [y0, y1)``."""

    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def width(self) -> int:
        return max(0, self.x1 - self.x0)

    @property
    def height(self) -> int:
        return max(0, self.y1 - self.y0)

    @property
    def empty(self) -> bool:
        return self.width == 0 or self.height == 0

    @property
    def slices(self) -> tuple[slice, slice]:
        """``frame[box.slices]`` is the box's view of an H×W(×C) frame."""
        return slice(self.y0, self.y1), slice(self.x0, self.x1)


@dataclass(frozen=True)
class PasteRegion:
    """The face and its matte warped into the frame's box.

    Attributes:
        box: The frame pixels covered.
        face: box.height×box.width×C float32, the face resampled into the box (edge pixels of
            the crop extend past its border; only meaningful where ``mask > 0``).
        mask: box.height×box.width float32 in [0, 1], the matte (0 outside the crop).
    """

    box: Box
    face: np.ndarray
    mask: np.ndarray


def face_box(matrix: np.ndarray, size: int, frame_shape: tuple[int, ...], *,
             crop_rect: tuple[int, int, int, int] | None = None, support: float = _MASK_SUPPORT,
             pad: int = 2) -> Box:
    """The box of frame pixels that a ``size``×``size`` crop can reach under ``matrix``.

    Args:
        matrix: 2×3 frame → crop affine (pixel centres at +0.5).
        size: The crop's side in pixels.
        frame_shape: (H, W, ...) of the frame.
        crop_rect: Only this part of the crop, as half-open crop pixels (x0, y0, x1, y1),
            e.g. the mask's non-zero part; the whole crop when None.
        support: Reach of the resampling kernel in crop pixels around a pixel centre
            (1 for bilinear).
        pad: Extra frame pixels on each side (covers OpenCV's 1/32-pixel coordinate rounding).

    Returns:
        The box clipped to the frame; ``empty`` when the crop falls outside it.
    """
    m = check_matrix(matrix)
    h, w = int(frame_shape[0]), int(frame_shape[1])
    x0, y0, x1, y1 = crop_rect if crop_rect is not None else (0, 0, size, size)
    # The crop region whose samples can be non-zero: the outer pixel centres plus the support.
    lo_x, lo_y = x0 + 0.5 - support, y0 + 0.5 - support
    hi_x, hi_y = x1 - 0.5 + support, y1 - 0.5 + support
    corners = np.array([[lo_x, lo_y], [hi_x, lo_y], [lo_x, hi_y], [hi_x, hi_y]])
    pts = transform_points(corners, invert_affine(m))
    fx0, fy0 = pts.min(axis=0)
    fx1, fy1 = pts.max(axis=0)
    # Frame pixel j is reached when its centre j + 0.5 lies within [f0, f1].
    bx0 = max(0, math.ceil(fx0 - 0.5) - pad)
    by0 = max(0, math.ceil(fy0 - 0.5) - pad)
    bx1 = min(w, math.floor(fx1 - 0.5) + 1 + pad)
    by1 = min(h, math.floor(fy1 - 0.5) + 1 + pad)
    return Box(bx0, by0, max(bx0, bx1), max(by0, by1))


def _check_face_mask(face: object, mask: object) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(face, np.ndarray) or face.dtype != np.float32 or face.ndim != 3 \
            or face.shape[0] != face.shape[1] or face.shape[0] < 1:
        got = (face.dtype, face.shape) if isinstance(face, np.ndarray) else type(face).__name__
        raise ValueError(f"face: expected a square S×S×C float32 array, got {got}")
    if not isinstance(mask, np.ndarray) or mask.dtype != np.float32:
        got = mask.dtype if isinstance(mask, np.ndarray) else type(mask).__name__
        raise ValueError(f"mask: expected a float32 array, got {got}")
    m = mask[..., 0] if mask.ndim == 3 and mask.shape[2] == 1 else mask
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] < 1:
        raise ValueError(f"mask: expected a square S×S float32 array, got shape {mask.shape}")
    if np.isnan(m).any() or m.min() < 0.0 or m.max() > 1.0:
        raise ValueError("mask: values must lie in [0, 1] and not be NaN")
    return face, m


def _face_planes(face: np.ndarray, interpolation: Interpolation) -> list[np.ndarray]:
    """What :func:`_warp_face` warps: ``face`` (S×S×C float32) itself, or its C planes when the
    interpolation runs plane by plane (split once for all of a paste's bands)."""
    if interpolation in _PLANAR and face.shape[2] > 1:
        return list(cv2.split(face))
    return [face]


def _warp_face(face: np.ndarray | list[np.ndarray], m: np.ndarray, dsize: tuple[int, int],
               interpolation: Interpolation) -> np.ndarray:
    """``face`` (S×S×C float32, or its :func:`_face_planes`) warped into a dsize (w, h) box:
    h×w×C float32.

    ``m`` is OpenCV's 2×3 box → crop matrix (``WARP_INVERSE_MAP``); edge pixels extend past the
    crop's border. Cubic warps of several channels run one plane at a time: OpenCV's bicubic
    remap is vectorised for one float32 channel only (3 planes take ~0.6 of one 3-channel
    call); the values are the same up to float rounding (the kernel's sums in another order).
    """
    planes = _face_planes(face, interpolation) if isinstance(face, np.ndarray) else face
    flags = _CV2_INTERP[interpolation] | cv2.WARP_INVERSE_MAP
    out = [cv2.warpAffine(p, m, dsize, flags=flags, borderMode=cv2.BORDER_REPLICATE)
           for p in planes]
    c = sum(1 if p.ndim == 2 else p.shape[2] for p in planes)
    return (out[0] if len(out) == 1 else cv2.merge(out)).reshape(dsize[1], dsize[0], c)


def paste_region(frame_shape: tuple[int, ...], face: np.ndarray, mask: np.ndarray,
                 matrix: np.ndarray, *, interpolation: Interpolation = "cubic",
                 pad: int = 2) -> PasteRegion | None:
    """Warp a crop-space face and mask into the box of the frame they cover.

    Args:
        frame_shape: (H, W, ...) of the frame.
        face: S×S×C float32, any values.
        mask: Sm×Sm (or Sm×Sm×1) float32 in [0, 1]; Sm may differ from S (a stored 128 px mask
            under a 256 px face): it is scaled onto the face's crop.
        matrix: 2×3 frame → face-crop affine (pixel centres at +0.5).
        interpolation: Resampling of the face; the mask is always bilinear.
        pad: Extra frame pixels around the box.

    Returns:
        The region, or None when the mask is empty or falls outside the frame.
    """
    bands = paste_bands(frame_shape, face, mask, matrix, interpolation=interpolation, pad=pad,
                        rows=None)
    return None if bands is None else next(bands.regions)


#: Rows of the box a per-pixel paste works on at a time (:func:`paste_bands`): the band's float
#: arrays stay in the CPU's cache from the warp through the blend to the write-back (a 1080p
#: face's box is ~540×690 px; 64 rows of it are ~400 KiB a 3-channel float32 array).
BAND_ROWS = 64


@dataclass(frozen=True)
class PasteBands:
    """The box a face covers, its whole matte, and the face warped into it band by band.

    Attributes:
        box: The frame pixels covered.
        mask: box.height×box.width float32 in [0, 1], the whole matte (0 outside the crop).
        regions: One :class:`PasteRegion` per band of rows, top to bottom (one for the whole
            box without banding), each warped when it is reached: its ``box`` the band's frame
            pixels, its ``face`` and ``mask`` the band's rows (``mask`` a view of the whole).
    """

    box: Box
    mask: np.ndarray
    regions: Iterator[PasteRegion]


def paste_bands(frame_shape: tuple[int, ...], face: np.ndarray, mask: np.ndarray,
                matrix: np.ndarray, *, interpolation: Interpolation = "cubic", pad: int = 2,
                rows: int | None = BAND_ROWS) -> PasteBands | None:
    """:func:`paste_region` in bands of ``rows`` rows (None: the whole box in one).

    A band is warped with the box's matrix moved by its first row: OpenCV places samples from
    each output row's position and the columns' offsets, which a shift by whole rows leaves as
    they are, so the bands hold exactly the whole box's values. Arguments and conventions as
    :func:`paste_region`; None when the mask is empty or falls outside the frame.
    """
    f, m = _check_face_mask(face, mask)
    if interpolation not in _CV2_INTERP:
        raise ValueError(f"interpolation: {interpolation!r} is not one of {INTERPOLATIONS}")
    mat = check_matrix(matrix)
    s, sm = f.shape[0], m.shape[0]
    mask_mat = mat if sm == s else compose_affine(np.diag([sm / s, sm / s, 1.0])[:2], mat)
    nz = (m > 0.0).astype(np.uint8)
    rx, ry, rw, rh = cv2.boundingRect(nz)
    if rw == 0 or rh == 0:
        return None
    box = face_box(mask_mat, sm, frame_shape, crop_rect=(rx, ry, rx + rw, ry + rh), pad=pad)
    if box.empty:
        return None
    offset = np.array([[1.0, 0.0, box.x0], [0.0, 1.0, box.y0]])  # box pixels → frame pixels
    mask_w = cv2.warpAffine(np.ascontiguousarray(m), to_cv2(compose_affine(mask_mat, offset)),
                            (box.width, box.height), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    np.clip(mask_w, 0.0, 1.0, out=mask_w)
    step = box.height if rows is None else max(1, int(rows))
    planes = _face_planes(f, interpolation)

    def regions() -> Iterator[PasteRegion]:
        for r0 in range(0, box.height, step):
            r1 = min(box.height, r0 + step)
            band = Box(box.x0, box.y0 + r0, box.x1, box.y0 + r1)
            shift = np.array([[1.0, 0.0, band.x0], [0.0, 1.0, band.y0]])
            face_w = _warp_face(planes, to_cv2(compose_affine(mat, shift)),
                                (band.width, r1 - r0), interpolation)
            yield PasteRegion(band, face_w.astype(np.float32, copy=False), mask_w[r0:r1])

    return PasteBands(box, mask_w, regions())


def paste_back(frame: np.ndarray, face: np.ndarray, mask: np.ndarray, matrix: np.ndarray, *,
               blend: Blender | str = "overlay", interpolation: Interpolation = "cubic",
               alpha: AlphaMode | None = None, out: np.ndarray | None = None,
               pad: int = 2, regions: list[PasteRegion] | None = None) -> np.ndarray:
    """Blend a crop-space face into the frame, working on the face's box only.

    Args:
        frame: H×W×C float32, C in (1, 3, 4) (RGB(A)), any finite values. Never modified
            (unless passed as ``out``).
        face: S×S×Cf float32 in the frame's colour space (the caller converts), Cf = the
            frame's colour channels (1 or 3) or C; a face alpha channel is ignored.
        mask: Sm×Sm (or Sm×Sm×1) float32 in [0, 1] in crop space (Sm may differ from S).
        matrix: 2×3 frame → crop affine (pixel centres at +0.5).
        blend: A :class:`Blender` or a ``BLEND`` registry name (its default config).
        interpolation: Resampling of the face ("cubic" by default; the mask is bilinear).
        alpha: For RGBA frames: ``"keep"`` the plate's alpha, ``"over"`` composite the matte
            over it (``a + m·(1 − a)``, unchanged where m = 0), or ``"mask"`` replace the whole
            alpha channel by the warped matte (0 outside the face: the one mode that changes
            pixels outside the box). None: the blender's ``default_alpha``.
        out: Write into this H×W×C float32 array instead of a fresh copy of ``frame`` (it is
            first filled with ``frame`` unless it *is* ``frame``); lets a caller paste several
            faces with a single frame copy.
        pad: Extra frame pixels around the box.
        regions: When given, the :class:`PasteRegion` used (the box and the warped matte
            exactly as blended) is appended to it (nothing when nothing was pasted).

    Returns:
        The merged frame, H×W×C float32: a new array unless ``out`` was given. Outside the box,
        and inside it wherever the warped mask is 0, it equals ``frame`` bit for bit.
    """
    if not isinstance(frame, np.ndarray) or frame.dtype != np.float32 or frame.ndim != 3 \
            or frame.shape[2] not in (1, 3, 4) or frame.shape[0] < 1 or frame.shape[1] < 1:
        got = (frame.dtype, frame.shape) if isinstance(frame, np.ndarray) \
            else type(frame).__name__
        raise ValueError(f"frame: expected an H×W×C float32 array with C in (1, 3, 4), got {got}")
    blender = BLEND.create(blend) if isinstance(blend, str) else blend
    mode = blender.default_alpha if alpha is None else alpha
    if mode not in ("keep", "over", "mask"):
        raise ValueError(f"alpha: {mode!r} is not one of ('keep', 'over', 'mask')")
    c = frame.shape[2]
    nc = 3 if c >= 3 else 1
    f, m = _check_face_mask(face, mask)
    if f.shape[2] not in (nc, c):
        raise ValueError(f"face: expected {nc} or {c} channels for a {c}-channel frame, "
                         f"got {f.shape[2]}")
    if out is None:
        result = frame.copy()
    else:
        if out.shape != frame.shape or out.dtype != np.float32:
            raise ValueError(f"out: expected a {frame.shape} float32 array, got "
                             f"{out.dtype} {out.shape}")
        if out is not frame:
            np.copyto(out, frame)
        result = out
    region = paste_region(frame.shape, f[..., :nc], m, matrix, interpolation=interpolation,
                          pad=pad)
    if c == 4 and mode == "mask":
        result[..., 3] = 0.0
    if region is None:
        return result
    if regions is not None:
        regions.append(region)
    merge_region(result[region.box.slices], region, blender, mode)
    return result


def merge_region(box: np.ndarray, region: PasteRegion, blender: Blender,
                 alpha: AlphaMode) -> np.ndarray:
    """Blend a warped face into the frame's pixels of its box, in place.

    Args:
        box: ``region.box.height``×``region.box.width``×C float32, C in (1, 3, 4): the frame's
            pixels of ``region.box`` (a view of the frame, or a float copy of them).
        region: The face and matte warped into the box (:func:`paste_region`), with the
            frame's colour channels (1 or 3).
        blender: Merges face and plate.
        alpha: For C = 4: ``"keep"`` the alpha, ``"over"`` composite the matte over it
            (``a + m·(1 − a)``, unchanged where m = 0), ``"mask"`` replace it by the matte
            (inside the box: the caller clears the rest of the frame's alpha).

    Returns:
        The blender's result, h×w×Cc float32 (Cc = the colour channels, 1 or 3): what was
        written into ``box``'s colour channels (a new array, not a view of ``box``). Wherever
        the matte is 0 ``box`` is left bit-exact.
    """
    c = box.shape[2]
    nc = 3 if c >= 3 else 1
    merged = blender.blend(np.ascontiguousarray(box[..., :nc]), region.face, region.mask)
    box[..., :nc] = merged
    if c == 4 and alpha != "keep":
        if alpha == "mask":
            box[..., 3] = region.mask
        else:
            a = box[..., 3]
            over = a + region.mask * (np.float32(1.0) - a)
            np.copyto(a, over, where=region.mask > 0.0)
    return merged
