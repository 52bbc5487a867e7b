"""``faceplate sort``: order or group a faceset's face PNGs by a sort key, reversibly.

Sort-by renames the faces with a rank prefix (``00000_<name>.png``...); group-by moves them into
one sub-folder per bin (``yaw_-45_-15/``, ``identity_000/``...); both together group, then rank
within each bin. Every change goes to a JSON log first; ``faceplate sort --undo LOG`` reverts it.
Files that are not Faceplate faces are left alone and counted.
"""

from __future__ import annotations

import argparse
from typing import Any

from faceplate.cli.options import add_config, config_from_args
from faceplate.cli.progress import bar
from faceplate.core.errors import ConfigError
from faceplate.faceset.sort import SortOptions, sort_faceset, undo_sort
from faceplate.faceset.sort_keys import SORT_KEYS


def _key_dest(name: str) -> str:
    return f"key_{name.replace('-', '_')}_"


def register(sub: Any) -> None:
    keys = "\n".join(f"  {e.name:<11} {e.summary.rstrip('.')}" for e in SORT_KEYS)
    p = sub.add_parser(
        "sort", help="sort or group a faceset by identity, blur, pose, colour... (undoable)",
        description=__doc__, epilog=f"sort keys:\n{keys}",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input_dir", nargs="?", metavar="INPUT_DIR",
                   help="the faceset folder (face PNGs written by `faceplate extract`)")
    p.add_argument("-o", "--output-dir", metavar="OUTPUT_DIR", default=None,
                   help="put the sorted faces here (default: in place, inside INPUT_DIR)")
    p.add_argument("--sort-by", metavar="METHOD", choices=SORT_KEYS.names(), default=None,
                   help=f"rename faces in this order: {', '.join(SORT_KEYS.names())}")
    p.add_argument("--group-by", metavar="METHOD", choices=SORT_KEYS.names(), default=None,
                   help="move faces into one folder per bin (numeric keys) or cluster "
                        "(identity, hist)")
    p.add_argument("--log", metavar="PATH", default=None,
                   help="the JSON change log (default: sort_log_<time>.json in the output "
                        "folder)")
    p.add_argument("--undo", metavar="LOG", default=None,
                   help="revert the changes recorded in LOG (a log written by a sort) and exit")
    add_config(p, SortOptions, title="sort options")
    for e in SORT_KEYS:
        if e.config.__dataclass_fields__:  # type: ignore[attr-defined]
            add_config(p, e.config, prefix=_key_dest(e.name), flag_prefix=f"{e.name}-",
                       title=f"{e.name} key options")
    p.set_defaults(func=run)


def _progress(total: int, desc: str) -> Any:
    return bar(total, desc, unit="face")


def run(args: argparse.Namespace) -> int:
    if args.undo is not None:
        if args.input_dir is not None or args.sort_by or args.group_by:
            raise ConfigError("--undo LOG takes no INPUT_DIR, --sort-by or --group-by")
        undone = undo_sort(args.undo, progress=_progress)
        print(f"sort --undo: {undone.restored} faces moved back, {undone.removed_copies} copies "
              f"removed, {undone.removed_dirs} folders removed, {undone.seconds:.1f} s",
              flush=True)
        return 0
    if args.input_dir is None:
        raise ConfigError("give INPUT_DIR (or --undo LOG)")
    if args.sort_by is None and args.group_by is None:
        raise ConfigError("nothing to do: choose --sort-by METHOD and/or --group-by METHOD")
    options = config_from_args(SortOptions, args)
    configs: dict[str, Any] = {e.name: config_from_args(e.config, args, prefix=_key_dest(e.name))
               for e in SORT_KEYS if e.name in (args.sort_by, args.group_by)}
    res = sort_faceset(args.input_dir, args.output_dir, sort_by=args.sort_by,
                       group_by=args.group_by, configs=configs, options=options,
                       log_path=args.log, progress=_progress)
    verb = "copied" if options.keep else "moved"
    line = (f"sort: {res.faces} faces, {res.changed} {verb}, {len(res.others)} other files "
            f"left alone, {res.seconds:.1f} s")
    if res.groups:
        line += f", {len(res.groups)} bins"
    print(line, flush=True)
    for name, n in res.groups:
        print(f"  {name}: {n}")
    print(f"log: {res.log_path} (undo with: faceplate sort --undo {res.log_path})", flush=True)
    return 0
