"""The extraction pipeline: frames → detect → align → filter → pose → masks → identity → store.

Stages run in three threads so decoding, the models and the writing overlap on two cores::

    reader thread ──queue──► compute (caller's thread) ──queue──► writer thread
    (decode frames)          (detect, align, mask, identity)      (aligned crops, thumbnails,
                                                                   face PNGs, then the store)

The writer commits a frame to the alignments store only after every face PNG of that frame is
on disk (each PNG written atomically), so a run killed at any instant resumes from the store:
frames the store holds are skipped, every other frame is processed again and its PNGs are
rewritten identically. Every stage is deterministic. The one state carried between frames is
the face tracks (``faceplate.extract.track``): where a face seen in the last frames is not
found, the detector searches for it where its track predicts it (``--track-search``). The
tracks are a function of the faces kept in the frames before, which the store holds, so a
resumed run rebuilds them from the store and ends with the same faces as an uninterrupted one.

Every candidate dropped on the way — by the detector's verification, by a face filter, by the
identity filter — is stored with its reason (``AlignmentsStore.rejections``).
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from faceplate import __version__
from faceplate.core.config import Config, option
from faceplate.core.errors import ConfigError, FaceplateError, NoFacesError
from faceplate.core.geometry import crop_matrix
from faceplate.core.profile import active_profile, configured
from faceplate.core.records import encode_mask
from faceplate.core.types import (
    BBox,
    Centering,
    Detection,
    FaceRecord,
    Frame,
    FrameInfo,
    Rejection,
    StoredMask,
)
from faceplate.extract.align import ALIGNERS, Aligner
from faceplate.extract.crops import warp_to_crop
from faceplate.extract.detect import DETECTORS, Detector
from faceplate.extract.filters import FilterConfig, reject_reason
from faceplate.extract.follow import (
    FollowConfig,
    Followed,
    FollowState,
    follow_faces,
    scene_signature,
)
from faceplate.extract.mask import Masker, blank_crop, create_masker, split_mask_spec
from faceplate.extract.pose import estimate_pose
from faceplate.extract.track import TrackConfig, TrackWindow, links
from faceplate.io.faceset import FaceMeta, face_filename, write_face_png
from faceplate.io.media import FrameSource, open_source
from faceplate.io.paths import ensure_output_dir
from faceplate.io.store import AlignmentsStore, default_store_path

THUMB_SIZE = 96


@dataclass(frozen=True)
class ExtractConfig(Config):
    """What ``faceplate extract`` produces and how."""

    detector: str = option("chain", "Face detector (see `faceplate extract --help` for the list).")
    aligner: str = option("dlib68", "Landmark aligner: dlib68 or mesh68.")
    masks: tuple[str, ...] = option(
        ("components", "extended"), "Masks to compute and store for every face (occlusion "
        "takes its model: occlusion:MODEL_DIR).")
    size: int = option(512, "Side of the aligned face PNGs in pixels.", minimum=64, maximum=4096)
    centering: Centering = option("face", "Framing of the aligned faces.")
    mask_size: int = option(128, "Side of the stored masks in pixels.", minimum=16, maximum=1024)
    every_n: int = option(1, "Process every Nth frame only.", minimum=1, maximum=10000)
    identity: bool = option(
        False, "Store dlib's 128-d identity embedding for every face (costs ~75 ms a face).")
    filter: tuple[str, ...] = option((), "Reference images: keep only faces of these people.")
    nfilter: tuple[str, ...] = option((), "Reference images: drop faces of these people.")
    ref_threshold: float = option(
        0.6, "Identity distance below which a face matches a reference image.",
        minimum=0.0, maximum=2.0)
    thumbnails: bool = option(True, "Store a 96 px JPEG thumbnail of each face in the store.")
    write_faces: bool = option(True, "Write the aligned face PNGs (off: store only).")
    png_compression: int = option(1, "PNG compression level of the face files (0-9).",
                                  minimum=0, maximum=9)


@dataclass
class StageTimes:
    """Accumulated milliseconds per stage (thread-safe adds)."""

    ms: dict[str, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, stage: str, seconds: float) -> None:
        with self._lock:
            self.ms[stage] = self.ms.get(stage, 0.0) + seconds * 1000.0


@dataclass
class FrameResult:
    """One processed frame on its way to the writer."""

    frame_info: FrameInfo
    records: list[FaceRecord]
    crops: list[tuple[np.ndarray, np.ndarray]]  # (size×size×3 uint8 crop, frame→crop matrix)
    skipped: Counter[str]
    rejected: list[Rejection] = field(default_factory=list)
    tracked: int = 0  # faces found by the track search
    followed: int = 0  # faces followed from the previous frame (tracking on)
    #: Why the detector ran on this frame ("per frame" with tracking off, else a
    #: ``FollowState.why_detect`` reason or "check failed"); None: the faces were followed.
    detection: str | None = "per frame"
    #: With ``process(defer_crops=True)``: the frame and each record's frame → crop matrix;
    #: ``crops`` is empty and the records have no thumbnail until :meth:`Extractor.finish`.
    pending: tuple[np.ndarray, list[np.ndarray]] | None = None


@dataclass
class ExtractStats:
    """What a run did; the CLI prints it as the summary."""

    frames: int = 0
    faces: int = 0
    tracked: int = 0
    followed: int = 0
    detection_frames: int = 0
    detection_reasons: dict[str, int] = field(default_factory=dict)
    resumed: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    errors: list[FaceplateError] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    stage_ms: dict[str, float] = field(default_factory=dict)
    store: Path | None = None
    faces_dir: Path | None = None


class Extractor:
    """Runs detect → align → filter → pose → masks → identity on frames.

    Args:
        cfg: The run's configuration.
        detector_cfg: Config for ``cfg.detector`` (its default when None).
        aligner_cfg: Config for ``cfg.aligner``.
        mask_cfgs: Masker name → config (defaults for those missing).
        filter_cfg: Face filters.
        track_cfg: The track search (used by :func:`run_extract`, which processes frames in
            order; :meth:`process` alone keeps no state between calls).
        follow_cfg: Tracking between detections (``--track``; used by :func:`run_extract`).
    """

    def __init__(self, cfg: ExtractConfig, *, detector_cfg: Any = None, aligner_cfg: Any = None,
                 mask_cfgs: dict[str, Any] | None = None,
                 filter_cfg: FilterConfig | None = None,
                 track_cfg: TrackConfig | None = None,
                 follow_cfg: FollowConfig | None = None) -> None:
        self.cfg = cfg
        self.filter_cfg = filter_cfg or FilterConfig()
        self.track_cfg = track_cfg or TrackConfig()
        self.follow_cfg = follow_cfg or FollowConfig()
        self.detector: Detector = DETECTORS.create(cfg.detector, detector_cfg)
        self.aligner: Aligner = ALIGNERS.create(cfg.aligner, aligner_cfg)
        mask_cfgs = mask_cfgs or {}
        names = [split_mask_spec(spec)[0] for spec in cfg.masks]
        if len(set(names)) != len(names):
            raise ConfigError(f"masks: {', '.join(cfg.masks)} lists a mask twice")
        self.maskers: dict[str, Masker] = {
            name: create_masker(spec, mask_cfgs.get(name)) for name, spec in zip(names, cfg.masks)
        }
        # the stored settings recreate these maskers (a mask model by its absolute path)
        self.cfg = cfg = cfg.replace(masks=tuple(m.spec() for m in self.maskers.values()))
        self._shared_crop_pixels = any(m.reads_pixels and m.crop_geometry() is None
                                       for m in self.maskers.values())
        self.times = StageTimes()
        self._encoder: Any = None
        self._ref_filter: Any = None
        if cfg.identity or cfg.filter or cfg.nfilter:
            from faceplate.extract.identity.embed import IdentityConfig, IdentityEncoder

            self._encoder = IdentityEncoder(IdentityConfig())
        if cfg.filter or cfg.nfilter:
            from faceplate.extract.identity.filter import ReferenceFilter

            self._ref_filter = ReferenceFilter.from_images(
                [Path(p) for p in cfg.filter], [Path(p) for p in cfg.nfilter],
                threshold=cfg.ref_threshold, encoder=self._encoder,
                landmarker=self.landmarks_for_reference)

    def landmarks_for_reference(self, rgb: np.ndarray) -> list[np.ndarray]:
        """Every face's 68 landmarks in a reference image (the run's own detector/aligner)."""
        dets = self.detector.detect(rgb)
        return [a.landmarks for a in self.aligner.align(rgb, dets)]

    def new_tracks(self) -> TrackWindow | None:
        """Face tracks for a run over frames in order (None when the track search is off)."""
        return TrackWindow(self.track_cfg.track_gap) if self.track_cfg.track_search else None

    def new_follow(self) -> FollowState | None:
        """Tracking state for a run over frames in order (None with ``--track off``)."""
        cfg = self.follow_cfg
        return FollowState(cfg.detect_every) if cfg.track == "on" else None

    def detect(self, rgb: np.ndarray, index: int, tracks: TrackWindow | None = None
               ) -> tuple[list[Detection], list[Rejection], int]:
        """The faces of one frame: per-frame detection, then the track search.

        Returns:
            The detections (those found by the track search last, their ``detector`` suffixed
            ``+track``), the rejected candidates and the number found by the track search.
        """
        res = self.detector.detect_all(rgb)
        dets, rejected = list(res.faces), list(res.rejected)
        found = 0
        if tracks is not None:
            for pred in tracks.predict(index):
                if any(links(pred.box, d.bbox) for d in dets):
                    continue
                more = self.detector.search(rgb, pred.box)
                rejected += more.rejected
                for d in more.faces[:1]:
                    if not any(links(d.bbox, k.bbox) for k in dets):
                        dets.append(Detection(d.bbox, d.score, f"{d.detector}+track",
                                              d.keypoints, d.angle))
                        found += 1
        return dets, rejected, found

    def process(self, frame: Frame, tracks: TrackWindow | None = None,
                follow: FollowState | None = None, *, defer_crops: bool = False
                ) -> FrameResult:
        """Detect, align, filter and describe every face of one frame (no I/O).

        Faces are numbered left to right (by the centre of their box), so indices are stable
        whatever order the detector returns them in. With ``tracks`` (frames given in order),
        faces the tracks predict but detection missed are searched for, and the tracks are
        updated with the faces kept. With ``follow`` (frames given in order, ``--track on``),
        the faces of the previous frame are followed from their landmarks instead of running
        the detector, unless this frame must be a detection frame (``faceplate.extract.follow``).
        With ``defer_crops`` the aligned crops and thumbnails are left to :meth:`finish`
        (:func:`run_extract` runs it in its writer thread, beside the PNG encoding, so the
        stages that carry state from frame to frame keep one core to themselves).
        """
        rgb, info = frame.rgb, frame.info
        followed: list[tuple[Detection, Any, Followed]] | None = None
        why: str | None = "per frame"
        if follow is not None:
            t0 = time.perf_counter()
            why = follow.why_detect(scene_signature(rgb))
            if why is None:
                followed = follow_faces(self.aligner, rgb, follow.faces)
                why = "check failed" if followed is None else None
            self.times.add("follow", time.perf_counter() - t0)
        origin: dict[int, Followed] = {}
        if followed is not None:
            dets = [d for d, _, _ in followed]
            aligns = [a for _, a, _ in followed]
            origin = {id(d): f for d, _, f in followed}
            rejected: list[Rejection] = []
        else:
            t0 = time.perf_counter()
            dets, rejected, _ = self.detect(rgb, info.index, tracks)
            t1 = time.perf_counter()
            aligns = self.aligner.align(rgb, dets) if dets else []
            t2 = time.perf_counter()
            self.times.add("detect", t1 - t0)
            self.times.add("align", t2 - t1)
            if follow is not None and why is not None:
                follow.count(why)

        skipped: Counter[str] = Counter()
        kept = []
        for det, al in zip(dets, aligns):
            reason = reject_reason(al.landmarks, self.filter_cfg)
            if reason is not None:
                skipped[reason] += 1
                rejected.append(Rejection(det.bbox, float(det.score), det.detector, "filter",
                                          reason))
                continue
            kept.append((det, al))
        kept.sort(key=lambda da: da[0].bbox.center[0])

        records: list[FaceRecord] = []
        matrices: list[np.ndarray] = []
        sources: list[Detection] = []
        for det, al in kept:
            lm = al.landmarks
            t3 = time.perf_counter()
            identity = None
            if self._encoder is not None:
                identity = self._encoder.embed(rgb, lm)
                if self._ref_filter is not None and not self._ref_filter.accept(identity):
                    skipped["identity filter"] += 1
                    rejected.append(Rejection(det.bbox, float(det.score), det.detector,
                                              "identity", "identity filter (not the reference "
                                                          "people)"))
                    self.times.add("identity", time.perf_counter() - t3)
                    continue
            t4 = time.perf_counter()
            rec, matrix = self._describe(
                rgb, info, lm, face_index=len(records), bbox=det.bbox, score=float(det.score),
                detector=det.detector, mesh=al.mesh, identity=identity)
            records.append(rec)
            matrices.append(matrix)
            sources.append(det)
            self.times.add("identity", t4 - t3)
        if tracks is not None:
            tracks.add(info.index, [r.bbox for r in records])
        if follow is not None:
            t0 = time.perf_counter()
            _update_follow(follow, rgb, records, sources, origin, followed is None)
            self.times.add("follow", time.perf_counter() - t0)
        res = FrameResult(info, records, [], skipped, rejected,
                          sum(r.detector.endswith("+track") for r in records),
                          followed=sum(r.detector.endswith("+follow") for r in records),
                          detection=why, pending=(rgb, matrices))
        return res if defer_crops else self.finish(res)

    def finish(self, res: FrameResult, crops: bool = True) -> FrameResult:
        """``res`` with the aligned crops and thumbnails :meth:`process` deferred (unchanged
        when none are pending). ``crops=False``: only what the store needs (the thumbnails;
        no crop at all when thumbnails are off)."""
        if res.pending is None:
            return res
        rgb, matrices = res.pending
        records, out = [], []
        for rec, matrix in zip(res.records, matrices):
            if crops or self.cfg.thumbnails:
                crop, rec = self._crop(rgb, rec, matrix)
                out.append((crop, matrix))
            records.append(rec)
        return replace(res, records=records, crops=out if crops else [], pending=None)

    def describe(self, rgb: np.ndarray, info: FrameInfo, landmarks: np.ndarray, *,
                 face_index: int, bbox: BBox, score: float, detector: str,
                 aligner: str | None = None, mesh: np.ndarray | None = None,
                 identity: np.ndarray | None = None
                 ) -> tuple[FaceRecord, np.ndarray, np.ndarray]:
        """Everything extraction stores about one face whose landmarks are known.

        Pose, the aligned crop, the configured masks and the thumbnail, from the landmarks;
        the Studio calls this for faces whose landmarks were edited by hand.

        Args:
            rgb: H×W×3 ``uint8`` sRGB frame.
            info: The frame.
            landmarks: 68×2 (x, y) frame pixels, pixel centres at +0.5.
            face_index: The face's index in its frame.
            bbox: Its box in frame pixels.
            score: Detection confidence in [0, 1].
            detector: Detector registry name (or a word saying where the face came from).
            aligner: Aligner name (default: the configured aligner).
            mesh: The aligner's dense mesh, when it gave one (mesh masks use it).
            identity: 128-d embedding, or None.

        Returns:
            ``(record, crop, matrix)``: the record, the size×size×3 ``uint8`` aligned crop and
            its 2×3 frame → crop matrix.
        """
        rec, matrix = self._describe(rgb, info, landmarks, face_index=face_index, bbox=bbox,
                                     score=score, detector=detector, aligner=aligner,
                                     mesh=mesh, identity=identity)
        crop, rec = self._crop(rgb, rec, matrix)
        return rec, crop, matrix

    def _describe(self, rgb: np.ndarray, info: FrameInfo, landmarks: np.ndarray, *,
                  face_index: int, bbox: BBox, score: float, detector: str,
                  aligner: str | None = None, mesh: np.ndarray | None = None,
                  identity: np.ndarray | None = None) -> tuple[FaceRecord, np.ndarray]:
        """:meth:`describe` without the crop: the record (no thumbnail) and the matrix."""
        cfg = self.cfg
        lm = np.asarray(landmarks, np.float32)
        t4 = time.perf_counter()
        yaw, pitch, roll = estimate_pose(lm, (info.width, info.height))
        matrix = crop_matrix(lm, cfg.size, cfg.centering)
        t5 = time.perf_counter()
        masks = self._masks(rgb, lm, mesh)
        t6 = time.perf_counter()
        rec = FaceRecord(
            frame_index=info.index, frame_name=info.name, face_index=face_index,
            bbox=bbox, landmarks=lm, score=float(score),
            yaw=yaw, pitch=pitch, roll=roll, detector=detector,
            aligner=self.cfg.aligner if aligner is None else aligner, masks=masks,
            identity=identity, thumbnail=None, timestamp=info.timestamp)
        self.times.add("pose", t5 - t4 + time.perf_counter() - t6)
        self.times.add("mask", t6 - t5)
        return rec, matrix

    def _crop(self, rgb: np.ndarray, rec: FaceRecord, matrix: np.ndarray
              ) -> tuple[np.ndarray, FaceRecord]:
        """The size×size×3 ``uint8`` aligned crop and ``rec`` with its thumbnail (when on)."""
        t = time.perf_counter()
        crop = warp_to_crop(rgb, matrix, self.cfg.size)
        if self.cfg.thumbnails:
            small = crop
            # whole-factor area steps first (OpenCV's fast path), then the rest by area
            while small.shape[0] >= 4 * THUMB_SIZE and small.shape[0] % 4 == 0:
                side = small.shape[0] // 4
                small = cv2.resize(small, (side, side), interpolation=cv2.INTER_AREA)
            small = cv2.resize(small, (THUMB_SIZE, THUMB_SIZE), interpolation=cv2.INTER_AREA)
            ok, buf = cv2.imencode(".jpg", small[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 85])
            rec = replace(rec, thumbnail=buf.tobytes() if ok else None)
        self.times.add("crop", time.perf_counter() - t)
        return crop, rec

    def _masks(self, rgb: np.ndarray, lm: np.ndarray,
               mesh: np.ndarray | None) -> dict[str, StoredMask]:
        """Every configured mask of one face: on the shared ``mask_size`` crop, or on a crop of
        the masker's own geometry (stored at that geometry, with its matrix and centering).
        The shared crop's pixels are cut from the frame only when a masker using it reads
        them (:attr:`Masker.reads_pixels`; the default hull masks do not)."""
        cfg = self.cfg
        shared: tuple[np.ndarray, np.ndarray] | None = None
        out = {}
        for name, masker in self.maskers.items():
            geometry = masker.crop_geometry()
            if geometry is None:
                if shared is None:
                    m = crop_matrix(lm, cfg.mask_size, cfg.centering)
                    shared = (warp_to_crop(rgb, m, cfg.mask_size, cv2.INTER_LINEAR)
                              if self._shared_crop_pixels else blank_crop(cfg.mask_size), m)
                small, m = shared
                mask = masker.mask(small, lm, m, mesh)
                out[name] = StoredMask(name, encode_mask(mask), cfg.mask_size, m, cfg.centering)
            else:
                size, centering, coverage = geometry
                m = crop_matrix(lm, size, centering, coverage)
                mask = masker.mask(warp_to_crop(rgb, m, size), lm, m, mesh)
                out[name] = StoredMask(name, encode_mask(mask), size, m, centering)
        return out


def _update_follow(follow: FollowState, rgb: np.ndarray, records: list[FaceRecord],
                   sources: list[Detection], origin: dict[int, Followed], detected: bool
                   ) -> None:
    """Follow the faces kept in this frame into the next one: a detection frame sets each
    face's reference appearance; a followed frame keeps the one its face had (``origin``: the
    followed faces, already moved to their landmarks here, by their detection's id)."""
    faces = []
    for rec, det in zip(records, sources):
        moved = origin.get(id(det))
        faces.append(moved if moved is not None else
                     Followed.detected(rgb, rec.landmarks, rec.bbox, rec.score, rec.detector))
    follow.faces = faces
    follow.since_detection = 0 if detected else (follow.since_detection or 0) + 1


_END = object()


def run_extract(input_path: str | Path, faces_dir: str | Path | None,
                store_path: str | Path | None = None, *, cfg: ExtractConfig | None = None,
                extractor: Extractor | None = None,
                on_frame: Callable[[FrameResult, int], None] | None = None,
                on_start: Callable[[int, int], None] | None = None,
                colorspace: str = "") -> ExtractStats:
    """Extract every face of ``input_path`` into the store and (optionally) the faceset folder.

    Args:
        input_path: A video file, an image file, a folder of images or a numbered sequence.
        faces_dir: Where the aligned face PNGs go (None only when ``cfg.write_faces`` is off).
        store_path: The alignments store (default: next to the input, ``default_store_path``).
        cfg: The run's configuration (ignored when ``extractor`` is given).
        extractor: A ready :class:`Extractor` (to reuse loaded models across runs).
        on_frame: Called in the writer thread after each frame is committed, with the result
            and the number of frames still to do.
        on_start: Called once with (frames to process, frames already done) before the loop.
        colorspace: The input's colour space (see :mod:`faceplate.io.colormanage`); empty:
            from its metadata, else by kind. Detection sees the frames converted to display
            sRGB from it; the store records it (meta ``colorspace``).

    Returns:
        The run's statistics. Raises :class:`NoFacesError` when the whole input (this run and
        any earlier one on the same store) yielded no face.
    """
    start = time.perf_counter()
    extractor = extractor or Extractor(cfg or configured(ExtractConfig))
    cfg = extractor.cfg
    input_path = Path(input_path)
    store_path = Path(store_path) if store_path else default_store_path(input_path)
    out_dir = Path(faces_dir) if faces_dir is not None else None
    if cfg.write_faces:
        if out_dir is None:
            raise ConfigError("an output folder for the faces is required (-o FACESET_DIR)")
        ensure_output_dir(out_dir, probe=True)
    ensure_output_dir(store_path.parent, probe=True)

    stats = ExtractStats(store=store_path, faces_dir=out_dir)
    with open_source(input_path, every_n=cfg.every_n, colorspace=colorspace) as source, \
            AlignmentsStore.open(store_path, create=True) as store:
        _prepare_store(store, source, cfg, stats)
        store.set_meta("colorspace", source.colorspace)
        done = store.done_frame_indices()
        todo = [i for i in range(0, source.total_frames, cfg.every_n) if i not in done]
        stats.resumed = len(done)
        if on_start:
            on_start(len(todo), len(done))
        faces_meta_source = {
            "store": str(store_path), "source": str(input_path),
            "frame_width": source.width, "frame_height": source.height,
            "is_video": source.kind == "video",
        }
        tracks = extractor.new_tracks()
        seed = _track_seed(store, done, todo, tracks.frames.maxlen or 0) if tracks else {}
        follow = extractor.new_follow()
        _run_threads(extractor, source, store, done, out_dir, faces_meta_source, stats,
                     on_frame, len(todo), tracks, seed, follow)
        if follow is not None:
            stats.detection_reasons = dict(sorted(follow.reasons.items()))
        stats.errors.extend(getattr(source, "errors", []))
        for idx, n in sorted(getattr(source, "nonfinite_frames", {}).items()):
            stats.warnings.append(f"frame {idx}: {n} NaN/Inf samples replaced for detection")
        total_faces = store.face_count()
    stats.seconds = time.perf_counter() - start
    stats.stage_ms = dict(extractor.times.ms)
    if total_faces == 0 and not stats.errors:
        raise NoFacesError("no face found anywhere in the input", input_path)
    return stats


def _prepare_store(store: AlignmentsStore, source: FrameSource, cfg: ExtractConfig,
                   stats: ExtractStats) -> None:
    previous = store.get_meta("extract_config")
    if previous is not None:
        for key in ("size", "centering", "detector", "aligner", "every_n"):
            if previous.get(key) != getattr(cfg, key):
                stats.warnings.append(
                    f"the store was started with {key}={previous.get(key)!r}; this run uses "
                    f"{getattr(cfg, key)!r} for the frames still to do")
    store.set_meta("source", str(source.path))
    store.set_meta("width", source.width)
    store.set_meta("height", source.height)
    store.set_meta("fps", source.fps)
    store.set_meta("total_frames", source.total_frames)
    store.set_meta("kind", source.kind)
    store.set_meta("created_by", f"faceplate {__version__}")
    store.set_meta("model_profile", active_profile().name)
    if previous is None:
        store.set_meta("extract_config", cfg.to_dict())


def _track_seed(store: AlignmentsStore, done: set[int], todo: list[int], window: int
                ) -> dict[int, list[Any]]:
    """Boxes of the stored frames a resumed run's track window needs: every done frame among
    the ``window`` processed frames before a frame still to do."""
    if not done or not todo:
        return {}
    order = sorted(done | set(todo))
    pos = {idx: k for k, idx in enumerate(order)}
    need: set[int] = set()
    todo_set = set(todo)
    for t in todo:
        k = pos[t]
        need.update(i for i in order[max(0, k - window):k] if i not in todo_set)
        if len(need) >= len(done):
            break
    return {i: [r.bbox for r in store.faces(i)] for i in sorted(need)}


def _run_threads(extractor: Extractor, source: FrameSource, store: AlignmentsStore,
                 done: set[int], out_dir: Path | None, meta_source: dict[str, Any],
                 stats: ExtractStats, on_frame: Callable[[FrameResult, int], None] | None,
                 n_todo: int, tracks: TrackWindow | None = None,
                 seed: dict[int, list[Any]] | None = None,
                 follow: FollowState | None = None) -> None:
    cfg = extractor.cfg
    frames_q: queue.Queue[Any] = queue.Queue(maxsize=6)
    results_q: queue.Queue[Any] = queue.Queue(maxsize=6)
    failure: list[BaseException] = []
    stop = threading.Event()

    def put(q: queue.Queue[Any], item: Any) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def reader() -> None:
        try:
            frames: Iterator[Frame] = source.frames(skip=done)
            t = time.perf_counter()
            for frame in frames:
                extractor.times.add("decode", time.perf_counter() - t)
                if not put(frames_q, frame):
                    return
                t = time.perf_counter()
        except BaseException as err:
            failure.append(err)
        finally:
            put(frames_q, _END)

    def writer() -> None:
        remaining = n_todo
        try:
            while True:
                item = results_q.get()
                if item is _END:
                    return
                item = extractor.finish(item, crops=cfg.write_faces)
                t = time.perf_counter()
                _write_frame(item, store, out_dir, meta_source, cfg)
                extractor.times.add("write", time.perf_counter() - t)
                stats.frames += 1
                stats.faces += len(item.records)
                stats.tracked += item.tracked
                stats.followed += item.followed
                stats.detection_frames += item.detection is not None
                stats.skipped.update(item.skipped)
                remaining -= 1
                if on_frame:
                    on_frame(item, remaining)
        except BaseException as err:
            failure.append(err)
            stop.set()

    threads = [threading.Thread(target=reader, name="faceplate-reader", daemon=True),
               threading.Thread(target=writer, name="faceplate-writer", daemon=True)]
    for t in threads:
        t.start()
    try:
        while not stop.is_set():
            try:
                frame = frames_q.get(timeout=0.2)
            except queue.Empty:
                if not threads[0].is_alive() and frames_q.empty():
                    break
                continue
            if frame is _END:
                break
            if tracks is not None and seed:
                last = tracks.frames[-1][0] if tracks.frames else -1
                for i in [i for i in seed if last < i < frame.info.index]:
                    tracks.add(i, seed.pop(i))
            put(results_q, extractor.process(frame, tracks, follow, defer_crops=True))
    except BaseException:
        stop.set()
        raise
    finally:
        if not stop.is_set():
            put(results_q, _END)
        else:
            with contextlib.suppress(queue.Full):
                results_q.put_nowait(_END)
        threads[1].join()
        stop.set()
        threads[0].join(timeout=5)
    if failure:
        raise failure[0]


def _write_frame(res: FrameResult, store: AlignmentsStore, out_dir: Path | None,
                 meta_source: dict[str, Any], cfg: ExtractConfig) -> None:
    if cfg.write_faces and out_dir is not None:
        for rec, (crop, matrix) in zip(res.records, res.crops):
            meta = FaceMeta(record=rec, matrix=matrix, size=cfg.size, centering=cfg.centering,
                            source=meta_source)
            write_face_png(out_dir / face_filename(rec), crop, meta,
                           compress_level=cfg.png_compression)
    store.put_frame(res.frame_info, res.records, res.rejected)
