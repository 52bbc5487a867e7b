"""Mask labels we drew on the sample media (our own annotations; the media are fetched, not
shipped: see :mod:`faceplate.io.samples`).

``sample_labels/WolfgangLanger_Pexels_hands.json``: 23 faces of the woman's clip with her hand
over her face (frames 60–224), labelled by the procedure of ``tools/label_hands.py`` (a polygon
drawn around the hand on the 256 px crop, snapped to the image's edges within 3 px, taken out of
the ``extended`` landmark hull, each result checked by eye). Each label keeps its frame → crop
matrix (:mod:`faceplate.core.labels`), so it fits a store of that clip made with any crop size,
centering or landmark smoothing.

Layout::

    {"format": "faceplate-sample-labels", "version": 1, "media": "<file name>",
     "media_sha256": hex, "made_by": str,
     "faces": [{"frame": frame index, "face": face index, "labels": {...}}]}
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from faceplate.core.errors import InputError, RecordError
from faceplate.core.labels import validate_labels
from faceplate.io.store import AlignmentsStore, FaceChange

LABELS_DIR = Path(__file__).parent / "sample_labels"
#: The woman's clip's real occlusions (her hand over her face).
WOMAN_HANDS = "WolfgangLanger_Pexels_hands"


def sample_labels(name: str = WOMAN_HANDS) -> dict[str, Any]:
    """A sample label file, validated (:class:`RecordError` naming it otherwise)."""
    path = LABELS_DIR / f"{name}.json"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError("no such sample label file", path) from None
    except (OSError, ValueError) as err:
        raise RecordError(f"not a sample label file ({err})", path) from None
    if not isinstance(doc, dict) or doc.get("format") != "faceplate-sample-labels" \
            or not isinstance(doc.get("faces"), list):
        raise RecordError("not a sample label file", path)
    for f in doc["faces"]:
        if not isinstance(f, dict) or not isinstance(f.get("frame"), int) \
                or not isinstance(f.get("face"), int):
            raise RecordError("a face entry lacks its frame and face numbers", path)
        f["labels"] = validate_labels(f.get("labels"), str(path))
    return doc


def import_sample_labels(store: AlignmentsStore, name: str = WOMAN_HANDS,
                         frames: set[int] | None = None) -> list[tuple[int, int]]:
    """Write a sample label file's labels into a store of its clip, one undoable step.

    Args:
        store: A writable store extracted from the file's media.
        name: The label file.
        frames: Only these frame indices (all when None).

    Returns:
        ``(frame, face)`` of the faces labelled (a frame whose face the store lacks is left
        out).

    Raises:
        InputError: the store was made from other media.
    """
    doc = sample_labels(name)
    source = store.get_meta("source")
    if not isinstance(source, str) or Path(source).name != doc["media"]:
        raise InputError(f"the labels are for {doc['media']}, the store was extracted from "
                         f"{source!r}", store.path)
    changes = []
    for f in doc["faces"]:
        if frames is not None and f["frame"] not in frames:
            continue
        before = store.face_state(f["frame"], f["face"])
        if before is None:
            continue
        changes.append(FaceChange(f["frame"], f["face"], before,
                                  dataclasses.replace(before, labels=f["labels"])))
    if changes:
        store.edit(f"import {len(changes)} sample mask label(s)", changes)
    return [(c.frame_index, c.face_index) for c in changes]


__all__ = ["LABELS_DIR", "WOMAN_HANDS", "import_sample_labels", "sample_labels"]
