"""The per-frame swap: one pure function over NumPy frames (the CLI and the OFX node share it).

:func:`swap_frame` takes one frame, the faces found in it (store records or on-the-fly
detections), a :class:`Predictor` and a :class:`ConvertConfig`, and returns the merged frame::

    select faces → crop matrix (the model's centering / coverage / input size, + face scale and
    offset for the paste) → warp the plate's display-sRGB crop (box only) → predict (all the
    frame's faces in one batch) → colour transfer against the plate crop (masked) → mask
    (learned / stored / combined, then the mask operations) → post filters → convert the face
    to the frame's colour space → paste back inside the face's box with the blend mode → the
    invisible watermark on the merged frame (:mod:`faceplate.provenance.watermark`, always;
    payload: the model id), inside each face's matte, in the canonical frame of landmarks
    re-found on the result (the patch in ``SwapResult.patches`` carries the same mark).

Conventions:
    Frames are H×W×C, top-left origin, RGB(A): ``uint8`` display sRGB (C = 3 or 4), or
    ``float32`` (C = 3 or 4) that is display sRGB (``frame_is_linear=False``) or scene-linear
    (``frame_is_linear=True``, any finite values: > 1 and < 0 are kept exactly outside the face).
    The model and the colour work run on display-referred sRGB crops in [0, 1]; only the face's
    box of the frame is ever converted (a linear box goes through ``linear_to_srgb`` for the
    model input, the predicted face through ``srgb_to_linear`` for the paste). Landmarks and
    matrices follow :mod:`faceplate.core.geometry`: (x, y) frame pixels, pixel centres at +0.5,
    crop matrices map frame → crop.

Guarantees: the input frame is never modified; pixels outside every swapped face's box, and
inside it wherever the warped mask is 0, are bit-exact copies of the input (``uint8`` boxes go
to float and back exactly: k/255·255 rounds to k); frames without a selected face come back as
the input array itself (not copied) with ``faces_swapped == 0``.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np

from faceplate.convert import maskops, post
from faceplate.convert.blend import BLEND, AlphaMode, Blender
from faceplate.convert.color import COLOR, ColorTransfer
from faceplate.convert.composite import (
    BAND_ROWS,
    INTERPOLATIONS,
    Interpolation,
    face_box,
    merge_region,
    paste_bands,
)
from faceplate.convert.maskops import MaskOpsConfig
from faceplate.convert.post import PostConfig
from faceplate.core.colorspace import linear_to_srgb, srgb_to_linear
from faceplate.core.config import option
from faceplate.core.errors import ConfigError, InputError, ModelError
from faceplate.core.geometry import compose_affine, crop_matrix, invert_affine, to_cv2
from faceplate.core.records import decode_mask
from faceplate.core.types import Centering, FaceRecord
from faceplate.core.validate import check_image
from faceplate.io.model_files import (
    ONNX_INPUT,
    ONNX_OUTPUTS,
    Manifest,
    load_inference_model,
    model_digest,
    read_manifest,
    verify_file,
)
from faceplate.provenance.watermark import (
    FULL_COVER,
    FrameMark,
    mark_crop,
    mark_fitted,
    payload_id,
)

Selection = Literal["all", "largest", "index", "reference"]
PredictorKind = Literal["torch", "onnx"]
Precision = Literal["fp32", "bf16", "int8"]
PRECISIONS: tuple[Precision, ...] = ("fp32", "bf16", "int8")

#: Mask names with a meaning of their own (any other name is a stored landmark mask).
LEARNED = "learned"
FULL = "full"
#: The learned occlusion mask: stored by ``faceplate mask apply`` / ``extract --masks
#: occlusion:MODEL_DIR``, or predicted on the fly with ``mask_model``.
OCCLUSION = "occlusion"

#: Fields of :class:`ConvertConfig` that come from :class:`MaskOpsConfig` / :class:`PostConfig`.
MASK_FIELDS: tuple[str, ...] = tuple(f for f in MaskOpsConfig.__dataclass_fields__)
POST_FIELDS: tuple[str, ...] = tuple(f for f in PostConfig.__dataclass_fields__)

#: Frame-range syntax: ``"10-50"`` (inclusive) or ``"7"``.


@dataclass(frozen=True)
class ConvertConfig(PostConfig, MaskOpsConfig):
    """Every setting of the merge step (what ``faceplate convert``, ``preview`` and the OFX node
    expose). The mask operations (:class:`MaskOpsConfig`) and post filters (:class:`PostConfig`)
    are inherited, so one frozen value describes the whole swap; colour-method and blend-mode
    specific options live in their own registry configs (see :class:`SwapContext`)."""

    select: Selection = option("all", "Which faces to swap: all, the largest, the one at "
                               "--face-index (left to right), or those matching --reference.")
    face_index: int = option(0, "Face to swap with --select index (0 = leftmost).", minimum=0,
                             maximum=1000)
    reference: tuple[str, ...] = option((), "Reference images of the person to swap (--select "
                                        "reference; one face each).")
    ref_threshold: float = option(0.4, "Identity distance (dlib 128-d, Euclidean) below which a "
                                  "face matches a reference (Faceswap's convert default 0.4; "
                                  "dlib's same-person bound is 0.6).", minimum=0.01,
                                  maximum=2.0)
    color: str = option("rct", "Colour transfer method.", choices=tuple(COLOR.names()))
    color_strength: float = option(1.0, "Colour transfer strength (0 = the model's colours).",
                                   minimum=0.0, maximum=1.0)
    blend: str = option("overlay", "Blend mode.", choices=tuple(BLEND.names()))
    mask: tuple[str, ...] = option(
        ("extended",), "Mask source(s): learned (the model's mask), full (the whole crop), "
        "occlusion (the learned occlusion mask: stored, or predicted with --mask-model), or a "
        "stored landmark mask (components, extended, ...); several combine with --mask-combine "
        "(multiply = product, max = union).")
    mask_model: str = option("", "Occlusion mask model (a folder written by `faceplate mask "
                             "train`): faces without a stored occlusion mask get it predicted "
                             "on the fly.")
    interpolation: Interpolation = option("cubic", "Resampling of the face into the frame.",
                                          choices=INTERPOLATIONS)
    face_scale: float = option(0.0, "Scale the pasted face by this % (DFL's output face scale).",
                               minimum=-50.0, maximum=50.0)
    face_x: float = option(0.0, "Move the pasted face right (+) / left (−), % of the face crop "
                           "side, along the face's own axes.", minimum=-50.0, maximum=50.0)
    face_y: float = option(0.0, "Move the pasted face down (+) / up (−), % of the face crop "
                           "side, along the face's own axes.", minimum=-50.0, maximum=50.0)
    output_scale: float = option(100.0, "Scale the written frames to this % of the input size.",
                                 minimum=25.0, maximum=400.0)
    frame_ranges: tuple[str, ...] = option((), "Only swap these frames: ranges like 10-50 90-100 "
                                           "(inclusive, 0-based); empty = every frame.")
    keep_unchanged: bool = option(False, "Write frames outside --frame-ranges unchanged (else "
                                  "they are left out).")
    predictor: PredictorKind = option("torch", "Inference engine: torch, or onnx (the model "
                                      "directory's ONNX export through onnxruntime).")
    threads: int = option(0, "CPU threads for inference (0 = the engine's default, or the "
                          "cores shared out between --jobs).", minimum=0, maximum=256)
    jobs: int = option(0, "Frames swapped at the same time (0 = auto: 2 when the machine has 2 "
                       "or more cores, each inference then on cores/jobs threads: two "
                       "single-threaded inferences outrun one two-threaded one on small CPUs).",
                       minimum=0, maximum=16)
    precision: Precision = option(
        "fp32", "Inference precision: fp32; bf16 (torch) about halves CPU inference time on "
        "processors with bf16 support (AVX512-BF16 / AMX) and on GPUs, at a small cost in "
        "precision (about 1/256 per value); int8 runs the model's int8 export (`faceplate "
        "train --export-only --export-int8`) with onnxruntime, whichever --predictor, about "
        "1.8x faster again on CPUs with VNNI (its faces ≥ 40 dB PSNR from the fp32 model's).",
        choices=PRECISIONS)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.mask:
            raise ConfigError("mask: give at least one mask source")
        parse_frame_ranges(self.frame_ranges)
        if self.select == "reference" and not self.reference:
            raise ConfigError("select reference needs --reference IMAGE (one or more)")

    def mask_ops(self) -> MaskOpsConfig:
        """The mask-operation settings as their own config."""
        return MaskOpsConfig(**{k: getattr(self, k) for k in MASK_FIELDS})

    def post(self) -> PostConfig:
        """The post-filter settings as their own config."""
        return PostConfig(**{k: getattr(self, k) for k in POST_FIELDS})

    def extractor_masks(self) -> tuple[str, ...]:
        """The mask sources an extractor must compute for faces detected on the fly (those
        neither the model nor the mask model provide)."""
        own = (LEARNED, FULL, OCCLUSION) if self.mask_model.strip() else (LEARNED, FULL)
        return tuple(n for n in self.mask if n not in own)

    def in_ranges(self, index: int) -> bool:
        """Whether frame ``index`` is to be swapped (always, without ``frame_ranges``)."""
        ranges = parse_frame_ranges(self.frame_ranges)
        return not ranges or any(a <= index <= b for a, b in ranges)


def parse_frame_ranges(ranges: Sequence[str]) -> list[tuple[int, int]]:
    """``["10-50", "7"]`` → ``[(10, 50), (7, 7)]`` (inclusive, 0-based); ``ConfigError`` else."""
    out: list[tuple[int, int]] = []
    for text in ranges:
        parts = str(text).strip().split("-")
        try:
            if len(parts) == 1:
                a = b = int(parts[0])
            elif len(parts) == 2:
                a, b = int(parts[0]), int(parts[1])
            else:
                raise ValueError
        except ValueError:
            raise ConfigError(f"frame_ranges: {text!r} is not a frame or a range like 10-50"
                              ) from None
        if a < 0 or b < a:
            raise ConfigError(f"frame_ranges: {text!r} must be 0 ≤ first ≤ last")
        out.append((a, b))
    return out


# --------------------------------------------------------------------------------------------
# Predictors


class Predictor(ABC):
    """A loaded swap model for inference: B's face crops → A's faces (the ``b2a`` direction).

    Attributes:
        manifest: The model directory's validated manifest.
        input_size: Side of the input crops, px.
        output_size: Side of the predicted faces and masks, px.
        centering: Crop centering the model was trained with.
        coverage: Fraction of the centering's frame the crops keep.
        learn_mask: Whether :meth:`predict` returns masks.
        face_only: Whether a call that wants no mask skips the model's mask branch (the
            torch predictor always; the ONNX ones when the export has face-only graphs).
    """

    face_only: bool = True

    def __init__(self, model_dir: str | os.PathLike[str], manifest: Manifest) -> None:
        self.model_dir = Path(model_dir)
        self.manifest = manifest
        self.input_size = int(manifest.input_size)
        self.output_size = int(manifest.output_size)
        self.centering: Centering = manifest.centering  # type: ignore[assignment]
        self.coverage = float(manifest.coverage)
        self.learn_mask = bool(manifest.learn_mask)
        self.model_id = model_id(manifest, self.model_dir)

    def predict(self, faces: np.ndarray, *, mask: bool = True
                ) -> tuple[np.ndarray, np.ndarray | None]:
        """Swap a batch of faces.

        Args:
            faces: N×S×S×3 float32 display sRGB in [0, 1], S = ``input_size``.
            mask: False when the learned mask is not wanted (the torch predictor then skips
                the model's mask branch).

        Returns:
            ``(faces, masks)``: N×S'×S'×3 float32 sRGB in [0, 1] (S' = ``output_size``) and
            N×S'×S' float32 masks in [0, 1], or ``None`` when the model learns no mask or
            ``mask`` is False.
        """
        x = np.asarray(faces)
        s = self.input_size
        if x.ndim != 4 or x.shape[1:] != (s, s, 3) or x.dtype != np.float32:
            raise ValueError(f"faces: expected N×{s}×{s}×3 float32, got {x.dtype} {x.shape}")
        if x.shape[0] == 0:
            so = self.output_size
            empty = np.zeros((0, so, so), np.float32)
            return np.zeros((0, so, so, 3), np.float32), (empty if self.learn_mask and mask
                                                          else None)
        nchw = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
        want = self.learn_mask and mask
        face, learned = self._run(nchw, want)
        out = np.clip(np.ascontiguousarray(face.transpose(0, 2, 3, 1)), 0.0, 1.0)
        m = np.clip(np.ascontiguousarray(learned[:, 0]), 0.0, 1.0) \
            if want and learned is not None else None
        return out.astype(np.float32, copy=False), (None if m is None else
                                                     m.astype(np.float32, copy=False))

    @abstractmethod
    def _run(self, x: np.ndarray, mask: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """N×3×S×S float32 → (N×3×S'×S' face, N×1×S'×S' mask) as NumPy arrays (the mask may
        be None when ``mask`` is False)."""


def model_id(manifest: Manifest, model_dir: str | os.PathLike[str]) -> str:
    """The short model id every swapped face's watermark and every output's provenance carry:
    :func:`faceplate.provenance.watermark.payload_id` of :func:`model_digest` (the weights' and
    the ONNX export's digests together: whichever predictor runs, it runs verified files, and a
    different file is a different model); of the model folder's absolute path when an old
    manifest has no digest."""
    digest = model_digest(manifest) or hashlib.sha256(
        str(Path(model_dir).resolve()).encode("utf-8")).hexdigest()
    return payload_id(digest)


class TorchPredictor(Predictor):
    """The model's safetensors weights run with PyTorch (``load_inference_model``)."""

    def __init__(self, model_dir: str | os.PathLike[str], *, device: str = "cpu",
                 threads: int = 0, precision: str = "fp32") -> None:
        import torch

        if precision not in ("fp32", "bf16"):
            raise ConfigError(f"precision: the torch predictor runs fp32 or bf16, not "
                              f"{precision!r} (int8 runs the int8 export: make_predictor)")
        self.precision = precision
        model, manifest = load_inference_model(model_dir, device)
        super().__init__(model_dir, manifest)
        if threads > 0:
            torch.set_num_threads(threads)
        self._torch = torch
        self.device = device
        if precision == "bf16":
            # bf16 weights in channels-last layout: oneDNN's bf16 convolutions take this path
            # directly (measured on a 2-core AVX512-BF16 CPU, df 128: 155 ms fp32 → 64 ms).
            model = model.to(torch.bfloat16)
            model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        # Both share the weights; the face-only one skips the mask branch.
        self.module = model.inference("b2a").eval()
        self.face_module = model.inference("b2a", mask=False).eval()

    def _run(self, x: np.ndarray, mask: bool) -> tuple[np.ndarray, np.ndarray | None]:
        torch = self._torch
        t = torch.from_numpy(x).to(self.device)
        if self.precision == "bf16":
            t = t.to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            face, learned = (self.module if mask else self.face_module)(t)
        return face.float().cpu().numpy(), (None if learned is None
                                            else learned.float().cpu().numpy())


class OnnxPredictor(Predictor):
    """The model directory's ONNX export run with onnxruntime (CPU): the float graph (manifest
    ``onnx``), or with ``int8`` its int8 version (manifest ``int8``: static quantisation,
    onnxruntime's QLinear operators). When the entry names a face-only version
    (``face_only``: the same graph without the mask branch), a call that does not want the
    learned mask runs that one; otherwise (older exports) the full graph runs and its mask is
    dropped. Every file is checked against the manifest's sha256 before onnxruntime reads it.

    Sessions run onnxruntime's full graph optimisation; with ``threads`` > 0 each runs on that
    many threads (1: on the caller's thread, as each of convert's jobs does) and, with more
    than one, its workers do not spin while waiting (``session.intra_op.allow_spinning`` 0:
    convert's jobs share the cores).
    """

    def __init__(self, model_dir: str | os.PathLike[str], *, threads: int = 0,
                 int8: bool = False) -> None:
        manifest = read_manifest(model_dir)
        super().__init__(model_dir, manifest)
        self.precision = "int8" if int8 else "fp32"
        entry = manifest.int8 if int8 else manifest.onnx
        what = "int8" if int8 else "ONNX"
        if not entry or not entry.get("file"):
            if int8:
                raise ModelError("the model has no int8 export (run `faceplate train "
                                 f"--export-only --export-int8 --output {model_dir}`, or use "
                                 "--precision fp32 or bf16)", model_dir)
            raise ModelError("the model has no ONNX export (run `faceplate train --export-only "
                             f"--output {model_dir}` or use --predictor torch)", model_dir)
        if entry.get("direction", "b2a") != "b2a":
            raise ModelError(f"the {what} export renders {entry.get('direction')!r}, "
                             "convert needs b2a", Path(model_dir) / str(entry["file"]))
        self._threads = threads
        self._lock = threading.Lock()
        self._full: tuple[dict[str, Any], str] = (entry, what)
        full_path = verify_file(Path(model_dir), entry, what)
        face = entry.get("face_only")
        self.face_only = bool(face)
        #: The face-only graph when there is one (loaded now: convert's default wants no
        #: learned mask), the full graph when a call wants the mask (loaded on first use).
        self._face_session = self._open(verify_file(Path(model_dir), face,
                                                    f"face-only {what}"), ONNX_OUTPUTS[:1]) \
            if face else None
        self._session: Any = None if face else self._open(full_path, ONNX_OUTPUTS)

    @property
    def session(self) -> Any:
        """The full graph's onnxruntime session (face and mask), loaded on first use (its
        file verified again just before)."""
        with self._lock:
            if self._session is None:
                self._session = self._open(verify_file(self.model_dir, *self._full),
                                           ONNX_OUTPUTS)
            return self._session

    def _open(self, path: Path, outputs: tuple[str, ...]) -> Any:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if self._threads > 0:
            opts.intra_op_num_threads = self._threads
            opts.inter_op_num_threads = 1
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own untyped errors
            raise ModelError(f"onnxruntime cannot load the model: {err}", path) from None
        names = [i.name for i in session.get_inputs()]
        outs = [o.name for o in session.get_outputs()]
        if names != [ONNX_INPUT] or any(o not in outs for o in outputs):
            raise ModelError(f"unexpected ONNX graph (inputs {names}, outputs {outs}; expected "
                             f"{ONNX_INPUT} → {', '.join(outputs)})", path)
        return session

    def _run(self, x: np.ndarray, mask: bool) -> tuple[np.ndarray, np.ndarray | None]:
        if not mask and self._face_session is not None:
            (face,) = self._face_session.run(list(ONNX_OUTPUTS[:1]), {ONNX_INPUT: x})
            return np.asarray(face, np.float32), None
        # An export without a face-only graph (or the mask wanted): the full graph runs;
        # unwanted, its mask is dropped.
        face, learned = self.session.run(list(ONNX_OUTPUTS), {ONNX_INPUT: x})
        return np.asarray(face, np.float32), (np.asarray(learned, np.float32) if mask
                                              else None)


def make_predictor(kind: PredictorKind, model_dir: str | os.PathLike[str], *,
                   threads: int = 0, precision: str = "fp32") -> Predictor:
    """A :class:`TorchPredictor` or :class:`OnnxPredictor` for ``model_dir``; precision
    ``int8`` is the int8 export on onnxruntime whichever ``kind``.

    Raises:
        ModelError: a missing or incompatible model directory (or ONNX / int8 export).
        ConfigError: bf16 asked of the ONNX predictor (it runs the float32 graph).
    """
    if precision == "int8":
        return OnnxPredictor(model_dir, threads=threads, int8=True)
    if kind == "torch":
        return TorchPredictor(model_dir, threads=threads, precision=precision)
    if kind == "onnx":
        if precision != "fp32":
            raise ConfigError(f"precision: the onnx predictor runs the exported float32 graph "
                              f"(or int8), not {precision}; use --predictor torch for bf16")
        return OnnxPredictor(model_dir, threads=threads)
    raise ConfigError(f"predictor: {kind!r} is not one of torch, onnx")


# --------------------------------------------------------------------------------------------
# Per-clip state


@dataclass
class SwapContext:
    """What :func:`swap_frame` reuses from frame to frame (build once per clip).

    Attributes:
        color: The colour transfer (registry ``COLOR``) with its options.
        blender: The blend mode (registry ``BLEND``) with its options.
        references: K×128 float32 dlib embeddings of the reference people (``select
            reference``), or None.
        prev_faces: Faces of the previous frame (for the motion-blur velocity), or None.
        next_faces: Faces of the next frame, or None.
        times: Accumulated milliseconds per stage (select, crop, predict, color, mask, post,
            paste).
        occlusion: The occlusion mask model (an
            :class:`~faceplate.extract.mask.occlusion.OcclusionPredictor`) for faces without a
            stored ``occlusion`` mask, when ``cfg.mask_model`` names one.
        clock: What ``times`` are read from, in seconds: wall time (``time.perf_counter``,
            the default), or the calling thread's CPU time (``time.thread_time``: the
            benchmark's per-stage CPU profile).
    """

    color: ColorTransfer
    blender: Blender
    references: np.ndarray | None = None
    prev_faces: Sequence[FaceRecord] | None = None
    next_faces: Sequence[FaceRecord] | None = None
    times: dict[str, float] = field(default_factory=dict)
    occlusion: Any = None
    clock: Callable[[], float] = time.perf_counter
    _encoder: Any = None
    _parts: tuple[ConvertConfig, MaskOpsConfig, PostConfig, bool] | None = None

    @classmethod
    def create(cls, cfg: ConvertConfig, *, color_cfg: Any = None,
               blend_cfg: Any = None) -> SwapContext:
        """Build the colour transfer, blender and (``select reference``) reference embeddings.

        Args:
            cfg: The swap settings.
            color_cfg: The config of ``cfg.color`` (its defaults when None); its ``strength``
                is replaced by ``cfg.color_strength``.
            blend_cfg: The config of ``cfg.blend`` (its defaults when None).

        Raises:
            InputError: a reference image is missing or does not show exactly one face.
        """
        ccfg = color_cfg if color_cfg is not None else COLOR.default_config(cfg.color)
        ccfg = ccfg.replace(strength=cfg.color_strength)
        ctx = cls(color=COLOR.create(cfg.color, ccfg), blender=BLEND.create(cfg.blend, blend_cfg))
        if cfg.mask_model.strip() and OCCLUSION in cfg.mask:
            from faceplate.extract.mask.occlusion import load_predictor

            ctx.occlusion = load_predictor(cfg.mask_model)
        if cfg.select == "reference":
            from faceplate.extract.identity.filter import ReferenceFilter

            ref = ReferenceFilter.from_images(list(cfg.reference), (), threshold=1.0,
                                              encoder=ctx.encoder())
            ctx.references = ref.filter
        return ctx

    def encoder(self) -> Any:
        """The dlib identity encoder (loaded on first use)."""
        if self._encoder is None:
            from faceplate.extract.identity.embed import IdentityEncoder

            self._encoder = IdentityEncoder()
        return self._encoder

    def add_time(self, stage: str, seconds: float) -> None:
        self.times[stage] = self.times.get(stage, 0.0) + seconds * 1000.0

    def parts(self, cfg: ConvertConfig) -> tuple[MaskOpsConfig, PostConfig, bool]:
        """``cfg``'s mask operations (their sources already combined: ``combine`` set to
        multiply), its post filters, and whether those differ from the defaults; built once
        for a given ``cfg`` (a validated config costs ~1.5 ms to construct)."""
        got = self._parts
        if got is None or got[0] != cfg:
            pcfg = cfg.post()
            got = (cfg, cfg.mask_ops().replace(combine="multiply"), pcfg, pcfg != PostConfig())
            self._parts = got
        return got[1], got[2], got[3]


class SwappedFace:
    """One swapped face, in crop space (what the patch and mask writers take).

    Attributes:
        record: The face it replaced.
        face: S'×S'×3 float32 display sRGB in [0, 1], after colour and post, carrying the
            watermark the frame got (:func:`~faceplate.provenance.watermark.mark_crop`, put on
            at the first read: a swap whose patches nobody exports does not pay for it).
        mask: S'×S' float32 in [0, 1], the final matte (after the mask operations).
        matrix: 2×3 frame → crop matrix the face was pasted with (scale/offset included).
    """

    def __init__(self, record: FaceRecord, face: np.ndarray, mask: np.ndarray,
                 matrix: np.ndarray) -> None:
        self.record = record
        self.mask = mask
        self.matrix = matrix
        self._face = face
        self._mark: FrameMark | None = None

    @property
    def face(self) -> np.ndarray:
        if self._mark is not None:
            self._face = mark_crop(self._face, self._mark, self.matrix)
            self._mark = None
        return self._face

    def set_mark(self, mark: FrameMark) -> None:
        """The frame's watermark on this face (applied to :attr:`face` when it is read)."""
        self._mark = mark


@dataclass
class SwapResult:
    """What :func:`swap_frame` returns.

    Attributes:
        frame: The merged frame, same shape and dtype as the input (the input array itself
            when no face was swapped).
        faces_swapped: Number of faces pasted.
        masks: The final crop-space matte of each swapped face (S'×S' float32).
        patches: Each swapped face with its matte and matrix.
        unmarked: (the record's ``face_index``, why) for each swapped face left without the
            watermark: :data:`UNMARKED_NOT_PASTED` or one of
            :class:`~faceplate.provenance.watermark.Unmarked`'s reasons.
    """

    frame: np.ndarray
    faces_swapped: int
    masks: list[np.ndarray]
    patches: list[SwappedFace]
    unmarked: list[tuple[int, str]] = field(default_factory=list)

    def unmarked_text(self) -> str:
        """``"face i: why; ..."`` for the faces left without the watermark ("" for none)."""
        return "; ".join(f"face {i}: {why}" for i, why in self.unmarked)

    def matte(self) -> np.ndarray:
        """The frame-sized matte (H×W float32 in [0, 1]): the union of the pasted masks."""
        from faceplate.convert.composite import paste_region

        h, w = self.frame.shape[:2]
        out = np.zeros((h, w), np.float32)
        for p in self.patches:
            reg = paste_region((h, w), p.face, p.mask, p.matrix)
            if reg is not None:
                view = out[reg.box.slices]
                np.maximum(view, reg.mask, out=view)
        return out


# --------------------------------------------------------------------------------------------
# The swap


def _face_area(rec: FaceRecord) -> float:
    return float(rec.bbox.w * rec.bbox.h)


def select_faces(frame: np.ndarray, faces: Sequence[FaceRecord], cfg: ConvertConfig,
                 context: SwapContext | None = None, *, frame_is_linear: bool = False
                 ) -> list[FaceRecord]:
    """The faces ``cfg.select`` picks (in face-index order).

    ``reference`` uses each record's stored identity, or embeds the face from ``frame`` (dlib,
    ~75 ms a face) when the record has none; a face is kept when its distance to the closest
    reference is below ``cfg.ref_threshold``.
    """
    faces = list(faces)
    if not faces:
        return []
    if cfg.select == "all":
        return faces
    if cfg.select == "largest":
        return [max(faces, key=_face_area)]
    if cfg.select == "index":
        return [f for f in faces if f.face_index == cfg.face_index]
    if context is None or context.references is None:
        raise ConfigError("select reference needs a SwapContext built with the reference images")
    refs = context.references
    kept = []
    for rec in faces:
        emb = rec.identity
        if emb is None:
            emb = _embed(frame, rec, context, frame_is_linear)
        d = float(np.min(np.linalg.norm(refs.astype(np.float64) - emb.astype(np.float64),
                                        axis=1)))
        if d < cfg.ref_threshold:
            kept.append(rec)
    return kept


def _embed(frame: np.ndarray, rec: FaceRecord, context: SwapContext,
           frame_is_linear: bool) -> np.ndarray:
    """dlib embedding of one face, computed on a display-sRGB uint8 box around it."""
    lm = rec.landmarks.astype(np.float64)
    x0, y0 = np.floor(lm.min(axis=0)).astype(int)
    x1, y1 = np.ceil(lm.max(axis=0)).astype(int)
    pad = int(max(x1 - x0, y1 - y0))
    h, w = frame.shape[:2]
    bx0, by0 = max(0, x0 - pad), max(0, y0 - pad)
    bx1, by1 = min(w, x1 + pad), min(h, y1 + pad)
    region = frame[by0:by1, bx0:bx1, :3]
    rgb = region if region.dtype == np.uint8 else _to_u8(_display(region, frame_is_linear))
    shifted = (lm - [bx0, by0]).astype(np.float32)
    return np.asarray(context.encoder().embed(np.ascontiguousarray(rgb), shifted), np.float32)


def _display(region: np.ndarray, is_linear: bool) -> np.ndarray:
    """A float box → display sRGB float32 in [0, 1] (finite)."""
    x = np.nan_to_num(region.astype(np.float32, copy=False), nan=0.0, posinf=1.0, neginf=0.0)
    if is_linear:
        x = linear_to_srgb(x)
    return np.clip(x, 0.0, 1.0)


def _to_u8(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Float [0, 1] (clipped) → uint8 codes, rounded half up; one temporary, worked in place.

    With ``out`` (a uint8 array of ``x``'s shape, e.g. a view of the frame) the codes are
    written there and ``x`` is used as the temporary (overwritten)."""
    if out is None:
        y = np.clip(x, 0.0, 1.0)
    else:
        y = np.clip(x, 0.0, 1.0, out=x)
    y *= 255.0
    y += 0.5
    if out is None:
        return y.astype(np.uint8)
    np.copyto(out, y, casting="unsafe")
    return out


def _translate(dx: float, dy: float) -> np.ndarray:
    return np.array([[1.0, 0.0, dx], [0.0, 1.0, dy]])


def paste_matrix(matrix: np.ndarray, size: int, cfg: ConvertConfig) -> np.ndarray:
    """Apply ``face_scale`` and ``face_x``/``face_y`` to a frame → crop matrix.

    The pasted face grows by ``face_scale`` % about the crop centre and moves by ``face_x`` /
    ``face_y`` % of the crop side along the crop's axes (the face's own right and down).
    """
    if not (cfg.face_scale or cfg.face_x or cfg.face_y):
        return matrix
    c = size / 2.0
    k = 1.0 / (1.0 + cfg.face_scale / 100.0)
    ox, oy = cfg.face_x / 100.0 * size, cfg.face_y / 100.0 * size
    # crop' = k·(crop − c − o) + c: the face drawn at crop point q lands where crop' = q.
    adj = np.array([[k, 0.0, c - k * (c + ox)], [0.0, k, c - k * (c + oy)]])
    return compose_affine(adj, matrix)


def _input_matrices(faces: Sequence[FaceRecord], predictor: Predictor) -> list[np.ndarray]:
    return [crop_matrix(r.landmarks, predictor.input_size, predictor.centering,
                        predictor.coverage) for r in faces]


def model_inputs(frame: np.ndarray, faces: Sequence[FaceRecord], predictor: Predictor, *,
                 frame_is_linear: bool = False) -> np.ndarray:
    """What :func:`swap_frame` feeds ``predictor.predict`` for ``faces`` of ``frame``.

    Args:
        frame: H×W×3/4 ``uint8`` display sRGB, or ``float32`` (scene-linear when
            ``frame_is_linear``).
        faces: Records with 68 frame-pixel landmarks.
        predictor: The loaded model (its input size, centering and coverage).

    Returns:
        N×S×S×3 float32 display sRGB crops in [0, 1], S = ``predictor.input_size``.
    """
    return _plate_crops(frame, _input_matrices(faces, predictor), predictor.input_size,
                        frame_is_linear)


def _plate_crops(frame: np.ndarray, matrices: list[np.ndarray], size: int,
                 frame_is_linear: bool) -> np.ndarray:
    """N×size×size×3 float32 display-sRGB [0, 1] crops, converting only each crop's box."""
    out = np.empty((len(matrices), size, size, 3), np.float32)
    for i, m in enumerate(matrices):
        box = face_box(m, size, frame.shape, support=2.0, pad=3)
        if box.empty:
            out[i] = 0.0
            continue
        region = frame[box.slices][..., :3]
        if region.dtype == np.uint8:
            src = np.ascontiguousarray(region)
        else:
            src = _display(region, frame_is_linear)
        mb = compose_affine(m, _translate(box.x0, box.y0))  # box pixels → crop pixels
        crop = cv2.warpAffine(src, to_cv2(mb), (size, size), flags=cv2.INTER_CUBIC,
                              borderMode=cv2.BORDER_REPLICATE)
        if crop.dtype == np.uint8:
            out[i] = crop.astype(np.float32) * np.float32(1.0 / 255.0)
        else:
            out[i] = np.clip(crop, 0.0, 1.0)
    return out


def stored_mask_in_crop(rec: FaceRecord, name: str, matrix: np.ndarray, size: int) -> np.ndarray:
    """Stored mask ``name`` of ``rec`` resampled into the crop ``matrix`` (frame → crop).

    Returns:
        size×size float32 in [0, 1] (0 where the stored mask's crop does not reach).

    Raises:
        InputError: the record has no mask of that name (the message lists those it has).
    """
    sm = rec.masks.get(name)
    if sm is None:
        have = ", ".join(sorted(rec.masks)) or "none"
        how = ("`faceplate mask apply`, or give --mask-model to predict it on the fly"
               if name == OCCLUSION else f"extract with --masks {name}")
        raise InputError(f"face {rec.face_index} of frame {rec.frame_index} has no stored "
                         f"{name!r} mask (it has: {have}); {how}, or choose another --mask")
    data = decode_mask(sm)
    return mask_in_crop(data.astype(np.float32) * np.float32(1.0 / 255.0), sm.affine, matrix,
                        size)


def mask_in_crop(mask: np.ndarray, affine: np.ndarray, matrix: np.ndarray,
                 size: int) -> np.ndarray:
    """A mask of one crop of a face resampled into another crop of it.

    Args:
        mask: h×w float32 in [0, 1] in the crop of ``affine``.
        affine: 2×3 frame → mask-crop matrix.
        matrix: 2×3 frame → target-crop matrix.
        size: Target crop side.

    Returns:
        size×size float32 in [0, 1], bilinear, 0 where the mask's crop does not reach.
    """
    # crop pixel → frame pixel → mask pixel (WARP_INVERSE_MAP: dst → src).
    m = compose_affine(affine, invert_affine(matrix))
    out = cv2.warpAffine(np.ascontiguousarray(mask, np.float32), to_cv2(m), (size, size),
                         flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return np.clip(out, 0.0, 1.0)


def _predicted_occlusion(frame: np.ndarray, chosen: Sequence[FaceRecord], cfg: ConvertConfig,
                         ctx: SwapContext, frame_is_linear: bool
                         ) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Position in ``chosen`` → (mask, frame → mask-crop matrix) for the faces that need the
    occlusion mask and have none stored (predicted with ``ctx.occlusion``, in one batch)."""
    if OCCLUSION not in cfg.mask or ctx.occlusion is None:
        return {}
    need = [i for i, r in enumerate(chosen) if OCCLUSION not in r.masks]
    if not need:
        return {}
    pred = ctx.occlusion
    mats = [pred.crop_matrix(chosen[i].landmarks) for i in need]
    masks = pred.predict(_plate_crops(frame, mats, pred.size, frame_is_linear))
    return {i: (masks[k], mats[k]) for k, i in enumerate(need)}


def _match(rec: FaceRecord, others: Sequence[FaceRecord] | None) -> FaceRecord | None:
    """The face in ``others`` whose landmark centroid is closest to ``rec``'s, if near."""
    if not others:
        return None
    c = rec.landmarks.mean(axis=0)
    size = float(np.ptp(rec.landmarks, axis=0).max())
    best = min(others, key=lambda o: float(np.linalg.norm(o.landmarks.mean(axis=0) - c)))
    if float(np.linalg.norm(best.landmarks.mean(axis=0) - c)) > size:
        return None
    return best


def face_velocity(rec: FaceRecord, context: SwapContext | None) -> np.ndarray:
    """The face's motion per frame (dx, dy) in frame pixels: the mean landmark displacement to
    the matching faces of the next and previous frames (central difference when both exist)."""
    if context is None:
        return np.zeros(2)
    lm = rec.landmarks.astype(np.float64)
    prev = _match(rec, context.prev_faces)
    nxt = _match(rec, context.next_faces)
    if prev is not None and nxt is not None:
        return (nxt.landmarks.astype(np.float64) - prev.landmarks).mean(axis=0) / 2.0
    if nxt is not None:
        return (nxt.landmarks.astype(np.float64) - lm).mean(axis=0)
    if prev is not None:
        return (lm - prev.landmarks.astype(np.float64)).mean(axis=0)
    return np.zeros(2)


def swap_frame(frame_linear_or_srgb: np.ndarray, faces: Sequence[FaceRecord],
               predictor: Predictor, cfg: ConvertConfig, *, frame_is_linear: bool,
               context: SwapContext | None = None) -> SwapResult:
    """Swap the selected faces of one frame (see the module docstring for every step).

    Args:
        frame_linear_or_srgb: H×W×3/4 ``uint8`` display sRGB, or ``float32`` display sRGB or
            scene-linear (``frame_is_linear``); never modified.
        faces: The frame's faces (store records or on-the-fly detections), landmarks in frame
            pixels; stored masks are used when ``cfg.mask`` names them.
        predictor: The loaded model.
        cfg: The swap settings.
        frame_is_linear: Whether a float frame is scene-linear (the face is converted with
            ``srgb_to_linear`` before the paste); must be False for ``uint8`` frames.
        context: Per-clip state (colour/blend instances with their options, reference
            embeddings, neighbouring frames' faces for motion blur, stage timings); a default
            one is built from ``cfg`` when None.

    Returns:
        A :class:`SwapResult`; its frame has the input's shape and dtype and equals the input
        bit for bit outside the pasted faces' mattes.

    Raises:
        ValueError: a malformed frame.
        InputError: a mask source the records do not have.
    """
    frame = check_image(frame_linear_or_srgb, "frame", dtypes=(np.uint8, np.float32),
                        channels=(3, 4))
    if frame.dtype == np.uint8 and frame_is_linear:
        raise ValueError("frame: a uint8 frame is display sRGB; frame_is_linear must be False")
    ctx = context if context is not None else SwapContext.create(cfg)
    clock = ctx.clock
    t0 = clock()
    chosen = select_faces(frame, faces, cfg, ctx, frame_is_linear=frame_is_linear)
    t1 = clock()
    ctx.add_time("select", t1 - t0)
    if not chosen:
        return SwapResult(frame, 0, [], [])

    s_in, s_out = predictor.input_size, predictor.output_size
    cen, cov = predictor.centering, predictor.coverage
    m_in = _input_matrices(chosen, predictor)
    m_out = m_in if s_out == s_in else [crop_matrix(r.landmarks, s_out, cen, cov)
                                        for r in chosen]
    x = _plate_crops(frame, m_in, s_in, frame_is_linear)
    plates = x if s_out == s_in else _plate_crops(frame, m_out, s_out, frame_is_linear)
    t2 = clock()
    ctx.add_time("crop", t2 - t1)

    # The model's mask branch runs only when a mask source uses it.
    pred, learned = predictor.predict(x, mask=LEARNED in cfg.mask)
    t3 = clock()
    ctx.add_time("predict", t3 - t2)

    t_o = clock()
    predicted = _predicted_occlusion(frame, chosen, cfg, ctx, frame_is_linear)
    if predicted:
        ctx.add_time("occlusion", clock() - t_o)
    mcfg, pcfg, filtered = ctx.parts(cfg)
    result = frame.copy()
    alpha: AlphaMode | None = None
    if result.shape[2] == 4 and ctx.blender.default_alpha == "mask":
        # The matte replaces the whole alpha channel (0 away from the faces); faces composite
        # their mattes over it so several faces form their union.
        result[..., 3] = 0
        alpha = "over"
    patches: list[SwappedFace] = []
    pasted: list[_Placed | None] = []
    for i, rec in enumerate(chosen):
        t_a = clock()
        sources = []
        for name in cfg.mask:
            if name == LEARNED:
                sources.append(learned[i] if learned is not None
                               else np.ones((s_out, s_out), np.float32))
            elif name == FULL:
                sources.append(np.ones((s_out, s_out), np.float32))
            elif name == OCCLUSION and i in predicted:
                mk, affine = predicted[i]
                sources.append(mask_in_crop(mk, affine, m_out[i], s_out))
            else:
                sources.append(stored_mask_in_crop(rec, name, m_out[i], s_out))
        raw = maskops.combine(sources, cfg.combine) if len(sources) > 1 else sources[0]
        mask = maskops.apply(raw, mcfg)
        t_b = clock()
        face = ctx.color.apply(pred[i], plates[i], raw, raw)
        t_c = clock()
        if filtered:
            vel = np.zeros(2)
            if pcfg.motion_blur > 0.0:
                vel = m_out[i][:, :2] @ face_velocity(rec, ctx)
            face = post.apply(face, pcfg, velocity_px=(float(vel[0]), float(vel[1])))
        mp = paste_matrix(m_out[i], s_out, cfg)
        t_d = clock()
        placed = _paste_box(result, face, mask, mp, cfg, ctx.blender, frame_is_linear, alpha)
        t_e = clock()
        ctx.add_time("mask", t_b - t_a)
        ctx.add_time("color", t_c - t_b)
        ctx.add_time("post", t_d - t_c)
        ctx.add_time("paste", t_e - t_d)
        patches.append(SwappedFace(rec, face, mask, mp))
        pasted.append(placed)
    # The invisible watermark on every swapped face, on the frame's final pixels (after every
    # paste), in the canonical frame of landmarks re-found on the result: where the verifier
    # will look. The patch keeps the same mark in crop space.
    t_f = clock()
    unmarked: list[tuple[int, str]] = []
    for p, placed in zip(patches, pasted):
        if placed is None:
            unmarked.append((p.record.face_index, UNMARKED_NOT_PASTED))
            continue
        box, matte, seen, by_hand = placed
        # The frame itself is what the verifier reads; only a composite left to the user is
        # measured on the composite it will become.
        # A matte that leaves part of the patterns' area uncovered, or a small face, may leave
        # the mark too weak to detect: it is scored where the verifier will look, and a face
        # the full pattern set does not fit gets the upper-face set when that one is found
        # (a full matte on a face of ordinary size needs no check).
        mark, found = mark_fitted(result, box, matte, p.record.landmarks, predictor.model_id,
                                  frame_is_linear=frame_is_linear, seed_box=p.record.bbox,
                                  seen=seen if by_hand else None, by_hand=by_hand)
        if not isinstance(mark, FrameMark):
            unmarked.append((p.record.face_index, mark.reason))
            continue
        p.set_mark(mark)
        if not found:
            unmarked.append((p.record.face_index, weak_reason(mark)))
    ctx.add_time("watermark", clock() - t_f)
    return SwapResult(result, len(patches), [p.mask for p in patches], patches, unmarked)


#: Why a selected face got no mark when nothing of it was pasted (its box outside the frame,
#: or a matte of 0 everywhere).
UNMARKED_NOT_PASTED = "nothing of the face was pasted"


def weak_reason(mark: FrameMark) -> str:
    """Why a face whose mark the verifier would not find counts as unmarked."""
    if mark.cover < FULL_COVER:
        return (f"mark too weak to detect (the matte covers {100.0 * mark.cover:.0f}% of the "
                "mark's area)")
    return f"mark too weak to detect (face too small: the mark spans {mark.span:.0f} px)"


#: What ``_paste_box`` tells the watermark: (box, matte, the box as seen when the matte is left
#: to the user (else None), whether it is).
_Placed = tuple[tuple[int, int, int, int], np.ndarray, np.ndarray | None, bool]


def _paste_box(result: np.ndarray, face: np.ndarray, mask: np.ndarray, matrix: np.ndarray,
               cfg: ConvertConfig, blender: Blender, frame_is_linear: bool,
               alpha: AlphaMode | None) -> _Placed | None:
    """Paste one face into ``result`` in place, converting only the face's box to float.

    Returns:
        ((x0, y0, x1, y1) half-open frame box; its matte, float32 in [0, 1], the warped mask
        exactly as the paste used it, 0 wherever the frame was left bit-exact; for a blender
        that leaves the matte to the user — ``raw`` writes it as alpha — the box as it will be
        seen, the composite over the plate, float32 in the frame's colour space, else None;
        whether it is left to the user), or None when nothing was pasted.
    """
    # Only the box the matte's non-zero part reaches is read into float, blended and written
    # back (paste_bands finds it), band by band of rows for a per-pixel blender (the band's
    # arrays stay in the cache); pixels outside it, and inside it wherever the warped matte is
    # 0, keep their values bit for bit (uint8: k·(1/255)·255 rounds to k).
    colour = srgb_to_linear(face) if frame_is_linear else face
    bands = paste_bands(result.shape, colour, mask, matrix, interpolation=cfg.interpolation,
                        rows=BAND_ROWS if blender.per_pixel else None)
    if bands is None:
        return None
    rb = bands.box
    mode = blender.default_alpha if alpha is None else alpha
    by_hand = blender.default_alpha == "mask"
    seen = np.empty((rb.height, rb.width, 3), np.float32) if by_hand else None
    for region in bands.regions:
        view = result[region.box.slices]
        if result.dtype == np.uint8:
            sub = np.multiply(view, np.float32(1.0 / 255.0), dtype=np.float32)
            plate = sub[..., :3].copy() if by_hand else None
            merged = merge_region(sub, region, blender, mode)
            _to_u8(sub, out=view)
        else:
            plate = view[..., :3].copy() if by_hand else None
            merged = merge_region(view, region, blender, mode)
        if seen is not None and plate is not None:
            # face·m + plate·(1 − m), with the straight face the blender left where m > 0.
            m = region.mask[..., None]
            part = seen[region.box.y0 - rb.y0:region.box.y1 - rb.y0]
            np.copyto(part, merged * m + plate * (np.float32(1.0) - m))
            np.copyto(part, plate, where=m <= 0.0)
    return (rb.x0, rb.y0, rb.x1, rb.y1), bands.mask, seen, by_hand


__all__ = [
    "FULL",
    "LEARNED",
    "OCCLUSION",
    "ConvertConfig",
    "OnnxPredictor",
    "Predictor",
    "SwapContext",
    "SwapResult",
    "SwappedFace",
    "TorchPredictor",
    "face_velocity",
    "make_predictor",
    "mask_in_crop",
    "model_inputs",
    "parse_frame_ranges",
    "paste_matrix",
    "select_faces",
    "stored_mask_in_crop",
    "swap_frame",
]
