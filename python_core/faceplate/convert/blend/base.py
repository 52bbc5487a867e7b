"""The blender contract.

A blender merges a face into the plate inside the face's box (see ``convert.composite``): three
box-sized arrays in, one out. The base class owns the invariants, subclasses implement
:meth:`Blender._blend` only:

* ``plate`` and ``face`` are h×w×C float32 in the same colour space, any finite values
  (scene-linear values above 1.0 and below 0.0 are fine); ``mask`` is h×w float32 in [0, 1].
* The result is a new h×w×C float32 array; the inputs are never modified.
* Wherever ``mask == 0`` the result equals ``plate`` bit for bit (the base class copies those
  pixels back after the subclass ran), so a blend can never touch the plate outside the matte.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, Literal

import cv2
import numpy as np

from faceplate.core.registry import Registry

#: What ``paste_back`` writes into an RGBA frame's alpha channel (see ``convert.composite``).
AlphaMode = Literal["keep", "over", "mask"]


def check_box_inputs(plate: object, face: object, mask: object) -> tuple[np.ndarray, np.ndarray,
                                                                          np.ndarray]:
    """Validate the three box arrays of :meth:`Blender.blend`; returns them (mask as h×w).

    Raises:
        ValueError: naming the argument, on a wrong type, dtype, shape, or a mask outside [0, 1]
            or containing NaN.
    """
    arrays = []
    for name, arr in (("plate", plate), ("face", face)):
        if not isinstance(arr, np.ndarray) or arr.dtype != np.float32 or arr.ndim != 3 \
                or arr.shape[2] < 1:
            got = (arr.dtype, arr.shape) if isinstance(arr, np.ndarray) else type(arr).__name__
            raise ValueError(f"{name}: expected an h×w×C float32 array, got {got}")
        arrays.append(arr)
    p, f = arrays
    if f.shape != p.shape:
        raise ValueError(f"face: shape {f.shape} differs from the plate's {p.shape}")
    if not isinstance(mask, np.ndarray) or mask.dtype != np.float32:
        got = mask.dtype if isinstance(mask, np.ndarray) else type(mask).__name__
        raise ValueError(f"mask: expected a float32 array, got {got}")
    m = mask[..., 0] if mask.ndim == 3 and mask.shape[2] == 1 else mask
    if m.shape != p.shape[:2]:
        raise ValueError(f"mask: expected shape {p.shape[:2]} (h×w), got {mask.shape}")
    if m.size and not (np.nanmin(m) >= 0.0 and np.nanmax(m) <= 1.0 and not np.isnan(m).any()):
        raise ValueError("mask: values must lie in [0, 1] and not be NaN")
    return p, f, m


class Blender(ABC):
    """Merge a face into the plate inside the face's box.

    Attributes:
        default_alpha: What ``paste_back`` writes into an RGBA frame's alpha channel when the
            caller does not say: ``"keep"`` (the plate's alpha) for every blender except ``raw``.
        per_pixel: Whether each output pixel depends only on that pixel of the three inputs
            (``overlay``, ``raw``; not the Poisson blends, which solve over the whole matte).
    """

    registry_name: str = ""
    default_alpha: ClassVar[AlphaMode] = "keep"
    #: Whether each output pixel depends only on the same pixel of plate, face and mask (then
    #: the paste may blend a box in bands of rows: ``convert.composite.paste_bands``).
    per_pixel: ClassVar[bool] = False

    def __init__(self, cfg: Any) -> None:
        self.cfg = cfg

    def blend(self, plate: np.ndarray, face: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Blend ``face`` into ``plate`` under ``mask``.

        Args:
            plate: h×w×C float32, the frame's pixels inside the box (any colour space, any
                finite values).
            face: h×w×C float32, the face warped into the box, same colour space as ``plate``.
            mask: h×w (or h×w×1) float32 in [0, 1], the face's matte warped into the box.

        Returns:
            A new h×w×C float32 array; equal to ``plate`` bit for bit where ``mask == 0``.
        """
        p, f, m = check_box_inputs(plate, face, mask)
        out = np.asarray(self._blend(p, f, m), dtype=np.float32)
        if out.shape != p.shape:
            raise RuntimeError(f"blender {self.registry_name!r} returned shape {out.shape}, "
                               f"expected {p.shape}")
        if out is p or out is f or np.shares_memory(out, p) or np.shares_memory(out, f):
            out = out.copy()
        zero = m <= 0.0
        if out.shape[2] <= 4 and out.flags.c_contiguous and p.flags.c_contiguous:
            # OpenCV's masked copy: one pass (NumPy's broadcast `where=` is ~7× slower here).
            cv2.copyTo(p.reshape(out.shape), zero.view(np.uint8), out)
        else:
            np.copyto(out, p, where=zero[..., None])
        return out

    @abstractmethod
    def _blend(self, plate: np.ndarray, face: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """The blend itself: h×w×C float32 plate and face, h×w float32 mask; never modify them."""


BLEND: Registry[Blender] = Registry("blend")
