"""Colour management with OpenColorIO: what an input's pixels are, and what an output's are.

Faceplate works in one scene-linear space, linear Rec.709 (sRGB primaries, D65 white:
:data:`WORKING`), and shows detectors and models display sRGB made from it
(:func:`faceplate.core.colorspace.linear_to_display_u8`). A plate in another space (ACEScg,
ACES2065-1, ARRI LogC, a camera log, a display encoding) is converted to :data:`WORKING` when it
is read and back to its own space (or another, ``--output-colorspace``) when it is written.

Spaces are named as the config names them, or by any of their aliases (OpenImageIO's colour
interop ids such as ``lin_ap1_scene`` are aliases in OCIO's built-in configs). The config is
``$OCIO`` when set, else OCIO's built-in ACES studio config (:data:`BUILTIN_CONFIG`: ACES,
ACEScg, ACEScct, the ARRI, RED, Sony, Canon, Panasonic, Blackmagic, Apple and DJI camera
spaces, Rec.709/sRGB/P3/Rec.2020 encodings).

An input's space, when not given: the space the file's metadata names (OpenImageIO's
``oiio:ColorSpace``, when the config knows it), else by kind as Faceplate always read files:
float files (EXR, float TIFF/DPX) are :data:`WORKING`, integer files and video
:data:`DISPLAY_SRGB`. Those two defaults need no conversion at all: the pixels stay exactly as
decoded.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from faceplate.core.config import Config, option
from faceplate.core.errors import ConfigError

#: Faceplate's scene-linear working space (the space of ``Frame.linear``).
WORKING = "Linear Rec.709 (sRGB)"
#: The display encoding integer files and video are read as, and detection sees.
DISPLAY_SRGB = "sRGB Encoded Rec.709 (sRGB)"
#: The config used when ``$OCIO`` is not set.
BUILTIN_CONFIG = "ocio://studio-config-latest"
ENV_CONFIG = "OCIO"


@dataclass(frozen=True)
class ColorConfig(Config):
    """Which colour spaces the input and the outputs are in (names or aliases in the config:
    ``$OCIO``, else OCIO's built-in ACES studio config)."""

    colorspace: str = option("", "Colour space of the input (e.g. ACEScg, 'ARRI LogC3 (EI800)', "
                             "ACES2065-1); empty: from the file's metadata, else linear Rec.709 "
                             "for float files and sRGB for the others.")
    output_colorspace: str = option("", "Colour space of the outputs; empty: the input's.")


_lock = threading.Lock()
_config: Any = None
_config_key: str | None = None
_processors: dict[tuple[str, str, str], Any] = {}


def config_name() -> str:
    """The config in use: ``$OCIO``, else :data:`BUILTIN_CONFIG`."""
    return os.environ.get(ENV_CONFIG, "").strip() or BUILTIN_CONFIG


def _ocio() -> Any:
    import PyOpenColorIO as ocio

    return ocio


def config() -> Any:
    """The OCIO config (loaded once per config name).

    Raises:
        ConfigError: the config cannot be loaded (names it and why).
    """
    global _config, _config_key
    name = config_name()
    with _lock:
        if _config is None or _config_key != name:
            ocio = _ocio()
            try:
                _config = ocio.Config.CreateFromFile(name)
                _config.validate()
            except Exception as err:  # OCIO raises its own untyped exception
                raise ConfigError(f"OpenColorIO config {name!r} cannot be used: {err}") from None
            _config_key = name
            _processors.clear()
        return _config


def resolve(name: str) -> str:
    """The config's own name of the colour space ``name`` (a name or an alias).

    Raises:
        ConfigError: the config has no such space (the message lists a few it has).
    """
    cfg = config()
    cs = cfg.getColorSpace(name.strip()) if name.strip() else None
    if cs is None:
        known = list(cfg.getColorSpaceNames())
        near = [k for k in known if name.strip().lower()[:4] in k.lower()][:6] or known[:8]
        raise ConfigError(f"colour space {name!r} is not in the OpenColorIO config "
                          f"{config_name()!r}; e.g. {', '.join(near)}")
    return str(cs.getName())


def known(name: str | None) -> str | None:
    """:func:`resolve` of ``name``, or None when it is empty or the config lacks it."""
    if not name:
        return None
    try:
        return resolve(name)
    except ConfigError:
        return None


#: Metadata names of the two native spaces (OpenImageIO's interop ids and its older names),
#: recognised without loading a config.
_NATIVE_NAMES = {"srgb_rec709_scene": DISPLAY_SRGB, "sRGB": DISPLAY_SRGB, "srgb": DISPLAY_SRGB,
                 "lin_rec709_scene": WORKING, "lin_rec709": WORKING, "linear": WORKING,
                 "Linear": WORKING, "scene_linear": WORKING}


def input_space(explicit: str, metadata: str | None, is_float: bool) -> str:
    """The colour space of an input: ``explicit`` (resolved), else the metadata's space when the
    config knows it, else :data:`WORKING` for float files and :data:`DISPLAY_SRGB` otherwise.
    The config is only loaded when a name other than the native spaces' has to be resolved."""
    if explicit.strip():
        return resolve(explicit)
    default = WORKING if is_float else DISPLAY_SRGB
    if not metadata:
        return default
    if metadata in _NATIVE_NAMES:
        return _NATIVE_NAMES[metadata]
    return known(metadata) or default


def is_native(space: str, is_float: bool) -> bool:
    """Whether a file of this kind in ``space`` is read without any conversion (the spaces
    Faceplate always assumed: linear Rec.709 for float files, sRGB for the others)."""
    native = WORKING if is_float else DISPLAY_SRGB
    return space == native or (space not in (WORKING, DISPLAY_SRGB)
                               and space == _in_config(native))


#: Names (and aliases) the two native spaces go by in OCIO configs: the built-in configs' own
#: names first, then OpenImageIO's interop ids and the ACES 1.x config's names.
_CANDIDATES = {
    WORKING: (WORKING, "lin_rec709_scene", "lin_rec709", "lin_srgb", "Utility - Linear - sRGB",
              "Utility - Linear - Rec.709"),
    DISPLAY_SRGB: (DISPLAY_SRGB, "srgb_rec709_scene", "srgb_tx", "srgb_texture",
                   "Utility - sRGB - Texture"),
}


def _in_config(space: str) -> str:
    """The active config's name for ``space``; for :data:`WORKING` and :data:`DISPLAY_SRGB`,
    whatever the config calls linear Rec.709 and sRGB.

    Raises:
        ConfigError: the config has no such space.
    """
    cfg = config()
    for name in _CANDIDATES.get(space, (space,)):
        cs = cfg.getColorSpace(name)
        if cs is not None:
            return str(cs.getName())
    raise ConfigError(f"the OpenColorIO config {config_name()!r} has no {space!r} colour space "
                      "(or alias): Faceplate's working space is linear Rec.709")


def convert(pixels: np.ndarray, src: str, dst: str) -> np.ndarray:
    """``pixels`` (H×W×3 or H×W×4 float; alpha is left as it is) from space ``src`` to ``dst``,
    as a new float32 array. Spaces are resolved names (or :data:`WORKING` /
    :data:`DISPLAY_SRGB`, found in any config under their usual names)."""
    arr = np.ascontiguousarray(pixels, dtype=np.float32)
    src, dst = _in_config(src), _in_config(dst)
    if src == dst:
        return arr.copy()
    key = (config_name(), src, dst)
    cfg = config()
    with _lock:
        proc = _processors.get(key)
        if proc is None:
            try:
                proc = cfg.getProcessor(src, dst).getDefaultCPUProcessor()
            except Exception as err:  # untyped OCIO exception
                raise ConfigError(f"no OpenColorIO transform from {src!r} to {dst!r}: {err}"
                                  ) from None
            _processors[key] = proc
    out = arr.copy()
    rgb = np.ascontiguousarray(out[..., :3])
    proc.applyRGB(rgb)
    out[..., :3] = rgb
    return out


def to_working(pixels: np.ndarray, space: str) -> np.ndarray:
    """Pixels in ``space`` → :data:`WORKING` (float32, alpha kept)."""
    return convert(pixels, space, WORKING)


def from_working(pixels: np.ndarray, space: str) -> np.ndarray:
    """:data:`WORKING` pixels → ``space`` (float32, alpha kept)."""
    return convert(pixels, WORKING, space)
