"""``faceplate evaluate INPUT OUTPUT --source FACESET_A --json REPORT.json``: measure a conversion.

INPUT is the original footage, OUTPUT the converted footage of the same frames (video, image
sequence or still), FACESET_A the faceset of the person whose face was put in. Per frame and
overall: identity distance of the output face to A and to the original face (dlib embedding),
landmark error between input and output faces (pose and expression kept), colour ΔE2000 between
the swapped skin and the ring of plate around it, seam score (gradient energy on the mask border
against the same band in the input) and temporal jitter of the landmark tracks (output and
input). Writes a JSON report and, with --plot, a PNG of the per-frame curves.

Frames without a face in either clip are counted, not an error. Exit status: 0, or 1 when INPUT
holds no face at all (the report is still written).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from faceplate.cli.options import add_config, config_from_args
from faceplate.cli.progress import bar


def register(sub: Any) -> None:
    from faceplate.evaluate.run import EvaluateConfig

    p = sub.add_parser("evaluate", help="measure a conversion: identity, landmarks, colour, "
                       "seam, jitter", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", type=Path, metavar="INPUT", help="the original footage")
    p.add_argument("output", type=Path, metavar="OUTPUT", help="the converted footage")
    p.add_argument("--source", "-s", type=Path, required=True, metavar="FACESET_A",
                   help="faceset folder of the person whose face was put in")
    p.add_argument("--json", type=Path, required=True, metavar="REPORT.json",
                   help="where to write the report")
    p.add_argument("--alignments", "-a", type=Path, default=None, metavar="STORE",
                   help="alignments store of INPUT (its faces are used instead of detecting "
                   "them again)")
    p.add_argument("--plot", type=Path, default=None, metavar="PLOT.png",
                   help="also write a PNG of the per-frame curves")
    add_config(p, EvaluateConfig, title="evaluation")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from faceplate.evaluate.run import EvaluateConfig, Evaluator
    from faceplate.io.paths import ensure_output_dir

    cfg = config_from_args(EvaluateConfig, args)
    for out in (args.json, args.plot):
        if out is not None:
            ensure_output_dir(Path(out).parent, probe=True)
    evaluator = Evaluator(cfg)
    progress = None

    def start(n: int) -> None:
        nonlocal progress
        progress = bar(n, "evaluate")

    def step(_fs: Any) -> None:
        if progress is not None:
            progress.update(1)

    try:
        report = evaluator.run(args.input, args.output, args.source, args.alignments,
                               on_frame=step, on_start=start)
    finally:
        if progress is not None:
            progress.close()
    report.write_json(args.json)
    print("\n".join(report.summary_lines()))
    n = len(report.frames)
    ms = report.seconds * 1000.0 / n if n else 0.0
    print(f"evaluate: {n} frames, {report.seconds:.1f} s ({ms:.0f} ms/frame); report: {args.json}")
    if args.plot is not None:
        report.write_plot(args.plot)
        print(f"plot: {args.plot}")
    if report.counts()["input_faces"] == 0:
        print("faceplate evaluate: no face found in INPUT; nothing was measured",
              file=sys.stderr)
        return 1
    return 0
