"""Reading the benchmark's real images: sample stills, sampled clip frames, non-face images.

Item ids name what an image is and where it comes from:

* ``still:NAME`` — a sample still (``faceplate.io.samples``), RGBA flattened on black;
* ``neg:NAME`` — a non-face image (``samples.NEGATIVES``), greyscale made RGB;
* ``frame:NAME:INDEX`` — frame INDEX (0-based, decode order) of a sample clip.

Images are H×W×3 ``uint8`` RGB, display-referred sRGB, top-left origin.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import av
import cv2
import numpy as np

from faceplate.io import samples


def still(name: str) -> np.ndarray:
    """A sample still or non-face image as RGB (alpha dropped; grey made RGB)."""
    path = samples.path(name)
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f"{path}: not an image OpenCV can read")
    return np.ascontiguousarray(img[:, :, ::-1])


def clip_frames(name: str, indices: Iterable[int] | None = None
                ) -> Iterator[tuple[int, np.ndarray]]:
    """``(index, rgb)`` for the wanted frames of a sample clip (all when ``indices`` is None)."""
    wanted = None if indices is None else set(indices)
    last = None if wanted is None else max(wanted, default=-1)
    with av.open(str(samples.path(name))) as c:
        for i, f in enumerate(c.decode(video=0)):
            if last is not None and i > last:
                break
            if wanted is None or i in wanted:
                yield i, f.to_ndarray(format="rgb24")


def load(item_id: str) -> np.ndarray:
    """The image of a real item id (see the module docstring)."""
    kind, _, rest = item_id.partition(":")
    if kind in ("still", "neg"):
        return still(rest)
    if kind == "frame":
        name, _, idx = rest.rpartition(":")
        for _, rgb in clip_frames(name, [int(idx)]):
            return rgb
        raise ValueError(f"{item_id}: the clip has no frame {idx}")
    raise ValueError(f"{item_id}: not a real item id")
