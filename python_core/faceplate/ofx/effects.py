"""The effects the OpenFX host sees: **Faceplate Mask** and **Faceplate Swap**.

Each effect's parameter list is generated from frozen config dataclasses
(:func:`faceplate.core.config.params`), so the CLI, the OFX parameters and the docs never drift
apart. Parameter names are the config field names, prefixed per section where two sections could
collide (``post_`` for :class:`~faceplate.convert.post.PostConfig`). ``mix`` and ``maskInvert``
use openfx-misc's names and maths and are applied by the C++ shell, never by Python.

Faceplate Swap runs the converter's :func:`faceplate.convert.swap.swap_frame` with the same
:class:`~faceplate.convert.swap.ConvertConfig` the CLI uses (its fields spread over the Swap, Mask
and Post pages, minus the few that only make sense for a whole file: :data:`CLI_ONLY`), plus the
node's own :class:`SwapNodeConfig` (model, alignments store, output, detector).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from faceplate.convert.maskops import MaskOpsConfig
from faceplate.convert.swap import MASK_FIELDS, POST_FIELDS, ConvertConfig
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
VERSION = (1, 3)

#: Status of Faceplate Swap while no model is set: the source passes through unchanged.
SWAP_STATUS = "no model loaded: set the Model parameter to a folder written by `faceplate train`"

#: ConvertConfig fields the node leaves out: the host owns frame ranges, output size and threads.
CLI_ONLY: tuple[str, ...] = ("frame_ranges", "keep_unchanged", "output_scale", "threads", "jobs")
#: ConvertConfig fields on the Swap page (the rest go to the Mask and Post pages).
SWAP_FIELDS: tuple[str, ...] = tuple(
    f for f in ConvertConfig.__dataclass_fields__
    if f not in MASK_FIELDS and f not in POST_FIELDS and f not in CLI_ONLY)

OutputMask = Literal["alpha", "matte"]
OutputSwap = Literal["composite", "face_matte", "mask_only", "landmarks"]
FaceSelection = Literal["largest", "all", "index", "reference"]


@dataclass(frozen=True)
class MaskConfig(Config):
    """Faceplate Mask: which face mask to draw and where it goes."""

    detector: str = option("chain", "Face detector.", choices=tuple(DETECTORS.names()))
    aligner: str = option("dlib68", "Landmark aligner.", choices=tuple(ALIGNERS.names()))
    mask: str = option("components", "Mask kind: landmark hulls (components, extended), "
                       "face-mesh regions, or occlusion (the learned mask of the Mask model).",
                       choices=tuple(MASKERS.names()))
    mask_model: str = option("", "Mask model folder written by `faceplate mask train` (for "
                             "the occlusion mask).")
    output: OutputMask = option("alpha", "alpha: the mask replaces the alpha channel, RGB is "
                                "unchanged; matte: RGBA all hold the mask.")


@dataclass(frozen=True)
class SwapNodeConfig(Config):
    """Faceplate Swap's own settings (the swap itself is a :class:`ConvertConfig`)."""

    model: str = option("", "Model folder written by `faceplate train` (or any file in it, "
                        "e.g. its manifest.json).")
    alignments: str = option("", "Alignments store (.fpstore) filled by Analyze Sequence or "
                             "`faceplate extract`; empty: faces are detected on every frame.")
    output: OutputSwap = option("composite", "composite: the swapped frame; face_matte: the "
                                "face (straight) with its matte in alpha; mask_only: the matte "
                                "in RGBA; landmarks: the source with the 68 landmarks drawn.")
    detector: str = option("chain", "Face detector (per-frame detection and Analyze Sequence).",
                           choices=tuple(DETECTORS.names()))
    aligner: str = option("dlib68", "Landmark aligner.", choices=tuple(ALIGNERS.names()))


@dataclass(frozen=True)
class Section:
    """One config class shown on one page, its fields named ``prefix + field``."""

    config: type
    page: str
    prefix: str = ""
    path_fields: tuple[str, ...] = ()
    fields: tuple[str, ...] | None = None  # None: every field of ``config``

    def params(self) -> list[Param]:
        """The section's fields (all, or those named by ``fields``, in the config's order)."""
        return [p for p in params(self.config) if self.fields is None or p.name in self.fields]


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
    page: str = "Controls"
    secret: bool = False  # hidden from the user, never animated


# openfx-supportext/ofxsMaskMix.h names; the shell applies them after the render.
MIX = HostParam("mix", "double", 1.0, "Mix",
                "Mix factor between the original (0) and the transformed image (1).", 0.0, 1.0)
MASK_INVERT = HostParam("maskInvert", "bool", False, "Invert Mask",
                        "When checked, the effect is fully applied where the mask is 0.")


# Faceplate Swap's analysis buttons (openfx-misc's ImageStatistics names): the shell runs them
# in InstanceChanged with the host's progress bar (see faceplate.ofx.render, actions).
ANALYZE = HostParam("analyzeSequence", "pushbutton", None, "Analyze Sequence",
                    "Detect, align and smooth the faces of every frame of the Source clip and "
                    "keep the tracks in the Alignments store (renders then read them at their "
                    "own frame). Cancel keeps the frames done.", page="Swap")
CLEAR = HostParam("clearSequence", "pushbutton", None, "Clear",
                  "Move the Alignments store aside (a backup beside it, named in the node's "
                  "message): renders go back to per-frame detection.", page="Swap")
# Bumped by the shell after Analyze Sequence and Clear: only the store changed, so without it
# the host's cache would keep serving frames rendered before.
REVISION = HostParam("revision", "int", 0, "Revision",
                     "Changes when Analyze Sequence or Clear changed the face tracks.",
                     page="Swap", secret=True)


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
    #: Premultiplication of the Output per value of the ``output`` parameter: "source" (the
    #: shell unpremultiplies a premultiplied Source before the render and premultiplies the
    #: result, so the Output is what the Source was), "unpremultiplied" (straight colour and a new
    #: alpha: written as rendered, declared straight) or "premultiplied" (RGBA already in the
    #: premultiplied form, e.g. a white matte: written as rendered).
    alpha: tuple[tuple[str, str], ...] = ()

    def params(self) -> list[tuple[Section, Param]]:
        """Every config field of every section, in order."""
        return [(s, p) for s in self.sections for p in s.params()]

    def configs(self, values: dict[str, Any]) -> dict[type, Any]:
        """Build each config class from host values keyed by schema name (sections of the same
        class are merged into one value).

        Missing names take the config default; unknown names raise :class:`ConfigError`, and
        out-of-range values the config's own :class:`ConfigError`.
        """
        known = {s.prefix + p.name for s, p in self.params()}
        known |= {h.name for h in self.host_params}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"{self.identifier}: unknown parameter(s) {', '.join(unknown)}")
        kws: dict[type, dict[str, Any]] = {}
        for s, p in self.params():
            kw = kws.setdefault(s.config, {})
            key = s.prefix + p.name
            if key in values:
                kw[p.name] = _coerce(p, values[key])
        return {cls: cls(**kw) for cls, kw in kws.items()}


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
    description="Writes the face mask (landmark hull, face-mesh region, or the occlusion mask "
                "learned by `faceplate mask train`: hands, hair and objects cut out) into the "
                "alpha channel or as a matte, with erode and blur, for refinement with the "
                "host's own tools. Frames without faces pass through with an empty mask.",
    sections=(Section(MaskConfig, "Mask", path_fields=("mask_model",)),
              Section(MaskOpsConfig, "Mask")),
    alpha=(("alpha", "unpremultiplied"), ("matte", "premultiplied")),
)

SWAP = Effect(
    identifier=SWAP_ID,
    label="Faceplate Swap",
    description="Replaces faces with a model trained by `faceplate train`, in scene-linear "
                "float, with the converter's colour transfer, masks, blending and post filters. "
                "Every swapped face carries Faceplate's invisible watermark. Analyze Sequence "
                "stores smoothed face tracks in the alignments store; without it faces are "
                "detected on every frame. Frames without faces pass through unchanged.",
    sections=(Section(SwapNodeConfig, "Swap", path_fields=("model", "alignments")),
              Section(ConvertConfig, "Swap", path_fields=("reference", "mask_model"),
                      fields=SWAP_FIELDS),
              Section(ConvertConfig, "Mask", fields=MASK_FIELDS),
              Section(ConvertConfig, "Post", prefix="post_", fields=POST_FIELDS)),
    host_params=(ANALYZE, CLEAR, REVISION, MIX, MASK_INVERT),
    alpha=(("composite", "source"), ("face_matte", "unpremultiplied"),
           ("mask_only", "premultiplied"), ("landmarks", "source")),
)

EFFECTS: dict[str, Effect] = {MASK.identifier: MASK, SWAP.identifier: SWAP}


def effect(identifier: str) -> Effect:
    """The effect with that OFX identifier (:class:`ConfigError` when unknown)."""
    try:
        return EFFECTS[identifier]
    except KeyError:
        raise ConfigError(f"unknown effect {identifier!r}; known: {', '.join(EFFECTS)}") from None
