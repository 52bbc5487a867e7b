"""Pairing a store's frames with the decoded frames of its input, and frame-range parsing.

Shared by the ``extract`` and ``draw`` faceset jobs. A store's frame is found in the input by its
own number (``frame_number``: a sequence file's number, a video's 1-based frame), the input is
opened with :func:`faceplate.io.media.open_source` and each decoded frame is checked against the
store's record of it (number, size, and name unless the OFX node named it), so a store is never
applied to the wrong clip.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from faceplate.core.errors import ConfigError, InputError
from faceplate.core.types import FaceRecord, Frame, FrameInfo
from faceplate.io.store import is_host_frame_name

_RANGE = re.compile(r"^\s*(\d*)\s*(?:([-:])\s*(\d*))?\s*$")


def parse_frame_range(spec: str | None) -> Callable[[int], bool]:
    """A predicate on frame indices from ``"0-10,15,20-"`` (inclusive ranges, open ends allowed).

    ``None`` or ``""`` selects every frame. ``:`` may stand for ``-``.

    Raises:
        ConfigError: A part is not ``N``, ``A-B``, ``A-`` or ``-B``, or A > B.
    """
    if spec is None or not spec.strip():
        return lambda _i: True
    parts: list[tuple[int, float]] = []
    for part in spec.split(","):
        m = _RANGE.match(part)
        if not m or (not m.group(1) and not m.group(3) and not m.group(2)) \
                or (not m.group(2) and not m.group(1)):
            raise ConfigError(f"frames: {part.strip()!r} is not N, A-B, A- or -B (in {spec!r})")
        lo = int(m.group(1)) if m.group(1) else 0
        if m.group(2):
            hi: float = int(m.group(3)) if m.group(3) else float("inf")
        else:
            hi = lo
        if hi < lo:
            raise ConfigError(f"frames: range {part.strip()!r} ends before it starts")
        parts.append((lo, hi))
    return lambda i: any(lo <= i <= hi for lo, hi in parts)


def check_frame_matches(frame: Frame, info: FrameInfo, input_path: str | Path,
                        store_path: str | Path) -> None:
    """Refuse a decoded frame that is not the store's frame ``info`` (number, size or name
    differ; frames the OFX node analysed carry a host name, not the file's, and are matched by
    number and size).

    Raises:
        InputError: Naming the input, the frame and both values.
    """
    got = frame.info
    if got.frame_number != info.frame_number:
        raise InputError(
            f"frame {info.index} is frame number {got.frame_number} in the input but "
            f"{info.frame_number} in {store_path}", input_path)
    if (got.width, got.height) != (info.width, info.height):
        raise InputError(
            f"frame {info.index} is {got.width}×{got.height} in the input but "
            f"{info.width}×{info.height} in {store_path}: not the clip the store was made from",
            input_path)
    if got.name != info.name and not is_host_frame_name(info.name):
        raise InputError(
            f"frame {info.index} is named {got.name!r} in the input but {info.name!r} in "
            f"{store_path}: not the clip the store was made from", input_path)


def frames_with_pixels(source: Any, wanted: Iterable[tuple[FrameInfo, list[FaceRecord]]],
                       store_path: str | Path) -> Iterator[tuple[FrameInfo, list[FaceRecord],
                                                                 Frame]]:
    """Decode the input frames of ``wanted`` store frames, in index order.

    Args:
        source: An open ``faceplate.io.media.FrameSource``.
        wanted: ``(FrameInfo, faces)`` from the store.
        store_path: For error messages.

    Yields:
        ``(info, faces, frame)`` for each wanted frame the input holds.

    Raises:
        InputError: A frame is missing from the input or does not match the store.
    """
    todo: dict[int, tuple[FrameInfo, list[FaceRecord]]] = {}
    for info, faces in wanted:
        at = source.index_of(info.frame_number)
        if at is None:
            raise InputError(f"the store {store_path} has frame number {info.frame_number}, "
                             "which the input does not have", source.path)
        todo[at] = (info, faces)
    if not todo:
        return
    seen: set[int] = set()
    for frame in source.frames(indices=sorted(todo)):
        info, faces = todo[frame.info.index]
        check_frame_matches(frame, info, source.path, store_path)
        seen.add(frame.info.index)
        yield info, faces, frame
    missing = sorted(todo[i][0].frame_number for i in set(todo) - seen)
    if missing:
        errs = "; ".join(str(e) for e in getattr(source, "errors", [])[:3])
        raise InputError(f"{len(missing)} frame(s) of the store could not be read from the input "
                         f"(first: frame number {missing[0]}){': ' + errs if errs else ''}",
                         source.path)
