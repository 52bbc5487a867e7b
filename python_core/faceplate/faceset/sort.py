"""Sort and group a faceset: reversible file moves driven by the sort keys (``sort_keys.py``).

A faceset is a folder of aligned face PNGs, each carrying its :class:`~faceplate.io.faceset.
FaceMeta` (record, frame → crop matrix, size, centering), so its files can be renamed and moved
freely. Sorting works in two steps:

1. A sort key **measures** every face: a score (one float, for the numeric keys such as
   ``blur`` or ``yaw``) or a feature vector (for the similarity keys ``identity`` and ``hist``),
   then turns the measurements into an **order** (a permutation of the faces) or into
   **groups** (bins for numeric keys, clusters for similarity keys).
2. :func:`sort_faceset` turns the order or groups into file changes (rename with a rank prefix,
   or move into bin folders), writes a JSON log of every change *before* touching a file, then
   applies the changes without ever overwriting a file. :func:`undo_sort` reverts a log exactly.

Crop conventions: pixels are H×W×3 ``uint8`` sRGB; crop landmarks are (x, y) crop pixels,
x right, y down, pixel centres at +0.5 (``transform_points(record.landmarks, meta.matrix)``).

Log format (``faceplate-sort-log`` version 1)::

    {"format": "faceplate-sort-log", "version": 1, "status": "in-progress" | "complete" |
     "undoing", "phase": 1 | 2, "time": ISO-8601, "input": str, "output": str | null,
     "mode": "move" | "copy",
     "sort_by": str | null, "group_by": str | null, "options": {...}, "configs": {...},
     "created_dirs": [str], "changes": [{"from": str, "to": str, "tmp": str | null,
     "undo_tmp": str | null, "sha256": str | null}]}

Paths in the log are relative to the log file's folder, so a faceset moved together with its
log can still be undone. ``tmp`` is the temporary name a file holds between the two phases of a
rename (phase 1: every source → its ``tmp``; phase 2: every ``tmp`` → its destination), or the
name a copy is written under before it gets its own; ``undo_tmp`` the same for an undo;
``sha256`` is the content hash of a copy (undo deletes a copy only when it is unchanged). With
the status and phase, the log always says where each file can be, so an interrupted sort or
undo can be undone (or resumed) with ``faceplate sort --undo LOG``.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from faceplate.core.config import Config, option
from faceplate.core.errors import ConfigError, InputError, NoFacesError, OutputError
from faceplate.faceset.sort_keys import (
    SORT_KEYS,
    Group,
    ProgressFactory,
    SortFace,
    SortKey,
    load_faceset,
)
from faceplate.io.faceset import face_filename
from faceplate.io.paths import sha256_file

LOG_FORMAT = "faceplate-sort-log"
LOG_VERSION = 1


# --------------------------------------------------------------------------- file moves


@dataclass(frozen=True)
class SortOptions(Config):
    """How ``faceplate sort`` applies an order or grouping to the files."""

    bins: int | None = option(None, "Group-by: number of bins for numeric keys (default 5), "
                              "or the most clusters for identity/hist (default: cut at the "
                              "threshold).", minimum=1, maximum=10000)
    binning: Literal["width", "quantile"] = option(
        "width", "Group-by with numeric keys: equal-width bins, or quantile bins holding about "
        "the same number of faces each.")
    threshold: float | None = option(None, "Clustering threshold of the identity/hist keys "
                                     "(overrides --identity-threshold / --hist-threshold).",
                                     minimum=0.0)
    naming: Literal["prefix", "index"] = option(
        "prefix", "Sort-by file names: rank prefix + the face's name (00012_clip_000042_0.png), "
        "or the rank alone (00012.png); the log keeps the original names either way.")
    reverse: bool = option(False, "Reverse the sort order.")
    keep: bool = option(False, "Copy the faces instead of moving them (originals stay put).")


@dataclass(frozen=True)
class Change:
    """One file change: ``src`` becomes ``dst`` (moved, or copied when the run keeps originals).

    ``tmp`` is the temporary name a moved file holds between the two phases of a rename.
    """

    src: Path
    dst: Path
    tmp: Path | None = None
    sha256: str | None = None


@dataclass
class SortResult:
    """What :func:`sort_faceset` did."""

    faces: int
    changed: int
    others: list[tuple[Path, str]]
    log_path: Path
    groups: list[tuple[str, int]] = field(default_factory=list)
    seconds: float = 0.0


_PREFIX_RE = re.compile(r"^(\d+)_(.+)$")


def _base_name(face: SortFace) -> str:
    """The face's name without a rank prefix this tool added earlier.

    A leading ``<digits>_`` is removed only when what remains is the name extraction gave the
    face (``face_filename(record)``), so names that merely start with digits are kept whole.
    """
    name = face.path.name
    m = _PREFIX_RE.match(name)
    if m:
        canonical = face_filename(face.meta.record)
        if m.group(2) == canonical:
            return canonical
    return name


def _ranked_names(faces: Sequence[SortFace], order: Sequence[int],
                  naming: Literal["prefix", "index"]) -> dict[int, str]:
    width = max(5, len(str(max(len(order) - 1, 0))))
    out: dict[int, str] = {}
    for rank, i in enumerate(order):
        face = faces[i]
        if naming == "index":
            out[i] = f"{rank:0{width}d}{face.path.suffix}"
        else:
            out[i] = f"{rank:0{width}d}_{_base_name(face)}"
    return out


def _tmp_name(dst_dir: Path, name: str, token: str, tag: str) -> Path:
    return dst_dir / f".{name}.{tag}-{token}.tmp"


def _link_or_rename(src: Path, dst: Path) -> None:
    """Give ``src`` the name ``dst`` without ever replacing an existing ``dst``.

    A hard link then an unlink (atomic refusal when ``dst`` exists; if interrupted, the file
    has both names and nothing is lost); on another filesystem, a copy to a temporary name
    beside ``dst``, then the same; where hard links are not supported, check then rename.

    Raises:
        OutputError: ``dst`` exists.
    """
    try:
        os.link(src, dst)
    except FileExistsError:
        raise OutputError(f"already exists; refusing to overwrite it with {src}", dst) from None
    except OSError as err:
        if err.errno == errno.EXDEV:
            tmp = _tmp_name(dst.parent, dst.name, uuid.uuid4().hex[:8], "fpcopy")
            shutil.copy2(src, tmp)
            try:
                _link_or_rename(tmp, dst)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
            os.unlink(src)
            return
        if os.path.lexists(dst):
            raise OutputError(f"already exists; refusing to overwrite it with {src}",
                              dst) from None
        os.rename(src, dst)
        return
    os.unlink(src)


def _copy_noclobber(src: Path, dst: Path, tmp: Path) -> None:
    """Copy ``src`` to ``dst`` through ``tmp`` (beside ``dst``); never replaces ``dst``."""
    shutil.copy2(src, tmp)
    try:
        _link_or_rename(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _rel(path: Path, base: Path) -> str:
    return os.path.relpath(os.path.abspath(path), os.path.abspath(base))


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=1)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"cannot write the sort log: {err.strerror or err}", path) from None


class _Log:
    """The JSON change log, rewritten atomically at each state change."""

    def __init__(self, path: Path, header: dict[str, Any]) -> None:
        self.path = path
        self.base = path.parent
        self.data = dict(header)

    def set_changes(self, changes: Sequence[Change], created_dirs: Sequence[Path]) -> None:
        b = self.base
        self.data["created_dirs"] = [_rel(d, b) for d in created_dirs]
        self.data["changes"] = [
            {"from": _rel(c.src, b), "to": _rel(c.dst, b),
             "tmp": None if c.tmp is None else _rel(c.tmp, b), "undo_tmp": None,
             "sha256": c.sha256}
            for c in changes
        ]

    def write(self, status: str) -> None:
        self.data["status"] = status
        _write_json_atomic(self.path, self.data)


def _default_log_path(folder: Path) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = folder / f"sort_log_{stamp}.json"
    n = 1
    while path.exists():
        path = folder / f"sort_log_{stamp}_{n}.json"
        n += 1
    return path


def _make_dir(path: Path, created: list[Path]) -> None:
    if path.exists():
        if not path.is_dir():
            raise OutputError("exists and is not a folder", path)
        return
    missing = []
    p = path
    while not p.exists():
        missing.append(p)
        p = p.parent
    try:
        path.mkdir(parents=True)
    except OSError as err:
        raise OutputError(f"cannot create the folder: {err.strerror or err}", path) from None
    created.extend(reversed(missing))


def plan_changes(faces: Sequence[SortFace], dest: Path, *, order: Sequence[int] | None,
                 groups: Sequence[Group] | None, naming: Literal["prefix", "index"]
                 ) -> list[tuple[int, Path]]:
    """Where each face goes: ``(face index, destination path)`` in application order.

    Args:
        faces: The faces, in input order.
        dest: The output folder (the input folder for an in-place run).
        order: Sort order (a permutation of the face indices), or None to keep the names.
        groups: Bins; each face goes into ``dest/<bin name>/``. None: no bin folders.
        naming: Sort-by file names (see :class:`SortOptions`).
    """
    if order is None and groups is None:
        raise ConfigError("nothing to do: choose --sort-by and/or --group-by")
    out: list[tuple[int, Path]] = []
    if groups is None:
        assert order is not None
        names = _ranked_names(faces, order, naming)
        return [(i, dest / names[i]) for i in order]
    rank = {int(i): r for r, i in enumerate(order)} if order is not None else None
    for g in groups:
        members = list(g.indices)
        if rank is not None:
            members.sort(key=lambda i: rank[i])
            names = _ranked_names(faces, members, naming)
        else:
            names = {i: faces[i].path.name for i in members}
        out.extend((i, dest / g.name / names[i]) for i in members)
    return out


def sort_faceset(input_dir: str | Path, output_dir: str | Path | None = None, *,
                 sort_by: str | None = None, group_by: str | None = None,
                 configs: Mapping[str, Any] | None = None,
                 options: SortOptions | None = None, log_path: str | Path | None = None,
                 progress: ProgressFactory | None = None) -> SortResult:
    """Sort and/or group the faces of ``input_dir``, logging every change for :func:`undo_sort`.

    Sort-by renames the faces with a rank prefix (in place, or into ``output_dir``); group-by
    moves them into one sub-folder per bin (of ``output_dir``, or of ``input_dir``); with both,
    faces are grouped and ranked within each bin. Files that are not Faceplate faces stay where
    they are. No file is ever overwritten: every destination is checked before the first move,
    moves go through a temporary name, and the log is written before any file is touched.

    Args:
        input_dir: The faceset folder.
        output_dir: Where the faces go (None or the input folder: in place).
        sort_by: A :data:`SORT_KEYS` name, or None.
        group_by: A :data:`SORT_KEYS` name, or None.
        configs: Key name → its config (missing keys use their defaults).
        options: Run options (bins, naming, keep...).
        log_path: The JSON log (default: ``sort_log_<time>.json`` in the output folder).
        progress: Progress-bar factory, or None.

    Raises:
        InputError: ``input_dir`` is missing or not a folder.
        NoFacesError: ``input_dir`` holds no Faceplate face.
        ConfigError: Unknown key, or neither ``sort_by`` nor ``group_by``.
        OutputError: A destination exists or cannot be written (nothing has moved then).
    """
    t0 = time.perf_counter()
    opts = options or SortOptions()
    if sort_by is None and group_by is None:
        raise ConfigError("nothing to do: choose --sort-by and/or --group-by")
    keys: dict[str, SortKey] = {}
    used_cfgs: dict[str, Any] = {}
    for name in dict.fromkeys(n for n in (sort_by, group_by) if n is not None):
        cfg = (configs or {}).get(name) or SORT_KEYS.default_config(name)
        if opts.threshold is not None and hasattr(cfg, "threshold"):
            cfg = cfg.replace(threshold=opts.threshold)
        used_cfgs[name] = cfg
        keys[name] = SORT_KEYS.create(name, cfg)

    in_dir = Path(input_dir)
    faces, others = load_faceset(in_dir)
    if not faces:
        raise NoFacesError(f"no Faceplate face PNGs here ({len(others)} other files)", in_dir)
    out_dir = Path(output_dir) if output_dir is not None else in_dir
    in_place = out_dir.exists() and os.path.samefile(out_dir, in_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError("exists and is not a folder", out_dir)

    measured: dict[str, np.ndarray] = {n: k.measure_all(faces, progress) for n, k in keys.items()}
    order: np.ndarray | None = None
    if sort_by is not None:
        order = keys[sort_by].order(measured[sort_by])
        if opts.reverse:
            order = order[::-1]
        if sorted(order.tolist()) != list(range(len(faces))):
            raise AssertionError(f"sort key {sort_by!r} returned an order that is not a "
                                 "permutation of the faces")
    groups: list[Group] | None = None
    if group_by is not None:
        groups = keys[group_by].group(measured[group_by], opts.bins, opts.binning)

    plan = plan_changes(faces, out_dir, order=None if order is None else order.tolist(),
                        groups=groups, naming=opts.naming)
    copy = opts.keep
    changes = _check_plan(faces, plan, copy)
    token = uuid.uuid4().hex[:8]

    log_file = Path(log_path) if log_path is not None else _default_log_path(out_dir)
    if os.path.lexists(log_file):
        raise OutputError("a file with this name exists; choose another --log", log_file)
    created: list[Path] = []
    _make_dir(out_dir, created)
    for d in sorted({c.dst.parent for c in changes}):
        _make_dir(d, created)
    _make_dir(log_file.parent, created)
    log = _Log(log_file, {
        "format": LOG_FORMAT, "version": LOG_VERSION,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "input": str(in_dir.resolve()), "output": None if in_place else str(out_dir.resolve()),
        "mode": "copy" if copy else "move", "sort_by": sort_by, "group_by": group_by,
        "options": opts.to_dict(), "configs": {n: c.to_dict() for n, c in used_cfgs.items()},
        "groups": [] if groups is None else [[g.name, len(g.indices)] for g in groups],
    })
    if copy:
        changes = [Change(c.src, c.dst, _tmp_name(c.dst.parent, c.dst.name, token, "fpcopy"),
                          sha256_file(c.src)) for c in changes]
    else:
        changes = [Change(c.src, c.dst, _tmp_name(c.src.parent, c.src.name, token, "fpsort"))
                   for c in changes]
    log.set_changes(changes, created)
    log.data["phase"] = 1
    log.write("in-progress")

    bar = progress(len(changes), "copying" if copy else "moving") if progress else None
    try:
        if copy:
            for c in changes:
                assert c.tmp is not None
                _copy_noclobber(c.src, c.dst, c.tmp)
                if bar is not None:
                    bar.update(1)
        else:
            for c in changes:  # phase 1: out of the way, within the source folder
                assert c.tmp is not None
                _link_or_rename(c.src, c.tmp)
            log.data["phase"] = 2
            log.write("in-progress")
            for c in changes:  # phase 2: temporary name → final name
                assert c.tmp is not None
                _link_or_rename(c.tmp, c.dst)
                if bar is not None:
                    bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    log.write("complete")
    return SortResult(
        faces=len(faces), changed=len(changes), others=others, log_path=log.path,
        groups=[] if groups is None else [(g.name, len(g.indices)) for g in groups],
        seconds=time.perf_counter() - t0)


def _check_plan(faces: Sequence[SortFace], plan: Sequence[tuple[int, Path]],
                copy: bool) -> list[Change]:
    """Refuse a plan that would overwrite anything; drop changes that change nothing."""
    sources = {os.path.abspath(f.path) for f in faces}
    seen: set[str] = set()
    out = []
    for i, dst in plan:
        src = faces[i].path
        a_dst = os.path.abspath(dst)
        if a_dst in seen:
            raise AssertionError(f"two faces planned onto {dst}")
        seen.add(a_dst)
        if a_dst == os.path.abspath(src):
            continue
        if os.path.lexists(dst) and (copy or a_dst not in sources):
            raise OutputError(f"already exists; refusing to overwrite it (it would receive "
                              f"{src.name}); nothing was moved", dst)
        out.append(Change(src, Path(dst)))
    return out


# --------------------------------------------------------------------------- undo


@dataclass
class UndoResult:
    """What :func:`undo_sort` did."""

    restored: int
    removed_copies: int
    removed_dirs: int
    seconds: float


def _read_log(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise InputError("no such sort log", path)
    if not path.is_file():
        raise InputError("not a file (--undo takes the JSON log a sort wrote)", path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(f"not a readable sort log: {err}", path) from None
    if not isinstance(data, dict) or data.get("format") != LOG_FORMAT:
        raise InputError(f"not a sort log (no \"format\": \"{LOG_FORMAT}\")", path)
    if not isinstance(data.get("version"), int) or data["version"] > LOG_VERSION:
        raise InputError(f"sort log version {data.get('version')!r} is not one this Faceplate "
                         f"understands ({LOG_VERSION})", path)
    changes = data.get("changes")
    ok = isinstance(changes, list) and all(
        isinstance(c, dict) and isinstance(c.get("from"), str) and isinstance(c.get("to"), str)
        for c in changes)
    if not ok or data.get("mode") not in ("move", "copy"):
        raise InputError("malformed sort log (changes or mode)", path)
    return data


def undo_sort(log_path: str | Path, progress: ProgressFactory | None = None) -> UndoResult:
    """Revert the changes recorded in a sort log, in reverse order, then delete the log.

    Everything is checked before the first file moves: each moved face must be at its new name
    (or its temporary name, when the sort was interrupted) and its old name must be free (or
    about to be freed by another face of the same log); each copy must still exist unchanged.
    Moves go back through temporary names in two phases, so a cycle of renames undoes cleanly
    and nothing is ever overwritten. Folders the sort created are removed when empty.

    Raises:
        InputError: The log is missing or malformed, or a file it needs is missing or changed
            (nothing has moved then); the message names the file.
        OutputError: An original name is occupied by another file (nothing has moved then).
    """
    t0 = time.perf_counter()
    path = Path(log_path)
    data = _read_log(path)
    base = path.parent
    complete = data.get("status") == "complete"
    copy = data["mode"] == "copy"

    def p(s: str | None) -> Path | None:
        return None if s is None else Path(os.path.normpath(base / s))

    entries = [(p(c["from"]), p(c["to"]), p(c.get("tmp")), p(c.get("undo_tmp")),
                c.get("sha256")) for c in data["changes"]]
    token = uuid.uuid4().hex[:8]

    if copy:
        to_delete: list[Path] = []
        for src, dst, tmp, _utmp, digest in entries:
            assert src is not None and dst is not None
            if tmp is not None and tmp.exists():
                to_delete.append(tmp)  # a copy interrupted before it got its name
            if not dst.exists():
                if complete:
                    raise InputError(f"the copy of {src.name} is missing; nothing was undone",
                                     dst)
                continue
            if digest is not None and sha256_file(dst) != digest:
                raise InputError("this copy was changed after the sort; not deleting it "
                                 "(nothing was undone)", dst)
            to_delete.append(dst)
        for d in reversed(to_delete):
            d.unlink()
        path.unlink()
        removed_dirs = _remove_dirs(data, base)
        copies = sum(1 for d in to_delete if d.suffix != ".tmp")
        return UndoResult(0, copies, removed_dirs, time.perf_counter() - t0)

    # Where is each moved file now? A file's names follow src → tmp → dst (the sort), then
    # dst → undo_tmp → src (an undo); the log's status says which names are possible.
    status, phase = data.get("status"), data.get("phase", 2)
    moves: list[tuple[Path, Path, Path]] = []  # (current, original, undo temporary)
    for src, dst, tmp, utmp, _ in reversed(entries):
        assert src is not None and dst is not None
        chain = [n for n in (src, tmp, dst, utmp, src) if n is not None]
        for a, b in zip(chain, chain[1:]):
            # an interrupted link-then-unlink leaves one file under two names: finish the step
            if a != b and a.exists() and b.exists() and os.path.samefile(a, b):
                a.unlink()
        if status == "in-progress":
            cands = [tmp] if phase == 1 else [tmp, dst]
        elif status == "undoing":
            cands = [utmp, dst]
        else:
            cands = [dst]
        here = next((c for c in cands if c is not None and c.exists()), None)
        if here is None:
            if status != "complete" and src.exists():
                continue  # never moved, or already moved back by an interrupted undo
            raise InputError(f"{src.name} was moved here by the sort but is missing; nothing "
                             "was undone", dst)
        moves.append((here, src, utmp or _tmp_name(src.parent, src.name, token, "fpundo")))
    leaving = {os.path.abspath(cur) for cur, _, _ in moves}
    for cur, src, _ in moves:
        if os.path.lexists(src) and os.path.abspath(src) not in leaving:
            raise OutputError(f"another file now has this name, so {cur.name} cannot be moved "
                              "back; nothing was undone", src)
        if not src.parent.is_dir():
            raise OutputError("the original folder is gone; nothing was undone", src.parent)

    # record the undo temporaries so an interrupted undo can be resumed
    by_pair = {(os.path.abspath(src)): utmp for _, src, utmp in moves}
    for c in data["changes"]:
        a = os.path.abspath(base / c["from"])
        if a in by_pair:
            c["undo_tmp"] = _rel(by_pair[a], base)
    data["status"] = "undoing"
    _write_json_atomic(path, data)

    bar = progress(len(moves), "undoing") if progress else None
    try:
        for cur, _src, utmp in moves:
            if cur != utmp:
                _link_or_rename(cur, utmp)
        for _cur, src, utmp in moves:
            _link_or_rename(utmp, src)
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    path.unlink()
    removed_dirs = _remove_dirs(data, base)
    return UndoResult(len(moves), 0, removed_dirs, time.perf_counter() - t0)


def _remove_dirs(data: dict[str, Any], base: Path) -> int:
    """Remove the folders the sort created, deepest first, when they are empty."""
    n = 0
    dirs = [Path(os.path.normpath(base / d)) for d in data.get("created_dirs") or []
            if isinstance(d, str)]
    for d in sorted(dirs, key=lambda x: len(x.parts), reverse=True):
        try:
            d.rmdir()
            n += 1
        except OSError:
            pass  # not empty (the log itself, or files added since): leave it
    return n
