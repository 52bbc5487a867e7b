"""``faceplate demo``: the pipeline so far, on the sample media.

Fetches the sample media (MEDIA.md), extracts the woman's clip, the man's clip and the
Obama/Biden stills (with identity embeddings), sorts the man's faces by sharpness, groups the
woman's faces by yaw and the stills by identity, smooths the woman's tracks, and prints where
every result is.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from typing import Any

from faceplate.io import samples

STILLS = ("obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg")


def register(sub: Any) -> None:
    p = sub.add_parser("demo", help="run the pipeline on the sample media", description=__doc__)
    p.add_argument("--output", type=Path, default=Path("demo_out"),
                   help="folder for everything the demo writes (default: demo_out)")
    p.add_argument("--size", type=int, default=256, help="aligned face size (default: 256)")
    p.set_defaults(func=run)


def _step(title: str, argv: list[str]) -> None:
    from faceplate.cli.main import main

    print(f"\n== {title}\n$ faceplate {' '.join(argv)}", flush=True)
    code = main(argv)
    if code != 0:
        from faceplate.core.errors import FaceplateError

        raise FaceplateError(f"demo step failed ({title}), exit code {code}")


def run(args: argparse.Namespace) -> int:
    out: Path = args.output
    media = samples.fetch()
    inputs = out / "inputs"
    stills = inputs / "stills"
    stills.mkdir(parents=True, exist_ok=True)
    for name in STILLS:
        if not (stills / name).exists():
            shutil.copyfile(media[name], stills / name)
    clips = {"woman": media["WolfgangLanger_Pexels.mp4"], "man": media["single_face.mp4"]}
    size = str(args.size)
    for who, clip in clips.items():
        _step(f"extract the {who}'s clip",
              ["extract", str(clip), "-o", str(out / "faces" / who),
               "--alignments", str(out / f"{who}.fpstore"), "--size", size])
    _step("extract the stills with identity embeddings",
          ["extract", str(stills), "-o", str(out / "faces" / "stills"),
           "--alignments", str(out / "stills.fpstore"), "--size", size, "--identity"])
    _step("smooth the woman's landmark tracks",
          ["faceset", "smooth", "--alignments", str(out / "woman.fpstore")])
    _step("sort the man's faces by sharpness (a copy, with an undo log)",
          ["sort", str(out / "faces" / "man"), "-o", str(out / "sorted" / "man_by_blur"),
           "--sort-by", "blur", "--keep"])
    _step("group the woman's faces by yaw",
          ["sort", str(out / "faces" / "woman"), "-o", str(out / "sorted" / "woman_by_yaw"),
           "--group-by", "yaw", "--bins", "5", "--keep"])
    _step("group the stills by identity",
          ["sort", str(out / "faces" / "stills"), "-o", str(out / "sorted" / "stills_by_identity"),
           "--group-by", "identity", "--keep"])
    _step("export the man's alignments as JSON",
          ["faceset", "export-json", str(out / "man.fpstore"), str(out / "man_alignments.json")])
    print("\n== results")
    for who in (*clips, "stills"):
        print(f"  {who}: alignments {(out / f'{who}.fpstore').resolve()}")
        print(f"  {who}: aligned faces {(out / 'faces' / who).resolve()}")
    print(f"  sorted copies (each with a sort log for --undo): {(out / 'sorted').resolve()}")
    print(f"  alignments as JSON: {(out / 'man_alignments.json').resolve()}")
    return 0
