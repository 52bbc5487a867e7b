"""``faceplate fetch-media``: fetch and verify the sample media (MEDIA.md) and the detection
benchmark's non-face images (``samples.NEGATIVES``) into the cache."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from faceplate.io import samples


def register(sub: Any) -> None:
    p = sub.add_parser("fetch-media", help="fetch the sample face media into the cache",
                       description=__doc__)
    p.add_argument("--cache", type=Path, default=None,
                   help=f"media folder (default: {samples.cache_dir()})")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    got = samples.fetch((*samples.MEDIA, *samples.NEGATIVES), cache=args.cache)
    folder = next(iter(got.values())).parent
    print(f"sample media: {len(got)} files verified in {folder}")
    return 0
