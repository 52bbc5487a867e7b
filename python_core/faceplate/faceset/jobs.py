"""Alignments-store / faceset maintenance jobs (Faceswap's alignments tool, ANCHORS §1.4).

* :func:`remove_faces` — drop the store faces whose PNG was deleted from a face folder.
* :func:`rename_faces` — rename face files to ``<frame stem>_<face index>.png``.
* :func:`from_faces` — rebuild a store from the records inside a face folder.
* :func:`extract_faces` — re-cut a faceset from a store and its clip.

Faces are matched by the records inside the PNGs (frame index, frame name, face index and
landmark equality; :mod:`faceplate.faceset.match`), never by file name: files may have been sorted
and renamed. Jobs that change a store back it up first (``store.backup()``) and make their change
in one transaction.

Face indices after ``remove_faces``: by default the remaining faces keep their indices (gaps are
allowed), so every other PNG and faceset cut from the store stays valid and nothing else is
rewritten. With ``reindex=True`` the faces of each affected frame are renumbered 0..n-1 in their
old order, and the PNG record of every renumbered face left in the folder is rewritten to match
(and its file renamed when it carried the canonical name).
"""

from __future__ import annotations

import dataclasses
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from faceplate.core.errors import InputError, OutputError, RecordError
from faceplate.core.types import VIDEO_FIRST_FRAME, Centering, FaceRecord, FrameInfo
from faceplate.faceset.frames import frames_with_pixels
from faceplate.faceset.match import face_key, index_store_faces, record_matches
from faceplate.io.paths import ensure_output_dir

Progress = Callable[[int], None] | None


# --------------------------------------------------------------------------- remove-faces


@dataclass(frozen=True)
class RemoveReport:
    """What :func:`remove_faces` did.

    Attributes:
        kept: Store faces that still have a PNG.
        removed: ``(frame_index, face_index)`` of the faces deleted from the store.
        unmatched: PNGs whose record is not a face of this store (left alone).
        bad: PNGs without a readable record, with the reason.
        renumbered: Faces whose index changed (``reindex`` only), old key → new key.
        rewritten: PNGs whose record was rewritten (``reindex`` only).
        backup: The backup written before the change (None when nothing changed).
    """

    kept: int
    removed: list[tuple[int, int]]
    unmatched: list[Path]
    bad: list[tuple[Path, str]]
    renumbered: dict[tuple[int, int], tuple[int, int]] = field(default_factory=dict)
    rewritten: list[Path] = field(default_factory=list)
    backup: Path | None = None


def remove_faces(store: Any, faces_dir: Path, *, reindex: bool = False) -> RemoveReport:
    """Delete from ``store`` every face that has no PNG left in ``faces_dir``.

    Args:
        store: An open, writable ``AlignmentsStore``.
        faces_dir: The face folder cut from that store (after the user deleted faces).
        reindex: Renumber the remaining faces of affected frames 0..n-1 and rewrite their PNG
            records (see the module docstring).

    Raises:
        InputError: ``faces_dir`` is missing, or none of its faces belongs to the store (so a
            wrong folder never empties a store).
    """
    from faceplate.io.faceset import face_filename, read_face_png, scan_faceset, write_face_png

    good, bad = scan_faceset(faces_dir)
    store_faces = index_store_faces(store)
    present: set[tuple[int, int]] = set()
    unmatched: list[Path] = []
    files_of: dict[tuple[int, int], list[Path]] = {}
    for path, meta in good:
        k = face_key(meta.record)
        if record_matches(meta.record, store_faces.get(k)):
            present.add(k)
            files_of.setdefault(k, []).append(path)
        else:
            unmatched.append(path)
    if store_faces and not present:
        raise InputError(f"none of the {len(good)} face image(s) in the folder belongs to "
                         f"{store.path}; nothing removed", faces_dir)
    gone = sorted(set(store_faces) - present)
    if not gone:
        return RemoveReport(len(present), [], unmatched, bad)
    backup = store.backup()
    frames_hit = sorted({fi for fi, _ in gone})
    gone_set = set(gone)
    batch: list[tuple[FrameInfo, list[FaceRecord]]] = []
    renumbered: dict[tuple[int, int], tuple[int, int]] = {}
    for fi in frames_hit:
        info = store.frame(fi)
        left = [r for r in store.faces(fi) if face_key(r) not in gone_set]
        if reindex:
            new_left = []
            for new_i, r in enumerate(left):
                if r.face_index != new_i:
                    renumbered[face_key(r)] = (fi, new_i)
                    r = dataclasses.replace(r, face_index=new_i)
                new_left.append(r)
            left = new_left
        batch.append((info, left))
    store.put_frames(batch)  # one transaction
    rewritten: list[Path] = []
    for old, new in sorted(renumbered.items()):
        for path in files_of.get(old, []):
            image, meta = read_face_png(path)
            old_name = face_filename(meta.record)
            rec = dataclasses.replace(meta.record, face_index=new[1])
            write_face_png(path, image, dataclasses.replace(meta, record=rec))
            target = path.with_name(face_filename(rec))
            if path.name == old_name and not target.exists():
                os.rename(path, target)
                path = target
            rewritten.append(path)
    return RemoveReport(len(present), gone, unmatched, bad, renumbered, rewritten, backup)


# --------------------------------------------------------------------------- rename


@dataclass(frozen=True)
class RenameReport:
    """What :func:`rename_faces` did: ``renamed`` (old → new), ``unchanged``, ``skipped``."""

    renamed: list[tuple[Path, Path]]
    unchanged: int
    skipped: list[tuple[Path, str]]


def rename_faces(faces_dir: Path, store: Any = None) -> RenameReport:
    """Rename every face PNG to ``<frame stem>_<face index>.png`` without overwriting anything.

    Files are first moved to unique temporary names in the same folder, then to their targets,
    so swaps and cycles (a.png ↔ b.png) work. A target taken by a file that is not being renamed,
    or wanted by two files (duplicate faces), is skipped and reported; the file keeps its name.

    Args:
        faces_dir: The face folder.
        store: Optional open store: when given, faces whose record is not in it are skipped.
    """
    from faceplate.io.faceset import face_filename, scan_faceset

    good, bad = scan_faceset(faces_dir)
    skipped: list[tuple[Path, str]] = list(bad)
    store_faces = index_store_faces(store) if store is not None else None
    plan: dict[Path, Path] = {}
    taken_by: dict[str, Path] = {}
    unchanged = 0
    for path, meta in good:
        if store_faces is not None and not record_matches(
                meta.record, store_faces.get(face_key(meta.record))):
            skipped.append((path, "its record is not a face of the store"))
            continue
        name = face_filename(meta.record)
        if name in taken_by:
            skipped.append((path, f"{name} is also the name of {taken_by[name].name}"))
            continue
        taken_by[name] = path
        if path.name == name:
            unchanged += 1
        else:
            plan[path] = path.with_name(name)
    moving = set(plan)
    final: dict[Path, Path] = {}
    for src, dst in plan.items():
        if dst.exists() and dst not in moving:
            skipped.append((src, f"{dst.name} exists"))
        else:
            final[src] = dst
    tag = uuid.uuid4().hex[:8]
    temps: list[tuple[Path, Path, Path]] = []
    try:
        for n, (src, dst) in enumerate(sorted(final.items())):
            tmp = src.with_name(f".faceplate-rename-{tag}-{n}.png")
            os.rename(src, tmp)
            temps.append((src, tmp, dst))
        renamed: list[tuple[Path, Path]] = []
        for src, tmp, dst in temps:
            if dst.exists():  # appeared meanwhile: never overwrite, put the file back
                os.rename(tmp, src)
                skipped.append((src, f"{dst.name} exists"))
                continue
            os.rename(tmp, dst)
            renamed.append((src, dst))
    except OSError as err:
        for src, tmp, _ in temps:  # best effort: restore names of files still in limbo
            if tmp.exists() and not src.exists():
                os.rename(tmp, src)
        raise OutputError(f"renaming failed ({err.strerror or err})", faces_dir) from None
    return RenameReport(renamed, unchanged, skipped)


# --------------------------------------------------------------------------- from-faces


@dataclass(frozen=True)
class FromFacesReport:
    """What :func:`from_faces` wrote.

    Attributes:
        frames: Frames in the new store (only frames that still have a face).
        faces: Faces written.
        duplicates: PNGs whose face was already taken from another PNG (same record).
        conflicts: PNGs with the same frame/face index as another but different landmarks
            (the first one read, by file name, was kept).
        bad: PNGs without a readable record.
        source: The input media path the faces came from.
    """

    frames: int
    faces: int
    duplicates: list[Path]
    conflicts: list[Path]
    bad: list[tuple[Path, str]]
    source: str


def _fps_from(infos: list[FrameInfo]) -> float | None:
    """Frame rate implied by the timestamps of frames (median of index / time steps)."""
    pts = sorted((i.index, i.timestamp) for i in infos if i.timestamp is not None)
    rates = [(b[0] - a[0]) / (b[1] - a[1]) for a, b in zip(pts, pts[1:])
             if b[1] > a[1] and b[0] > a[0]]
    if not rates:
        return None
    rates.sort()
    return float(rates[len(rates) // 2])


def from_faces(faces_dir: Path, store_path: Path) -> FromFacesReport:
    """Build a new alignments store from the records inside a face folder.

    Frames are reconstructed from the records (index, name, timestamp) and the faces' source
    metadata (frame size, input path); the frame rate is derived from the timestamps. Frames that
    have no face in the folder cannot be recovered (they are absent, not "processed, no face").

    Raises:
        InputError: No face in the folder, or faces from several input clips.
        OutputError: ``store_path`` exists already (never overwritten).
        RecordError: Two faces claim the same frame index with different frame names.
    """
    from faceplate.io.faceset import scan_faceset
    from faceplate.io.media import frame_number_from_name, sequence_numbers
    from faceplate.io.store import AlignmentsStore

    store_path = Path(store_path)
    if store_path.exists():
        raise OutputError("exists already; from-faces writes a new store only", store_path)
    good, bad = scan_faceset(faces_dir)
    if not good:
        raise InputError("no face image with a Faceplate record in the folder", faces_dir)
    sources = sorted({str(m.source["source"]) for _, m in good})
    if len(sources) > 1:
        raise InputError(f"faces from {len(sources)} different clips ({', '.join(sources[:4])}); "
                         "a store holds one clip: split the folder first", faces_dir)
    first = good[0][1].source
    width, height = int(first["frame_width"]), int(first["frame_height"])
    is_video = bool(first["is_video"])
    infos: dict[int, FrameInfo] = {}
    faces: dict[tuple[int, int], FaceRecord] = {}
    duplicates: list[Path] = []
    conflicts: list[Path] = []
    for path, meta in good:
        rec = meta.record
        if (meta.source["frame_width"], meta.source["frame_height"]) != (width, height):
            raise InputError(f"{path.name} comes from a {meta.source['frame_width']}×"
                             f"{meta.source['frame_height']} frame, others from {width}×{height}",
                             faces_dir)
        info = infos.get(rec.frame_index)
        if info is None:
            info = FrameInfo(index=rec.frame_index, name=rec.frame_name, timestamp=rec.timestamp,
                             width=width, height=height, frame_number=rec.frame_index)
            infos[rec.frame_index] = info
        elif info.name != rec.frame_name:
            raise RecordError(f"frame {rec.frame_index} is called {info.name!r} in one face and "
                              f"{rec.frame_name!r} in another", path)
        k = face_key(rec)
        if k in faces:
            (duplicates if record_matches(rec, faces[k]) else conflicts).append(path)
            continue
        faces[k] = rec
    # Frame numbers as the media readers give them: a video's from VIDEO_FIRST_FRAME, a
    # sequence's from its file names (positions when those do not number it uniquely).
    order = sorted(infos)
    numbers = ([i + VIDEO_FIRST_FRAME for i in order] if is_video else
               sequence_numbers([frame_number_from_name(infos[i].name) for i in order]) or order)
    infos = {i: dataclasses.replace(infos[i], frame_number=n) for i, n in zip(order, numbers)}
    batch = []
    for fi in sorted(infos):
        recs = sorted((r for k, r in faces.items() if k[0] == fi), key=lambda r: r.face_index)
        batch.append((infos[fi], recs))
    try:
        with AlignmentsStore.open(store_path, create=True) as store:
            store.set_meta("source", sources[0])
            store.set_meta("width", width)
            store.set_meta("height", height)
            store.set_meta("fps", _fps_from(list(infos.values())))
            store.set_meta("kind", "video" if is_video else "sequence")
            store.set_meta("from_faces", str(faces_dir))
            store.put_frames(batch)
    except BaseException:
        for suffix in ("", "-wal", "-shm"):
            Path(str(store_path) + suffix).unlink(missing_ok=True)
        raise
    return FromFacesReport(len(batch), len(faces), duplicates, conflicts, bad, sources[0])


# --------------------------------------------------------------------------- extract


@dataclass(frozen=True)
class ExtractReport:
    """What :func:`extract_faces` wrote: frames read, faces written, files, seconds."""

    frames: int
    faces: int
    files: list[Path]
    seconds: float


def extract_faces(store: Any, source: Any, out_dir: Path, *, size: int = 512,
                  centering: Centering = "face", frames: Callable[[int], bool] | None = None,
                  compress_level: int = 1, progress: Progress = None) -> ExtractReport:
    """Re-cut the aligned faces of a store from its clip into ``out_dir``.

    Each face is warped with ``crop_matrix(record.landmarks, size, centering)`` (as extraction
    does) and written as ``<frame stem>_<face index>.png`` carrying its full record.

    Args:
        store: An open ``AlignmentsStore``.
        source: The open ``FrameSource`` of the clip the store was made from.
        out_dir: Output folder (created; files of the same name are replaced).
        size: Face side in pixels.
        centering: "face", "whole_face" or "head".
        frames: Predicate on frame indices; ``None`` = all.
        compress_level: PNG zlib level.
        progress: Called with 1 after each frame.

    Raises:
        InputError: The input does not match the store.
        OutputError: ``out_dir`` cannot be written.
    """
    from faceplate.extract.crops import aligned_face
    from faceplate.io.faceset import FaceMeta, face_filename, write_face_png

    t0 = time.perf_counter()
    ensure_output_dir(out_dir)
    src_meta = {"store": str(store.path), "source": str(source.path),
                "frame_width": int(source.width), "frame_height": int(source.height),
                "is_video": source.kind == "video"}
    wanted = [(i, f) for i, f in store.iter_frames() if f and (frames is None or frames(i.index))]
    files: list[Path] = []
    n_frames = 0
    for _info, faces, frame in frames_with_pixels(source, wanted, store.path):
        for rec in faces:
            af = aligned_face(frame.rgb, rec, size, centering)
            meta = FaceMeta(record=rec, matrix=af.matrix, size=size, centering=centering,
                            source=src_meta)
            path = out_dir / face_filename(rec)
            write_face_png(path, af.image, meta, compress_level=compress_level)
            files.append(path)
        n_frames += 1
        if progress is not None:
            progress(1)
    return ExtractReport(n_frames, len(files), files, time.perf_counter() - t0)
