"""Shared pytest fixtures: sample media (fetched once into the cache) and a seeded RNG."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Content Credentials: the tests sign with a throwaway local identity, never the user's own.
if "FACEPLATE_C2PA_DIR" not in os.environ:
    import tempfile

    os.environ["FACEPLATE_C2PA_DIR"] = str(Path(tempfile.mkdtemp(prefix="faceplate-c2pa-"))
                                           / "identity")


@pytest.fixture(scope="session")
def media() -> dict[str, Path]:
    """Name → path of every sample media file (MEDIA.md), verified by sha256."""
    from faceplate.io import samples

    return samples.fetch()


@pytest.fixture()
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


@pytest.fixture()
def ident_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh, empty C2PA signing-identity folder for this test (no user key in the env)."""
    from faceplate.provenance import c2pa_sign as cs

    folder = tmp_path / "c2pa-id"
    monkeypatch.setenv(cs.ENV_DIR, str(folder))
    monkeypatch.delenv(cs.ENV_KEY, raising=False)
    monkeypatch.delenv(cs.ENV_CERT, raising=False)
    return folder
