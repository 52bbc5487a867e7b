"""The ``occlusion`` masker: a trained segmenter (``faceplate mask train``) run on the face.

Where the landmark maskers draw hulls, this one looks at the pixels: the model was trained per
shot on labelled faces (:mod:`faceplate.core.labels`) to mark face as 1 and whatever covers it
(hands, hair, glasses, microphones) or surrounds it as 0 (:mod:`faceplate.models.occlusion`).

The model works on its own crop (the size, centering and coverage in its manifest), so the
extractor cuts that crop from the frame for it (:meth:`OcclusionMasker.crop_geometry`) and stores
the mask at that geometry, with its matrix and centering, beside the others; given any other
crop of the face, :meth:`OcclusionMasker.mask` re-cuts the model's crop from it through the
landmarks and maps the prediction back.

Inference runs the model directory's ONNX export with onnxruntime when there is one (verified
against the manifest's sha256; about 2.5× faster than torch for this network on a CPU), else the
safetensors weights with torch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np

from faceplate.core.config import Config, option
from faceplate.core.errors import ConfigError, ModelError
from faceplate.core.geometry import compose_affine, crop_matrix, invert_affine, to_cv2
from faceplate.core.types import Centering
from faceplate.core.validate import check_image, check_matrix, check_points
from faceplate.extract.mask.base import MASKERS, Masker
from faceplate.io.model_files import (
    MASK_ONNX_OUTPUTS,
    ONNX_INPUT,
    MaskManifest,
    load_mask_model,
    mask_model_digest,
    read_mask_manifest,
    verify_file,
)

Engine = Literal["auto", "onnx", "torch"]
#: Faces per inference call.
BATCH = 16


def mask_model_dir(path: str | os.PathLike[str]) -> Path:
    """The mask model folder a parameter names (the folder, or any file in it)."""
    p = Path(os.path.expanduser(str(path).strip()))
    return p.parent if p.is_file() else p


class OcclusionPredictor:
    """A loaded mask model: aligned faces → masks.

    Args:
        model_dir: A folder written by ``faceplate mask train`` (or any file in it).
        engine: ``onnx`` (the verified ONNX export through onnxruntime), ``torch`` (the
            safetensors weights), or ``auto`` (onnx when exported, else torch).
        threads: CPU threads for inference (0: the engine's default).

    Attributes:
        model_dir: The folder.
        manifest: Its validated manifest.
        size: Side of the faces it takes (and of the masks it returns), px.
        centering: Their centering.
        coverage: Fraction of the centering's frame they keep.
        digest: The model's digest (weights and ONNX export), or None.
        engine: The engine that runs (``onnx`` or ``torch``).

    Raises:
        ModelError: not a mask model directory, files that fail their sha256, ``onnx`` asked of
            a model without an export.
    """

    def __init__(self, model_dir: str | os.PathLike[str], engine: Engine = "auto",
                 threads: int = 0) -> None:
        self.model_dir = mask_model_dir(model_dir)
        manifest = read_mask_manifest(self.model_dir)
        self.manifest: MaskManifest = manifest
        self.size = int(manifest.size)
        self.centering: Centering = manifest.centering  # type: ignore[assignment]
        self.coverage = float(manifest.coverage)
        self.digest = mask_model_digest(manifest)
        self._session: Any = None
        self._model: Any = None
        has_onnx = bool(manifest.onnx and manifest.onnx.get("file"))
        if engine == "onnx" and not has_onnx:
            raise ModelError("the mask model has no ONNX export (use engine torch)",
                             self.model_dir)
        if engine not in ("auto", "onnx", "torch"):
            raise ConfigError(f"engine: {engine!r} is not one of auto, onnx, torch")
        if has_onnx and engine != "torch":
            import onnxruntime as ort

            assert manifest.onnx is not None
            path = verify_file(self.model_dir, manifest.onnx, "ONNX")
            opts = ort.SessionOptions()
            opts.log_severity_level = 3
            if threads > 0:
                opts.intra_op_num_threads = threads
            try:
                self._session = ort.InferenceSession(str(path), opts,
                                                     providers=["CPUExecutionProvider"])
            except Exception as err:  # onnxruntime raises its own untyped errors
                raise ModelError(f"onnxruntime cannot load the mask model: {err}",
                                 path) from None
            outs = [o.name for o in self._session.get_outputs()]
            if [i.name for i in self._session.get_inputs()] != [ONNX_INPUT] \
                    or outs != list(MASK_ONNX_OUTPUTS):
                raise ModelError(f"unexpected ONNX graph (outputs {outs}; expected "
                                 f"{ONNX_INPUT} → mask)", path)
            self.engine = "onnx"
        else:
            import torch

            if threads > 0:
                torch.set_num_threads(threads)
            self._model, _ = load_mask_model(self.model_dir)
            self.engine = "torch"

    def crop_matrix(self, landmarks: np.ndarray) -> np.ndarray:
        """The 2×3 frame → model-crop matrix of a face (68×2 frame-pixel landmarks)."""
        return crop_matrix(landmarks, self.size, self.centering, self.coverage)

    def predict(self, faces: np.ndarray) -> np.ndarray:
        """Masks of a batch of faces in the model's crop.

        Args:
            faces: N×S×S×3 RGB display sRGB, ``uint8`` or ``float32`` in [0, 1]
                (S = :attr:`size`).

        Returns:
            N×S×S float32 in [0, 1], 1 = face.
        """
        x = np.asarray(faces)
        s = self.size
        if x.ndim != 4 or x.shape[1:] != (s, s, 3) or x.dtype not in (np.uint8, np.float32):
            raise ValueError(f"faces: expected N×{s}×{s}×3 uint8 or float32, got "
                             f"{x.dtype} {x.shape}")
        out = np.empty((len(x), s, s), np.float32)
        for lo in range(0, len(x), BATCH):
            chunk = x[lo:lo + BATCH]
            nchw = np.ascontiguousarray(chunk.transpose(0, 3, 1, 2), dtype=np.float32)
            if chunk.dtype == np.uint8:
                nchw *= np.float32(1.0 / 255.0)
            out[lo:lo + len(chunk)] = self._run(nchw)[:, 0]
        return np.clip(out, 0.0, 1.0)

    def _run(self, x: np.ndarray) -> np.ndarray:
        if self._session is not None:
            return np.asarray(self._session.run(list(MASK_ONNX_OUTPUTS), {ONNX_INPUT: x})[0],
                              np.float32)
        import torch

        with torch.inference_mode():
            return self._model(torch.from_numpy(x)).float().numpy()


@dataclass(frozen=True)
class OcclusionConfig(Config):
    """The ``occlusion`` masker's options."""

    model: str = option("", "Mask model folder written by `faceplate mask train` (the spec "
                        "occlusion:MODEL_DIR sets it).")
    engine: Engine = option("auto", "Inference engine: onnx (the model's verified ONNX export), "
                            "torch, or auto (onnx when the model has an export).")
    threads: int = option(0, "CPU threads for inference (0 = the engine's default).",
                          minimum=0, maximum=256)


_predictors: dict[tuple[str, str, int, int | None], OcclusionPredictor] = {}


def load_predictor(model: str | os.PathLike[str], engine: Engine = "auto",
                   threads: int = 0) -> OcclusionPredictor:
    """An :class:`OcclusionPredictor`, shared by every caller in the process while its
    manifest stays the same (reloaded when the model is retrained)."""
    d = mask_model_dir(model)
    mpath = d / "manifest.json"
    stamp = mpath.stat().st_mtime_ns if mpath.is_file() else None
    key = (str(d.resolve()), engine, threads, stamp)
    pred = _predictors.get(key)
    if pred is None:
        pred = OcclusionPredictor(d, engine, threads)
        for old in [k for k in _predictors if k[0] == key[0]]:
            del _predictors[old]
        _predictors[key] = pred
    return pred


@MASKERS.register("occlusion", config=OcclusionConfig)
class OcclusionMasker(Masker):
    """What is really face, from a segmenter trained on labelled faces of the shot."""

    cfg: OcclusionConfig
    spec_field = "model"

    def __init__(self, cfg: OcclusionConfig) -> None:
        super().__init__(cfg)
        if not cfg.model.strip():
            raise ConfigError("the occlusion mask needs its model: give occlusion:MODEL_DIR "
                              "(a folder written by `faceplate mask train`)")
        self.predictor  # noqa: B018  (loads it now: a bad model fails here, not mid-run)

    @property
    def predictor(self) -> OcclusionPredictor:
        """The loaded model (loaded again when it is retrained: a long-lived masker, in the
        OpenFX worker or the Studio, follows the model folder)."""
        return load_predictor(self.cfg.model, self.cfg.engine, self.cfg.threads)

    def crop_geometry(self) -> tuple[int, Centering, float]:
        p = self.predictor
        return p.size, p.centering, p.coverage

    def spec(self) -> str:
        return f"occlusion:{self.predictor.model_dir.resolve()}"

    def mask(self, crop: np.ndarray, landmarks: np.ndarray, matrix: np.ndarray,
             mesh: np.ndarray | None = None) -> np.ndarray:
        """size×size uint8 mask of ``crop`` (0 not face, 255 face); ``mesh`` unused.

        A crop of another geometry than the model's is re-cut to the model's through the
        landmarks (edges replicated), and the prediction warped back.
        """
        return self.mask_batch(crop[None], [landmarks], [matrix])[0]

    def mask_batch(self, crops: np.ndarray, landmarks: list[np.ndarray],
                   matrices: list[np.ndarray]) -> list[np.ndarray]:
        """:meth:`mask` for N faces at once (one inference call per :data:`BATCH`).

        Args:
            crops: N×size×size×3 uint8 RGB crops (any one size).
            landmarks: N 68×2 frame-pixel landmark arrays.
            matrices: N 2×3 frame → crop matrices.

        Returns:
            N size×size uint8 masks.
        """
        p = self.predictor
        s = p.size
        model_in = np.empty((len(crops), s, s, 3), np.uint8)
        back: list[np.ndarray | None] = []
        for i, crop in enumerate(crops):
            check_image(crop, "crop")
            if crop.shape[0] != crop.shape[1]:
                raise ValueError(f"crop: expected a square size×size×3 crop, got {crop.shape}")
            lm = check_points(landmarks[i], 68)
            m = check_matrix(matrices[i])
            want = p.crop_matrix(lm)
            to_model = compose_affine(want, invert_affine(m))   # given crop → model crop
            if crop.shape[0] == s and np.allclose(to_model, [[1, 0, 0], [0, 1, 0]], atol=1e-6):
                model_in[i] = crop
                back.append(None)
            else:
                model_in[i] = cv2.warpAffine(crop, to_cv2(to_model), (s, s),
                                             flags=cv2.INTER_CUBIC,
                                             borderMode=cv2.BORDER_REPLICATE)
                back.append(to_model)
        pred = p.predict(model_in)
        out = []
        for i, crop in enumerate(crops):
            m8 = (pred[i] * 255.0 + 0.5).astype(np.uint8)
            t = back[i]
            if t is not None:
                n = crop.shape[0]
                m8 = cv2.warpAffine(m8, to_cv2(t), (n, n),
                                    flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                    borderMode=cv2.BORDER_CONSTANT, borderValue=0)
            out.append(m8)
        return out


__all__ = ["OcclusionConfig", "OcclusionMasker", "OcclusionPredictor", "load_predictor",
           "mask_model_dir"]
