"""``faceplate verify``: look for Faceplate's marks in an image, a folder of images or a video.

Three independent marks are checked:

* the **invisible watermark** (:mod:`faceplate.provenance.watermark`), per frame and per face:
  detected, confidence, payload (the model's short id) — it survives re-encoding and resizing;
* the **metadata statement** (:mod:`faceplate.provenance.metadata`), per file — easy to strip;
* the **C2PA manifest** (:mod:`faceplate.provenance.c2pa_sign`), per file — signed; its
  validation state tells whether the file changed since it was signed.

A file "carries Faceplate provenance" (:attr:`VerifyReport.found`) when any of them is found: a
face with the watermark, a manifest made by Faceplate (whatever its validation state, which is
reported), or the metadata statement.

Frames (:class:`VerifyConfig`): every frame / file by default; ``every=K`` keeps every K-th;
``frames=N`` spreads N frames evenly over a video (or N files over a folder).

The video verdict (videos and folders, ``track=R``, default 2): a face whose own score falls
short still counts as marked when the mean score of its track — the same face, by box overlap,
in the R checked frames on each side — reaches the threshold (codec noise hits frames one by
one; see :func:`faceplate.provenance.watermark.pool_tracks` for why the false-positive rate
stays within its target). Such faces are reported with ``by_track``.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from faceplate.core.config import Config, option
from faceplate.core.errors import (
    ConfigError,
    FaceplateError,
    InputError,
    UnsupportedFormatError,
)
from faceplate.io.media import VIDEO_EXTS, is_image, is_video, natural_key, open_source
from faceplate.provenance.c2pa_sign import read_manifest
from faceplate.provenance.metadata import read_provenance

#: Extensions whose provenance metadata :func:`read_provenance` reads.
_META_EXTS = frozenset({".png", ".jpg", ".jpeg", ".exr", ".tif", ".tiff", ".mp4", ".m4v",
                        ".mov", ".mkv"})


@dataclass(frozen=True)
class VerifyConfig(Config):
    """Which frames ``faceplate verify`` checks for the watermark."""

    frames: int = option(0, "Check this many frames spread evenly over a video (or files of a "
                         "folder); 0: all of them.", minimum=0, maximum=1_000_000)
    every: int = option(1, "Check every K-th frame (or file of a folder).", minimum=1,
                        maximum=1_000_000)
    track: int = option(2, "Video verdict: a face also counts as marked when its mean score "
                        "over this many checked frames on each side (the same face: boxes "
                        "overlapping) reaches the threshold; 0 judges every frame alone. The "
                        "false-positive bound per face is (2R + 1) × the single-frame rate.",
                        minimum=0, maximum=10)
    colorspace: str = option("", "Colour space of the files (e.g. 'ARRI LogC3 (EI800)' for a "
                             "convert written with --output-colorspace); empty: from their "
                             "metadata, else by kind.")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.frames and self.every != 1:
            raise ConfigError("frames/every: give one of --frames N and --every K, not both")


@dataclass
class FaceResult:
    """The watermark verdict of one face (see :class:`~faceplate.provenance.watermark.FaceMark`).

    ``box`` is (x, y, w, h) in frame pixels; ``track_score`` the mean score of the face's
    track over neighbouring checked frames (videos and folders), ``by_track`` whether it is
    detected through its track only; ``pattern_set`` the pattern set ``score`` is of (the one
    that detected the mark: ``full``, or ``upper`` on a face matted over its upper part only;
    ``full`` when none did)."""

    detected: bool
    confidence: float
    payload: str | None
    box: tuple[int, int, int, int]
    score: float
    track_score: float | None = None
    by_track: bool = False
    pattern_set: str = "full"


@dataclass
class FrameResult:
    """One checked frame: its index (in the video, or the file's position in the folder),
    the file it came from, and its faces' watermark verdicts (``None`` when the detector was not
    available; ``error`` when the frame could not be decoded)."""

    index: int
    file: str
    faces: list[FaceResult] | None
    error: str | None = None

    @property
    def watermarked(self) -> bool:
        return bool(self.faces) and any(f.detected for f in self.faces or [])


@dataclass
class FileResult:
    """Per-file marks: the metadata statement (``read_provenance``) and the C2PA manifest
    (``read_manifest``); ``None`` when absent or the format cannot carry it."""

    path: str
    metadata: dict[str, Any] | None
    manifest: dict[str, Any] | None
    errors: list[str] = field(default_factory=list)


@dataclass
class VerifyReport:
    """Everything ``faceplate verify`` found."""

    path: str
    kind: str  #: "image", "folder" or "video"
    total_frames: int
    files: list[FileResult]
    frames: list[FrameResult]
    watermark_available: bool
    watermark_note: str | None
    seconds: float

    @property
    def errors(self) -> list[str]:
        out = [e for f in self.files for e in f.errors]
        out += [f"{fr.file} frame {fr.index}: {fr.error}" for fr in self.frames if fr.error]
        return out

    @property
    def found(self) -> bool:
        """Any Faceplate mark: a watermarked face, a Faceplate manifest, or the statement."""
        return (any(fr.watermarked for fr in self.frames)
                or any(f.manifest is not None and f.manifest.get("ours") for f in self.files)
                or any(f.metadata is not None for f in self.files))

    def summary(self) -> dict[str, Any]:
        checked = [fr for fr in self.frames if fr.faces is not None]
        faces = [f for fr in checked for f in fr.faces or []]
        manifests = [f.manifest for f in self.files if f.manifest is not None]
        states: dict[str, int] = {}
        for m in manifests:
            state = str(m.get("validation_state"))
            states[state] = states.get(state, 0) + 1
        payloads = sorted({f.payload for f in faces if f.detected and f.payload})
        return {
            "found": self.found,
            "files": len(self.files),
            "frames_checked": len(self.frames),
            "frames_with_faces": sum(1 for fr in checked if fr.faces),
            "frames_watermarked": sum(1 for fr in self.frames if fr.watermarked),
            "faces": len(faces),
            "faces_watermarked": sum(1 for f in faces if f.detected),
            "payloads": payloads,
            "files_with_metadata": sum(1 for f in self.files if f.metadata is not None),
            "files_with_manifest": len(manifests),
            "faceplate_manifests": sum(1 for m in manifests if m.get("ours")),
            "manifest_states": states,
            "errors": len(self.errors),
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "format": "faceplate.verify", "version": 1,
            "path": self.path, "kind": self.kind, "total_frames": self.total_frames,
            "watermark_available": self.watermark_available,
            "watermark_note": self.watermark_note, "seconds": round(self.seconds, 3),
            "summary": self.summary(),
            "files": [asdict(f) for f in self.files],
            "frames": [{"index": fr.index, "file": fr.file, "watermarked": fr.watermarked,
                        "error": fr.error,
                        "faces": None if fr.faces is None else [asdict(f) for f in fr.faces]}
                       for fr in self.frames],
            "errors": self.errors,
        }


def _file_marks(p: Path) -> FileResult:
    res = FileResult(str(p), None, None)
    ext = p.suffix.lower()
    if ext in _META_EXTS:
        try:
            res.metadata = read_provenance(p)
        except FaceplateError as err:
            res.errors.append(str(err))
    try:
        res.manifest = read_manifest(p)
    except UnsupportedFormatError:
        pass  # a format without a C2PA binding has no manifest
    except FaceplateError as err:
        res.errors.append(str(err))
    return res


def _detector(session: Any) -> tuple[Callable[[np.ndarray], list[Any]] | None, str | None]:
    try:
        from faceplate.provenance import watermark
    except ImportError as err:
        return None, f"watermark detector unavailable ({err})"
    return functools.partial(watermark.detect_frame, session=session), None


def _faces(marks: list[Any]) -> list[FaceResult]:
    return [FaceResult(bool(m.detected), float(m.confidence), m.payload,
                       tuple(int(v) for v in m.box),  # type: ignore[arg-type]
                       float(m.score), None if m.track_score is None else float(m.track_score),
                       bool(m.by_track), str(m.pattern_set))
            for m in marks]


def _video_verdict(frames: list[FrameResult], marks: dict[int, list[Any]], radius: int) -> None:
    """Pool each face's score along its track over the checked frames (in order), in place
    (:func:`faceplate.provenance.watermark.pool_tracks`)."""
    from faceplate.provenance.watermark import pool_tracks

    checked = [i for i, fr in enumerate(frames) if fr.faces is not None]
    pooled = pool_tracks([marks[i] for i in checked], radius)
    for i, row in zip(checked, pooled):
        frames[i].faces = _faces(row)


def _pick(n: int, cfg: VerifyConfig) -> list[int]:
    if cfg.frames and n > cfg.frames:
        return sorted({int(round(i)) for i in np.linspace(0, n - 1, cfg.frames)})
    return list(range(0, n, cfg.every))


def verify(path: str | Path, cfg: VerifyConfig | None = None,
           on_frame: Callable[[FrameResult], None] | None = None, *,
           session: Any = None) -> VerifyReport:
    """Check an image file, a folder of images or a video for Faceplate's marks.

    Args:
        path: The file or folder.
        cfg: Which frames to check (default: all).
        on_frame: Called after each checked frame (progress; its faces are judged alone, the
            video verdict comes after the last frame).
        session: The :class:`~faceplate.provenance.watermark.DetectSession` whose models look
            for the mark (default: the process's shared one).

    Returns:
        The report (:attr:`VerifyReport.found` is the verdict).

    Raises:
        InputError: the path is missing, a single file is unreadable, or a folder has no
            images.
        UnsupportedFormatError: a file that is neither an image nor a video.
    """
    cfg = cfg or VerifyConfig()
    start = time.perf_counter()
    p = Path(path).expanduser()
    if not p.exists():
        raise InputError("file or folder not found", p)
    detect, note = _detector(session)
    frames: list[FrameResult] = []
    face_marks: dict[int, list[Any]] = {}  # position in `frames` → the frame's FaceMarks

    def check(index: int, file: Path, rgb: np.ndarray) -> None:
        fr = FrameResult(index, str(file), None)
        if detect is not None:
            face_marks[len(frames)] = detect(rgb)
            fr.faces = _faces(face_marks[len(frames)])
        frames.append(fr)
        if on_frame:
            on_frame(fr)

    if p.is_dir():
        files = sorted((f for f in p.iterdir()
                        if f.is_file() and not f.name.startswith(".") and is_image(f)),
                       key=lambda f: natural_key(f.name))
        if not files:
            raise InputError("folder holds no image files", p)
        results = [_file_marks(f) for f in files]
        for i in _pick(len(files), cfg):
            try:
                with open_source(files[i], colorspace=cfg.colorspace) as src:
                    frame = src.read(src.first_index)
            except FaceplateError as err:
                frames.append(FrameResult(i, str(files[i]), None, error=err.problem))
                continue
            check(i, files[i], frame.rgb)
        if detect is not None and cfg.track:
            _video_verdict(frames, face_marks, cfg.track)
        return VerifyReport(str(p), "folder", len(files), results, frames, detect is not None,
                            note, time.perf_counter() - start)

    marks = _file_marks(p)
    # open_source raises InputError / UnsupportedFormatError for a bad file
    with open_source(p, every_n=1 if cfg.frames else cfg.every,
                     colorspace=cfg.colorspace) as src:
        if is_video(p) or p.suffix.lower() in VIDEO_EXTS:
            total = src.total_frames
            it = src.frames(_pick(total, cfg) if cfg.frames and total else None)
            for frame in it:
                check(frame.info.index, p, frame.rgb)
            if detect is not None and cfg.track:
                _video_verdict(frames, face_marks, cfg.track)
            kind = "video"
        else:
            total = 1
            check(0, p, src.read(src.first_index).rgb)
            kind = "image"
    return VerifyReport(str(p), kind, total, [marks], frames, detect is not None, note,
                        time.perf_counter() - start)


__all__ = ["FaceResult", "FileResult", "FrameResult", "VerifyConfig", "VerifyReport", "verify"]
