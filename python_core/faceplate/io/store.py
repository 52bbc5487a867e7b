"""The alignments store: one SQLite file per clip (``<clip>.fpstore``).

Layout (schema version 2)::

    meta   (key TEXT PK, value TEXT JSON)
    frames (idx INTEGER PK, name TEXT UNIQUE, timestamp REAL NULL, frame_number INTEGER UNIQUE,
            width INTEGER, height INTEGER, processed INTEGER 0/1)
    faces  (frame_idx → frames.idx, face_idx, x, y, w, h REAL, landmarks BLOB,
            score, yaw, pitch, roll REAL, detector, aligner TEXT, identity BLOB NULL,
            thumbnail BLOB NULL; PK (frame_idx, face_idx))
    masks  ((frame_idx, face_idx) → faces, name TEXT, size INTEGER, centering TEXT,
            affine BLOB, data BLOB; PK (frame_idx, face_idx, name))

Schema version 3 (the Studio's edits) adds::

    face_notes (frame_idx, face_idx, pinned INTEGER 0/1, labels TEXT JSON NULL;
                PK (frame_idx, face_idx))     -- kept across put_frame of the same face index
    edits      (id INTEGER PK, time REAL, label TEXT, state 'done'|'undone', changes TEXT JSON)
    revision   (id = 0, n INTEGER)            -- bumped by triggers on every row change

``face_notes.labels`` are mask labels (layout and validator in :mod:`faceplate.core.labels`,
rasterised by :mod:`faceplate.extract.mask.labels`): vector polygons and brush strokes in
face-aligned coordinates with the frame → aligned matrix they were drawn in. ``edits`` is the
undo/redo log (:meth:`AlignmentsStore.edit`, :meth:`~AlignmentsStore.undo`,
:meth:`~AlignmentsStore.redo`): each entry holds every changed face's state before and after.
``revision.n`` changes whenever any program changes a frame, face, mask or note, so a writer
that read the store earlier can refuse to overwrite a change it has not seen
(:class:`~faceplate.core.errors.StoreConflictError`).

Schema version 4 (the detector's reasons) adds::

    rejections (frame_idx → frames.idx, n, x, y, w, h REAL, score REAL, detector TEXT,
                stage TEXT, reason TEXT; PK (frame_idx, n))

``rejections`` holds the face candidates a frame's extraction found and dropped, with the
reason (:class:`~faceplate.core.types.Rejection`): ``faceplate faceset no-faces`` shows them.

Blobs are raw little-endian arrays: landmarks 68×2 float32 (x, y frame pixels, x right, y down,
pixel centres at +0.5), identity 128 float32, affine 2×3 float64 (frame → mask pixels); mask
data is zlib ``uint8`` size×size. The file is marked with ``PRAGMA application_id`` and carries
its schema version in ``PRAGMA user_version`` and ``meta.schema_version``.

Frames: ``idx`` is the frame's position in the clip the store was extracted from (the key faces
and masks hang on); ``frame_number`` is the frame's own number, unique in a store, and the key
every reader uses to find a frame of an input or a host (:meth:`AlignmentsStore.frame_at`): a
numbered sequence's file number, a video's ``index + VIDEO_FIRST_FRAME`` (1-based, as Natron and
Nuke number a movie's frames), the host's frame for frames the OFX node analysed (see
:class:`faceplate.core.types.FrameInfo`).

Durability: WAL journal, ``synchronous=NORMAL``; every ``put_frame``/``put_frames`` call is one
committed transaction, so a process killed at any moment leaves a valid store holding every
committed frame with all its faces and masks. Every row read back goes through the same
validator as JSON and PNG records (:func:`faceplate.core.records.validate_record`).

Versions migrate forward: :attr:`AlignmentsStore.MIGRATIONS` ``[v]`` upgrades a file from
version ``v`` to ``v + 1``; a new version appends one function. A file newer than this code is
refused (:class:`SchemaVersionError`) and never modified.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar

import numpy as np

import faceplate
from faceplate.core.errors import (
    InputError,
    OutputError,
    RecordError,
    SchemaVersionError,
    StoreConflictError,
    StoreError,
)
from faceplate.core.labels import validate_labels
from faceplate.core.records import (
    check_frame_name,
    record_from_dict,
    record_to_dict,
    validate_record,
)
from faceplate.core.types import (
    VIDEO_FIRST_FRAME,
    BBox,
    FaceRecord,
    FrameInfo,
    Rejection,
    StoredMask,
)

STORE_SUFFIX = ".fpstore"
#: ``PRAGMA application_id`` of a Faceplate store: "FPLT".
APPLICATION_ID = 0x46504C54

Migration = Callable[[sqlite3.Connection], None]

_LANDMARK_BYTES = 68 * 2 * 4
_IDENTITY_BYTES = 128 * 4
_AFFINE_BYTES = 6 * 8


#: Prefix of the names of frames the OFX node analysed (``host_<number>``): a host hands the node
#: pixels and a frame number, never a file name.
HOST_FRAME_PREFIX = "host_"


def host_frame_name(number: int) -> str:
    """The store name of host frame ``number`` analysed in the OFX node (``host_1001``)."""
    return f"{HOST_FRAME_PREFIX}{int(number)}"


def is_host_frame_name(name: str) -> bool:
    """Whether ``name`` is one :func:`host_frame_name` made."""
    rest = name[len(HOST_FRAME_PREFIX):] if name.startswith(HOST_FRAME_PREFIX) else ""
    return rest.lstrip("-").isdigit()


@dataclass(frozen=True, eq=False)
class FaceState:
    """One face as an edit sees it: its record and its notes.

    Attributes:
        record: The face record.
        pinned: Edited by hand: ``faceplate faceset smooth`` keeps it and smooths around it.
        labels: Mask labels (:mod:`faceplate.core.labels` layout) or None.
    """

    record: FaceRecord
    pinned: bool = False
    labels: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe dict (the record as :func:`record_to_dict` writes it)."""
        return {"record": record_to_dict(self.record), "pinned": bool(self.pinned),
                "labels": self.labels}

    @staticmethod
    def from_json(d: Any, source: str | None = None) -> FaceState:
        """Inverse of :meth:`to_json` (validated).

        Raises:
            RecordError: Malformed.
        """
        if not isinstance(d, dict) or set(d) != {"record", "pinned", "labels"} \
                or not isinstance(d["pinned"], bool):
            raise RecordError("edit log: malformed face state", source)
        labels = None if d["labels"] is None else validate_labels(d["labels"], source)
        return FaceState(record_from_dict(d["record"], source), d["pinned"], labels)


def _state_key(state: FaceState | None) -> str:
    return "null" if state is None else json.dumps(state.to_json(), sort_keys=True,
                                                   separators=(",", ":"))


@dataclass(frozen=True, eq=False)
class FaceChange:
    """One face changed by an edit: its state before and after (None: absent).

    ``(frame_index, face_index)`` names the face; records in the states carry the same keys.
    """

    frame_index: int
    face_index: int
    before: FaceState | None
    after: FaceState | None


@dataclass(frozen=True, eq=False)
class EditEntry:
    """One entry of a store's edit log."""

    id: int
    time: float
    label: str
    state: str
    changes: list[FaceChange]


def default_store_path(input_path: Path) -> Path:
    """Where the store for ``input_path`` lives by default.

    A file (``shots/clip.mp4``) gets ``shots/clip.fpstore`` beside it; a folder (an image
    sequence) gets ``<folder>/alignments.fpstore``.
    """
    p = Path(input_path)
    if p.is_dir():
        return p / f"alignments{STORE_SUFFIX}"
    return p.with_suffix(STORE_SUFFIX)


# --------------------------------------------------------------------------- migrations

def _migrate_v1(conn: sqlite3.Connection) -> None:
    """Version 0 (empty file) → 1: create everything."""
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL)")
    conn.execute(
        "CREATE TABLE frames ("
        " idx INTEGER PRIMARY KEY NOT NULL, name TEXT NOT NULL UNIQUE, timestamp REAL,"
        " frame_number INTEGER NOT NULL, width INTEGER NOT NULL, height INTEGER NOT NULL,"
        " processed INTEGER NOT NULL DEFAULT 0)"
    )
    conn.execute(
        "CREATE TABLE faces ("
        " frame_idx INTEGER NOT NULL REFERENCES frames(idx) ON DELETE CASCADE,"
        " face_idx INTEGER NOT NULL,"
        " x REAL NOT NULL, y REAL NOT NULL, w REAL NOT NULL, h REAL NOT NULL,"
        " landmarks BLOB NOT NULL, score REAL NOT NULL,"
        " yaw REAL NOT NULL, pitch REAL NOT NULL, roll REAL NOT NULL,"
        " detector TEXT NOT NULL, aligner TEXT NOT NULL,"
        " identity BLOB, thumbnail BLOB,"
        " PRIMARY KEY (frame_idx, face_idx))"
    )
    conn.execute(
        "CREATE TABLE masks ("
        " frame_idx INTEGER NOT NULL, face_idx INTEGER NOT NULL, name TEXT NOT NULL,"
        " size INTEGER NOT NULL, centering TEXT NOT NULL, affine BLOB NOT NULL,"
        " data BLOB NOT NULL,"
        " PRIMARY KEY (frame_idx, face_idx, name),"
        " FOREIGN KEY (frame_idx, face_idx) REFERENCES faces(frame_idx, face_idx)"
        "  ON DELETE CASCADE ON UPDATE CASCADE)"
    )


def _migrate_v2(conn: sqlite3.Connection) -> None:
    """Version 1 → 2: frames are found by their own number (a unique index on frame_number).

    Version 1 numbered a video's frames from 0 (their decode index); they are renumbered from
    :data:`~faceplate.core.types.VIDEO_FIRST_FRAME`. A store whose numbers repeat (a folder of
    unrelated stills that shared a number) is renumbered by position, as version 2 reads such
    folders.
    """
    row = conn.execute("SELECT value FROM meta WHERE key = 'kind'").fetchone()
    kind = json.loads(row[0]) if row is not None else None
    frames = conn.execute("SELECT idx, frame_number FROM frames").fetchall()
    numbers = [n for _, n in frames]
    if kind == "video" and all(i == n for i, n in frames):
        conn.execute("UPDATE frames SET frame_number = idx + ?", (VIDEO_FIRST_FRAME,))
    elif len(set(numbers)) != len(numbers):
        conn.execute("UPDATE frames SET frame_number = idx")
    conn.execute("CREATE UNIQUE INDEX frames_by_number ON frames(frame_number)")


#: The schema version that added face notes, the edit log and the revision counter.
_NOTES_VERSION = 3


def _migrate_studio(conn: sqlite3.Connection) -> None:
    """Version 2 → 3: face notes (pinned, mask labels), the edit log and a revision counter."""
    conn.execute(
        "CREATE TABLE face_notes ("
        " frame_idx INTEGER NOT NULL, face_idx INTEGER NOT NULL,"
        " pinned INTEGER NOT NULL DEFAULT 0, labels TEXT,"
        " PRIMARY KEY (frame_idx, face_idx))"
    )
    conn.execute(
        "CREATE TABLE edits ("
        " id INTEGER PRIMARY KEY AUTOINCREMENT, time REAL NOT NULL, label TEXT NOT NULL,"
        " state TEXT NOT NULL CHECK (state IN ('done', 'undone')), changes TEXT NOT NULL)"
    )
    conn.execute("CREATE TABLE revision (id INTEGER PRIMARY KEY CHECK (id = 0),"
                 " n INTEGER NOT NULL)")
    conn.execute("INSERT INTO revision(id, n) VALUES (0, 0)")
    for table in ("frames", "faces", "masks", "face_notes"):
        for op in ("INSERT", "UPDATE", "DELETE"):
            conn.execute(f"CREATE TRIGGER bump_{table}_{op.lower()} AFTER {op} ON {table}"
                         " BEGIN UPDATE revision SET n = n + 1 WHERE id = 0; END")


#: The schema version that added the rejected candidates.
_REJECTIONS_VERSION = 4


def _migrate_rejections(conn: sqlite3.Connection) -> None:
    """Version 3 → 4: the rejected face candidates of each frame, with their reasons."""
    conn.execute(
        "CREATE TABLE rejections ("
        " frame_idx INTEGER NOT NULL REFERENCES frames(idx) ON DELETE CASCADE,"
        " n INTEGER NOT NULL,"
        " x REAL NOT NULL, y REAL NOT NULL, w REAL NOT NULL, h REAL NOT NULL,"
        " score REAL NOT NULL, detector TEXT NOT NULL, stage TEXT NOT NULL,"
        " reason TEXT NOT NULL,"
        " PRIMARY KEY (frame_idx, n))"
    )


_REJECTION_COLS = "frame_idx, n, x, y, w, h, score, detector, stage, reason"
_FACE_COLS = ("frame_idx, face_idx, x, y, w, h, landmarks, score, yaw, pitch, roll, detector,"
              " aligner, identity, thumbnail")
_MASK_COLS = "frame_idx, face_idx, name, size, centering, affine, data"
_FRAME_COLS = "idx, name, timestamp, frame_number, width, height"


def _blob(arr: np.ndarray, dtype: str) -> bytes:
    return np.ascontiguousarray(arr, dtype=np.dtype(dtype)).tobytes()


class AlignmentsStore:
    """One clip's detections, landmarks, masks and identities (see the module docstring).

    Open with :meth:`open`; use as a context manager. Not for concurrent writes from several
    threads at once (a lock serialises them); several processes may read while one writes.
    """

    #: Forward migrations: ``MIGRATIONS[v]`` upgrades version ``v`` to ``v + 1``.
    MIGRATIONS: ClassVar[tuple[Migration, ...]] = (_migrate_v1, _migrate_v2, _migrate_studio,
                                                   _migrate_rejections)
    #: Schema version this code writes (always ``len(MIGRATIONS)``).
    SCHEMA_VERSION: ClassVar[int] = 4

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.SCHEMA_VERSION = len(cls.MIGRATIONS)

    @property
    def _has_notes(self) -> bool:
        """Whether this schema has the face notes (version 3 on; older layouts in tests)."""
        return self.SCHEMA_VERSION >= _NOTES_VERSION

    @property
    def _has_rejections(self) -> bool:
        """Whether this schema keeps rejected candidates (version 4 on; older layouts in tests)."""
        return self.SCHEMA_VERSION >= _REJECTIONS_VERSION

    def __init__(self, conn: sqlite3.Connection, path: Path, readonly: bool) -> None:
        """Use :meth:`open`."""
        self._conn: sqlite3.Connection | None = conn
        self.path = path
        self.readonly = readonly
        self._lock = threading.RLock()

    # ----------------------------------------------------------------------- opening

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, create: bool = False,
             readonly: bool = False, upgrade: bool = False) -> AlignmentsStore:
        """Open (and with ``create`` make) a store, migrating an older file forward.

        Args:
            path: The ``.fpstore`` file.
            create: Create the file when it is missing (an existing store is opened as is).
            readonly: Open with SQLite ``mode=ro``: nothing can be written.
            upgrade: With ``readonly``: migrate an older file forward first (a backup of it is
                kept beside it, as for any migration) instead of refusing it.

        Raises:
            InputError: ``path`` is missing (and not ``create``) or is a folder.
            OutputError: The file cannot be created.
            StoreError: Not SQLite, or SQLite but not a Faceplate store.
            SchemaVersionError: Written by a newer Faceplate; the file is left untouched.
        """
        if create and readonly:
            raise ValueError("AlignmentsStore.open: create and readonly exclude each other")
        p = Path(path)
        if p.is_dir():
            raise InputError("is a folder, not an alignments store", p)
        exists = p.exists()
        if not exists and not create:
            raise InputError("alignments store not found", p)
        if exists:
            version = cls._probe(p)  # read-only look: refuses foreign/newer files untouched
            if version == 0 and not create:
                raise StoreError("empty file, not a Faceplate alignments store", p)
            if readonly and version < cls.SCHEMA_VERSION and upgrade:
                cls.open(p).close()
            elif readonly and version < cls.SCHEMA_VERSION:
                raise StoreError(f"store schema version {version} is older than "
                                 f"{cls.SCHEMA_VERSION}; open it writable once to upgrade", p)
        elif not p.parent.is_dir():
            raise OutputError("cannot create the store: its folder does not exist", p)
        try:
            if readonly:
                conn = sqlite3.connect(p.resolve().as_uri() + "?mode=ro", uri=True,
                                       isolation_level=None, check_same_thread=False)
            else:
                conn = sqlite3.connect(str(p), isolation_level=None, check_same_thread=False)
        except sqlite3.Error as err:
            raise (StoreError if exists else OutputError)(f"cannot open ({err})", p) from None
        store = cls(conn, p, readonly)
        try:
            conn.execute("PRAGMA busy_timeout = 10000")
            conn.execute("PRAGMA foreign_keys = ON")
            if not readonly:
                store._migrate()
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = NORMAL")
            else:
                ver = cls._read_version(conn, p)
                if ver != cls.SCHEMA_VERSION:
                    raise StoreError(f"store schema version {ver} changed while opening", p)
        except BaseException:
            conn.close()
            raise
        return store

    @classmethod
    def _read_version(cls, conn: sqlite3.Connection, p: Path) -> int:
        """Check the file is ours and not newer; return its schema version (0 = empty)."""
        try:
            app = conn.execute("PRAGMA application_id").fetchone()[0]
            ver = conn.execute("PRAGMA user_version").fetchone()[0]
            n_tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        except sqlite3.DatabaseError as err:
            raise StoreError(f"not an SQLite database ({err})", p) from None
        if app == 0 and ver == 0 and n_tables == 0:
            return 0
        if app != APPLICATION_ID:
            raise StoreError("an SQLite file but not a Faceplate alignments store "
                             f"(application_id {app:#x})", p)
        if ver > cls.SCHEMA_VERSION:
            raise SchemaVersionError(f"store schema version {ver} is newer than this Faceplate "
                                     f"supports ({cls.SCHEMA_VERSION}); upgrade Faceplate", p)
        if ver < 1:
            raise StoreError(f"invalid schema version {ver}", p)
        return int(ver)

    @classmethod
    def _probe(cls, p: Path) -> int:
        try:
            conn = sqlite3.connect(p.resolve().as_uri() + "?mode=ro", uri=True)
        except sqlite3.Error as err:
            raise StoreError(f"cannot open ({err})", p) from None
        try:
            return cls._read_version(conn, p)
        finally:
            conn.close()

    def _migrate(self) -> None:
        conn = self._c
        with self._lock:
            conn.execute("BEGIN IMMEDIATE")
            try:
                ver = self._read_version(conn, self.path)
                if ver == self.SCHEMA_VERSION:
                    conn.execute("COMMIT")
                    return
                conn.execute("ROLLBACK")
                if ver > 0:
                    self.backup()  # keep the old file before changing its layout
                conn.execute("BEGIN IMMEDIATE")
                ver = self._read_version(conn, self.path)
                for v in range(ver, self.SCHEMA_VERSION):
                    self.MIGRATIONS[v](conn)
                    conn.execute(f"PRAGMA user_version = {v + 1}")
                    conn.execute("INSERT INTO meta(key, value) VALUES ('schema_version', ?)"
                                 " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                                 (json.dumps(v + 1),))
                if ver == 0:
                    created = json.dumps(f"faceplate {faceplate.__version__}")
                    conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES "
                                 "('created_by', ?)", (created,))
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    # ----------------------------------------------------------------------- lifetime

    @property
    def _c(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError("the store is closed", self.path)
        return self._conn

    def close(self) -> None:
        """Close the file (idempotent).

        A writer that is the last user of the file checkpoints the WAL and switches the file
        back to a rollback journal, so later read-only openings leave no ``-wal``/``-shm``
        files beside the user's clip. With other connections open it stays in WAL mode.
        """
        with self._lock:
            if self._conn is not None:
                if not self.readonly:
                    with contextlib.suppress(sqlite3.Error):
                        self._conn.execute("PRAGMA busy_timeout = 0")
                        self._conn.execute("PRAGMA journal_mode = DELETE")
                self._conn.close()
                self._conn = None

    def __enter__(self) -> AlignmentsStore:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        mode = "ro" if self.readonly else "rw"
        return f"AlignmentsStore({str(self.path)!r}, {mode})"

    def _writable(self) -> sqlite3.Connection:
        if self.readonly:
            raise StoreError("opened read-only", self.path)
        return self._c

    def _write(self, fn: Callable[[sqlite3.Connection], object]) -> None:
        """Run ``fn`` inside one IMMEDIATE transaction."""
        conn = self._writable()
        with self._lock:
            try:
                conn.execute("BEGIN IMMEDIATE")
                fn(conn)
                conn.execute("COMMIT")
            except sqlite3.Error as err:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise StoreError(f"write failed ({err})", self.path) from None
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    @contextlib.contextmanager
    def _snapshot(self) -> Iterator[None]:
        """One read transaction around several SELECTs, so that a writer committing in between
        (another process, or another connection of this one) cannot be half seen: faces of
        one write with masks of the next. Nested uses share the outer transaction."""
        conn = self._c
        with self._lock:
            if conn.in_transaction:
                yield
                return
            try:
                conn.execute("BEGIN")
            except sqlite3.DatabaseError as err:
                raise StoreError(f"read failed ({err})", self.path) from None
            try:
                yield
            finally:
                if conn.in_transaction:
                    conn.execute("COMMIT")

    def _rows(self, sql: str, args: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        try:
            return self._c.execute(sql, args)
        except sqlite3.DatabaseError as err:
            raise StoreError(f"read failed ({err})", self.path) from None

    # ----------------------------------------------------------------------- meta

    def set_meta(self, key: str, value: Any) -> None:
        """Store a JSON value under ``key`` (source path, width, height, fps, config dict...).

        Raises:
            ValueError: ``value`` is not JSON-serialisable (or holds NaN), or ``key`` is
                ``"schema_version"`` (kept by the migrations).
        """
        if not isinstance(key, str) or not key or key == "schema_version":
            raise ValueError(f"set_meta: invalid key {key!r}")
        try:
            text = json.dumps(value, allow_nan=False, sort_keys=True)
        except (TypeError, ValueError) as err:
            raise ValueError(f"set_meta({key!r}): value is not JSON ({err})") from None
        self._write(lambda c: c.execute(
            "INSERT INTO meta(key, value) VALUES (?, ?)"
            " ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, text)))

    def get_meta(self, key: str, default: Any = None) -> Any:
        """The JSON value stored under ``key``, or ``default``.

        Raises:
            StoreError: The stored text is not JSON.
        """
        row = self._rows("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        if row is None:
            return default
        try:
            return json.loads(row[0], parse_constant=_no_constant)
        except (TypeError, ValueError) as err:
            raise StoreError(f"meta {key!r} is not valid JSON ({err})", self.path) from None

    def meta(self) -> dict[str, Any]:
        """Every meta key and its value."""
        keys = [r[0] for r in self._rows("SELECT key FROM meta ORDER BY key")]
        return {k: self.get_meta(k) for k in keys}

    # ----------------------------------------------------------------------- writing

    def _check_frame(self, info: FrameInfo) -> None:
        where = f"frame {getattr(info, 'index', '?')}"
        if not isinstance(info, FrameInfo):
            raise RecordError(f"expected a FrameInfo, got {type(info).__name__}", self.path)
        try:
            check_frame_name(info.name, "name")
            for k in ("index", "frame_number", "width", "height"):
                v = getattr(info, k)
                lo = 1 if k in ("width", "height") else (0 if k == "index" else None)
                if isinstance(v, bool) or not isinstance(v, (int, np.integer)) \
                        or (lo is not None and v < lo):
                    raise ValueError(f"{k}: expected an integer >= {lo}, got {v!r}")
            ts = info.timestamp
            if ts is not None and (isinstance(ts, bool) or not isinstance(ts, (int, float))
                                   or not math.isfinite(ts)):
                raise ValueError(f"timestamp: expected a finite number or None, got {ts!r}")
        except ValueError as err:
            raise RecordError(f"{where}: {err}", self.path) from None

    def _check_rejection(self, info: FrameInfo, n: int, r: Rejection) -> None:
        where = f"frame {info.index} rejection {n}"
        if not isinstance(r, Rejection):
            raise RecordError(f"{where}: expected a Rejection, got {type(r).__name__}",
                              self.path)
        nums = (*r.bbox.as_tuple(), r.score)
        if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in nums):
            raise RecordError(f"{where}: box and score must be finite numbers", self.path)
        if not all(isinstance(v, str) for v in (r.detector, r.stage, r.reason)):
            raise RecordError(f"{where}: detector, stage and reason must be text", self.path)

    def _insert_frame(self, conn: sqlite3.Connection, info: FrameInfo,
                      faces: list[FaceRecord],
                      rejections: Sequence[Rejection] | None = None) -> None:
        self._check_frame(info)
        for n, r in enumerate(rejections or ()):
            self._check_rejection(info, n, r)
        seen: set[int] = set()
        for rec in faces:
            where = f"frame {info.index} face {getattr(rec, 'face_index', '?')}"
            validate_record(rec, str(self.path), where)
            if rec.frame_index != info.index or rec.frame_name != info.name:
                raise RecordError(f"{where}: record belongs to frame {rec.frame_index} "
                                  f"{rec.frame_name!r}, not {info.index} {info.name!r}",
                                  self.path)
            if rec.face_index in seen:
                raise RecordError(f"{where}: duplicate face_index", self.path)
            seen.add(rec.face_index)
        other = conn.execute("SELECT idx, name FROM frames WHERE frame_number = ? AND idx != ?",
                             (int(info.frame_number), int(info.index))).fetchone()
        if other is not None:
            raise RecordError(f"frame {info.index} ({info.name!r}): frame number "
                              f"{info.frame_number} belongs to frame {other[0]} ({other[1]!r})",
                              self.path)
        conn.execute("DELETE FROM faces WHERE frame_idx = ?", (int(info.index),))
        if self._has_notes:
            kept = sorted({int(r.face_index) for r in faces})
            conn.execute(f"DELETE FROM face_notes WHERE frame_idx = ? AND face_idx NOT IN "
                         f"({','.join('?' * len(kept))})", (int(info.index), *kept))
        conn.execute(
            f"INSERT INTO frames({_FRAME_COLS}, processed) VALUES (?, ?, ?, ?, ?, ?, 1)"
            " ON CONFLICT(idx) DO UPDATE SET name = excluded.name,"
            " timestamp = excluded.timestamp, frame_number = excluded.frame_number,"
            " width = excluded.width, height = excluded.height, processed = 1",
            (int(info.index), info.name, None if info.timestamp is None else float(info.timestamp),
             int(info.frame_number), int(info.width), int(info.height)))
        for rec in faces:
            self._insert_face(conn, rec)
        if rejections is not None and self._has_rejections:
            conn.execute("DELETE FROM rejections WHERE frame_idx = ?", (int(info.index),))
            for n, r in enumerate(rejections):
                conn.execute(
                    f"INSERT INTO rejections({_REJECTION_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?,"
                    " ?, ?)",
                    (int(info.index), n, *(float(v) for v in r.bbox.as_tuple()), float(r.score),
                     r.detector, r.stage, r.reason))

    @staticmethod
    def _insert_face(conn: sqlite3.Connection, rec: FaceRecord) -> None:
        key = (int(rec.frame_index), int(rec.face_index))
        conn.execute(
            f"INSERT INTO faces({_FACE_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (*key, *(float(v) for v in rec.bbox.as_tuple()), _blob(rec.landmarks, "<f4"),
             float(rec.score), float(rec.yaw), float(rec.pitch), float(rec.roll),
             rec.detector, rec.aligner,
             None if rec.identity is None else _blob(rec.identity, "<f4"), rec.thumbnail))
        for sm in rec.masks.values():
            conn.execute(
                f"INSERT INTO masks({_MASK_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (*key, sm.name, int(sm.size), sm.centering, _blob(sm.affine, "<f8"),
                 bytes(sm.data)))

    def put_frame(self, info: FrameInfo, faces: list[FaceRecord],
                  rejections: Sequence[Rejection] | None = None) -> None:
        """Replace frame ``info.index``'s faces with ``faces`` and mark it processed.

        A frame with no face is still recorded (processed, 0 faces). Notes (pinned, mask
        labels) of face indices that remain are kept; those of faces gone are dropped.
        ``rejections`` (the candidates extraction dropped, with reasons) replace the
        frame's stored ones; None leaves them as they are (an edit of the faces keeps the
        extraction's record).
        Committed on return.

        Raises:
            RecordError: A record is invalid, belongs to another frame, repeats a face index,
                or the frame's number belongs to another frame.
            StoreError: Read-only store, or the write failed (e.g. the name is used by another
                frame index).
        """
        self._write(lambda c: self._insert_frame(c, info, faces, rejections))

    def put_frames(self, batch: list[tuple[FrameInfo, list[FaceRecord]]], *,
                   expect_revision: int | None = None,
                   rejections: Mapping[int, Sequence[Rejection]] | None = None,
                   notes: Mapping[tuple[int, int], tuple[bool, Any]] | None = None) -> None:
        """:meth:`put_frame` for many frames in one transaction (all or nothing).

        Args:
            batch: (frame, faces) pairs.
            expect_revision: The :meth:`revision` the caller read the store at; when another
                program has changed the store since, nothing is written.
            rejections: Frame index → the candidates extraction dropped there; they replace
                the stored ones of the frames named (frames not named keep theirs).
            notes: ``(frame, face) → (pinned, labels or None)`` (as :meth:`notes` returns
                them) for faces of ``batch``; they replace those faces' notes.

        Raises:
            StoreConflictError: ``expect_revision`` is stale.
            RecordError: A record, rejection or note is invalid, or a note names a face that
                ``batch`` does not hold.
        """
        def run(c: sqlite3.Connection) -> None:
            if expect_revision is not None:
                self._check_revision(c, expect_revision)
            for info, faces in batch:
                self._insert_frame(c, info, faces,
                                   None if rejections is None else rejections.get(info.index))
            if notes:
                self._insert_notes(c, batch, notes)
        self._write(run)

    def _insert_notes(self, c: sqlite3.Connection, batch: list[tuple[FrameInfo, list[FaceRecord]]],
                      notes: Mapping[tuple[int, int], tuple[bool, Any]]) -> None:
        if not self._has_notes:
            raise StoreError("this store's schema has no notes table", self.path)
        faces = {(int(info.index), int(r.face_index)) for info, recs in batch for r in recs}
        for (fi, xi), (pinned, labels) in sorted(notes.items()):
            where = f"frame {fi} face {xi}"
            if (int(fi), int(xi)) not in faces:
                raise RecordError(f"{where}: a note for a face this write does not hold",
                                  self.path)
            c.execute("DELETE FROM face_notes WHERE frame_idx = ? AND face_idx = ?",
                      (int(fi), int(xi)))
            if not pinned and labels is None:
                continue
            text = None if labels is None else json.dumps(
                validate_labels(labels, str(self.path)), allow_nan=False)
            c.execute("INSERT INTO face_notes(frame_idx, face_idx, pinned, labels)"
                      " VALUES (?, ?, ?, ?)", (int(fi), int(xi), int(bool(pinned)), text))

    def _check_revision(self, c: sqlite3.Connection, expected: int) -> None:
        now = int(c.execute("SELECT n FROM revision WHERE id = 0").fetchone()[0])
        if now != int(expected):
            raise StoreConflictError(
                "another program (the Studio, or a faceplate command) changed this store "
                "since it was read; nothing was written — run the command again", self.path)

    def revision(self) -> int:
        """A counter that changes whenever any program changes a frame, face, mask or note."""
        return int(self._rows("SELECT n FROM revision WHERE id = 0").fetchone()[0])

    def update_face(self, rec: FaceRecord) -> None:
        """Replace (or add) the face ``(rec.frame_index, rec.face_index)`` with its masks.

        Raises:
            StoreError: The frame is not in the store, or its name differs from the record's.
            RecordError: The record is invalid.
        """
        where = f"frame {rec.frame_index} face {rec.face_index}"
        validate_record(rec, str(self.path), where)

        def run(c: sqlite3.Connection) -> None:
            row = c.execute("SELECT name FROM frames WHERE idx = ?",
                            (int(rec.frame_index),)).fetchone()
            if row is None or row[0] != rec.frame_name:
                raise StoreError(f"{where}: frame {rec.frame_name!r} is not in the store",
                                 self.path)
            c.execute("DELETE FROM faces WHERE frame_idx = ? AND face_idx = ?",
                      (int(rec.frame_index), int(rec.face_index)))
            self._insert_face(c, rec)
        self._write(run)

    def delete_face(self, frame_index: int, face_index: int, *, reindex: bool = False) -> None:
        """Delete one face (and its masks).

        Args:
            frame_index: The frame.
            face_index: The face within it.
            reindex: Renumber the frame's remaining faces 0..n-1 (keeping their order).

        Raises:
            StoreError: No such face.
        """
        def run(c: sqlite3.Connection) -> None:
            cur = c.execute("DELETE FROM faces WHERE frame_idx = ? AND face_idx = ?",
                            (int(frame_index), int(face_index)))
            if cur.rowcount != 1:
                raise StoreError(f"frame {frame_index} face {face_index}: no such face",
                                 self.path)
            tables = ("faces", "face_notes") if self._has_notes else ("faces",)
            if self._has_notes:
                c.execute("DELETE FROM face_notes WHERE frame_idx = ? AND face_idx = ?",
                          (int(frame_index), int(face_index)))
            if reindex:  # via negative keys so no intermediate key collides
                fi = int(frame_index)
                left = [r[0] for r in c.execute(
                    "SELECT face_idx FROM faces WHERE frame_idx = ? ORDER BY face_idx", (fi,))]
                for k, old in enumerate(left):  # masks follow through ON UPDATE CASCADE
                    for table in tables:
                        c.execute(f"UPDATE {table} SET face_idx = ? WHERE frame_idx = ? AND"
                                  " face_idx = ?", (-1 - k, fi, old))
                for table in tables:
                    c.execute(f"UPDATE {table} SET face_idx = -face_idx - 1 WHERE"
                              " frame_idx = ? AND face_idx < 0", (fi,))
        self._write(run)

    # ----------------------------------------------------------------------- reading

    def _frame_from_row(self, row: tuple[Any, ...]) -> FrameInfo:
        idx, name, ts, number, width, height = row
        info = FrameInfo(index=idx, name=name, timestamp=ts, width=width, height=height,
                         frame_number=number)
        self._check_frame(info)
        return info

    def _face_from_row(self, row: tuple[Any, ...], masks: list[tuple[Any, ...]],
                       info: FrameInfo) -> FaceRecord:
        (fi, xi, x, y, w, h, lm, score, yaw, pitch, roll, det, ali, ident, thumb) = row
        where = f"frame {fi} face {xi}"

        def arr(blob: object, n: int, dtype: str, shape: tuple[int, ...],
                field: str) -> np.ndarray:
            if not isinstance(blob, bytes) or len(blob) != n:
                got = len(blob) if isinstance(blob, bytes) else type(blob).__name__
                raise RecordError(f"{where}: {field}: expected a {n}-byte blob, got {got}",
                                  self.path)
            return np.frombuffer(blob, dtype=dtype).reshape(shape).astype(dtype[1:])

        stored: dict[str, StoredMask] = {}
        for m in masks:
            _, _, name, size, centering, affine, data = m
            stored[name] = StoredMask(
                name=name, data=data, size=size, centering=centering,
                affine=arr(affine, _AFFINE_BYTES, "<f8", (2, 3), f"masks.{name}.affine"))
        rec = FaceRecord(
            frame_index=fi, frame_name=info.name, face_index=xi, bbox=BBox(x, y, w, h),
            landmarks=arr(lm, _LANDMARK_BYTES, "<f4", (68, 2), "landmarks"),
            score=score, yaw=yaw, pitch=pitch, roll=roll, detector=det, aligner=ali,
            masks=stored,
            identity=None if ident is None
            else arr(ident, _IDENTITY_BYTES, "<f4", (128,), "identity"),
            thumbnail=thumb, timestamp=info.timestamp,
        )
        return validate_record(rec, str(self.path), where)

    def done_frame_indices(self) -> set[int]:
        """Indices of the frames marked processed (with or without faces)."""
        return {int(r[0]) for r in self._rows("SELECT idx FROM frames WHERE processed = 1")}

    def frames(self) -> list[FrameInfo]:
        """Every frame, ordered by index."""
        return [self._frame_from_row(r)
                for r in self._rows(f"SELECT {_FRAME_COLS} FROM frames ORDER BY idx")]

    def frame(self, index: int) -> FrameInfo | None:
        """The frame at ``index``, or None."""
        row = self._rows(f"SELECT {_FRAME_COLS} FROM frames WHERE idx = ?",
                         (int(index),)).fetchone()
        return None if row is None else self._frame_from_row(row)

    def frame_at(self, number: int) -> FrameInfo | None:
        """The frame whose own number (``frame_number``) is ``number``, or None."""
        row = self._rows(f"SELECT {_FRAME_COLS} FROM frames WHERE frame_number = ?",
                         (int(number),)).fetchone()
        return None if row is None else self._frame_from_row(row)

    def frame_numbers(self) -> list[int]:
        """Every frame's own number, in increasing order."""
        return [int(r[0]) for r in
                self._rows("SELECT frame_number FROM frames ORDER BY frame_number")]

    def next_index(self) -> int:
        """An index no frame uses yet (one past the largest)."""
        row = self._rows("SELECT max(idx) FROM frames").fetchone()
        return 0 if row is None or row[0] is None else int(row[0]) + 1

    def frame_by_name(self, name: str) -> FrameInfo | None:
        """The frame called ``name``, or None."""
        row = self._rows(f"SELECT {_FRAME_COLS} FROM frames WHERE name = ?",
                         (name,)).fetchone()
        return None if row is None else self._frame_from_row(row)

    def _faces_of(self, info: FrameInfo, face_index: int | None = None) -> list[FaceRecord]:
        """The faces (with their masks) of ``info``'s frame; call inside :meth:`_snapshot`."""
        extra, args = ("", (info.index,)) if face_index is None \
            else (" AND face_idx = ?", (info.index, int(face_index)))
        rows = self._rows(f"SELECT {_FACE_COLS} FROM faces WHERE frame_idx = ?{extra}"
                          " ORDER BY face_idx", args).fetchall()
        mrows = self._rows(f"SELECT {_MASK_COLS} FROM masks WHERE frame_idx = ?{extra}"
                           " ORDER BY face_idx, name", args).fetchall()
        return [self._face_from_row(r, [m for m in mrows if m[1] == r[1]], info) for r in rows]

    def faces(self, frame_index: int) -> list[FaceRecord]:
        """The faces of frame ``frame_index`` ordered by face index ([] for unknown frames)."""
        with self._snapshot():
            info = self.frame(frame_index)
            return [] if info is None else self._faces_of(info)

    def faces_at(self, number: int) -> list[FaceRecord] | None:
        """The faces of the frame numbered ``number`` (its own ``frame_number``), ordered by
        face index; None when the store has no such frame ([] for a frame without faces)."""
        with self._snapshot():
            info = self.frame_at(number)
            return None if info is None else self._faces_of(info)

    def rejections(self, frame_index: int) -> list[Rejection]:
        """The candidates extraction dropped in frame ``frame_index``, in the order found."""
        if not self._has_rejections:
            return []
        rows = self._rows(f"SELECT {_REJECTION_COLS} FROM rejections WHERE frame_idx = ?"
                          " ORDER BY n", (int(frame_index),)).fetchall()
        return [Rejection(BBox(x, y, w, h), score, det, stage, reason)
                for _, _, x, y, w, h, score, det, stage, reason in rows]

    def rejection_counts(self) -> dict[int, int]:
        """Frame index → number of stored rejections (frames with none left out)."""
        if not self._has_rejections:
            return {}
        return {int(i): int(n) for i, n in self._rows(
            "SELECT frame_idx, count(*) FROM rejections GROUP BY frame_idx")}

    def get_face(self, frame_index: int, face_index: int) -> FaceRecord | None:
        """One face, or None."""
        with self._snapshot():
            info = self.frame(frame_index)
            if info is None:
                return None
            found = self._faces_of(info, face_index)
            return found[0] if found else None

    def iter_frames(self) -> Iterator[tuple[FrameInfo, list[FaceRecord]]]:
        """Every frame with its faces, ordered by index, streamed (three merged cursors).

        Read in one transaction (a consistent snapshot; the store's lock is held until the
        iteration ends). Do not write to the store while iterating.
        """
        with self._snapshot():
            yield from self._iter_frames()

    def _iter_frames(self) -> Iterator[tuple[FrameInfo, list[FaceRecord]]]:
        conn = self._c
        try:
            fcur = conn.execute(f"SELECT {_FRAME_COLS} FROM frames ORDER BY idx")
            xcur = conn.execute(f"SELECT {_FACE_COLS} FROM faces ORDER BY frame_idx, face_idx")
            mcur = conn.execute(f"SELECT {_MASK_COLS} FROM masks"
                                " ORDER BY frame_idx, face_idx, name")
            face = xcur.fetchone()
            mask = mcur.fetchone()
            for frow in fcur:
                info = self._frame_from_row(frow)
                out: list[FaceRecord] = []
                while mask is not None and mask[0] < info.index:
                    mask = mcur.fetchone()
                while face is not None and face[0] <= info.index:
                    if face[0] < info.index:  # orphan face (impossible with foreign keys)
                        face = xcur.fetchone()
                        continue
                    key = (face[0], face[1])
                    while mask is not None and (mask[0], mask[1]) < key:
                        mask = mcur.fetchone()
                    ms = []
                    while mask is not None and (mask[0], mask[1]) == key:
                        ms.append(mask)
                        mask = mcur.fetchone()
                    out.append(self._face_from_row(face, ms, info))
                    face = xcur.fetchone()
                yield info, out
        except sqlite3.DatabaseError as err:
            raise StoreError(f"read failed ({err})", self.path) from None

    def iter_faces(self) -> Iterator[FaceRecord]:
        """Every face, ordered by (frame index, face index), streamed."""
        for _, faces in self.iter_frames():
            yield from faces

    def frame_count(self) -> int:
        """Number of frames in the store (processed or not)."""
        return int(self._rows("SELECT count(*) FROM frames").fetchone()[0])

    def face_count(self) -> int:
        """Number of faces in the store."""
        return int(self._rows("SELECT count(*) FROM faces").fetchone()[0])

    # ----------------------------------------------------------------------- notes and edits

    def _notes_rows(self, where: str, args: tuple[Any, ...]) -> dict[tuple[int, int],
                                                                     tuple[bool, Any]]:
        out: dict[tuple[int, int], tuple[bool, Any]] = {}
        for fi, xi, pinned, labels in self._rows(
                f"SELECT frame_idx, face_idx, pinned, labels FROM face_notes {where}", args):
            lab = None
            if labels is not None:
                try:
                    lab = validate_labels(json.loads(labels, parse_constant=_no_constant),
                                          str(self.path))
                except ValueError as err:
                    raise StoreError(f"frame {fi} face {xi}: labels are not JSON ({err})",
                                     self.path) from None
            out[(int(fi), int(xi))] = (bool(pinned), lab)
        return out

    def notes(self, frame_index: int | None = None) -> dict[tuple[int, int], tuple[bool, Any]]:
        """``(frame, face) → (pinned, labels or None)`` for one frame, or for every face."""
        if frame_index is None:
            return self._notes_rows("", ())
        return self._notes_rows("WHERE frame_idx = ?", (int(frame_index),))

    def pinned_faces(self) -> set[tuple[int, int]]:
        """``(frame, face)`` of every pinned face (edited by hand)."""
        return {(int(a), int(b)) for a, b in self._rows(
            "SELECT frame_idx, face_idx FROM face_notes WHERE pinned = 1")}

    def labelled_count(self) -> int:
        """Number of faces that carry mask labels."""
        return int(self._rows("SELECT count(*) FROM face_notes WHERE labels IS NOT NULL"
                              ).fetchone()[0])

    def face_state(self, frame_index: int, face_index: int) -> FaceState | None:
        """The face with its notes, or None."""
        rec = self.get_face(frame_index, face_index)
        if rec is None:
            return None
        pinned, labels = self.notes(frame_index).get((int(frame_index), int(face_index)),
                                                     (False, None))
        return FaceState(rec, pinned, labels)

    def _current_key(self, c: sqlite3.Connection, fi: int, xi: int) -> str:
        info = self.frame(fi)
        if info is None:
            return "null"
        faces = self._faces_of(info, xi)
        if not faces:
            return "null"
        row = c.execute("SELECT pinned, labels FROM face_notes WHERE frame_idx = ? AND"
                        " face_idx = ?", (fi, xi)).fetchone()
        pinned, labels = (False, None) if row is None else (
            bool(row[0]), None if row[1] is None else json.loads(row[1]))
        return _state_key(FaceState(faces[0], pinned, labels))

    def _put_state(self, c: sqlite3.Connection, fi: int, xi: int,
                   state: FaceState | None) -> None:
        c.execute("DELETE FROM faces WHERE frame_idx = ? AND face_idx = ?", (fi, xi))
        c.execute("DELETE FROM face_notes WHERE frame_idx = ? AND face_idx = ?", (fi, xi))
        if state is None:
            return
        rec = state.record
        where = f"frame {fi} face {xi}"
        validate_record(rec, str(self.path), where)
        if (rec.frame_index, rec.face_index) != (fi, xi):
            raise RecordError(f"{where}: the record says frame {rec.frame_index} face "
                              f"{rec.face_index}", self.path)
        row = c.execute("SELECT name FROM frames WHERE idx = ?", (fi,)).fetchone()
        if row is None or row[0] != rec.frame_name:
            raise StoreError(f"{where}: frame {rec.frame_name!r} is not in the store", self.path)
        self._insert_face(c, rec)
        if state.pinned or state.labels is not None:
            labels = None if state.labels is None else json.dumps(
                validate_labels(state.labels, str(self.path)), allow_nan=False)
            c.execute("INSERT INTO face_notes(frame_idx, face_idx, pinned, labels)"
                      " VALUES (?, ?, ?, ?)", (fi, xi, int(state.pinned), labels))

    def _apply(self, c: sqlite3.Connection, changes: Sequence[FaceChange], forward: bool,
               what: str) -> None:
        for ch in changes:
            fi, xi = int(ch.frame_index), int(ch.face_index)
            want, new = (ch.before, ch.after) if forward else (ch.after, ch.before)
            if self._current_key(c, fi, xi) != _state_key(want):
                raise StoreConflictError(
                    f"frame {fi} face {xi} was changed by another program since it was read; "
                    f"{what} refused, nothing was written (reload and try again)", self.path)
        for ch in changes:
            self._put_state(c, int(ch.frame_index), int(ch.face_index),
                            ch.after if forward else ch.before)

    @staticmethod
    def _changes_json(changes: Sequence[FaceChange]) -> str:
        return json.dumps([{"frame": int(ch.frame_index), "face": int(ch.face_index),
                            "before": None if ch.before is None else ch.before.to_json(),
                            "after": None if ch.after is None else ch.after.to_json()}
                           for ch in changes], allow_nan=False, separators=(",", ":"))

    def _entry(self, row: tuple[Any, ...]) -> EditEntry:
        eid, t, label, state, text = row
        src = str(self.path)
        try:
            items = json.loads(text, parse_constant=_no_constant)
        except ValueError as err:
            raise StoreError(f"edit {eid}: not JSON ({err})", self.path) from None
        if not isinstance(items, list):
            raise StoreError(f"edit {eid}: malformed", self.path)
        changes = []
        for it in items:
            if not isinstance(it, dict) or not all(k in it for k in ("frame", "face")):
                raise StoreError(f"edit {eid}: malformed change", self.path)
            changes.append(FaceChange(
                int(it["frame"]), int(it["face"]),
                None if it.get("before") is None else FaceState.from_json(it["before"], src),
                None if it.get("after") is None else FaceState.from_json(it["after"], src)))
        return EditEntry(int(eid), float(t), str(label), str(state), changes)

    def edit(self, label: str, changes: Sequence[FaceChange]) -> int:
        """Apply hand edits in one transaction and log them for undo; returns the log id.

        Every change's ``before`` must be what the store holds now (face absent for None):
        otherwise another program changed those faces since the caller read them, and nothing
        is written. Undone entries are dropped (a new edit ends the redo history).

        Raises:
            StoreConflictError: A face differs from its ``before``.
            RecordError / StoreError: An invalid record, or a frame that is not in the store.
        """
        if not changes:
            raise ValueError("edit: no changes")
        out: list[int] = []

        def run(c: sqlite3.Connection) -> None:
            self._apply(c, changes, True, "the edit was")
            c.execute("DELETE FROM edits WHERE state = 'undone'")
            cur = c.execute("INSERT INTO edits(time, label, state, changes) VALUES"
                            " (?, ?, 'done', ?)", (time.time(), str(label),
                                                   self._changes_json(changes)))
            out.append(int(cur.lastrowid or 0))
        self._write(run)
        return out[0]

    def _step(self, undo: bool) -> EditEntry | None:
        found: list[EditEntry] = []

        def run(c: sqlite3.Connection) -> None:
            row = c.execute(
                "SELECT id, time, label, state, changes FROM edits WHERE state = ?"
                f" ORDER BY id {'DESC' if undo else 'ASC'} LIMIT 1",
                ("done" if undo else "undone",)).fetchone()
            if row is None:
                return
            entry = self._entry(row)
            self._apply(c, entry.changes, not undo, "undo was" if undo else "redo was")
            c.execute("UPDATE edits SET state = ? WHERE id = ?",
                      ("undone" if undo else "done", entry.id))
            found.append(entry)
        self._write(run)
        return found[0] if found else None

    def undo(self) -> EditEntry | None:
        """Revert the latest edit still done (None when there is none).

        Raises:
            StoreConflictError: Its faces were changed since by another program.
        """
        return self._step(True)

    def redo(self) -> EditEntry | None:
        """Re-apply the earliest undone edit (None when there is none)."""
        return self._step(False)

    def history(self, limit: int = 100) -> list[EditEntry]:
        """The latest ``limit`` log entries, newest first."""
        return [self._entry(r) for r in self._rows(
            "SELECT id, time, label, state, changes FROM edits ORDER BY id DESC LIMIT ?",
            (int(limit),)).fetchall()]

    def history_counts(self) -> tuple[int, int]:
        """(edits that can be undone, edits that can be redone)."""
        rows = dict(self._rows("SELECT state, count(*) FROM edits GROUP BY state").fetchall())
        return int(rows.get("done", 0)), int(rows.get("undone", 0))

    # ----------------------------------------------------------------------- backup

    def backup(self) -> Path:
        """Write a consistent copy beside the store (SQLite online backup) and return its path.

        The copy is ``<stem>.<YYYYmmdd-HHMMSS-ffffff>.bak.fpstore``, written to a temporary name
        and renamed into place, so a partial backup never exists under the final name.

        Raises:
            OutputError: The copy cannot be written.
        """
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S-%f")
        dest = self.path.with_name(f"{self.path.stem}.{stamp}.bak{STORE_SUFFIX}")
        n = 1
        while dest.exists():
            dest = self.path.with_name(f"{self.path.stem}.{stamp}-{n}.bak{STORE_SUFFIX}")
            n += 1
        tmp = dest.with_name(dest.name + ".tmp")
        try:
            target = sqlite3.connect(str(tmp))
            try:
                with self._lock:
                    self._c.backup(target)
                target.execute("PRAGMA journal_mode = DELETE")
            finally:
                target.close()
            os.replace(tmp, dest)
        except (OSError, sqlite3.Error) as err:
            tmp.unlink(missing_ok=True)
            raise OutputError(f"cannot write a backup of {self.path.name} ({err})", dest) from None
        return dest


def retire_store(path: str | os.PathLike[str]) -> Path:
    """Take a store out of use, keeping it recoverable: a consistent copy is written beside it
    (``<stem>.<stamp>.bak.fpstore``, as :meth:`AlignmentsStore.backup`), then the store and its
    ``-wal``/``-shm`` files are removed. Returns the copy's path.

    Raises:
        InputError: ``path`` is missing or a folder.
        StoreError: ``path`` is not a Faceplate store (nothing is touched).
        OutputError: The copy cannot be written (nothing is removed).
    """
    p = Path(path)
    if p.is_dir():
        raise InputError("is a folder, not an alignments store", p)
    if not p.is_file():
        raise InputError("alignments store not found", p)
    if AlignmentsStore._probe(p) == 0:
        raise StoreError("empty file, not a Faceplate alignments store; left as it is", p)
    conn = sqlite3.connect(p.resolve().as_uri() + "?mode=ro", uri=True, isolation_level=None)
    try:
        store = AlignmentsStore(conn, p, readonly=True)
        kept = store.backup()
    finally:
        conn.close()
    for q in (p, p.with_name(p.name + "-wal"), p.with_name(p.name + "-shm")):
        q.unlink(missing_ok=True)
    return kept


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


# --------------------------------------------------------------------------- JSON interop

def export_json(store: AlignmentsStore, out: Path) -> int:
    """Write the store's detections as JSON (interop format) and return the faces written.

    Format (frame pixel coordinates, x right, y down, pixel centres at +0.5)::

        {"version": 1, "source": <meta source or null>,
         "frames": [{"index": int, "name": str, "timestamp": float | null,
                     "frame_number": int, "width": int, "height": int,
                     "faces": [{"bbox": [x, y, w, h], "landmarks": [[x, y] × 68],
                                "score": float}]}]}

    Written atomically (temporary file, then rename).

    Raises:
        OutputError: ``out`` cannot be written.
    """
    out = Path(out)
    frames: list[dict[str, Any]] = []
    n = 0
    for info, faces in store.iter_frames():
        frames.append({
            "index": info.index, "name": info.name, "timestamp": info.timestamp,
            "frame_number": info.frame_number, "width": info.width, "height": info.height,
            "faces": [{"bbox": [float(v) for v in f.bbox.as_tuple()],
                       "landmarks": np.asarray(f.landmarks, np.float32).astype(float).tolist(),
                       "score": float(f.score)} for f in faces],
        })
        n += len(faces)
    doc = {"version": 1, "source": store.get_meta("source"), "frames": frames}
    text = json.dumps(doc, allow_nan=False, separators=(",", ":"))
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, out)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"cannot write the JSON export ({err.strerror or err})", out) from None
    return n


def import_json(path: Path, store: AlignmentsStore,
                frame_size: tuple[int, int] | None = None) -> int:
    """Read an :func:`export_json` file (or a hand-made one) into ``store``.

    Each listed frame replaces the store's frame of that index (one transaction for the
    whole file). Only bbox, landmarks and score are read per face; masks stay empty, nothing is
    recomputed. Unknown extra keys are ignored.

    Args:
        path: The JSON file.
        store: A writable store.
        frame_size: (width, height) for frames whose JSON entry has none; defaults to the
            store's ``width``/``height`` meta.

    Returns:
        Number of faces imported.

    Raises:
        InputError: Missing/unreadable file or not JSON.
        RecordError: A malformed frame or face, naming the file and the frame.
    """
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh, parse_constant=_no_constant)
    except FileNotFoundError:
        raise InputError("JSON file not found", path) from None
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise InputError(f"not a readable JSON file ({err})", path) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("frames"), list):
        raise RecordError('expected an object with a "frames" list', path)
    ver = doc.get("version", 1)
    if isinstance(ver, bool) or not isinstance(ver, int) or ver < 1:
        raise RecordError(f"version: expected an integer >= 1, got {ver!r}", path)
    if ver > 1:
        raise SchemaVersionError(f"export version {ver} is newer than this Faceplate reads", path)
    if frame_size is None:
        w, h = store.get_meta("width"), store.get_meta("height")
        frame_size = (w, h) if isinstance(w, int) and isinstance(h, int) else None

    batch: list[tuple[FrameInfo, list[FaceRecord]]] = []
    seen: set[int] = set()
    for pos, fr in enumerate(doc["frames"]):
        batch.append(_import_frame(fr, pos, path, frame_size, seen))
    store.put_frames(batch)
    return sum(len(f) for _, f in batch)


def _import_frame(fr: Any, pos: int, path: Path, frame_size: tuple[int, int] | None,
                  seen: set[int]) -> tuple[FrameInfo, list[FaceRecord]]:
    label = f"frames[{pos}]"

    def bad(problem: str) -> RecordError:
        return RecordError(f"{label}: {problem}", path)

    if not isinstance(fr, dict):
        raise bad(f"expected an object, got {type(fr).__name__}")
    for k in ("index", "name", "faces"):
        if k not in fr:
            raise bad(f"missing key {k!r}")
    idx, name = fr["index"], fr["name"]
    if isinstance(idx, bool) or not isinstance(idx, int) or idx < 0:
        raise bad(f"index: expected an integer >= 0, got {idx!r}")
    label = f"frame {idx} ({name!r})"
    if idx in seen:
        raise bad("index listed twice")
    seen.add(idx)
    try:
        check_frame_name(name, "name")
    except ValueError as err:
        raise bad(str(err)) from None
    if not isinstance(fr["faces"], list):
        raise bad("faces: expected a list")
    ts = fr.get("timestamp")
    if ts is not None and (isinstance(ts, bool) or not isinstance(ts, (int, float))):
        raise bad(f"timestamp: expected a number or null, got {ts!r}")
    number = fr.get("frame_number", idx)
    if isinstance(number, bool) or not isinstance(number, int):
        raise bad(f"frame_number: expected an integer, got {number!r}")
    size: tuple[Any, Any]
    if "width" in fr or "height" in fr:
        size = (fr.get("width"), fr.get("height"))
    elif frame_size is not None:
        size = frame_size
    else:
        raise bad("frame size unknown: no width/height in the file and no frame_size given")
    w, h = size
    if any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in (w, h)):
        raise bad(f"width/height: expected positive integers, got {size!r}")
    info = FrameInfo(index=idx, name=name, timestamp=None if ts is None else float(ts),
                     width=int(w), height=int(h), frame_number=number)
    faces: list[FaceRecord] = []
    for j, fc in enumerate(fr["faces"]):
        if not isinstance(fc, dict) or any(k not in fc for k in ("bbox", "landmarks", "score")):
            raise bad(f"face {j}: expected an object with bbox, landmarks and score")
        bbox, lms, score = fc["bbox"], fc["landmarks"], fc["score"]
        if not _numbers(bbox, (4,)):
            raise bad(f"face {j}: bbox: expected 4 numbers")
        if not _numbers(lms, (68, 2)):
            raise bad(f"face {j}: landmarks: expected 68 [x, y] number pairs")
        if isinstance(score, bool) or not isinstance(score, (int, float)):
            raise bad(f"face {j}: score: expected a number, got {score!r}")
        rec = FaceRecord(frame_index=idx, frame_name=name, face_index=j,
                         bbox=BBox(*(float(v) for v in bbox)),
                         landmarks=np.asarray(lms, dtype=np.float64).astype(np.float32),
                         score=float(score), timestamp=info.timestamp)
        faces.append(validate_record(rec, str(path), f"frame {idx} ({name!r}) face {j}"))
    return info, faces


def _numbers(v: Any, shape: tuple[int, ...]) -> bool:
    """True when ``v`` is a nested list of int/float (never bool) of exactly ``shape``."""
    if not isinstance(v, list) or len(v) != shape[0]:
        return False
    if len(shape) == 1:
        return all(not isinstance(e, bool) and isinstance(e, (int, float)) for e in v)
    return all(_numbers(e, shape[1:]) for e in v)
