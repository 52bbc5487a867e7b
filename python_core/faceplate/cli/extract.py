"""``faceplate extract INPUT -o FACESET_DIR [--alignments STORE]``.

INPUT is a video file, an image file, an image folder or a numbered sequence. The alignments
store defaults to a file next to the input; a run that is interrupted resumes where it stopped.
Every registered detector, aligner and masker contributes its own options (``--<name>-<option>``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from faceplate.cli.options import add_config, config_from_args
from faceplate.cli.progress import Summary, bar
from faceplate.extract.align import ALIGNERS
from faceplate.extract.detect import DETECTORS
from faceplate.extract.filters import FilterConfig
from faceplate.extract.follow import FollowConfig
from faceplate.extract.mask import MASKERS, split_mask_spec
from faceplate.extract.pipeline import ExtractConfig, Extractor, FrameResult, run_extract
from faceplate.extract.track import TrackConfig
from faceplate.io.colormanage import ColorConfig


def _plugin_prefix(kind: str, name: str) -> str:
    return f"{kind}_{name}_"


def register(sub: Any) -> None:
    p = sub.add_parser("extract", help="detect, align and cut faces from footage",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", type=Path, help="video file, image file, image folder or sequence")
    p.add_argument("-o", "--output", type=Path, default=None,
                   help="faceset folder for the aligned face PNGs")
    p.add_argument("--alignments", type=Path, default=None,
                   help="alignments store (default: <input stem>.fpstore next to the input)")
    add_config(p, ExtractConfig, title="extraction")
    add_config(p, ColorConfig, title="colour space (OpenColorIO: $OCIO, else its built-in ACES "
                                     "studio config)", exclude=("output_colorspace",))
    add_config(p, FilterConfig, title="face filters", prefix="filter_")
    add_config(p, FollowConfig, title="tracking between detections (--track on: detect every "
                                      "N frames, follow the faces from their landmarks between)")
    add_config(p, TrackConfig, title="track search (look again for a face lost in one frame; "
                                     "with --track on or off)")
    for reg, kind in ((DETECTORS, "detector"), (ALIGNERS, "aligner"), (MASKERS, "masker")):
        for entry in reg:
            add_config(p, entry.config, prefix=_plugin_prefix(kind, entry.name),
                       flag_prefix=f"{entry.name.replace('_', '-')}-",
                       title=f"{kind} '{entry.name}': {entry.summary}")
    p.set_defaults(func=run)


def build_extractor(args: argparse.Namespace) -> Extractor:
    cfg = config_from_args(ExtractConfig, args)
    det_cfg: Any = config_from_args(DETECTORS.config_class(cfg.detector), args,
                               prefix=_plugin_prefix("detector", cfg.detector))
    al_cfg: Any = config_from_args(ALIGNERS.config_class(cfg.aligner), args,
                              prefix=_plugin_prefix("aligner", cfg.aligner))
    names = [split_mask_spec(spec)[0] for spec in cfg.masks]   # occlusion:MODEL_DIR → occlusion
    mask_cfgs: dict[str, Any] = {m: config_from_args(MASKERS.config_class(m), args,
                                     prefix=_plugin_prefix("masker", m)) for m in names}
    filt = config_from_args(FilterConfig, args, prefix="filter_")
    track = config_from_args(TrackConfig, args)
    follow = config_from_args(FollowConfig, args)
    return Extractor(cfg, detector_cfg=det_cfg, aligner_cfg=al_cfg, mask_cfgs=mask_cfgs,
                     filter_cfg=filt, track_cfg=track, follow_cfg=follow)


def run(args: argparse.Namespace) -> int:
    extractor = build_extractor(args)
    summary = Summary("extract")
    progress: list[Any] = []

    def on_start(todo: int, done: int) -> None:
        if done:
            print(f"resuming: {done} frames already in the store, {todo} to do", flush=True)
        progress.append(bar(todo, "extract"))

    def on_frame(res: FrameResult, remaining: int) -> None:
        progress[0].update(1)
        progress[0].set_postfix(faces=summary.faces + len(res.records), refresh=False)
        summary.faces += len(res.records)

    try:
        stats = run_extract(args.input, args.output, args.alignments, extractor=extractor,
                            on_frame=on_frame, on_start=on_start,
                            colorspace=config_from_args(ColorConfig, args).colorspace)
    finally:
        for b in progress:
            b.close()
    for w in stats.warnings:
        print(f"warning: {w}", file=sys.stderr)
    for e in stats.errors:
        print(f"skipped: {e}", file=sys.stderr)
    summary.frames, summary.faces = stats.frames, stats.faces
    summary.skipped = sum(stats.skipped.values()) + len(stats.errors)
    if stats.resumed:
        summary.extra["resumed"] = stats.resumed
    if stats.tracked:
        summary.extra["found by the track search"] = stats.tracked
    if extractor.follow_cfg.track == "on":
        summary.extra["detection frames"] = stats.detection_frames
        summary.extra["faces followed"] = stats.followed
    for reason, n in sorted(stats.skipped.items()):
        summary.extra[f"skipped ({reason})"] = n
    summary.print()
    print(f"alignments: {stats.store}")
    if stats.faces_dir is not None:
        print(f"faces: {stats.faces_dir}")
    return 0
