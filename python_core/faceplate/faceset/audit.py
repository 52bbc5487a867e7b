"""Store audits: frames the store lacks, frames without faces, frames with several faces.

Each audit returns :class:`AuditItem` rows (frame index, frame name, face count); the CLI prints
them, writes them to a list file, or (``multi-faces``) moves the matching face PNGs aside.
``no-faces`` also gives, for each frame, the face candidates extraction found there and
dropped, with the reason each was dropped (:func:`describe`).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from faceplate.core.errors import InputError, OutputError
from faceplate.core.types import Rejection
from faceplate.faceset.match import face_key, index_store_faces, record_matches


@dataclass(frozen=True)
class AuditItem:
    """One frame an audit reports.

    Attributes:
        index: Frame index in the clip.
        name: Frame name (store key; for missing frames the name the input gives it).
        faces: Faces the store holds for it (0 for missing frames).
        reasons: For ``no-faces``: each dropped candidate of the frame, described by
            :func:`describe`.
    """

    index: int
    name: str
    faces: int
    reasons: tuple[str, ...] = ()


def _input_frame_name(source: Any, index: int) -> str:
    from faceplate.io.media import frame_name_for

    files = getattr(source, "files", None)
    if files is not None:
        return frame_name_for(files[index])
    return frame_name_for(source.path, index)


def missing_frames(store: Any, source: Any) -> list[AuditItem]:
    """Frames of the input (every frame, before sampling) that the store has not processed.

    Args:
        store: An open ``AlignmentsStore``.
        source: The open ``FrameSource`` of the clip.
    """
    processed = store.done_frame_indices()
    done = {info.frame_number for info in store.frames() if info.index in processed}
    return [AuditItem(i, _input_frame_name(source, i), 0)
            for i in range(source.total_frames) if source.number_of(i) not in done]


def describe(r: Rejection) -> str:
    """One line for a dropped candidate: who proposed it, where, and why it was dropped,
    e.g. ``"centerface 0.71 at (412, 233) 180×180 px: verify: BlazeFace does not see a face
    here (best 0.31 < 0.50)"``."""
    cx, cy = r.bbox.center
    return (f"{r.detector} {r.score:.2f} at ({cx:.0f}, {cy:.0f}) {r.bbox.w:.0f}×{r.bbox.h:.0f} "
            f"px: {r.stage}: {r.reason}")


def no_faces(store: Any) -> list[AuditItem]:
    """Frames processed with zero faces, in index order, with their dropped candidates."""
    done = store.done_frame_indices()
    counts = store.rejection_counts()
    return [AuditItem(info.index, info.name, 0,
                      tuple(describe(r) for r in store.rejections(info.index))
                      if counts.get(info.index) else ())
            for info, faces in store.iter_frames() if not faces and info.index in done]


def multi_faces(store: Any, minimum: int = 2) -> list[AuditItem]:
    """Frames holding at least ``minimum`` faces, in index order."""
    return [AuditItem(info.index, info.name, len(faces)) for info, faces in store.iter_frames()
            if len(faces) >= minimum]


def write_list(items: list[AuditItem], out: Path, with_counts: bool = False) -> None:
    """Write one frame name per line (``name<TAB>faces`` with ``with_counts``).

    Raises:
        OutputError: The file cannot be written.
    """
    lines = [f"{it.name}\t{it.faces}" if with_counts else it.name for it in items]
    try:
        out.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    except OSError as err:
        raise OutputError(f"cannot write the list ({err.strerror})", out) from None


def move_frame_faces(store: Any, faces_dir: Path, frame_indices: set[int],
                     dest: Path) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Move the face PNGs of the given frames from ``faces_dir`` into ``dest``.

    Faces are matched by the records inside the PNGs (frame index, face index and landmarks
    equal to the store's), never by file name. A file whose name is taken in ``dest`` is left in
    place and reported.

    Returns:
        ``(moved destinations, skipped (path, reason))``; unreadable PNGs are skipped too.

    Raises:
        InputError: ``faces_dir`` is not a folder.
        OutputError: ``dest`` cannot be created.
    """
    from faceplate.io.faceset import scan_faceset

    if not faces_dir.is_dir():
        raise InputError("face folder not found", faces_dir)
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError(f"cannot create the folder ({err.strerror})", dest) from None
    good, bad = scan_faceset(faces_dir)
    store_faces = index_store_faces(store)
    moved: list[Path] = []
    skipped: list[tuple[Path, str]] = [(p, str(r)) for p, r in bad]
    for path, meta in good:
        rec = meta.record
        if rec.frame_index not in frame_indices:
            continue
        if not record_matches(rec, store_faces.get(face_key(rec))):
            skipped.append((path, "its record is not a face of the store"))
            continue
        target = dest / path.name
        if target.exists():
            skipped.append((path, f"{target} exists"))
            continue
        try:
            shutil.move(str(path), str(target))
        except OSError as err:
            raise OutputError(f"cannot move {path.name} ({err.strerror})", target) from None
        moved.append(target)
    return moved, skipped
