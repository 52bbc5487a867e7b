"""``faceplate faceset JOB``: maintain alignments stores and face folders.

Jobs (Faceswap's alignments tool, plus merge and smooth):

  remove-faces   drop store faces whose PNG was deleted from the face folder (backs up first)
  rename         rename face PNGs to <frame stem>_<face index>.png (never overwrites)
  from-faces     rebuild a store from the records inside a face folder
  extract        re-cut aligned faces from a store and its clip
  merge          merge facesets or stores, dropping near-duplicate faces
  missing-frames frames of the input the store lacks
  no-faces       frames processed with no face, each with the candidates dropped there and why
  multi-faces    frames with more than one face (optionally move their face PNGs aside)
  draw           draw landmarks, boxes and stored masks onto the frames
  smooth         temporal smoothing of the landmark tracks, filling short gaps (backs up first)
  export-json    write the store's detections as JSON
  import-json    read detections from JSON into a store

Faces are matched by the records inside the PNGs, never by file names.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from faceplate.cli.options import add_config, config_from_args
from faceplate.cli.progress import Summary, bar
from faceplate.core.errors import ConfigError, InputError
from faceplate.core.types import CENTERINGS
from faceplate.extract.smoothing import SmoothConfig


def _store_opt(p: argparse.ArgumentParser, required: bool = True, help: str = "") -> None:
    p.add_argument("--alignments", "-a", type=Path, required=required, metavar="STORE",
                   help=help or "alignments store (.fpstore)")


def _input_opt(p: argparse.ArgumentParser, help: str = "") -> None:
    p.add_argument("--input", "-i", type=Path, default=None, metavar="MEDIA",
                   help=help or "the clip the store was made from (default: the store's "
                   "recorded source)")


def register(sub: Any) -> None:
    p = sub.add_parser("faceset", help="maintain alignments stores and face folders",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    jobs = p.add_subparsers(dest="job", metavar="JOB", required=True)

    j = jobs.add_parser("remove-faces", help="sync the store to faces deleted from the folder")
    _store_opt(j)
    j.add_argument("--faces", "-f", type=Path, required=True, metavar="DIR",
                   help="the face folder cut from the store")
    j.add_argument("--reindex", action="store_true",
                   help="renumber the remaining faces of affected frames 0..n-1 and rewrite "
                   "their PNG records (default: keep indices; nothing else is rewritten)")
    j.set_defaults(func=run_remove_faces)

    j = jobs.add_parser("rename", help="rename face PNGs to <frame stem>_<face index>.png")
    _store_opt(j, required=False, help="only rename faces that belong to this store")
    j.add_argument("--faces", "-f", type=Path, required=True, metavar="DIR")
    j.set_defaults(func=run_rename)

    j = jobs.add_parser("from-faces", help="rebuild a store from a face folder's records")
    j.add_argument("--faces", "-f", type=Path, required=True, metavar="DIR")
    _store_opt(j, help="the new store to write (must not exist)")
    j.set_defaults(func=run_from_faces)

    j = jobs.add_parser("extract", help="re-cut aligned faces from a store and its clip")
    _store_opt(j)
    _input_opt(j)
    j.add_argument("-o", "--output", type=Path, required=True, metavar="DIR",
                   help="output face folder")
    j.add_argument("--size", type=int, default=512, help="face side in pixels (default: 512)")
    j.add_argument("--centering", choices=CENTERINGS, default="face",
                   help="face framing (default: face)")
    j.add_argument("--frames", default=None, metavar="RANGE",
                   help="frame indices, e.g. 0-10,15,20- (default: all)")
    j.set_defaults(func=run_extract)

    j = jobs.add_parser("merge", help="merge facesets or stores, dropping near-duplicates")
    src = j.add_mutually_exclusive_group(required=True)
    src.add_argument("--faces", "-f", type=Path, nargs="+", metavar="DIR",
                     help="face folders to merge (first ones win)")
    src.add_argument("--alignments", "-a", type=Path, nargs="+", metavar="STORE",
                     help="stores of one clip to merge (first ones win)")
    j.add_argument("-o", "--output", type=Path, required=True, metavar="OUT",
                   help="new face folder, or new store")
    j.add_argument("--threshold", type=float, default=None, metavar="X",
                   help="appearance distance below which two faces are duplicates "
                   "(faces only; 0 disables; default: 0.05)")
    j.add_argument("--iou", type=float, default=None, metavar="X",
                   help="box overlap from which two faces of the same frame are the same face "
                   "(default: 0.5)")
    j.set_defaults(func=run_merge)

    for name, helptext in (("missing-frames", "frames of the input the store lacks"),
                           ("no-faces", "frames processed with no face, and why each candidate "
                                        "found there was dropped"),
                           ("multi-faces", "frames with more than one face")):
        j = jobs.add_parser(name, help=helptext)
        _store_opt(j)
        if name == "missing-frames":
            _input_opt(j)
        j.add_argument("--output", "-o", type=Path, default=None, metavar="FILE",
                       help="write the frame names to FILE, one a line")
        if name == "multi-faces":
            j.add_argument("--faces", "-f", type=Path, default=None, metavar="DIR",
                           help="face folder of the store (needed by --move)")
            j.add_argument("--move", type=Path, default=None, metavar="DIR",
                           help="move the face PNGs of those frames into DIR")
        j.set_defaults(func=run_audit, audit=name)

    j = jobs.add_parser("draw", help="draw landmarks, boxes and masks onto frames")
    _store_opt(j)
    _input_opt(j)
    j.add_argument("-o", "--output", type=Path, required=True, metavar="DIR")
    j.add_argument("--masks", nargs="*", default=None, metavar="NAME",
                   help="stored masks to overlay (default: all; give none to draw no mask)")
    j.add_argument("--frames", default=None, metavar="RANGE",
                   help="frame indices, e.g. 0-10,15,20- (default: all)")
    j.add_argument("--all-frames", action="store_true",
                   help="also write frames that have no face")
    j.set_defaults(func=run_draw)

    j = jobs.add_parser("smooth", help="temporal smoothing of landmark tracks + gap filling")
    _store_opt(j)
    add_config(j, SmoothConfig, title="smoothing")
    j.set_defaults(func=run_smooth)

    j = jobs.add_parser("export-json", help="write the store's detections as JSON")
    j.add_argument("store", type=Path, metavar="STORE")
    j.add_argument("out", type=Path, metavar="OUT.json")
    j.set_defaults(func=run_export_json)

    j = jobs.add_parser("import-json", help="read detections from JSON into a store")
    j.add_argument("json", type=Path, metavar="IN.json")
    _store_opt(j, help="store to write (created when missing; backed up when it exists)")
    _input_opt(j, help="the clip the detections belong to (gives the frame size and source)")
    j.set_defaults(func=run_import_json)


# --------------------------------------------------------------------------- helpers


def _open(path: Path, readonly: bool = False) -> Any:
    from faceplate.io.store import AlignmentsStore

    # a store from an earlier Faceplate is migrated on first use, reading included
    return AlignmentsStore.open(path, readonly=readonly, upgrade=readonly)


def _source_path(args: argparse.Namespace, store: Any) -> Path:
    if getattr(args, "input", None) is not None:
        return Path(args.input)
    src = store.get_meta("source")
    if not src:
        raise ConfigError(f"{store.path} does not record its source clip: give --input")
    p = Path(src)
    if not p.exists():
        raise InputError(f"the store's source clip is missing (from {store.path}); "
                         "give --input", p)
    return p


def _warn(lines: list[str], limit: int = 10) -> None:
    for line in lines[:limit]:
        print(f"  {line}", file=sys.stderr)
    if len(lines) > limit:
        print(f"  ... and {len(lines) - limit} more", file=sys.stderr)


# --------------------------------------------------------------------------- jobs


def run_remove_faces(args: argparse.Namespace) -> int:
    from faceplate.faceset.jobs import remove_faces

    s = Summary("remove-faces")
    with _open(args.alignments) as store:
        rep = remove_faces(store, args.faces, reindex=args.reindex)
        s.frames = len({fi for fi, _ in rep.removed})
    s.faces = rep.kept
    s.skipped = len(rep.unmatched) + len(rep.bad)
    s.extra["removed"] = len(rep.removed)
    if args.reindex:
        s.extra["renumbered"] = len(rep.renumbered)
    if rep.unmatched:
        print(f"{len(rep.unmatched)} face image(s) do not belong to the store (left alone):",
              file=sys.stderr)
        _warn([str(p) for p in rep.unmatched])
    if rep.bad:
        print(f"{len(rep.bad)} file(s) without a readable face record:", file=sys.stderr)
        _warn([r for _, r in rep.bad])
    if rep.backup is not None:
        print(f"backup: {rep.backup}")
    s.print()
    return 0


def run_rename(args: argparse.Namespace) -> int:
    from faceplate.faceset.jobs import rename_faces

    s = Summary("rename")
    if args.alignments is not None:
        with _open(args.alignments, readonly=True) as store:
            rep = rename_faces(args.faces, store)
    else:
        rep = rename_faces(args.faces)
    s.faces = len(rep.renamed) + rep.unchanged
    s.skipped = len(rep.skipped)
    s.extra["renamed"] = len(rep.renamed)
    s.extra["unchanged"] = rep.unchanged
    if rep.skipped:
        print(f"{len(rep.skipped)} file(s) not renamed:", file=sys.stderr)
        _warn([f"{p.name}: {why}" for p, why in rep.skipped])
    s.print()
    return 0


def run_from_faces(args: argparse.Namespace) -> int:
    from faceplate.faceset.jobs import from_faces

    s = Summary("from-faces")
    rep = from_faces(args.faces, args.alignments)
    s.frames, s.faces = rep.frames, rep.faces
    s.skipped = len(rep.duplicates) + len(rep.conflicts) + len(rep.bad)
    if rep.conflicts:
        print(f"{len(rep.conflicts)} face(s) conflict with another face of the same index "
              "(first kept):", file=sys.stderr)
        _warn([str(p) for p in rep.conflicts])
    print(f"store: {args.alignments} (source {rep.source})")
    s.print()
    return 0


def run_extract(args: argparse.Namespace) -> int:
    from faceplate.faceset.frames import parse_frame_range
    from faceplate.faceset.jobs import extract_faces
    from faceplate.io.media import open_source

    if args.size < 16 or args.size > 4096:
        raise ConfigError(f"size: {args.size} is outside 16..4096")
    pick = parse_frame_range(args.frames)
    s = Summary("faceset extract")
    with _open(args.alignments, readonly=True) as store:
        wanted = sum(1 for i, f in store.iter_frames() if f and pick(i.index))
        with open_source(_source_path(args, store)) as source, \
                bar(wanted, "extract") as pbar:
            rep = extract_faces(store, source, args.output, size=args.size,
                                centering=args.centering, frames=pick, progress=pbar.update)
    s.frames, s.faces = rep.frames, rep.faces
    print(f"faces: {args.output}")
    s.print()
    return 0


def run_merge(args: argparse.Namespace) -> int:
    from faceplate.faceset.merge import DEFAULT_IOU, DEFAULT_THRESHOLD, merge_facesets, merge_stores

    iou = DEFAULT_IOU if args.iou is None else args.iou
    if not 0.0 < iou <= 1.0:
        raise ConfigError(f"iou: {iou} is outside (0, 1]")
    s = Summary("merge")
    if args.faces:
        thr = DEFAULT_THRESHOLD if args.threshold is None else args.threshold
        if thr < 0:
            raise ConfigError(f"threshold: {thr} is negative")
        from faceplate.io.faceset import iter_faceset

        total = sum(1 for d in args.faces for _ in iter_faceset(d))
        with bar(total, "merge", unit="face") as pbar:
            rep = merge_facesets(args.faces, args.output, threshold=thr, iou=iou,
                                 progress=pbar.update)
        s.skipped = len(rep.bad)
    else:
        if args.threshold is not None:
            print("note: --threshold applies to face folders; stores are de-duplicated by "
                  "same-frame overlap (--iou)", file=sys.stderr)
        with bar(None, "merge") as pbar:
            rep = merge_stores(args.alignments, args.output, iou=iou, progress=pbar.update)
        s.frames = rep.frames
        for line in rep.notes_dropped:
            print(f"warning: dropped as a duplicate, with its notes: {line}", file=sys.stderr)
    s.faces = rep.kept
    s.extra["kept"] = rep.kept
    s.extra["dropped"] = rep.dropped
    s.extra["same-frame"] = len(rep.same_frame)
    s.extra["similar"] = len(rep.similar)
    if rep.renamed:
        s.extra["renamed"] = len(rep.renamed)
    print(f"output: {args.output}")
    s.print()
    return 0


def run_audit(args: argparse.Namespace) -> int:
    from faceplate.faceset import audit

    s = Summary(args.audit)
    moved: list[Path] = []
    with _open(args.alignments, readonly=args.audit != "multi-faces") as store:
        if args.audit == "missing-frames":
            from faceplate.io.media import open_source

            with open_source(_source_path(args, store)) as source:
                items = audit.missing_frames(store, source)
                s.frames = source.total_frames
        elif args.audit == "no-faces":
            items = audit.no_faces(store)
            s.frames = store.frame_count()
        else:
            items = audit.multi_faces(store)
            s.frames = store.frame_count()
            if args.move is not None:
                if args.faces is None:
                    raise ConfigError("--move needs --faces (the face folder to move from)")
                moved, skipped = audit.move_frame_faces(store, args.faces,
                                                        {it.index for it in items}, args.move)
                s.skipped = len(skipped)
                if skipped:
                    print(f"{len(skipped)} face file(s) not moved:", file=sys.stderr)
                    _warn([f"{p.name}: {why}" for p, why in skipped])
    with_counts = args.audit == "multi-faces"
    if args.output is not None:
        audit.write_list(items, args.output, with_counts=with_counts)
        print(f"list: {args.output}")
    else:
        for it in items:
            print(f"{it.name}\t{it.faces}" if with_counts else it.name)
            for why in it.reasons:  # no-faces: the candidates dropped in that frame
                print(f"    {why}")
    s.faces = sum(it.faces for it in items)
    s.extra["found"] = len(items)
    if args.audit == "multi-faces" and args.move is not None:
        s.extra["moved"] = len(moved)
    s.print()
    return 0


def run_draw(args: argparse.Namespace) -> int:
    from faceplate.faceset.draw import draw_store
    from faceplate.faceset.frames import parse_frame_range
    from faceplate.io.media import open_source

    pick = parse_frame_range(args.frames)
    s = Summary("draw")
    with _open(args.alignments, readonly=True) as store:
        wanted = sum(1 for i, f in store.iter_frames() if (f or args.all_frames) and pick(i.index))
        with open_source(_source_path(args, store)) as source, bar(wanted, "draw") as pbar:
            rep = draw_store(store, source, args.output, masks=args.masks, frames=pick,
                             include_empty=args.all_frames, progress=pbar.update)
    s.frames, s.faces = rep.frames, rep.faces
    print(f"images: {args.output}")
    s.print()
    return 0


def run_smooth(args: argparse.Namespace) -> int:
    from faceplate.extract.smoothing import smooth_store

    cfg = config_from_args(SmoothConfig, args)
    s = Summary("smooth")
    with _open(args.alignments) as store, bar(None, "smooth", unit="track") as pbar:
        rep = smooth_store(store, cfg, progress=lambda n: pbar.update(1))
    s.frames, s.faces = rep.frames, rep.faces
    s.extra["tracks"] = rep.tracks
    s.extra["interpolated"] = rep.filled
    if rep.pinned:
        s.extra["pinned (kept as edited)"] = rep.pinned
    s.extra["jitter"] = f"{rep.jitter_before:.4f} -> {rep.jitter_after:.4f}"
    print(f"backup: {rep.backup}")
    s.print()
    return 0


def run_export_json(args: argparse.Namespace) -> int:
    from faceplate.io.store import export_json

    s = Summary("export-json")
    with _open(args.store, readonly=True) as store:
        s.faces = export_json(store, args.out)
        s.frames = store.frame_count()
    print(f"json: {args.out}")
    s.print()
    return 0


def run_import_json(args: argparse.Namespace) -> int:
    from faceplate.io.store import AlignmentsStore, import_json

    s = Summary("import-json")
    frame_size = None
    src_meta: dict[str, Any] = {}
    if args.input is not None:
        from faceplate.io.media import open_source

        with open_source(args.input) as source:
            frame_size = (source.width, source.height)
            src_meta = {"source": str(args.input), "width": source.width,
                        "height": source.height, "fps": source.fps,
                        "total_frames": source.total_frames, "kind": source.kind}
    existed = Path(args.alignments).exists()
    with AlignmentsStore.open(args.alignments, create=True) as store:
        if existed and store.frame_count():
            print(f"backup: {store.backup()}")
        for k, v in src_meta.items():
            if store.get_meta(k) is None:
                store.set_meta(k, v)
        s.faces = import_json(args.json, store, frame_size=frame_size)
        s.frames = store.frame_count()
    print(f"store: {args.alignments}")
    s.print()
    return 0
