"""What ``faceplate studio PATH [PATH ...]`` opens: alignments stores and faceset folders.

A PATH is an alignments store (``*.fpstore``), a faceset folder (face PNGs), or a folder holding
both (``make demo``'s ``demo_out``: searched three levels deep, hidden folders and the trash
skipped). Only these documents are reachable from the page: it names documents and faces by
number, never by path. The one file read that no PATH names is each store's own clip (its
``source`` meta), and only through the media readers, as decoded frames.

Facesets cut from an open store are linked to it: a face edited in the store has its PNG
rewritten in every open faceset that holds it.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from faceplate.core.errors import FaceplateError, InputError
from faceplate.core.geometry import crop_matrix
from faceplate.core.types import Frame
from faceplate.extract.crops import warp_to_crop
from faceplate.io.faceset import FaceMeta, face_filename, write_face_png
from faceplate.io.store import STORE_SUFFIX, FaceState
from faceplate.studio.facesets import FacesetDoc, StudioFace, is_faceset_folder
from faceplate.studio.stores import StoreDoc

#: How deep a folder PATH is searched for stores and facesets.
SEARCH_DEPTH = 3


class Workspace:
    """The open documents. Build with :meth:`open`; :meth:`close` releases every file."""

    def __init__(self) -> None:
        self.stores: list[StoreDoc] = []
        self.facesets: list[FacesetDoc] = []
        self.problems: list[str] = []
        self.roots: list[Path] = []

    @classmethod
    def open(cls, paths: list[Path], progress: Any = None, *,
             prefetch_frames: bool = True, warm_thumbnails: bool = True) -> Workspace:
        """Open every store and faceset under ``paths``.

        A PATH given by name that cannot be used (missing, a file that is not a store, a store
        that is corrupt) raises; a store or faceset found inside a folder that cannot be used is
        listed in :attr:`problems` and left out, so one bad file does not keep the rest closed.

        ``prefetch_frames`` off keeps each clip from being decoded ahead into the frame cache
        (see :meth:`StoreDoc.frame_jpeg`); ``warm_thumbnails`` off keeps each faceset's
        thumbnails from being made ahead in the background.

        Raises:
            InputError / StoreError: A PATH given by name is unusable (nothing is changed).
        """
        ws = cls()
        store_paths: list[Path] = []
        faceset_paths: list[Path] = []
        named_stores: set[Path] = set()
        for raw in paths:
            p = Path(raw).expanduser()
            if not p.exists():
                raise InputError("no such file or folder", p)
            p = p.resolve()
            ws.roots.append(p)
            if p.is_file():
                if p.suffix != STORE_SUFFIX:
                    raise InputError(f"not an alignments store ({STORE_SUFFIX}) or a faceset "
                                     "folder", p)
                store_paths.append(p)
                named_stores.add(p)
            else:
                found_s, found_f = _search(p)
                if not found_s and not found_f:
                    raise InputError("holds no alignments store and no faceset", p)
                store_paths += found_s
                faceset_paths += found_f
        try:
            for sp in dict.fromkeys(store_paths):
                if ".bak" in sp.suffixes:
                    continue
                try:
                    ws.stores.append(StoreDoc(sp, len(ws.stores), prefetch=prefetch_frames))
                except FaceplateError as err:
                    if sp in named_stores:
                        raise
                    ws.problems.append(str(err))
            for fp in dict.fromkeys(faceset_paths):
                try:
                    doc = FacesetDoc(fp, len(ws.facesets), warm=warm_thumbnails)
                except FaceplateError as err:
                    ws.problems.append(str(err))
                    continue
                if not doc.faces:
                    ws.problems.append(f"{fp}: no Faceplate face in this folder")
                    doc.close()
                    continue
                ws.facesets.append(doc)
                if progress is not None:
                    progress(doc)
        except BaseException:
            ws.close()
            raise
        for st in ws.stores:
            st.png_sync = ws.sync_pngs
        ids = ws.store_ids()
        for fs in ws.facesets:  # encode the record columns now, not on the page's first load
            fs.summary_json(ids, {})
        return ws

    def close(self) -> None:
        for s in self.stores:
            s.close()
        for f in self.facesets:
            f.close()

    def store(self, i: int) -> StoreDoc:
        if not 0 <= i < len(self.stores):
            raise InputError(f"no store {i}")
        return self.stores[i]

    def faceset(self, i: int) -> FacesetDoc:
        if not 0 <= i < len(self.facesets):
            raise InputError(f"no faceset {i}")
        return self.facesets[i]

    def store_ids(self) -> dict[str, int]:
        return {str(s.path): s.id for s in self.stores}

    def documents(self) -> dict[str, Any]:
        return {
            "stores": [{"id": s.id, "name": s.path.name, "path": str(s.path)}
                       for s in self.stores],
            "facesets": [{"id": f.id, "name": _label(f.folder, self.roots), "path": str(f.folder),
                          "count": len(f.faces)} for f in self.facesets],
            "problems": self.problems,
        }

    # ----------------------------------------------------------------------- PNG rewrite

    def _linked(self, store: StoreDoc) -> list[FacesetDoc]:
        out = []
        for fs in self.facesets:
            if any(_same(f.meta.source.get("store", ""), store.path) for f in fs.faces):
                out.append(fs)
        return out

    def sync_pngs(self, store: StoreDoc, states: list[tuple[int, int, FaceState | None]],
                  frame: Frame | None) -> None:
        """Rewrite the face PNGs of the open facesets after a store change.

        A changed face gets its crop cut again from the frame with its new landmarks (at its
        faceset's size and centering) and its new record; a removed face goes to its faceset's
        trash; an added face is written into the faceset holding most of this store's faces.
        """
        linked = self._linked(store)
        for fi, xi, state in states:
            holders: list[tuple[FacesetDoc, StudioFace]] = []
            for fs in linked:
                for f in fs.faces:
                    r = f.meta.record
                    if (r.frame_index, r.face_index) == (fi, xi) \
                            and _same(f.meta.source.get("store", ""), store.path):
                        holders.append((fs, f))
            if state is None:
                for fs, f in holders:
                    if not f.trashed:
                        fs.trash_linked(f)
                continue
            if frame is None or frame.info.index != fi:
                frame = store.frame(fi)
            if not holders and linked:
                home = max(linked, key=lambda fs: sum(
                    _same(f.meta.source.get("store", ""), store.path) for f in fs.faces))
                template = next(f for f in home.faces
                                if _same(f.meta.source.get("store", ""), store.path))
                holders = [(home, home.add_face(face_filename(state.record), template.meta))]
            for fs, f in holders:
                meta = f.meta
                m = crop_matrix(state.record.landmarks, meta.size, meta.centering)
                crop = warp_to_crop(frame.rgb, m, meta.size)
                new_meta = dataclasses.replace(meta, record=state.record, matrix=m)
                if f.trashed:
                    fs.untrash_linked(f)
                write_face_png(fs.path_of(f), crop, new_meta)
                fs.update_meta(f, new_meta)


def _same(a: str, b: Path) -> bool:
    if not a:
        return False
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _label(folder: Path, roots: list[Path]) -> str:
    for r in roots:
        try:
            rel = folder.relative_to(r)
        except ValueError:
            continue
        return str(rel) if str(rel) != "." else folder.name
    return folder.name


def _search(root: Path) -> tuple[list[Path], list[Path]]:
    stores: list[Path] = []
    facesets: list[Path] = []

    def walk(d: Path, depth: int) -> None:
        try:
            entries = sorted(d.iterdir())
        except OSError:
            return
        if d != root and is_faceset_folder(d):
            facesets.append(d)
        for e in entries:
            if e.name.startswith("."):
                continue
            if e.is_file() and e.suffix == STORE_SUFFIX:
                stores.append(e)
            elif e.is_dir() and depth < SEARCH_DEPTH:
                walk(e, depth + 1)

    if is_faceset_folder(root):
        facesets.append(root)
    walk(root, 0)
    return stores, facesets


__all__ = ["FaceMeta", "Workspace"]
