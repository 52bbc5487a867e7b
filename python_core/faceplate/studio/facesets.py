"""A faceset folder as the Studio sees it: its faces, thumbnails, sort keys, trash, tags, history.

Faces are the folder's face PNGs (:mod:`faceplate.io.faceset`), read once when the Studio opens
the folder (metadata only) and numbered in file-name order; that number is the face's id in the
API. Deleting moves a face into ``<faceset>/.trash/`` (restorable); tags and the undo/redo log of
these file operations live in ``<faceset>/.faceplate-studio.db`` (SQLite, no pickle), so history
survives a restart; so do the thumbnails (made once from each PNG, kept with the PNG's size and
modification time, remade when the PNG changes). Both names start with a dot, so ``faceplate
sort`` and the faceset jobs never see them as faces.

Sorting and grouping call the registry :data:`faceplate.faceset.sort_keys.SORT_KEYS` (the same
code as ``faceplate sort``), on the faces in memory, without moving files.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from faceplate.core.errors import FaceplateError, InputError, OutputError, StoreConflictError
from faceplate.core.geometry import matrix_scale, template_matrix
from faceplate.faceset.sort_keys import SORT_KEYS, SortFace, SortKey
from faceplate.io.faceset import FaceMeta, decode_face_pixels, read_face_png, scan_faceset

TRASH_DIR = ".trash"
JOURNAL_NAME = ".faceplate-studio.db"
THUMB_SIZE = 128
#: Thumbnails kept in memory per faceset (JPEG bytes, about 4 KB each).
THUMB_CACHE = 50_000


@dataclass
class StudioFace:
    """One face of a faceset in the Studio (a file in the folder, or in its trash)."""

    id: int
    name: str
    meta: FaceMeta
    trashed: bool = False
    tags: set[str] = field(default_factory=set)

    @property
    def key(self) -> str:
        """Stable key across renames: ``<frame name>#<face index>``."""
        r = self.meta.record
        return f"{r.frame_name}#{r.face_index}"


class FacesetDoc:
    """One faceset folder opened in the Studio (thread-safe)."""

    def __init__(self, folder: Path, doc_id: int, *, warm: bool = False) -> None:
        self.folder = Path(folder).resolve()
        self.id = doc_id
        self.lock = threading.RLock()
        self._db_lock = threading.Lock()
        self._stop = threading.Event()
        self._warmer: threading.Thread | None = None
        self.trash = self.folder / TRASH_DIR
        good, bad = scan_faceset(self.folder)
        trashed: list[tuple[Path, FaceMeta]] = []
        if self.trash.is_dir():
            tg, _ = scan_faceset(self.trash)
            trashed = tg
        self.bad = [(p.name, why) for p, why in bad]
        entries = sorted([(p, m, False) for p, m in good] + [(p, m, True) for p, m in trashed],
                         key=lambda e: (e[0].name, e[2]))
        self.faces = [StudioFace(i, p.name, m, t) for i, (p, m, t) in enumerate(entries)]
        self.by_name = {(f.name, f.trashed): f for f in self.faces}
        self._thumbs: OrderedDict[int, bytes] = OrderedDict()
        self._measured: dict[str, np.ndarray] = {}
        self._db = self._open_journal()
        for key, tag in self._db.execute("SELECT face_key, tag FROM tags"):
            for f in self._by_key().get(key, []):
                f.tags.add(tag)
        self._sizes = [_face_size(f.meta) for f in self.faces]
        self._static_json: str | None = None
        if warm:
            self._warmer = threading.Thread(target=self._warm, name=f"studio-thumbs-{doc_id}",
                                            daemon=True)
            self._warmer.start()

    # ----------------------------------------------------------------------- journal

    def _open_journal(self) -> sqlite3.Connection:
        path = self.folder / JOURNAL_NAME
        try:
            db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA busy_timeout = 5000")
            db.execute("CREATE TABLE IF NOT EXISTS tags (face_key TEXT NOT NULL, tag TEXT NOT"
                       " NULL, PRIMARY KEY (face_key, tag))")
            db.execute("CREATE TABLE IF NOT EXISTS edits (id INTEGER PRIMARY KEY AUTOINCREMENT,"
                       " time REAL NOT NULL, label TEXT NOT NULL, state TEXT NOT NULL,"
                       " ops TEXT NOT NULL)")
            db.execute("CREATE TABLE IF NOT EXISTS thumbs (name TEXT PRIMARY KEY NOT NULL,"
                       " stamp TEXT NOT NULL, jpeg BLOB NOT NULL)")
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")
        except sqlite3.DatabaseError as err:
            raise InputError(f"cannot open the Studio journal of this faceset ({err})",
                             path) from None
        return db

    def close(self) -> None:
        self._stop.set()
        if self._warmer is not None:
            self._warmer.join(timeout=10)
        with self.lock, self._db_lock:
            self._db.execute("PRAGMA journal_mode = DELETE")
            self._db.close()

    def _by_key(self) -> dict[str, list[StudioFace]]:
        out: dict[str, list[StudioFace]] = {}
        for f in self.faces:
            out.setdefault(f.key, []).append(f)
        return out

    def path_of(self, face: StudioFace) -> Path:
        return (self.trash if face.trashed else self.folder) / face.name

    def face(self, face_id: int) -> StudioFace:
        if not 0 <= face_id < len(self.faces):
            raise InputError(f"no face {face_id} in this faceset", self.folder)
        return self.faces[face_id]

    # ----------------------------------------------------------------------- listing

    def summary_json(self, store_paths: dict[str, int], extra: dict[str, Any]) -> bytes:
        """The faceset as the page lists it, as JSON: one compact column per field.

        The columns that only change with a face's record (file name, frame, pose, score,
        size, store) are encoded once and kept; trash state, tags and faces per frame are
        encoded per call.
        """
        with self.lock:
            if self._static_json is None:
                recs = [f.meta.record for f in self.faces]
                resolved: dict[str, int | None] = {}
                for f in self.faces:
                    key = f.meta.source.get("store", "")
                    if key not in resolved:
                        resolved[key] = store_paths.get(_norm(key))
                static = {
                    "name": [f.name for f in self.faces],
                    "frame": [r.frame_index for r in recs],
                    "frame_name": [r.frame_name for r in recs],
                    "face": [r.face_index for r in recs],
                    "yaw": [round(float(r.yaw), 2) for r in recs],
                    "pitch": [round(float(r.pitch), 2) for r in recs],
                    "roll": [round(float(r.roll), 2) for r in recs],
                    "score": [round(float(r.score), 3) for r in recs],
                    "size": self._sizes,
                    "store": [resolved[f.meta.source.get("store", "")] for f in self.faces],
                }
                self._static_json = json.dumps(static, separators=(",", ":"))[1:-1]
            frames: dict[tuple[str, str], int] = {}
            keys = [(f.meta.source.get("store", ""), f.meta.record.frame_name)
                    for f in self.faces]
            for f, k in zip(self.faces, keys):
                frames[k] = frames.get(k, 0) + (0 if f.trashed else 1)
            dynamic = {
                "faces_in_frame": [frames[k] for k in keys],
                "trashed": [f.trashed for f in self.faces],
                "tags": [sorted(f.tags) for f in self.faces],
            }
            head = {"id": self.id, "kind": "faceset", "path": str(self.folder),
                    "name": self.folder.name, "count": len(self.faces), "bad": self.bad,
                    "undo": self.history_counts(), **extra}
            text = (json.dumps(head, separators=(",", ":"))[:-1] + ',"columns":{'
                    + self._static_json + "," + json.dumps(dynamic, separators=(",", ":"))[1:]
                    + "}")
            return text.encode()

    # ----------------------------------------------------------------------- thumbnails

    def cached_thumbnail(self, face_id: int) -> bytes | None:
        """The face's thumbnail when it is in memory (no file or database access)."""
        with self.lock:
            hit = self._thumbs.get(face_id)
            if hit is not None:
                self._thumbs.move_to_end(face_id)
            return hit

    def thumbnail(self, face_id: int) -> bytes:
        """A THUMB_SIZE px JPEG of the face: from memory, else from the journal's cache when
        the PNG is unchanged, else made from the PNG (and kept in both)."""
        hit = self.cached_thumbnail(face_id)
        if hit is not None:
            return hit
        with self.lock:
            face = self.face(face_id)
            path = self.path_of(face)
        try:
            st = path.stat()
        except OSError:
            raise InputError("the face image is missing", path) from None
        stamp = f"{st.st_size}:{st.st_mtime_ns}"
        with self._db_lock:
            row = self._db.execute("SELECT stamp, jpeg FROM thumbs WHERE name = ?",
                                   (face.name,)).fetchone()
        if row is not None and row[0] == stamp:
            out = bytes(row[1])
        else:
            out = _make_thumbnail(path, face.meta)
            with self._db_lock:
                self._db.execute("INSERT OR REPLACE INTO thumbs(name, stamp, jpeg) VALUES"
                                 " (?, ?, ?)", (face.name, stamp, out))
        with self.lock:
            self._thumbs[face_id] = out
            if len(self._thumbs) > THUMB_CACHE:
                self._thumbs.popitem(last=False)
        return out

    def thumbnails(self, ids: list[int]) -> list[bytes | None]:
        """Thumbnails of many faces (None where one cannot be made)."""
        out: list[bytes | None] = []
        for i in ids:
            try:
                out.append(self.thumbnail(i))
            except FaceplateError:
                out.append(None)
        return out

    def _warm(self) -> None:
        """Background: make (or load) every thumbnail once, in face order."""
        for f in list(self.faces):
            if self._stop.is_set():
                return
            try:
                self.thumbnail(f.id)
            except (FaceplateError, sqlite3.Error):
                continue

    def forget_thumbnail(self, face_id: int) -> None:
        with self.lock:
            self._thumbs.pop(face_id, None)

    def image(self, face_id: int) -> tuple[np.ndarray, FaceMeta]:
        """The face's full aligned crop (size×size×3 uint8 sRGB) and metadata."""
        with self.lock:
            path = self.path_of(self.face(face_id))
        return read_face_png(path)

    # ----------------------------------------------------------------------- sort

    def measure(self, key: str) -> np.ndarray:
        """Every face's measurement for sort key ``key`` (cached; the sort registry's code)."""
        with self.lock:
            hit = self._measured.get(key)
            if hit is not None:
                return hit
            sk: SortKey = SORT_KEYS.create(key, SORT_KEYS.default_config(key))
            faces = [SortFace(self.path_of(f), f.meta) for f in self.faces]
        values = sk.measure_all(faces)
        with self.lock:
            self._measured[key] = values
        return values

    def sort(self, key: str, group: bool, bins: int | None) -> dict[str, Any]:
        """Order (a permutation of face ids) and, with ``group``, bins with their names."""
        if key not in SORT_KEYS.names():
            raise InputError(f"unknown sort key {key!r}; one of {', '.join(SORT_KEYS.names())}")
        sk = SORT_KEYS.create(key, SORT_KEYS.default_config(key))
        values = self.measure(key)
        order = sk.order(values).tolist() if len(values) else []
        out: dict[str, Any] = {"key": key, "order": order}
        if values.ndim == 1:
            out["values"] = [None if not np.isfinite(v) else round(float(v), 4) for v in values]
        if group and len(values):
            groups = sk.group(values, bins)
            out["groups"] = [{"name": g.name, "ids": list(g.indices)} for g in groups]
        return out

    def duplicates(self, threshold: int = 6) -> list[list[int]]:
        """Near-duplicate groups: faces whose 64-bit difference hash differs in ≤ threshold bits.

        The hash compares neighbouring pixels of a 9×8 grey thumbnail; consecutive video frames
        of a still head fall together. Groups of two or more, largest first.
        """
        hashes: list[np.ndarray | None] = []
        for f in self.faces:
            if f.trashed:
                hashes.append(None)
                continue
            jpg = self.thumbnail(f.id)
            grey = cv2.imdecode(np.frombuffer(jpg, np.uint8), cv2.IMREAD_GRAYSCALE)
            if grey is None:
                hashes.append(None)
                continue
            small = cv2.resize(grey, (9, 8), interpolation=cv2.INTER_AREA).astype(np.int16)
            hashes.append(np.packbits((small[:, 1:] > small[:, :-1]).ravel()))
        ids = [i for i, h in enumerate(hashes) if h is not None]
        if not ids:
            return []
        bits = np.unpackbits(np.stack([h for h in hashes if h is not None]),
                             axis=1).astype(bool)
        parent = list(range(len(ids)))

        def find(a: int) -> int:
            while parent[a] != a:
                parent[a] = parent[parent[a]]
                a = parent[a]
            return a

        for a in range(len(ids)):
            d = np.count_nonzero(bits[a + 1:] != bits[a], axis=1)
            for b in np.flatnonzero(d <= threshold):
                ra, rb = find(a), find(a + 1 + int(b))
                if ra != rb:
                    parent[rb] = ra
        groups: dict[int, list[int]] = {}
        for k, i in enumerate(ids):
            groups.setdefault(find(k), []).append(i)
        return sorted((g for g in groups.values() if len(g) > 1), key=lambda g: (-len(g), g[0]))

    # ----------------------------------------------------------------------- store edits

    def trash_linked(self, face: StudioFace) -> None:
        """Move a face whose store face was deleted into the trash (the store logs the step)."""
        with self.lock:
            self._move(face, True)
            self.by_name.pop((face.name, False), None)
            self.by_name[(face.name, True)] = face
            self._measured.clear()

    def untrash_linked(self, face: StudioFace) -> None:
        with self.lock:
            self._move(face, False)
            self.by_name.pop((face.name, True), None)
            self.by_name[(face.name, False)] = face
            self._measured.clear()

    def add_face(self, name: str, like: FaceMeta) -> StudioFace:
        """A new face (added in the store) at the end of the list; its PNG is written next."""
        with self.lock:
            n, stem = 1, name[:-4] if name.endswith(".png") else name
            while (name, False) in self.by_name or (self.folder / name).exists():
                name = f"{stem}_{n}.png"
                n += 1
            face = StudioFace(len(self.faces), name, like)
            self.faces.append(face)
            self._sizes.append(_face_size(like))
            self._static_json = None
            self.by_name[(name, False)] = face
            self._measured.clear()
            return face

    def update_meta(self, face: StudioFace, meta: FaceMeta) -> None:
        with self.lock:
            face.meta = meta
            self._sizes[face.id] = _face_size(meta)
            self._static_json = None
            self._thumbs.pop(face.id, None)
            self._measured.clear()

    # ----------------------------------------------------------------------- edits

    def _move(self, face: StudioFace, to_trash: bool) -> None:
        src = self.path_of(face)
        dst_dir = self.trash if to_trash else self.folder
        dst = dst_dir / face.name
        if not src.exists():
            raise StoreConflictError(f"{face.name} is no longer where the Studio left it "
                                     "(moved by another program); nothing changed", src)
        if dst.exists():
            raise OutputError(f"a file of this name is already there; {face.name} was not "
                              "moved", dst)
        try:
            dst_dir.mkdir(exist_ok=True)
            os.rename(src, dst)
        except OSError as err:
            raise OutputError(f"cannot move {face.name} ({err.strerror or err})", dst) from None
        face.trashed = to_trash

    def _run_ops(self, ops: list[dict[str, Any]], forward: bool) -> None:
        seq = ops if forward else list(reversed(ops))
        done: list[dict[str, Any]] = []
        try:
            for op in seq:
                self._op(op, forward)
                done.append(op)
        except FaceplateError:
            for op in reversed(done):  # put back what this step already did
                self._op(op, not forward)
            raise

    def _op(self, op: dict[str, Any], forward: bool) -> None:
        if op["op"] == "trash":
            face = self.by_name.get((op["name"], not forward))
            if face is None:
                raise StoreConflictError(f"{op['name']} is not where the history expects it",
                                         self.folder)
            self._move(face, forward)
            self.by_name.pop((face.name, not forward), None)
            self.by_name[(face.name, forward)] = face
        elif op["op"] == "tag":
            on = op["on"] if forward else not op["on"]
            for f in self._by_key().get(op["key"], []):
                (f.tags.add if on else f.tags.discard)(op["tag"])
            if on:
                self._db.execute("INSERT OR IGNORE INTO tags(face_key, tag) VALUES (?, ?)",
                                 (op["key"], op["tag"]))
            else:
                self._db.execute("DELETE FROM tags WHERE face_key = ? AND tag = ?",
                                 (op["key"], op["tag"]))

    def _log(self, label: str, ops: list[dict[str, Any]]) -> None:
        self._db.execute("DELETE FROM edits WHERE state = 'undone'")
        self._db.execute("INSERT INTO edits(time, label, state, ops) VALUES (?, ?, 'done', ?)",
                         (time.time(), label, json.dumps(ops)))

    def trash_faces(self, ids: list[int], restore: bool = False) -> int:
        """Move faces to the trash (or back); one undoable step. Returns faces moved."""
        with self.lock:
            faces = [self.face(i) for i in ids]
            ops = [{"op": "trash", "name": f.name} for f in faces if f.trashed == restore]
            if not ops:
                return 0
            if restore:
                self._run_ops(ops, False)
                # a restore is logged as the inverse of a trash
                self._log(f"restore {len(ops)} face(s)", [{"op": "untrash", **o} for o in ops])
            else:
                self._run_ops(ops, True)
                self._log(f"delete {len(ops)} face(s)", ops)
            return len(ops)

    def tag_faces(self, ids: list[int], tag: str, on: bool) -> int:
        """Add or remove a tag on faces; one undoable step."""
        tag = tag.strip()
        if not tag or len(tag) > 64:
            raise InputError("a tag is 1..64 characters")
        with self.lock:
            faces = [self.face(i) for i in ids]
            keys = sorted({f.key for f in faces if (tag in f.tags) != on})
            ops = [{"op": "tag", "key": k, "tag": tag, "on": on} for k in keys]
            if not ops:
                return 0
            self._run_ops(ops, True)
            self._log(f"{'tag' if on else 'untag'} {len(ops)} face(s) {tag!r}", ops)
            return len(ops)

    def _entry_ops(self, ops: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], bool]:
        """(ops, forward) for replaying a logged entry forward; untrash entries run backward."""
        if ops and ops[0]["op"] == "untrash":
            return [{"op": "trash", "name": o["name"]} for o in ops], False
        return ops, True

    def step(self, undo: bool) -> str | None:
        """Undo (or redo) the latest step; returns its label, None when there is nothing."""
        with self.lock:
            row = self._db.execute(
                "SELECT id, label, ops FROM edits WHERE state = ? ORDER BY id "
                + ("DESC" if undo else "ASC") + " LIMIT 1",
                ("done" if undo else "undone",)).fetchone()
            if row is None:
                return None
            ops, forward = self._entry_ops(json.loads(row[2]))
            self._run_ops(ops, forward != undo)
            self._db.execute("UPDATE edits SET state = ? WHERE id = ?",
                             ("undone" if undo else "done", row[0]))
            return str(row[1])

    def history_counts(self) -> list[int]:
        rows = dict(self._db.execute("SELECT state, count(*) FROM edits GROUP BY state"))
        return [int(rows.get("done", 0)), int(rows.get("undone", 0))]


def _face_size(meta: FaceMeta) -> float:
    """The face's size in its frame (inner-face width in pixels, as the ``size`` sort key)."""
    return round(1.0 / matrix_scale(template_matrix(meta.record.landmarks)), 1)


def _make_thumbnail(path: Path, meta: FaceMeta) -> bytes:
    rgb = decode_face_pixels(path, meta)
    small = cv2.resize(rgb, (THUMB_SIZE, THUMB_SIZE), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", small[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 88])
    if not ok:
        raise InputError("cannot encode a thumbnail", path)
    return buf.tobytes()


def _norm(p: str) -> str:
    try:
        return str(Path(p).resolve()) if p else ""
    except OSError:
        return p


def is_faceset_folder(folder: Path, probe: int = 20) -> bool:
    """True when one of the folder's first ``probe`` PNGs is a Faceplate face."""
    from faceplate.io.faceset import read_face_meta

    try:
        pngs = sorted(p for p in folder.iterdir()
                      if p.suffix.lower() == ".png" and not p.name.startswith("."))[:probe]
    except OSError:
        return False
    for p in pngs:
        try:
            read_face_meta(p)
            return True
        except FaceplateError:
            continue
    return False


__all__ = ["FacesetDoc", "StudioFace", "is_faceset_folder"]
