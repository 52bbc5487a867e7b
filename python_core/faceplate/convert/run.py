"""Convert a clip: read frames, swap each with :func:`faceplate.convert.swap.swap_frame`, write.

``run_convert(model_dir, input, output)`` opens the input (video file, image folder or numbered
sequence), takes the faces from its alignments store (the one given, else the default store next
to the input, else on-the-fly detection with the extraction pipeline), swaps every frame and
writes the result with the writer OUTPUT calls for:

* a video file name (``.mp4 .m4v .mov .mkv``) → the ``video`` writer (H.264/H.265, the input's
  rate and timestamps, its audio copied);
* anything else → a folder for the ``images`` writer (PNG 8/16, JPEG, EXR half/float, ...);
* ``patch_dir`` / ``mask_dir`` add the ``patch`` writer (raw face + matte + matrix per face) and
  the ``masks`` writer (the frame-sized matte).

Float inputs (EXR, float TIFF) are swapped in scene-linear float and written with
``input_space="linear"``; 8-bit inputs stay 8-bit (only the face boxes go through float).
Provenance is not optional: every swapped face carries the invisible watermark
(:mod:`faceplate.provenance.watermark`, embedded by ``swap_frame``), every file written carries
the metadata statement that a face was synthetically replaced (with the model id), and once the
run completes every file whose format allows it (MP4/MOV, PNG, JPEG, TIFF) gets a signed C2PA
manifest (:func:`faceplate.provenance.c2pa_sign.sign_outputs`).

Frames without a selected face pass through unchanged and are counted. A run that fails midway
leaves what it wrote valid: image files are written atomically, and the video writer finalises
the frames written so far when the run stops on an error.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from faceplate.convert.swap import (
    ConvertConfig,
    Predictor,
    SwapContext,
    SwapResult,
    make_predictor,
    swap_frame,
)
from faceplate.convert.writers import WRITERS, FrameWriter
from faceplate.convert.writers.images import ImagesConfig
from faceplate.convert.writers.masks import MasksConfig
from faceplate.convert.writers.patch import PatchConfig
from faceplate.convert.writers.video import VIDEO_CONTAINERS, VideoConfig
from faceplate.core.cpu import blas_threads, keep_freed_memory, opencv_threads, usable_cores
from faceplate.core.errors import ConfigError, InputError
from faceplate.core.profile import active_profile, configured
from faceplate.core.types import FaceRecord, Frame
from faceplate.io import colormanage
from faceplate.io.colormanage import ColorConfig
from faceplate.io.media import FrameSource, is_video, open_source
from faceplate.io.store import AlignmentsStore, default_store_path
from faceplate.provenance.c2pa_sign import sign_outputs
from faceplate.provenance.watermark import prepare as prepare_watermark

#: Frames handed to the writer thread and not yet written (bounds memory).
MAX_PENDING_WRITES = 3


@dataclass
class ConvertStats:
    """What a convert run did (the CLI prints it as the summary).

    Attributes:
        frames: Frames written.
        swapped: Frames in which at least one face was swapped.
        faces: Faces swapped.
        unchanged: Frames written unchanged (no selected face, or outside ``frame_ranges``
            with ``keep_unchanged``).
        skipped: Frames outside ``frame_ranges`` left out of the output.
        seconds: Wall time of the run.
        stage_ms: Milliseconds per stage over the run (decode, detect, the swap's stages, write);
            the swap's stages are summed over the frames swapped at once.
        store: The alignments store used (None: on-the-fly detection).
        outputs: Every output path (the video or folders).
        warnings: Things the user should know.
        jobs: Frames swapped at the same time.
        unmarked: Each swapped face left without the watermark, as ``{"frame": the frame's
            own number, "index": its position in the input, "face": the record's face index,
            "reason": why}`` (see
            :attr:`faceplate.convert.swap.SwapResult.unmarked`), in frame order.
    """

    frames: int = 0
    swapped: int = 0
    faces: int = 0
    unchanged: int = 0
    skipped: int = 0
    seconds: float = 0.0
    stage_ms: dict[str, float] = field(default_factory=dict)
    store: Path | None = None
    outputs: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    jobs: int = 1
    unmarked: list[dict[str, Any]] = field(default_factory=list)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def unmarked_summary(self) -> str:
        """One line: how many faces in how many frames were left unmarked, by reason ("" when
        every swapped face carries the mark)."""
        return unmarked_summary(self.unmarked)

    def to_json(self) -> dict[str, Any]:
        """The run as a JSON-serialisable mapping (``faceplate convert --json``)."""
        return {"frames": self.frames, "swapped": self.swapped, "faces": self.faces,
                "unchanged": self.unchanged, "skipped": self.skipped,
                "seconds": round(self.seconds, 3), "jobs": self.jobs,
                "store": None if self.store is None else str(self.store),
                "outputs": [str(p) for p in self.outputs], "warnings": list(self.warnings),
                "faces_unmarked": len(self.unmarked),
                "frames_with_unmarked_faces": len({u["frame"] for u in self.unmarked}),
                "unmarked": list(self.unmarked),
                "stage_ms": {k: round(v, 3) for k, v in self.stage_ms.items()}}


def unmarked_summary(unmarked: list[dict[str, Any]]) -> str:
    """``"N face(s) in M frame(s) left without the watermark: reason (n), ..."``, or "" for
    none; ``unmarked`` as :attr:`ConvertStats.unmarked`."""
    if not unmarked:
        return ""
    by: dict[str, int] = {}
    for u in unmarked:
        by[u["reason"]] = by.get(u["reason"], 0) + 1
    frames = len({u["frame"] for u in unmarked})
    why = ", ".join(f"{r} ({n})" for r, n in sorted(by.items()))
    return (f"{len(unmarked)} swapped face(s) in {frames} frame(s) left without the "
            f"watermark: {why}")


def is_video_output(output: str | os.PathLike[str]) -> bool:
    """Whether OUTPUT names a video file (a video extension) rather than a folder."""
    p = Path(output)
    return p.suffix.lower() in VIDEO_CONTAINERS or is_video(p)


def open_store(store_path: str | os.PathLike[str] | None, source: FrameSource
               ) -> AlignmentsStore | None:
    """Open the alignments store for ``source`` read-only and check it matches the input.

    Frames are matched by their own number (:meth:`AlignmentsStore.frame_at`), never by position.

    Args:
        store_path: The store given by the user; None: the default store next to the input, if
            there is one (else None: detect faces on the fly).
        source: The open input.

    Raises:
        InputError: the given store is missing, its frame size or frame count differ from the
            input's, or it holds a frame number the input does not have.
        StoreError: not a Faceplate store.
    """
    input_path, width, height = Path(source.path), source.width, source.height
    total_frames = source.total_frames
    if store_path is None:
        default = default_store_path(input_path)
        if not default.is_file():
            return None
        store_path = default
    store = AlignmentsStore.open(store_path, readonly=True, upgrade=True)
    try:
        w, h = store.get_meta("width"), store.get_meta("height")
        n = store.get_meta("total_frames")
        if (w, h) != (None, None) and (int(w), int(h)) != (width, height):
            raise InputError(f"the store is for {w}×{h} frames but the input "
                             f"{input_path} has {width}×{height}", store.path)
        if n is not None and total_frames and int(n) != int(total_frames):
            raise InputError(f"the store is for {n} frames but the input {input_path} has "
                             f"{total_frames}", store.path)
        unknown = [n for n in store.frame_numbers() if source.index_of(n) is None]
        if unknown:
            raise InputError(f"the store holds frame number {unknown[0]} but the input "
                             f"{input_path} has no such frame ({len(unknown)} frame(s) in all)",
                             store.path)
    except BaseException:
        store.close()
        raise
    return store


def swap_jobs(cfg: ConvertConfig) -> tuple[int, int]:
    """How many frames to swap at once, and the inference threads each gets (0 = default).

    ``cfg.jobs`` 0 means 2 on a machine with 2 or more cores (usable by this process), else 1;
    ``cfg.threads`` 0 with several jobs shares the cores out (at least 1 thread each).
    """
    cores = usable_cores()
    jobs = cfg.jobs if cfg.jobs > 0 else (2 if cores >= 2 else 1)
    threads = cfg.threads if cfg.threads > 0 or jobs == 1 else max(1, cores // jobs)
    return jobs, threads


def _scaled_size(width: int, height: int, percent: float, even: bool) -> tuple[int, int]:
    if percent == 100.0:
        return width, height
    w = max(1, round(width * percent / 100.0))
    h = max(1, round(height * percent / 100.0))
    if even:
        w, h = max(2, w - w % 2), max(2, h - h % 2)
    return w, h


def _resize(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if (img.shape[1], img.shape[0]) == size:
        return img
    shrink = size[0] < img.shape[1]
    out = cv2.resize(img, size, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)
    return out if out.ndim == img.ndim else out[..., None]


def _pixels(frame: Frame) -> tuple[np.ndarray, bool]:
    """The frame to swap: the scene-linear float original when there is one, else the uint8."""
    if frame.linear is None:
        return frame.rgb, False
    lin = frame.linear
    if lin.ndim == 2:
        lin = lin[..., None]
    if lin.shape[2] not in (3, 4):
        lin = np.repeat(lin[..., :1], 3, axis=2)
    return np.ascontiguousarray(lin, dtype=np.float32), True


def output_space(colors: ColorConfig, source: FrameSource) -> str | None:
    """The colour space the main output is written in, or None when frames are written as
    Faceplate always wrote them (an input read in its kind's native space, no output space
    asked for)."""
    if colors.output_colorspace.strip():
        return colormanage.resolve(colors.output_colorspace)
    return source.colorspace if source.converts else None


def to_output_space(frame: np.ndarray, space: str) -> np.ndarray:
    """A swapped frame (float working linear, or ``uint8`` display sRGB) in ``space``, float32
    (alpha kept)."""
    if frame.dtype == np.uint8:
        return colormanage.convert(frame.astype(np.float32) / np.float32(255.0),
                                   colormanage.DISPLAY_SRGB, space)
    return colormanage.from_working(frame, space)


def run_convert(model_dir: str | os.PathLike[str], input_path: str | os.PathLike[str],
                output: str | os.PathLike[str], store: str | os.PathLike[str] | None = None,
                cfg: ConvertConfig | None = None, *, video_cfg: VideoConfig | None = None,
                images_cfg: ImagesConfig | None = None,
                patch_dir: str | os.PathLike[str] | None = None,
                patch_cfg: PatchConfig | None = None,
                mask_dir: str | os.PathLike[str] | None = None,
                masks_cfg: MasksConfig | None = None, color_cfg: Any = None,
                blend_cfg: Any = None, predictor: Predictor | None = None,
                on_start: Callable[[int], None] | None = None,
                on_frame: Callable[[int, SwapResult | None], None] | None = None,
                colors: ColorConfig | None = None) -> ConvertStats:
    """Swap every frame of ``input_path`` with the model in ``model_dir`` and write ``output``.

    Args:
        model_dir: A model directory written by ``faceplate train``.
        input_path: Video file, image folder or numbered sequence (as ``faceplate extract``).
        output: A video file name (``.mp4``/``.mov``/``.mkv``/``.m4v``) or a folder for an
            image sequence.
        store: The alignments store; default: next to the input if present, else faces are
            detected on the fly.
        cfg: The swap settings (defaults when None).
        video_cfg: Options of the video writer (its ``input_space`` is set for the input).
        images_cfg: Options of the image-sequence writer (format png8/png16/jpeg/exr-...).
        patch_dir: Also write face patches here (``patch`` writer, ``patch_cfg``).
        mask_dir: Also write the frame-sized mattes here (``masks`` writer, ``masks_cfg``).
        color_cfg: Config of ``cfg.color`` (defaults when None).
        blend_cfg: Config of ``cfg.blend`` (defaults when None).
        predictor: A loaded predictor to reuse (else one is made from ``cfg.predictor``).
        on_start: Called once with the number of frames to read.
        on_frame: Called after each frame is written, with its index and the swap result
            (None when the frame was not swapped because of ``frame_ranges``).
        colors: The input's and the outputs' colour spaces (:mod:`faceplate.io.colormanage`):
            an input in another space than its kind's native one is converted to the working
            linear space for the swap; the main output is written in ``output_colorspace``,
            by default the input's own space (as it was read, when that needed no conversion).

    Returns:
        The run's statistics.

    Raises:
        ModelError: missing or incompatible model. InputError: missing input, a store that
        does not match it. OutputError: an output that cannot be written. ConfigError: an
        unsupported codec, container or option.
    """
    jobs, _ = swap_jobs(cfg or ConvertConfig())
    with _RUN_THREADS.scope(jobs):
        return _run_convert(model_dir, input_path, output, store, cfg, video_cfg=video_cfg,
                            images_cfg=images_cfg, patch_dir=patch_dir, patch_cfg=patch_cfg,
                            mask_dir=mask_dir, masks_cfg=masks_cfg, color_cfg=color_cfg,
                            blend_cfg=blend_cfg, predictor=predictor, on_start=on_start,
                            on_frame=on_frame, colors=colors or ColorConfig())


class _RunThreads:
    """The process-wide thread settings of convert runs, set by the first run that starts and
    put back by the last one that ends (runs may overlap in one process: the Studio, a host).

    torch's inference thread count is process-wide: it is put back after the runs, so a
    caller's own work (another run, training in the same process) keeps its threads. NumPy's
    BLAS runs one thread (its spinning workers took ~45 ms of CPU a 1080p frame from the swap
    jobs, for products too small to gain from threads); OpenCV's loops get each swap job's share
    of the cores. malloc keeps what a frame frees for the next (process-wide and lasting, as in
    training).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._depth = 0
        self._saved: tuple[int | None, int | None, int] | None = None

    @contextlib.contextmanager
    def scope(self, jobs: int) -> Iterator[None]:
        with self._lock:
            if self._depth == 0:
                keep_freed_memory()
                self._saved = (_torch_threads(), blas_threads(1),
                               opencv_threads(max(1, usable_cores() // max(1, jobs))))
            self._depth += 1
        try:
            yield
        finally:
            with self._lock:
                self._depth -= 1
                if self._depth == 0 and self._saved is not None:
                    torch_threads, blas, cv = self._saved
                    self._saved = None
                    opencv_threads(cv)
                    if blas is not None:
                        blas_threads(blas)
                    if torch_threads is None and "torch" in sys.modules:
                        torch_threads = usable_cores()  # loaded by the runs: one per core
                    if torch_threads is not None:
                        _torch_threads(torch_threads)


_RUN_THREADS = _RunThreads()


def _torch_threads(restore: int | None = None) -> int | None:
    """torch's intra-op thread count (None when torch is not loaded); sets it when given."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    if restore is not None:
        torch.set_num_threads(restore)
    return int(torch.get_num_threads())


def _run_convert(model_dir: str | os.PathLike[str], input_path: str | os.PathLike[str],
                 output: str | os.PathLike[str], store: str | os.PathLike[str] | None,
                 cfg: ConvertConfig | None, *, video_cfg: VideoConfig | None,
                 images_cfg: ImagesConfig | None, patch_dir: str | os.PathLike[str] | None,
                 patch_cfg: PatchConfig | None, mask_dir: str | os.PathLike[str] | None,
                 masks_cfg: MasksConfig | None, color_cfg: Any, blend_cfg: Any,
                 predictor: Predictor | None,
                 on_start: Callable[[int], None] | None,
                 on_frame: Callable[[int, SwapResult | None], None] | None,
                 colors: ColorConfig) -> ConvertStats:
    start = time.perf_counter()
    cfg = cfg or ConvertConfig()
    input_path = Path(input_path)
    output = Path(output)
    jobs, threads = swap_jobs(cfg)
    pred = predictor or make_predictor(cfg.predictor, model_dir, threads=threads,
                                       precision=cfg.precision)
    ctx = SwapContext.create(cfg, color_cfg=color_cfg, blend_cfg=blend_cfg)
    prepare_watermark()  # before the first frame: no frame's timings carry the model load
    # One context per frame in flight (each frame's neighbours and timings are its own); the
    # colour transfer, blender and reference embeddings are stateless and shared, the identity
    # encoder is not shared between threads.
    contexts = [ctx] + [replace(ctx, times={}, _encoder=None) for _ in range(jobs - 1)]
    stats = ConvertStats()
    to_video = is_video_output(output)
    if to_video and images_cfg is not None:
        raise ConfigError(f"image-sequence options were given but {output} is a video file name")
    if not to_video and video_cfg is not None:
        raise ConfigError(f"video options were given but {output} is not a video file name "
                          f"({', '.join(VIDEO_CONTAINERS)})")
    times: dict[str, float] = {}
    provenance = {"model_id": pred.model_id}
    completed = False

    def add(stage: str, seconds: float) -> None:
        times[stage] = times.get(stage, 0.0) + seconds * 1000.0

    with open_source(input_path, colorspace=colors.colorspace) as source:
        out_space = output_space(colors, source)
        st = open_store(store, source)
        stats.store = None if st is None else st.path
        extractor = None
        if st is None:
            from faceplate.extract.pipeline import ExtractConfig, Extractor

            names = cfg.extractor_masks()
            extractor = Extractor(configured(ExtractConfig, masks=names, thumbnails=False,
                                             write_faces=False))
            stats.warnings.append("no alignments store: detecting faces on the fly (run "
                                  "`faceplate extract` first for faster, smoothed tracks)")
        else:
            made_under = st.get_meta("model_profile") or "default"
            if made_under != active_profile().name:
                stats.warnings.append(
                    f"the alignments store was made under the {made_under!r} model profile "
                    f"(its landmarks and masks come from that profile's models); this run is "
                    f"{active_profile().name!r}: extract again under it for outputs made with "
                    f"its models only")
        writers: list[FrameWriter] = []
        write_pool: ThreadPoolExecutor | None = None
        swap_pool: ThreadPoolExecutor | None = None
        try:
            main_w, patch_w, mask_w = _open_writers(
                source, input_path, output, to_video, cfg, video_cfg, images_cfg, patch_dir,
                patch_cfg, mask_dir, masks_cfg, writers, encoded=out_space is not None)
            stats.outputs = [Path(w.path) for w in writers if w.path is not None]
            if on_start:
                on_start(len(source))
            out_size = (main_w.width, main_w.height)
            cache: dict[int, list[FaceRecord]] = {}
            prev_detected: list[FaceRecord] | None = None

            def stored(index: int) -> list[FaceRecord]:
                """The stored faces of input frame ``index``, found by its frame number."""
                assert st is not None
                if not 0 <= index < max(source.total_frames, index + 1):
                    return []
                number = source.number_of(index)
                if number not in cache:
                    cache[number] = st.faces_at(number) or []
                    for k in [k for k in cache if k < number - 2]:
                        del cache[k]
                return cache[number]

            def emit(idx: int, out: np.ndarray, pixels: np.ndarray, info: Any,
                     result: SwapResult | None) -> None:
                """Write one frame to every output, in the writer thread, in frame order."""
                t2 = time.perf_counter()
                if out_space is not None:
                    out = to_output_space(out, out_space)
                facts = provenance
                if result is not None and result.unmarked:
                    facts = {**provenance, "unmarked_faces": result.unmarked_text()}
                main_w.write(idx, _resize(out, out_size), info, {"provenance": facts})
                if patch_w is not None:
                    faces_out = [] if result is None else [
                        (p.face, p.mask, p.matrix) for p in result.patches]
                    patch_w.write(idx, pixels, info, {"faces": faces_out,
                                                      "provenance": facts})
                if mask_w is not None:
                    matte = (result.matte() if result is not None
                             else np.zeros(pixels.shape[:2], np.float32))
                    mask_w.write(idx, _resize(matte, (mask_w.width, mask_w.height)), info,
                                 {"provenance": facts})
                stats.frames += 1
                add("write", time.perf_counter() - t2)
                if on_frame:
                    on_frame(idx, result)

            # Up to ``jobs`` frames are swapped at once in a thread pool (torch, OpenCV and
            # NumPy release the GIL); encoding and file writes overlap them in one writer thread
            # that keeps the frames in order, and a few frames in flight bound the memory.
            write_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="faceplate-write")
            if jobs > 1:
                swap_pool = ThreadPoolExecutor(max_workers=jobs,
                                               thread_name_prefix="faceplate-swap")
            pending: deque[Future[None]] = deque()
            inflight: deque[tuple[int, Future[SwapResult] | None, np.ndarray, np.ndarray,
                                  Any]] = deque()

            def swap_in_slot(slot: int, pixels: np.ndarray, faces: list[FaceRecord],
                             linear: bool, prev: list[FaceRecord] | None,
                             nxt: list[FaceRecord] | None) -> SwapResult:
                c = contexts[slot]
                c.prev_faces, c.next_faces = prev, nxt
                return swap_frame(pixels, faces, pred, cfg, frame_is_linear=linear, context=c)

            def finish_oldest() -> None:
                """Wait for the oldest frame in flight and hand it to the writer thread."""
                idx, fut, out, pixels, info = inflight.popleft()
                result: SwapResult | None = None
                if fut is not None:
                    result = fut.result()  # re-raises a swap error here
                    out = result.frame
                    if result.faces_swapped:
                        stats.swapped += 1
                        stats.faces += result.faces_swapped
                    else:
                        stats.unchanged += 1
                    stats.unmarked += [{"frame": int(info.frame_number), "index": idx,
                                        "face": int(i), "reason": why}
                                       for i, why in result.unmarked]
                pending.append(write_pool.submit(emit, idx, out, pixels, info, result))
                while len(pending) > MAX_PENDING_WRITES:
                    pending.popleft().result()  # re-raises a writer error here

            n_swapped = 0
            t_read = time.perf_counter()
            for frame in source:
                idx = frame.info.index
                pixels, linear = _pixels(frame)
                t0 = time.perf_counter()
                add("decode", t0 - t_read)
                fut: Future[SwapResult] | None = None
                if cfg.in_ranges(idx):
                    prev: list[FaceRecord] | None = None
                    nxt: list[FaceRecord] | None = None
                    if st is not None:
                        faces = stored(idx)
                        if cfg.motion_blur > 0.0:
                            prev, nxt = stored(idx - 1), stored(idx + 1)
                    else:
                        assert extractor is not None
                        faces = extractor.process(frame).records
                        prev, prev_detected = prev_detected, faces
                    t1 = time.perf_counter()
                    add("detect" if st is None else "faces", t1 - t0)
                    slot = n_swapped % jobs
                    n_swapped += 1
                    if swap_pool is not None:
                        fut = swap_pool.submit(swap_in_slot, slot, pixels, faces, linear, prev,
                                               nxt)
                    else:
                        fut = Future()
                        fut.set_result(swap_in_slot(slot, pixels, faces, linear, prev, nxt))
                elif not cfg.keep_unchanged:
                    stats.skipped += 1
                    t_read = time.perf_counter()
                    continue
                else:
                    stats.unchanged += 1
                inflight.append((idx, fut, pixels, pixels, frame.info))
                while len(inflight) >= jobs:
                    finish_oldest()
                t_read = time.perf_counter()
            while inflight:
                finish_oldest()
            while pending:
                pending.popleft().result()
            completed = True
            stats.warnings += [f"skipped: {e}" for e in getattr(source, "errors", [])]
        finally:
            if swap_pool is not None:
                swap_pool.shutdown(wait=True, cancel_futures=True)
            if write_pool is not None:
                write_pool.shutdown(wait=True, cancel_futures=True)
            for w in writers:
                w.close()
            if st is not None:
                st.close()
    if completed:
        # Content Credentials on every file the formats allow (after close: the video's index
        # is final then); metadata and the watermark are already in every frame.
        t_sign = time.perf_counter()
        run_facts: dict[str, Any] = {}
        if stats.unmarked:  # a video's container metadata was written with its first frame
            run_facts = {"faces_unmarked": len(stats.unmarked),
                         "unmarked": stats.unmarked[:1000]}
        stats.warnings += sign_outputs([p for w in writers for p in w.written], pred.model_id,
                                       video_facts=run_facts)
        times["sign"] = (time.perf_counter() - t_sign) * 1000.0
    if extractor is not None:
        for k, v in extractor.times.ms.items():
            times[f"detect.{k}"] = v
    for c in contexts:  # summed over the jobs: with several, these exceed the wall time
        for k, v in c.times.items():
            times[f"swap.{k}"] = times.get(f"swap.{k}", 0.0) + v
    stats.jobs = jobs
    stats.stage_ms = times
    stats.seconds = time.perf_counter() - start
    return stats


def encoder_threads(vcfg: VideoConfig, jobs: int, cores: int) -> VideoConfig:
    """The video writer's options with ``encoder_threads`` 0 (automatic) resolved for a run
    of ``jobs`` swap jobs on ``cores`` cores: 1 when every core already runs a swap job (the
    encoder's own threads would only add hand-offs between threads competing for the same
    cores; one encoder thread keeps up, as the swap is the slower stage), else left to the
    encoder. An explicit count is kept."""
    if vcfg.encoder_threads == 0 and cores // max(1, jobs) <= 1:
        return vcfg.replace(encoder_threads=1)
    return vcfg


def _open_writers(source: Any, input_path: Path, output: Path, to_video: bool,
                  cfg: ConvertConfig, video_cfg: VideoConfig | None,
                  images_cfg: ImagesConfig | None, patch_dir: str | os.PathLike[str] | None,
                  patch_cfg: PatchConfig | None, mask_dir: str | os.PathLike[str] | None,
                  masks_cfg: MasksConfig | None, writers: list[FrameWriter],
                  encoded: bool = False,
                  ) -> tuple[FrameWriter, FrameWriter | None, FrameWriter | None]:
    """Create and open the writers (appended to ``writers`` as they open, for closing).

    ``encoded``: the main output's frames come already converted to their output colour space
    (:func:`to_output_space`): written as given, with no sRGB encoding of linear values."""
    float_input = source.kind == "sequence" or source.kind == "image"
    # Whether frames will be float scene-linear is only known per frame; sequences of EXR are
    # float, PNG/JPEG sequences are not. Probe the first frame.
    linear = False
    if float_input and not encoded:
        first = next(iter(source.frames([source.first_index])), None)
        linear = first is not None and first.linear is not None
    space = "linear" if linear else "srgb"
    w, h = _scaled_size(source.width, source.height, cfg.output_scale, to_video)
    hint = len(source)
    src = input_path
    main: FrameWriter
    if to_video:
        vcfg = encoder_threads((video_cfg or VideoConfig()).replace(input_space=space),
                               swap_jobs(cfg)[0], usable_cores())
        main = WRITERS.create("video", vcfg)
        writers.append(main)
        main.open(output, width=w, height=h, fps=source.fps or 25.0, frame_count_hint=hint,
                  source=src)
    else:
        icfg = (images_cfg or ImagesConfig()).replace(input_space=space)
        main = WRITERS.create("images", icfg)
        writers.append(main)
        main.open(output, width=w, height=h, fps=source.fps, frame_count_hint=hint, source=src)
    patch_w = mask_w = None
    if patch_dir is not None:
        patch_w = WRITERS.create("patch", patch_cfg or PatchConfig())
        writers.append(patch_w)
        patch_w.open(patch_dir, width=source.width, height=source.height, fps=source.fps,
                     frame_count_hint=hint, source=src)
    if mask_dir is not None:
        mask_w = WRITERS.create("masks", masks_cfg or MasksConfig())
        writers.append(mask_w)
        mask_w.open(mask_dir, width=w, height=h, fps=source.fps, frame_count_hint=hint,
                    source=src)
    return main, patch_w, mask_w
