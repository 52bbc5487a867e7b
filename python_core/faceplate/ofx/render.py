"""Per-frame render functions the ``faceplate-worker`` calls (and the in-process bridge).

Frames are H×W×4 ``float32`` scene-linear RGBA, **top-down** rows (row 0 is the top of the
image; the C++ shell flips OFX's bottom-up rows), straight (unpremultiplied) alpha. Results have
the same shape and dtype. Detection runs on the display-sRGB ``uint8`` version of the frame
(:func:`faceplate.core.colorspace.linear_to_display_u8`); output pixels are never re-encoded.

Faceplate Swap calls :func:`faceplate.convert.swap.swap_frame` on the float frame (the face is
converted to scene-linear before the paste; pixels outside the faces' mattes come back bit for
bit, values above 1 and below 0 included). Faces come from the alignments store at the frame
whose own number is the host's frame ``round(time)`` (``frame_number``: a sequence file's number,
a video's 1-based frame, as Natron numbers them; a store of one still serves every frame) when
the node names one and that frame was analysed, else from per-frame detection. Nothing depends
on render order: every render reads what it needs at its own time.

Analysis (``action="analyze"`` per frame, then ``"analyze_end"``; ``"clear"``) is what the shell's
Analyze Sequence / Clear buttons run: each analysed frame's faces are written to the store under
its frame number (an existing frame of that number keeps its index and name, so a store written
by ``faceplate extract`` is updated in place), and the end pass smooths the tracks in place.
Clear moves the store aside (a backup beside it) and only ever touches a Faceplate store.

Loaded models belong to a :class:`RenderSession`: the predictors (several at once under a memory
budget, :data:`MODEL_MEMORY_ENV`, least recently used dropped first, so two Swap nodes with two
models do not reload a model on every frame), the per-setting swap contexts and the extractors.
The worker's entry points (:func:`render`, :func:`render_into`) use one session for the process;
a session may be used from several threads at once (the in-process placement: a host may
render two instances concurrently): its caches are guarded by a lock, each render swaps with
its own copy of the context (its own neighbouring faces and timings), and the extractors and
predictors serialise or share their models safely themselves.
"""

from __future__ import annotations

import math
import os
import sys
import threading
from collections import OrderedDict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from faceplate.convert import maskops
from faceplate.convert.maskops import MaskOpsConfig
from faceplate.convert.swap import (
    OCCLUSION,
    ConvertConfig,
    Predictor,
    SwapContext,
    make_predictor,
    swap_frame,
)
from faceplate.core.colorspace import linear_to_display_u8
from faceplate.core.errors import ConfigError, FaceplateError, InputError
from faceplate.core.records import decode_mask, encode_mask
from faceplate.core.types import FaceRecord, Frame, FrameInfo, StoredMask
from faceplate.extract.mask import mask_to_frame
from faceplate.extract.pipeline import ExtractConfig, Extractor
from faceplate.io.store import AlignmentsStore, host_frame_name, retire_store
from faceplate.ofx.effects import (
    MASK,
    MASK_ID,
    SWAP,
    SWAP_ID,
    SWAP_STATUS,
    MaskConfig,
    SwapNodeConfig,
)
from faceplate.provenance.watermark import prepare as prepare_watermark

#: What ``render_into`` can be asked to do (the shell's render and its analysis buttons).
ACTIONS = ("render", "analyze", "analyze_end", "clear")

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


def _detect(frame: np.ndarray, detector: str, aligner: str, masks: tuple[str, ...],
            info: FrameInfo | None = None, *, session: RenderSession | None = None
            ) -> list[FaceRecord]:
    """Detect, align and mask the faces of a linear RGBA frame (on its display-sRGB bytes);
    the records belong to ``info`` (default: host frame 0); ``session``'s extractor (default:
    the entry points' session)."""
    h, w = frame.shape[:2]
    rgb, _ = linear_to_display_u8(frame)
    if info is None:
        info = _host_frame(0, w, h, 0)
    session = session if session is not None else _SESSION
    return session.extractor(detector, aligner, masks).process(Frame(info, rgb)).records


def _host_frame(number: int, width: int, height: int, index: int) -> FrameInfo:
    return FrameInfo(index=index, name=host_frame_name(number), timestamp=None, width=width,
                     height=height, frame_number=number)


def _face_matte(frame: np.ndarray, cfg: MaskConfig, ops: MaskOpsConfig, session: RenderSession
                ) -> tuple[np.ndarray, int]:
    """H×W float32 [0, 1] union (max) of every face's processed mask, and the face count.

    Raises:
        ConfigError: the occlusion mask without a Mask model. ModelError: a model that does
            not load.
    """
    h, w = frame.shape[:2]
    spec = cfg.mask
    if cfg.mask == OCCLUSION:
        if not cfg.mask_model.strip():
            raise ConfigError("the occlusion mask needs the Mask model parameter: a folder "
                              "written by `faceplate mask train`")
        spec = f"{OCCLUSION}:{cfg.mask_model.strip()}"
    records = _detect(frame, cfg.detector, cfg.aligner, (spec,), session=session)
    matte = np.zeros((h, w), np.float32)
    for rec in records:
        sm = rec.masks[cfg.mask]
        crop = decode_mask(sm).astype(np.float32) / np.float32(255.0)
        done = maskops.apply(crop, ops)
        done_u8 = (np.clip(done, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
        processed = StoredMask(sm.name, encode_mask(done_u8), sm.size, sm.affine, sm.centering)
        np.maximum(matte, mask_to_frame(processed, (h, w)), out=matte)
    return matte, len(records)


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
    return _render_mask(frame_rgba_linear, params, _SESSION).image


def _render_mask(frame: np.ndarray, values: dict[str, Any], session: RenderSession
                 ) -> RenderResult:
    frame = _check_frame(frame)
    cfgs = MASK.configs(values)
    cfg: MaskConfig = cfgs[MaskConfig]
    try:
        matte, n = _face_matte(frame, cfg, cfgs[MaskOpsConfig], session)
    except FaceplateError as err:
        if cfg.mask != OCCLUSION:
            raise
        # a missing or broken mask model: an empty matte and the reason, like a Swap without
        # its model
        matte, n = np.zeros(frame.shape[:2], np.float32), 0
        return RenderResult(_mask_output(frame, matte, cfg), f"mask model: {err}", 0)
    return RenderResult(_mask_output(frame, matte, cfg), "" if n else "no face found", n)


def _mask_output(frame: np.ndarray, matte: np.ndarray, cfg: MaskConfig) -> np.ndarray:
    if cfg.output == "matte":
        return np.repeat(matte[..., None], 4, axis=2)
    out = frame.copy()
    out[..., 3] = matte
    return out


#: Environment variable: the memory (MiB) loaded models may take together in the worker
#: (default :data:`DEFAULT_MODEL_MEMORY_MB`). The model a render needs is always kept.
MODEL_MEMORY_ENV = "FACEPLATE_OFX_MODEL_MEMORY_MB"
DEFAULT_MODEL_MEMORY_MB = 4096


@dataclass
class _Loaded:
    predictor: Predictor
    nbytes: int


#: Swap contexts kept per session (one per distinct setting, least recently used out).
_MAX_CONTEXTS = 8


def _model_dir(path: str) -> Path:
    p = Path(os.path.expanduser(path.strip()))
    return p.parent if p.is_file() else p


def _model_bytes(d: Path, kind: str, precision: str = "fp32") -> int:
    """What a loaded model costs, estimated from its weight files (×2 for bf16 copies)."""
    from faceplate.io.model_files import INT8, ONNX

    pattern = INT8 if precision == "int8" else ONNX if kind == "onnx" else "*.safetensors"
    files = list(d.glob(pattern))
    return sum(f.stat().st_size for f in files if f.is_file()) or 256 << 20


def _model_budget() -> int:
    raw = os.environ.get(MODEL_MEMORY_ENV, "").strip()
    try:
        mb = float(raw) if raw else DEFAULT_MODEL_MEMORY_MB
    except ValueError:
        raise ConfigError(f"{MODEL_MEMORY_ENV}={raw!r} is not a number of MiB") from None
    return int(max(mb, 0.0) * (1 << 20))


class RenderSession:
    """The models and per-setting state the renders of one pipeline use.

    Owns the loaded predictors (an LRU under :data:`MODEL_MEMORY_ENV`, reloaded when a model's
    manifest changes), one :class:`SwapContext` per distinct :class:`ConvertConfig` and one
    :class:`Extractor` per (detector, aligner, masks). Safe to use from several threads: the
    caches are guarded by one lock (a model is loaded once however many renders ask for it at
    the same time), every render gets its own copy of the context (:meth:`context`), and the
    extractors' models serialise their own graphs.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._predictors: OrderedDict[tuple[Any, ...], _Loaded] = OrderedDict()
        self._contexts: OrderedDict[ConvertConfig, SwapContext] = OrderedDict()
        self._extractors: dict[tuple[str, str, tuple[str, ...]], Extractor] = {}

    def predictor(self, path: str, cfg: ConvertConfig) -> Predictor:
        """The loaded model for the Model parameter (reloaded when its manifest changes).

        Models stay loaded, least recently used first out, while they fit the budget
        (:data:`MODEL_MEMORY_ENV`); the one asked for is always kept.
        """
        d = _model_dir(path)
        manifest = d / "manifest.json"
        stamp = manifest.stat().st_mtime_ns if manifest.is_file() else None
        key = (str(d.resolve()) if d.exists() else str(d), stamp, cfg.predictor, cfg.precision)
        with self._lock:
            loaded = self._predictors.get(key)
            if loaded is not None:
                self._predictors.move_to_end(key)
                return loaded.predictor
            for old in [k for k in self._predictors if k[0] == key[0]]:  # a stale version
                del self._predictors[old]
            pred = make_predictor(cfg.predictor, d, precision=cfg.precision)
            prepare_watermark()  # with the model: the first render does not pay for it
            nbytes = _model_bytes(d, cfg.predictor, cfg.precision) * (
                2 if cfg.precision == "bf16" else 1)
            self._predictors[key] = _Loaded(pred, nbytes)
            budget = _model_budget()
            while (len(self._predictors) > 1
                   and sum(m.nbytes for m in self._predictors.values()) > budget):
                gone, _ = self._predictors.popitem(last=False)
                print(f"faceplate: unloaded model {gone[0]} (memory budget {budget >> 20} MiB)",
                      file=sys.stderr, flush=True)
            print(f"faceplate: loaded model {key[0]} ({nbytes >> 20} MiB; "
                  f"{len(self._predictors)} loaded)", file=sys.stderr, flush=True)
            return pred

    def loaded_models(self) -> list[str]:
        """The model folders loaded in this session, least recently used first."""
        with self._lock:
            return [k[0] for k in self._predictors]

    def context(self, cfg: ConvertConfig, prev: list[FaceRecord] | None = None,
                nxt: list[FaceRecord] | None = None) -> SwapContext:
        """A swap context for one render: the cached colour transfer, blender, reference
        embeddings and identity encoder of ``cfg`` (all safe to share), with this render's
        own neighbouring faces and timings."""
        with self._lock:
            ctx = self._contexts.get(cfg)
            if ctx is None:
                ctx = SwapContext.create(cfg)
                self._contexts[cfg] = ctx
                while len(self._contexts) > _MAX_CONTEXTS:
                    self._contexts.popitem(last=False)
            else:
                self._contexts.move_to_end(cfg)
        return replace(ctx, prev_faces=prev, next_faces=nxt, times={})

    def extractor(self, detector: str, aligner: str, masks: tuple[str, ...]) -> Extractor:
        """The extractor for these settings (built once per session)."""
        key = (detector, aligner, masks)
        with self._lock:
            ex = self._extractors.get(key)
            if ex is None:
                ex = Extractor(ExtractConfig(detector=detector, aligner=aligner, masks=masks,
                                             thumbnails=False, write_faces=False))
                self._extractors[key] = ex
            return ex


#: The session of the worker's (or the in-process bridge's) entry points.
_SESSION = RenderSession()


def loaded_models() -> list[str]:
    """The model folders the entry points' session holds, least recently used first."""
    return _SESSION.loaded_models()


def _frame_number(time: float) -> int:
    """The host frame a render or analysis is for (``round(time)``)."""
    if not math.isfinite(time):
        raise InputError(f"frame time {time!r} is not a finite number")
    return int(round(float(time)))


def _stored_masks(cfg: ConvertConfig) -> tuple[str, ...]:
    return cfg.extractor_masks()


def _store_path(text: str) -> Path:
    return Path(os.path.expanduser(text.strip()))


def _store_faces(path: str, n: int) -> tuple[list[FaceRecord] | None, list[FaceRecord] | None,
                                              list[FaceRecord] | None]:
    """(faces at frame number n, at n − 1, at n + 1) from the store; None where a frame is
    missing. A store of one still (kind ``image``) gives its faces at every frame."""
    p = _store_path(path)
    if not p.is_file():
        raise InputError("the alignments store does not exist (run Analyze Sequence)", p)
    with AlignmentsStore.open(p, readonly=True, upgrade=True) as st:
        if st.get_meta("kind") == "image" and st.frame_count() == 1:
            return st.faces(st.frames()[0].index), None, None
        return st.faces_at(n), st.faces_at(n - 1), st.faces_at(n + 1)


def _draw_landmarks(frame: np.ndarray, faces: list[FaceRecord]) -> np.ndarray:
    """The frame with each face's landmarks as small green discs (radius ~1/100 of the face)."""
    out = frame.copy()
    rgb = np.ascontiguousarray(out[..., :3])
    for rec in faces:
        pts = np.asarray(rec.landmarks, np.float64)
        r = max(1, int(round(0.01 * float(np.ptp(pts[:, 0])) + 1)))
        for x, y in pts:
            cv2.circle(rgb, (int(x), int(y)), r, (0.0, 1.0, 0.0), -1, cv2.LINE_AA)
    out[..., :3] = rgb
    return out


def _render_swap(frame: np.ndarray, values: dict[str, Any], time: float,
                 session: RenderSession) -> RenderResult:
    frame = _check_frame(frame)
    cfgs = SWAP.configs(values)
    node: SwapNodeConfig = cfgs[SwapNodeConfig]
    cfg: ConvertConfig = cfgs[ConvertConfig]
    if node.output != "landmarks" and not node.model.strip():
        return RenderResult(frame.copy(), SWAP_STATUS, 0)
    notes: list[str] = []
    faces: list[FaceRecord] | None = None
    prev: list[FaceRecord] | None = None  # neighbours for motion blur: from the store only
    nxt: list[FaceRecord] | None = None
    if node.alignments.strip():
        try:
            faces, prev, nxt = _store_faces(node.alignments, _frame_number(time))
        except FaceplateError as err:
            notes.append(f"{err}; detecting on this frame")
        else:
            if faces is None:
                notes.append(f"frame {time:g} is not in the alignments store (run Analyze "
                             "Sequence); detecting on this frame")
    if faces is None:
        prev = nxt = None
        faces = _detect(frame, node.detector, node.aligner, _stored_masks(cfg), session=session)
    if node.output == "landmarks":
        return RenderResult(_draw_landmarks(frame, faces), "; ".join(notes), len(faces))
    try:
        pred = session.predictor(node.model, cfg)
    except FaceplateError as err:
        return RenderResult(frame.copy(), f"model: {err}", 0)
    run_cfg = cfg.replace(blend="raw") if node.output == "face_matte" else cfg
    ctx = session.context(run_cfg, prev, nxt)
    res = swap_frame(frame, faces, pred, run_cfg, frame_is_linear=True, context=ctx)
    if not res.faces_swapped:
        notes.append("no face found" if not faces else "no face selected")
    if res.unmarked:
        notes.append(f"left without the watermark: {res.unmarked_text()}")
    image = res.frame
    if node.output == "mask_only":
        image = np.repeat(res.matte()[..., None], 4, axis=2)
    return RenderResult(image, "; ".join(notes), res.faces_swapped)


def _analyze(frame: np.ndarray, values: dict[str, Any], time: float,
             session: RenderSession) -> RenderResult:
    """Detect the faces of one frame and store them under frame number ``round(time)``.

    A frame of that number already in the store (e.g. written by ``faceplate extract``) keeps
    its index and name; a new one gets the next free index and the name ``host_<number>``.
    """
    frame = _check_frame(frame)
    cfgs = SWAP.configs(values)
    node: SwapNodeConfig = cfgs[SwapNodeConfig]
    cfg: ConvertConfig = cfgs[ConvertConfig]
    if not node.alignments.strip():
        raise ConfigError("Analyze Sequence needs the Alignments parameter: a .fpstore file "
                          "to keep the face tracks in")
    n = _frame_number(time)
    h, w = frame.shape[:2]
    with AlignmentsStore.open(_store_path(node.alignments), create=True) as st:
        if st.get_meta("width") is None:
            st.set_meta("width", w)
            st.set_meta("height", h)
            st.set_meta("kind", "ofx")
        info = st.frame_at(n)
        if info is None:
            info = _host_frame(n, w, h, st.next_index())
        elif (info.width, info.height) != (w, h):
            raise InputError(f"frame {n} is {info.width}×{info.height} in the store but "
                             f"{w}×{h} here: not the clip the store was made for", st.path)
        faces = _detect(frame, node.detector, node.aligner,
                        _stored_masks(cfg) or ("extended",), info, session=session)
        st.put_frame(info, faces)
    return RenderResult(frame, "" if faces else "no face found", len(faces))


def _analyze_end(values: dict[str, Any]) -> int:
    """Smooth every track of the node's store in place; returns the number of tracks."""
    from faceplate.extract.smoothing import smooth_store

    node: SwapNodeConfig = SWAP.configs(values)[SwapNodeConfig]
    path = _store_path(node.alignments)
    if not node.alignments.strip() or not path.is_file():
        raise InputError("no alignments store to smooth (run Analyze Sequence first)", path)
    with AlignmentsStore.open(path) as st:
        report = smooth_store(st)
    return int(getattr(report, "tracks", 0))


def _clear(values: dict[str, Any]) -> str:
    """Move the node's alignments store aside (renders go back to per-frame detection) and
    say where it went. Only a Faceplate store is touched."""
    node: SwapNodeConfig = SWAP.configs(values)[SwapNodeConfig]
    if not node.alignments.strip():
        return "Clear: no Alignments store is set"
    path = _store_path(node.alignments)
    if not path.exists():
        return f"Clear: {path} does not exist; nothing to clear"
    kept = retire_store(path)
    return (f"Clear: the face tracks were moved aside to {kept} (rename it back to restore "
            "them); renders detect faces on every frame")


def render(effect_id: str, frame: np.ndarray, params: dict[str, Any], *,
           time: float = 0.0, session: RenderSession | None = None) -> RenderResult:
    """Render one frame for the effect ``effect_id`` (``org.faceplate.Mask`` or
    ``org.faceplate.Swap``) at host frame ``time``.

    Faceplate Swap without a model returns the source unchanged with the status
    :data:`faceplate.ofx.effects.SWAP_STATUS`; a model that cannot be loaded does the same with
    the loader's error as the status. ``session``: whose models to use (default: the entry
    points' own, one per process).

    Raises:
        ConfigError: Unknown effect, unknown parameter or a value out of range.
        InputError: The frame is not H×W×4 float32.
    """
    ses = session if session is not None else _SESSION
    if effect_id == MASK_ID:
        return _render_mask(frame, params, ses)
    if effect_id == SWAP_ID:
        return _render_swap(frame, params, time, ses)
    from faceplate.ofx.effects import effect

    effect(effect_id)  # raises ConfigError naming the known effects
    raise AssertionError("unreachable")


def render_into(effect_id: str, frame: np.ndarray, params: dict[str, Any],
                out: np.ndarray, time: float = 0.0, action: str = "render") -> tuple[str, int]:
    """:func:`render` (or an analysis step) writing into a preallocated H×W×4 float32 ``out``
    (the worker's reply buffer). Returns (status, face count).

    ``action``: ``"render"``; ``"analyze"`` (Faceplate Swap: store this frame's faces at
    ``time``, ``out`` gets the source); ``"analyze_end"`` (smooth the stored tracks; the count
    returned is the number of tracks); ``"clear"`` (move the store aside; the status says
    where).
    """
    if action not in ACTIONS:
        raise ConfigError(f"action: {action!r} is not one of {', '.join(ACTIONS)}")
    if action != "render" and effect_id != SWAP_ID:
        raise ConfigError(f"{effect_id} has no analysis")
    if action == "analyze_end":
        return "", _analyze_end(params)
    if action == "clear":
        return _clear(params), 0
    res = _analyze(frame, params, time, _SESSION) if action == "analyze" else \
        render(effect_id, frame, params, time=time)
    if out.shape != res.image.shape or out.dtype != np.float32:
        raise InputError(f"out: expected {res.image.shape} float32, got {out.dtype} {out.shape}")
    np.copyto(out, res.image)
    return res.status, res.faces
