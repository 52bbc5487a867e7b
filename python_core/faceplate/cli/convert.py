"""``faceplate convert --model MODEL_DIR --input VIDEO|SEQUENCE [--alignments STORE] --output OUT``.

Puts A's face (the model's) onto B's footage. OUT is a video file (``.mp4 .mov .mkv .m4v``:
H.264/H.265, the input's rate, audio copied) or a folder for an image sequence (``--format``
png8/png16/jpeg/exr-half/exr-float/...). The faces come from the alignments store (default: the
one next to the input; detected on the fly when there is none). Only the faces' boxes are
touched; float EXR input is swapped in scene-linear float.

Merge controls: face selection (``--select``), colour transfer (``--color``, ``--color-strength``
and each method's ``--<method>-<option>``), blend mode (``--blend``, ``--<mode>-<option>``), mask
sources (``--mask learned components`` combined with ``--mask-combine``) and mask operations
(``--mask-erode``, ``--mask-erode-top`` …, ``--mask-blur-*``, ``--mask-threshold``), geometry
(``--face-scale``, ``--face-x``, ``--face-y``, ``--output-scale``), frames (``--frame-ranges
10-50 90-100``, ``--keep-unchanged``) and post filters (``--post-sharpen``, ``--post-motion-blur``,
``--post-denoise``, ``--post-bicubic``, ``--post-color-bits`` …). ``--patch-dir`` and
``--mask-dir`` also write the raw face patches and the mattes.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from faceplate.cli.options import add_config, config_from_args
from faceplate.cli.progress import Summary, bar
from faceplate.convert.blend import BLEND
from faceplate.convert.color import COLOR
from faceplate.convert.maskops import MaskOpsConfig
from faceplate.convert.post import PostConfig
from faceplate.convert.run import ConvertStats, is_video_output, run_convert
from faceplate.convert.swap import MASK_FIELDS, POST_FIELDS, ConvertConfig, SwapResult
from faceplate.convert.writers.images import ImagesConfig
from faceplate.convert.writers.masks import MasksConfig
from faceplate.convert.writers.patch import PatchConfig
from faceplate.convert.writers.video import VideoConfig
from faceplate.core.errors import OutputError
from faceplate.io.colormanage import ColorConfig

_MASK = "maskop_"
_POST = "post_"
_VIDEO = "video_"
_IMAGES = "images_"
_PATCH = "patch_"
_MASKS = "masks_"


#: The help group of the colour-space options (convert, preview, extract, verify).
COLOR_TITLE = "colour spaces (OpenColorIO: $OCIO, else its built-in ACES studio config)"


def color_prefix(name: str) -> str:
    return f"color_{name}_"


def blend_prefix(name: str) -> str:
    return f"blend_{name}_"


def add_swap_options(p: argparse.ArgumentParser) -> None:
    """Every swap setting (shared with ``faceplate preview``)."""
    add_config(p, ConvertConfig, title="swap", exclude=MASK_FIELDS + POST_FIELDS)
    add_config(p, MaskOpsConfig, prefix=_MASK, flag_prefix="mask-", title="mask operations")
    add_config(p, PostConfig, prefix=_POST, flag_prefix="post-", title="post filters")
    for entry in COLOR:
        add_config(p, entry.config, prefix=color_prefix(entry.name),
                   flag_prefix=f"{entry.name}-", exclude=("strength",),
                   title=f"colour '{entry.name}': {entry.summary}")
    for bentry in BLEND:
        add_config(p, bentry.config, prefix=blend_prefix(bentry.name),
                   flag_prefix=f"{bentry.name}-",
                   title=f"blend '{bentry.name}': {bentry.summary}")


def swap_configs(args: argparse.Namespace) -> tuple[ConvertConfig, Any, Any]:
    """(ConvertConfig, colour-method config, blend-mode config) from the parsed options."""
    mask = config_from_args(MaskOpsConfig, args, prefix=_MASK)
    post = config_from_args(PostConfig, args, prefix=_POST)
    cfg = config_from_args(ConvertConfig, args, **mask.to_dict(), **post.to_dict())
    color_cfg: Any = config_from_args(COLOR.config_class(cfg.color), args,
                                 prefix=color_prefix(cfg.color), strength=cfg.color_strength)
    blend_cfg: Any = config_from_args(BLEND.config_class(cfg.blend), args,
                                 prefix=blend_prefix(cfg.blend))
    return cfg, color_cfg, blend_cfg


def register(sub: Any) -> None:
    p = sub.add_parser("convert", help="swap faces in footage with a trained model",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, required=True, metavar="MODEL_DIR",
                   help="model directory written by `faceplate train`")
    p.add_argument("--input", type=Path, required=True, metavar="VIDEO|SEQUENCE",
                   help="video file, image folder or numbered sequence (shot_####.exr)")
    p.add_argument("--alignments", type=Path, default=None, metavar="STORE",
                   help="alignments store (default: the one next to the input; none: faces "
                        "are detected on the fly)")
    p.add_argument("--output", "-o", type=Path, required=True, metavar="OUT",
                   help="video file (.mp4 .mov .mkv .m4v) or folder for an image sequence")
    p.add_argument("--json", type=Path, default=None, metavar="REPORT.json",
                   help="also write the run's report as JSON (counts, outputs, warnings, every "
                        "swapped face left without the watermark and why, stage times)")
    p.add_argument("--patch-dir", type=Path, default=None,
                   help="also write each face's raw patch + matte + matrix here")
    p.add_argument("--mask-dir", type=Path, default=None,
                   help="also write each frame's matte here")
    add_swap_options(p)
    add_config(p, ColorConfig, title=COLOR_TITLE)
    g = p.add_argument_group("video output (OUT is a video file)")
    g.add_argument("--codec", dest=_VIDEO + "codec", default=argparse.SUPPRESS,
                   help="video encoder: libx264 or libx265 (those this PyAV build has)")
    add_config(g, VideoConfig, prefix=_VIDEO, exclude=("input_space", "codec"))
    add_config(p, ImagesConfig, prefix=_IMAGES, exclude=("input_space",),
               title="image-sequence output (OUT is a folder)")
    add_config(p, PatchConfig, prefix=_PATCH, flag_prefix="patch-", exclude=("input_space",),
               title="patch output (--patch-dir)")
    add_config(p, MasksConfig, prefix=_MASKS, flag_prefix="masks-", exclude=("input_space",),
               title="matte output (--mask-dir)")
    p.set_defaults(func=run)


def _frames_text(numbers: list[int], most: int = 20) -> str:
    """Sorted frame numbers as ranges ("3-7 12 20-21"), at most ``most`` of them shown."""
    runs: list[list[int]] = []
    for n in numbers:
        if runs and n == runs[-1][1] + 1:
            runs[-1][1] = n
        else:
            runs.append([n, n])
    parts = [f"{a}" if a == b else f"{a}-{b}" for a, b in runs[:most]]
    return " ".join(parts) + (f" and {len(runs) - most} more" if len(runs) > most else "")


def print_stats(stats: ConvertStats, summary: Summary) -> None:
    for w in stats.warnings:
        print(f"warning: {w}", file=sys.stderr)
    summary.frames, summary.faces, summary.skipped = stats.frames, stats.faces, stats.skipped
    summary.extra["swapped"] = stats.swapped
    summary.extra["unchanged"] = stats.unchanged
    summary.extra["unmarked"] = len(stats.unmarked)
    if stats.unmarked:
        print(f"warning: {stats.unmarked_summary()} (frames "
              f"{_frames_text(sorted({u['frame'] for u in stats.unmarked}))})", file=sys.stderr)
    summary.print()
    for out in stats.outputs:
        print(f"output: {out}")


def run(args: argparse.Namespace) -> int:
    cfg, color_cfg, blend_cfg = swap_configs(args)
    video = is_video_output(args.output)
    video_cfg = config_from_args(VideoConfig, args, prefix=_VIDEO) if video else None
    images_cfg = None if video else config_from_args(ImagesConfig, args, prefix=_IMAGES)
    patch_cfg = config_from_args(PatchConfig, args, prefix=_PATCH)
    masks_cfg = config_from_args(MasksConfig, args, prefix=_MASKS)
    if args.json is not None and not Path(args.json).parent.is_dir():
        raise OutputError("the report's folder does not exist", Path(args.json).parent)
    summary = Summary("convert")
    progress: list[Any] = []

    def on_start(total: int) -> None:
        progress.append(bar(total, "convert"))

    def on_frame(index: int, result: SwapResult | None) -> None:
        if progress:
            progress[0].update(1)

    try:
        stats = run_convert(args.model, args.input, args.output, args.alignments, cfg,
                            video_cfg=video_cfg, images_cfg=images_cfg,
                            patch_dir=args.patch_dir, patch_cfg=patch_cfg,
                            mask_dir=args.mask_dir, masks_cfg=masks_cfg, color_cfg=color_cfg,
                            blend_cfg=blend_cfg, on_start=on_start, on_frame=on_frame,
                            colors=config_from_args(ColorConfig, args))
    finally:
        for b in progress:
            b.close()
    print_stats(stats, summary)
    if args.json is not None:
        args.json.write_text(json.dumps(stats.to_json(), indent=1) + "\n")
        print(f"report: {args.json}")
    return 0
