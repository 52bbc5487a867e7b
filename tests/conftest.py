"""Shared pytest fixtures: sample media (fetched once into the cache) and a seeded RNG."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def media() -> dict[str, Path]:
    """Name → path of every sample media file (MEDIA.md), verified by sha256."""
    from faceplate.io import samples

    return samples.fetch()


@pytest.fixture()
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)
