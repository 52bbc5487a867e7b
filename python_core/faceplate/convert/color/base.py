"""The colour-transfer contract and the registry ``COLOR``.

A colour transfer makes the model's predicted face take on the colours of the plate's face.
:meth:`ColorTransfer.apply` owns every invariant; a method implements only :meth:`transfer`.

Images: ``face`` (the predicted face crop) and ``target`` (the plate's face crop at the same
geometry) are H×W×3 ``float32`` display-referred sRGB, nominal 0..1, RGB order, top-left origin.
Masks are H×W (or H×W×1) floats in 0..1.

Statistics ("masked" transfer): every method estimates its statistics from the face pixels where
``face_mask > 0.5`` and from the target pixels where ``target_mask > 0.5`` (a hard threshold, not
a weighting, so a feathered mask edge does not pull the statistics), then applies the fitted map
to **every** face pixel, inside the mask or not (the blend stage decides what is shown). A
missing mask defaults to the other one (both crops share the geometry, so one mask usually
serves both); with neither, every pixel counts.

The base class guarantees:

* inputs are validated with :mod:`faceplate.core.validate` (``ValueError`` naming the argument)
  and never modified (methods receive read-only views);
* the output is a new H×W×3 ``float32`` array clipped to [0, 1];
* ``strength`` blends the clipped transfer with the input: ``face + s · (result − face)``;
  ``strength = 0`` returns the (clipped) input;
* when either mask selects fewer than :data:`MIN_PIXELS` pixels there are no statistics to
  match, and the face is returned unchanged (clipped), never NaN.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from faceplate.core.config import Config, option
from faceplate.core.registry import Registry
from faceplate.core.validate import check_image

MIN_PIXELS = 2
"""Fewer selected pixels than this in either mask → the face is returned unchanged."""

MASK_THRESHOLD = 0.5
"""A pixel takes part in the statistics when its mask value is above this."""


@dataclass(frozen=True)
class ColorConfig(Config):
    """Options every colour transfer has; methods subclass it to add their own."""

    strength: float = option(1.0, "Blend of the transferred colours with the model's output "
                                  "(0 = unchanged, 1 = full transfer).", minimum=0.0, maximum=1.0)


@dataclass(frozen=True)
class Samples:
    """What a method gets to fit its map on.

    Attributes:
        face: H×W×3 float32 sRGB face crop (read-only view of the caller's array).
        face_index: 1-D int64 flat pixel indices (row-major into H×W) where the face mask
            is above :data:`MASK_THRESHOLD`; at least :data:`MIN_PIXELS` of them.
        target: M×3 float32 sRGB target pixels where the target mask is above the threshold
            (M ≥ :data:`MIN_PIXELS`), a new array.
    """

    face: np.ndarray
    face_index: np.ndarray
    target: np.ndarray

    @property
    def face_pixels(self) -> np.ndarray:
        """N×3 float32 face pixels at ``face_index`` (a new array)."""
        return np.take(self.face.reshape(-1, 3), self.face_index, axis=0)


class ColorTransfer(ABC):
    """Base of every colour transfer: validation, masks, strength, dtype and clipping."""

    registry_name: str = ""

    def __init__(self, cfg: ColorConfig) -> None:
        self.cfg = cfg

    def apply(self, face: np.ndarray, target: np.ndarray, face_mask: np.ndarray | None = None,
              target_mask: np.ndarray | None = None) -> np.ndarray:
        """Recolour ``face`` to match ``target``.

        Args:
            face: H×W×3 float32 sRGB 0..1, the model's predicted face crop.
            target: H×W×3 float32 sRGB 0..1, the plate's face crop at the same geometry.
            face_mask: H×W or H×W×1 float mask (0..1) of the face pixels to take statistics
                from; defaults to ``target_mask``, then to every pixel.
            target_mask: H×W or H×W×1 float mask (0..1) of the target pixels to take
                statistics from; defaults to ``face_mask``, then to every pixel.

        Returns:
            H×W×3 float32 sRGB in [0, 1], a new array.

        Raises:
            ValueError: a wrong type, dtype, shape or a non-finite value.
        """
        check_image(face, "face", dtypes=(np.float32,), channels=(3,))
        check_image(target, "target", dtypes=(np.float32,), channels=(3,))
        if face.shape != target.shape:
            raise ValueError(f"target: expected the face's shape {face.shape}, got {target.shape}")
        for name, img in (("face", face), ("target", target)):
            if not np.isfinite(img).all():
                raise ValueError(f"{name}: contains NaN or Inf")
        hw = face.shape[:2]
        fmask = _check_mask(face_mask, "face_mask", hw)
        tmask = _check_mask(target_mask, "target_mask", hw)
        if fmask is None:
            fmask = tmask
        if tmask is None:
            tmask = fmask

        face_c = np.ascontiguousarray(face)
        strength = float(self.cfg.strength)
        if strength == 0.0:
            return np.clip(face_c, 0.0, 1.0)  # always a new array

        face_index = _selected(fmask, hw)
        target_px = np.ascontiguousarray(target).reshape(-1, 3)
        target_index = _selected(tmask, hw)
        if len(face_index) < MIN_PIXELS or len(target_index) < MIN_PIXELS:
            return np.clip(face_c, 0.0, 1.0)
        target_px = np.take(target_px, target_index, axis=0)

        view = face_c.view()
        view.flags.writeable = False
        result = np.asarray(self.transfer(Samples(view, face_index, target_px)), dtype=np.float32)
        if result.shape != face.shape:
            raise AssertionError(f"{self.registry_name}: transfer returned shape {result.shape}")
        own = result.flags.writeable and not np.may_share_memory(result, face_c)
        result = np.clip(result, 0.0, 1.0, out=result if own else None)
        if strength == 1.0:
            return result
        out = np.clip(face_c, 0.0, 1.0)
        out += np.float32(strength) * (result - out)
        return np.clip(out, 0.0, 1.0, out=out)

    @abstractmethod
    def transfer(self, samples: Samples) -> np.ndarray:
        """Fit the method's map on ``samples`` and apply it to every pixel of ``samples.face``.

        Returns:
            H×W×3 float sRGB (any range: the base class clips), never ``samples.face`` itself
            unless the method is the identity.
        """


def _check_mask(mask: np.ndarray | None, name: str, hw: tuple[int, ...]) -> np.ndarray | None:
    if mask is None:
        return None
    if not isinstance(mask, np.ndarray):
        raise ValueError(f"{name}: expected a NumPy array, got {type(mask).__name__}")
    if mask.ndim == 3 and mask.shape[2] == 1:
        mask = mask[..., 0]
    if mask.shape != hw:
        raise ValueError(f"{name}: expected shape {hw} (or {hw + (1,)}), got {mask.shape}")
    if not np.issubdtype(mask.dtype, np.floating):
        raise ValueError(f"{name}: expected a float mask in 0..1, got dtype {mask.dtype}")
    return mask


def _selected(mask: np.ndarray | None, hw: tuple[int, ...]) -> np.ndarray:
    if mask is None:
        return np.arange(hw[0] * hw[1], dtype=np.int64)
    return np.flatnonzero(mask > MASK_THRESHOLD)


def seeded_subset(index: np.ndarray, limit: int, seed: int) -> np.ndarray:
    """At most ``limit`` entries of ``index`` drawn without replacement (0 = all), sorted.

    The draw depends only on ``seed`` and ``len(index)``, so a method gives the same result for
    the same inputs on every call (no frame-to-frame flicker from the sampling).
    """
    if limit <= 0 or len(index) <= limit:
        return index
    pick = np.random.default_rng(seed).choice(len(index), size=limit, replace=False)
    return index[np.sort(pick)]


COLOR: Registry[ColorTransfer] = Registry("colour transfer")
