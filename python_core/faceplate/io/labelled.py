"""Labelled faces: the face PNGs of faceset folders with the mask labels their stores hold.

A face PNG carries its record and names its alignments store (``FaceMeta.source["store"]``; a
relative path is looked up from the working folder, then beside the faceset folder and its
parent); the store keeps each face's mask labels (``face_notes.labels``,
:mod:`faceplate.core.labels`), drawn in the Studio or imported from mask images. The mask
trainer and ``faceplate mask eval`` both start here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from faceplate.core.errors import FaceplateError
from faceplate.io.faceset import FaceMeta, scan_faceset
from faceplate.io.store import AlignmentsStore


@dataclass(frozen=True)
class FaceKey:
    """A labelled face: its store (absolute path), frame index and face index."""

    store: str
    frame: int
    face: int

    def to_json(self) -> dict[str, object]:
        return {"store": self.store, "frame": self.frame, "face": self.face}


def face_store(path: Path, meta: FaceMeta) -> Path | None:
    """The alignments store a face PNG belongs to (None when it cannot be found)."""
    raw = meta.source.get("store")
    if not isinstance(raw, str) or not raw:
        return None
    p = Path(raw).expanduser()
    # where it was written, else beside the faceset folder or in it (the pair was moved)
    cands = ((p,) if p.is_absolute() else (p, path.parent / p, path.parent.parent / p)) \
        + (path.parent.parent / p.name, path.parent / p.name)
    for cand in cands:
        if cand.is_file():
            return cand.resolve()
    return None


def labelled_faces(folders: Sequence[Path]
                   ) -> tuple[list[tuple[Path, FaceMeta, FaceKey, dict[str, object]]],
                              list[tuple[Path, FaceMeta]], list[tuple[Path, str]]]:
    """Every face PNG of ``folders`` with the mask labels its store holds for it.

    Returns:
        ``(labelled, unlabelled, skipped)``: ``(path, meta, key, labels)`` of the labelled
        faces (sorted by store, frame, face; a face in two folders counts once), the faces
        without labels, and ``(path, reason)`` of files that are no usable face or whose store
        is missing.

    Raises:
        InputError: a folder is missing.
    """
    labelled: dict[FaceKey, tuple[Path, FaceMeta, FaceKey, dict[str, object]]] = {}
    unlabelled: list[tuple[Path, FaceMeta]] = []
    skipped: list[tuple[Path, str]] = []
    notes: dict[Path, dict[tuple[int, int], tuple[bool, object]]] = {}
    for folder in folders:
        good, bad = scan_faceset(Path(folder))
        skipped.extend(bad)
        for path, meta in good:
            store = face_store(path, meta)
            if store is None:
                skipped.append((path, f"its alignments store {meta.source.get('store')!r} is "
                                      "not found (labels live in the store)"))
                continue
            if store not in notes:
                try:
                    with AlignmentsStore.open(store, readonly=True, upgrade=True) as st:
                        notes[store] = st.notes()
                except FaceplateError as err:
                    skipped.append((path, f"cannot read its store: {err}"))
                    notes[store] = {}
                    continue
            rec = meta.record
            got = notes[store].get((int(rec.frame_index), int(rec.face_index)))
            if got is None or got[1] is None:
                unlabelled.append((path, meta))
                continue
            key = FaceKey(str(store), int(rec.frame_index), int(rec.face_index))
            labelled.setdefault(key, (path, meta, key, got[1]))  # type: ignore[arg-type]
    order = sorted(labelled, key=lambda k: (k.store, k.frame, k.face))
    return [labelled[k] for k in order], unlabelled, skipped


__all__ = ["FaceKey", "face_store", "labelled_faces"]
