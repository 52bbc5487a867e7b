"""Shared pytest fixtures: sample media (fetched once into the cache) and a seeded RNG."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Content Credentials: the tests sign with a throwaway local identity, never the user's own.
if "FACEPLATE_C2PA_DIR" not in os.environ:
    import tempfile

    os.environ["FACEPLATE_C2PA_DIR"] = str(Path(tempfile.mkdtemp(prefix="faceplate-c2pa-"))
                                           / "identity")


#: The background cache builder of this session (:mod:`tests.cache_warm`), if one was started.
_WARMER: subprocess.Popen[bytes] | None = None


def _uses_trained_models(items: list[pytest.Item]) -> bool:
    """Whether any collected test module refers to a cached trained test model."""
    from tests import convert_model, occlusion_model

    wanted = (convert_model.trained_model, occlusion_model.trained_mask_model, occlusion_model)
    modules = {id(m): m for m in (getattr(i, "module", None) for i in items) if m is not None}
    return any(v is w for m in modules.values() for v in vars(m).values() for w in wanted)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start :mod:`tests.cache_warm` under ``SCHED_IDLE`` when the collected tests use the
    trained test models (``FACEPLATE_NO_CACHE_WARM=1`` turns it off)."""
    global _WARMER
    if os.environ.get("FACEPLATE_NO_CACHE_WARM") or not _uses_trained_models(session.items):
        return
    _WARMER = subprocess.Popen([sys.executable, "-m", "tests.cache_warm", "--idle"],
                               cwd=str(session.config.rootpath), stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def pytest_sessionfinish(session: pytest.Session, exitstatus: Any) -> None:
    """Stop the background cache builder (its builds are atomic: nothing half-built stays)."""
    if _WARMER is None or _WARMER.poll() is not None:
        return
    _WARMER.terminate()
    try:
        _WARMER.wait(timeout=20)
    except subprocess.TimeoutExpired:
        _WARMER.kill()
        _WARMER.wait()


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
