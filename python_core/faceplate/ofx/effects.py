"""The effects the OpenFX host sees: **Faceplate Mask** and **Faceplate Swap**.

Each effect's parameter list is generated from frozen config dataclasses
(:func:`faceplate.core.config.params`), so the CLI, the OFX parameters and the docs never drift
apart. Parameter names are the config field names, prefixed per section where two sections could
collide (``post_`` for :class:`~faceplate.convert.post.PostConfig`). ``mix`` and ``maskInvert``
use openfx-misc's names and maths and are applied by the C++ shell, never by Python.

Faceplate Swap is not wired to the converter yet: its render returns the source unchanged with
the status ``"no model loaded"`` (see :data:`SWAP_STATUS`) until it calls
``faceplate.convert.swap.swap_frame`` (the next step of the OFX issue).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from faceplate.convert.blend import BLEND
from faceplate.convert.color import COLOR
from faceplate.convert.maskops import MaskOpsConfig
from faceplate.convert.post import PostConfig
from faceplate.core.config import Config, Param, option, params
from faceplate.core.errors import ConfigError
from faceplate.extract.align import ALIGNERS
from faceplate.extract.detect import DETECTORS
from faceplate.extract.mask import MASKERS

GROUPING = "Faceplate"
MASK_ID = "org.faceplate.Mask"
SWAP_ID = "org.faceplate.Swap"
# Incrementing the major version means the parameter set broke backwards compatibility (hosts
# keep old projects on the old major); the minor version adds parameters compatibly.
VERSION = (1, 0)

SWAP_STATUS = ("no model loaded: the node does not call the converter "
               "(faceplate.convert.swap.swap_frame) yet, so Faceplate Swap passes the source "
               "through unchanged")

OutputMask = Literal["alpha", "matte"]
OutputSwap = Literal["composite", "face_matte", "mask_only", "landmarks"]
FaceSelection = Literal["largest", "all", "index", "reference"]


@dataclass(frozen=True)
class MaskConfig(Config):
    """Faceplate Mask: which face mask to draw and where it goes."""

    detector: str = option("chain", "Face detector.", choices=tuple(DETECTORS.names()))
    aligner: str = option("dlib68", "Landmark aligner.", choices=tuple(ALIGNERS.names()))
    mask: str = option("components", "Mask kind: landmark hulls (components, extended) or "
                       "face-mesh regions.", choices=tuple(MASKERS.names()))
    output: OutputMask = option("alpha", "alpha: the mask replaces the alpha channel, RGB is "
                                "unchanged; matte: RGBA all hold the mask.")


@dataclass(frozen=True)
class SwapConfig(Config):
    """Faceplate Swap: model, faces, colour and blending (the converter's ``ConvertConfig``
    replaces this once ``faceplate.convert.swap`` exists)."""

    model: str = option("", "Path of the trained model file (.safetensors).")
    face_selection: FaceSelection = option("largest", "Which faces to swap.")
    face_index: int = option(0, "Face index (left to right) when selecting by index.",
                             minimum=0, maximum=63)
    reference: str = option("", "Reference image of the person to swap (selection=reference).")
    ref_threshold: float = option(0.6, "Identity distance below which a face matches the "
                                  "reference.", minimum=0.0, maximum=2.0)
    detector: str = option("chain", "Face detector.", choices=tuple(DETECTORS.names()))
    aligner: str = option("dlib68", "Landmark aligner.", choices=tuple(ALIGNERS.names()))
    mask: str = option("extended", "Mask used to blend the face.",
                       choices=tuple(MASKERS.names()))
    color: str = option("rct", "Colour transfer onto the plate.", choices=tuple(COLOR.names()))
    color_strength: float = option(1.0, "Colour transfer strength.", minimum=0.0, maximum=1.0)
    blend: str = option("overlay", "How the face is blended into the plate.",
                        choices=tuple(BLEND.names()))
    face_scale: float = option(1.0, "Scale of the swapped face.", minimum=0.5, maximum=2.0)
    face_offset_x: float = option(0.0, "Horizontal offset, % of the face size.",
                                  minimum=-50.0, maximum=50.0)
    face_offset_y: float = option(0.0, "Vertical offset, % of the face size.",
                                  minimum=-50.0, maximum=50.0)
    output: OutputSwap = option("composite", "composite, face + matte, mask only, or the "
                                "landmarks drawn for checking.")
    alignments: str = option("", "Alignments store written by Analyze Sequence (empty: "
                             "detect on every frame).")


@dataclass(frozen=True)
class Section:
    """One config class shown on one page, its fields named ``prefix + field``."""

    config: type
    page: str
    prefix: str = ""
    path_fields: tuple[str, ...] = ()


@dataclass(frozen=True)
class HostParam:
    """A parameter the C++ shell owns (openfx-misc's Mix / Mask conventions)."""

    name: str
    type: str
    default: Any
    label: str
    hint: str
    minimum: float | None = None
    maximum: float | None = None


# openfx-supportext/ofxsMaskMix.h names; the shell applies them after the render.
MIX = HostParam("mix", "double", 1.0, "Mix",
                "Mix factor between the original (0) and the transformed image (1).", 0.0, 1.0)
MASK_INVERT = HostParam("maskInvert", "bool", False, "Invert Mask",
                        "When checked, the effect is fully applied where the mask is 0.")


@dataclass(frozen=True)
class Effect:
    """One OFX effect: identity, clips and parameter sections."""

    identifier: str
    label: str
    description: str
    sections: tuple[Section, ...]
    host_params: tuple[HostParam, ...] = (MIX, MASK_INVERT)
    version: tuple[int, int] = VERSION
    status: str = ""

    def params(self) -> list[tuple[Section, Param]]:
        """Every config field of every section, in order."""
        return [(s, p) for s in self.sections for p in params(s.config)]

    def configs(self, values: dict[str, Any]) -> dict[type, Any]:
        """Build each section's config from host values keyed by schema name.

        Missing names take the config default; unknown names raise :class:`ConfigError`.
        """
        known = {s.prefix + p.name for s, p in self.params()}
        known |= {h.name for h in self.host_params}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"{self.identifier}: unknown parameter(s) {', '.join(unknown)}")
        out: dict[type, Any] = {}
        for s in self.sections:
            kw: dict[str, Any] = {}
            for p in params(s.config):
                key = s.prefix + p.name
                if key in values:
                    kw[p.name] = _coerce(p, values[key])
            out[s.config] = s.config(**kw)
        return out


def _coerce(p: Param, v: Any) -> Any:
    """A host value (JSON scalar) → the config field's Python type."""
    if p.kind in ("floats", "strs"):
        items = [x.strip() for x in str(v).split(",") if x.strip()] if isinstance(v, str) else v
        return tuple(float(x) for x in items) if p.kind == "floats" else tuple(map(str, items))
    if p.kind == "float":
        return float(v)
    if p.kind == "int" and not isinstance(v, bool):
        return int(v)
    return v


MASK = Effect(
    identifier=MASK_ID,
    label="Faceplate Mask",
    description="Writes the face mask (landmark hull or face-mesh region) into the alpha "
                "channel or as a matte, with erode and blur, for refinement with the host's "
                "own tools. Frames without faces pass through with an empty mask.",
    sections=(Section(MaskConfig, "Mask"), Section(MaskOpsConfig, "Mask")),
)

SWAP = Effect(
    identifier=SWAP_ID,
    label="Faceplate Swap",
    description="Replaces faces with a trained model. " + SWAP_STATUS + ".",
    sections=(Section(SwapConfig, "Swap", path_fields=("model", "reference", "alignments")),
              Section(MaskOpsConfig, "Mask"),
              Section(PostConfig, "Post", prefix="post_")),
    status=SWAP_STATUS,
)

EFFECTS: dict[str, Effect] = {MASK.identifier: MASK, SWAP.identifier: SWAP}


def effect(identifier: str) -> Effect:
    """The effect with that OFX identifier (:class:`ConfigError` when unknown)."""
    try:
        return EFFECTS[identifier]
    except KeyError:
        raise ConfigError(f"unknown effect {identifier!r}; known: {', '.join(EFFECTS)}") from None
