"""Shared pytest fixtures (sample media fetched once into the cache, a seeded RNG) and the
session hooks that build the trained test models in the background (:mod:`tests.cache_warm`)
and run the modules that need them last."""

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
    import atexit
    import shutil
    import tempfile

    _c2pa_root = tempfile.mkdtemp(prefix="faceplate-c2pa-")
    os.environ["FACEPLATE_C2PA_DIR"] = str(Path(_c2pa_root) / "identity")
    atexit.register(shutil.rmtree, _c2pa_root, ignore_errors=True)  # this session's only


#: The background cache builder of this session (:mod:`tests.cache_warm`), if one was started.
_WARMER: subprocess.Popen[bytes] | None = None


#: What a test module's source names when it uses the cached trained models
#: (:mod:`tests.cache_warm` builds them): the swap model, and the occlusion test model.
_USES_TRAINED = ("trained_model(",)
_USES_OCCLUSION = ("trained_mask_model", "occlusion_model")


def _source(module: Any) -> str:
    try:
        return Path(module.__file__).read_text(encoding="utf-8")
    except (AttributeError, TypeError, OSError):
        return ""


def _modules(items: list[pytest.Item]) -> dict[str, str]:
    """Module file → source of every collected test module (imports inside tests count)."""
    out: dict[str, str] = {}
    for item in items:
        module = getattr(item, "module", None)
        name = getattr(module, "__file__", None)
        if name is not None and name not in out:
            out[name] = _source(module)
    return out


def _warms(items: list[pytest.Item]) -> bool:
    return not os.environ.get("FACEPLATE_NO_CACHE_WARM") and any(
        n in src for src in _modules(items).values() for n in _USES_TRAINED + _USES_OCCLUSION)


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config,
                                  items: list[pytest.Item]) -> None:
    """When the caches are warmed in the background, run the modules that use the trained
    swap model after every other test, and those that use the occlusion test model (built
    after it, the longest) last: whole modules, each in its own order, so that the training
    overlaps the tests that need no model rather than stalling the run halfway."""
    if not _warms(items):
        return
    sources = _modules(items)

    def rank(item: pytest.Item) -> int:
        src = sources.get(getattr(getattr(item, "module", None), "__file__", None) or "", "")
        return 2 if any(n in src for n in _USES_OCCLUSION) else \
            1 if any(n in src for n in _USES_TRAINED) else 0

    items.sort(key=rank)  # stable: the order within each group is kept


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start :mod:`tests.cache_warm` under ``SCHED_IDLE`` when the collected tests use the
    trained test models (``FACEPLATE_NO_CACHE_WARM=1`` turns it off)."""
    global _WARMER
    if session.config.option.collectonly or not _warms(session.items):
        return
    # OpenMP threads that sleep rather than spin while they wait: at idle priority one of the
    # pool's threads is often without a core, and spinning would only burn the idle time.
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    _WARMER = subprocess.Popen([sys.executable, "-m", "tests.cache_warm", "--idle"],
                               cwd=str(session.config.rootpath), env=env,
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)


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
