"""``faceplate preview --model MODEL_DIR --input VIDEO|SEQUENCE --frames 0 10 20
--settings "color=rct blend=seamless" "color=avg-color mask=learned,components" -o SHEET.png``.

A contact sheet to compare merge settings side by side (the converter preview): one row per
frame, one column for the original and one per ``--settings`` string, each cell labelled, written
as one PNG. A settings string is space-separated ``key=value`` pairs over the swap options (the
``faceplate convert`` option names without the leading dashes, ``-`` or ``_``: ``color``,
``color-strength``, ``blend``, ``mask`` (comma-separated list), ``combine``, ``erode``,
``erode-top``, ``blur-kernel``, ``threshold``, ``face-scale``, ``sharpen``, ``motion-blur`` …);
the other swap options given on the command line are the base every column starts from.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from faceplate.cli.convert import COLOR_TITLE, add_swap_options, swap_configs
from faceplate.cli.options import add_config, config_from_args
from faceplate.convert.run import open_store
from faceplate.convert.swap import (
    ConvertConfig,
    SwapContext,
    make_predictor,
    swap_frame,
)
from faceplate.convert.writers.base import atomic_write_bytes
from faceplate.core.colorspace import linear_to_display_u8
from faceplate.core.config import Param, params
from faceplate.core.errors import ConfigError, OutputError
from faceplate.core.profile import configured
from faceplate.io.colormanage import ColorConfig
from faceplate.io.media import open_source

LABEL_H = 22
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def register(sub: Any) -> None:
    p = sub.add_parser("preview", help="contact sheet comparing convert settings",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, required=True, metavar="MODEL_DIR")
    p.add_argument("--input", type=Path, required=True, metavar="VIDEO|SEQUENCE")
    p.add_argument("--alignments", type=Path, default=None, metavar="STORE")
    p.add_argument("--frames", type=int, nargs="+", default=[0], metavar="N",
                   help="frame indices (rows of the sheet)")
    p.add_argument("--settings", nargs="+", default=["color=rct"], metavar="SETTINGS",
                   help='one column per string of key=value pairs, e.g. "color=rct '
                        'blend=seamless"')
    p.add_argument("--cell-width", type=int, default=320,
                   help="width of each cell in pixels (default: 320)")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="SHEET.png")
    add_swap_options(p)
    add_config(p, ColorConfig, title=COLOR_TITLE, exclude=("output_colorspace",))
    p.set_defaults(func=run)


def _param_value(p: Param, text: str) -> Any:
    try:
        if p.kind == "bool":
            low = text.lower()
            if low not in _TRUE | _FALSE:
                raise ValueError
            return low in _TRUE
        if p.kind == "int":
            return int(text)
        if p.kind == "float":
            return float(text)
        if p.kind in ("floats", "strs"):
            items = [t for t in text.split(",") if t]
            return tuple(float(t) for t in items) if p.kind == "floats" else tuple(items)
        if p.kind == "choice" and p.choices and not isinstance(p.choices[0], str):
            return type(p.choices[0])(text)
    except ValueError:
        raise ConfigError(f"settings: {p.name}={text!r} is not a valid {p.kind}") from None
    return text


def parse_settings(text: str, base: ConvertConfig) -> ConvertConfig:
    """``"color=rct blend=seamless erode=5"`` applied on top of ``base``.

    Keys are :class:`ConvertConfig` field names (``-`` or ``_``; a leading ``mask-`` or
    ``post-`` as in the convert flags is accepted).

    Raises:
        ConfigError: an unknown key, a malformed pair or an invalid value.
    """
    fields = {p.name: p for p in params(ConvertConfig)}
    changes: dict[str, Any] = {}
    for token in text.split():
        if "=" not in token:
            raise ConfigError(f"settings: {token!r} is not key=value (in {text!r})")
        key, value = token.split("=", 1)
        name = key.strip().lstrip("-").replace("-", "_")
        if name not in fields:
            for pre in ("mask_", "post_"):
                if name.startswith(pre) and name[len(pre):] in fields:
                    name = name[len(pre):]
        if name not in fields:
            raise ConfigError(f"settings: unknown key {key!r} (in {text!r}); keys: "
                              + ", ".join(sorted(fields)))
        changes[name] = _param_value(fields[name], value)
    result: ConvertConfig = base.replace(**changes)
    return result


def _label(cell: np.ndarray, text: str) -> np.ndarray:
    strip = np.full((LABEL_H, cell.shape[1], 3), 32, np.uint8)
    cv2.putText(strip, text[:60], (4, LABEL_H - 7), cv2.FONT_HERSHEY_SIMPLEX, 0.42,
                (235, 235, 235), 1, cv2.LINE_AA)
    return np.vstack([strip, cell])


def _display(img: np.ndarray, linear: bool) -> np.ndarray:
    if img.dtype == np.uint8:
        return img[..., :3]
    if linear:
        return linear_to_display_u8(img)[0]
    return (np.clip(np.nan_to_num(img[..., :3]), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def build_sheet(model_dir: Path, input_path: Path, store_path: Path | None, frames: list[int],
                settings: list[str], base: ConvertConfig, color_cfg: Any = None,
                blend_cfg: Any = None, cell_width: int = 320,
                colorspace: str = "", unmarked: list[str] | None = None) -> np.ndarray:
    """The contact sheet: H×W×3 uint8 RGB, rows = frames, columns = original + settings.

    Each cell is ``cell_width`` wide (height from the frame's aspect) under a
    :data:`LABEL_H`-pixel label strip. ``colorspace``: the input's colour space (see
    :mod:`faceplate.io.colormanage`; empty: from its metadata, else by kind). A cell whose
    swapped faces were not all marked says so in its label ("(N unmarked)"), and one line per
    such cell ("frame N, SETTINGS: face i: why") is appended to ``unmarked`` when given.
    """
    unmarked = unmarked if unmarked is not None else []
    cfgs = [parse_settings(s, base) for s in settings]
    predictor = make_predictor(base.predictor, model_dir, threads=base.threads,
                               precision=base.precision)
    rows: list[np.ndarray] = []
    with open_source(input_path, colorspace=colorspace) as source:
        st = open_store(store_path, source)
        extractor = None
        if st is None:
            from faceplate.extract.pipeline import ExtractConfig, Extractor

            names = sorted({n for c in cfgs for n in c.extractor_masks()})
            extractor = Extractor(configured(ExtractConfig, masks=tuple(names),
                                             thumbnails=False, write_faces=False))
        try:
            contexts = [SwapContext.create(
                c, color_cfg=color_cfg if c.color == base.color else None,
                blend_cfg=blend_cfg if c.blend == base.blend else None) for c in cfgs]
            ch = max(1, round(cell_width * source.height / source.width))
            for frame in source.frames(frames):
                idx = frame.info.index
                linear = frame.linear is not None
                pixels = (np.ascontiguousarray(frame.linear[..., :3] if frame.linear.ndim == 3
                                               else frame.linear[..., None].repeat(3, 2),
                                               dtype=np.float32)
                          if frame.linear is not None else frame.rgb)
                if st is not None:
                    faces = st.faces_at(frame.info.frame_number) or []
                else:
                    assert extractor is not None
                    faces = extractor.process(frame).records
                cells = [_label(cv2.resize(_display(pixels, linear), (cell_width, ch),
                                           interpolation=cv2.INTER_AREA),
                                f"frame {idx}: original ({len(faces)} faces)")]
                for text, c, ctx in zip(settings, cfgs, contexts):
                    res = swap_frame(pixels, faces, predictor, c, frame_is_linear=linear,
                                     context=ctx)
                    label = text
                    if res.unmarked:
                        label = f"{text} ({len(res.unmarked)} unmarked)"
                        unmarked.append(f"frame {idx}, {text}: "
                                        f"{res.unmarked_text()}")
                    cells.append(_label(cv2.resize(_display(res.frame, linear), (cell_width, ch),
                                                   interpolation=cv2.INTER_AREA), label))
                rows.append(np.hstack(cells))
        finally:
            if st is not None:
                st.close()
    if not rows:
        raise ConfigError(f"frames: none of {frames} is in the input", input_path)
    return np.vstack(rows)


def run(args: argparse.Namespace) -> int:
    base, color_cfg, blend_cfg = swap_configs(args)
    if args.cell_width < 16:
        raise ConfigError(f"cell-width: {args.cell_width} is below 16 pixels")
    out = Path(args.output)
    if out.suffix.lower() != ".png":
        raise ConfigError("the contact sheet is a PNG: give an output ending in .png", out)
    if not out.parent.is_dir():
        raise OutputError("the output folder does not exist", out.parent)
    unmarked: list[str] = []
    sheet = build_sheet(args.model, args.input, args.alignments, list(args.frames),
                        list(args.settings), base, color_cfg, blend_cfg, args.cell_width,
                        config_from_args(ColorConfig, args).colorspace, unmarked)
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(sheet[..., ::-1]))
    if not ok:
        raise OutputError("cannot encode the contact sheet", out)
    atomic_write_bytes(out, buf.tobytes())
    print(f"contact sheet: {out} ({sheet.shape[1]}×{sheet.shape[0]}, "
          f"{len(args.frames)} frames × {len(args.settings) + 1} columns)")
    for line in unmarked:
        print(f"warning: left without the watermark: {line}", file=sys.stderr)
    return 0
