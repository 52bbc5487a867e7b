"""Training data (faceplate.train.data) on real sample facesets made by ``faceplate extract``."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch

from faceplate.core.errors import InputError
from faceplate.core.geometry import LEFT_EYE, RIGHT_EYE
from faceplate.io.faceset import FaceMeta, read_face_png, write_face_png
from faceplate.train import augment as aug
from faceplate.train.data import Batch, DataConfig, Faceset, PairLoader
from tests.train_facesets import facesets

#: No random augmentation at all: target = the training crop, warped = target.
STILL = dict(rotation=0.0, zoom=0.0, shift=0.0, flip=0.0, random_warp=False,
             color_jitter=False, clahe_chance=0.0)


@pytest.fixture(scope="module")
def sets(tmp_path_factory: Any) -> tuple[Path, Path]:
    return facesets(tmp_path_factory)


_LOADED: dict[tuple[Path, DataConfig], Faceset] = {}


def load(folder: Path, cfg: DataConfig) -> Faceset:
    """Facesets are loaded once per config for the whole module (read-only use)."""
    key = (folder, cfg)
    if key not in _LOADED:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _LOADED[key] = Faceset(folder, cfg)
    return _LOADED[key]


def loader(sets: tuple[Path, Path], cfg: DataConfig, batch: int = 8, **kw: Any) -> PairLoader:
    return PairLoader(load(sets[0], cfg), load(sets[1], cfg), batch, cfg,
                      seed=kw.pop("seed", 1), **kw)


def _check_batch(b: Batch, n: int, s: int, cfg: DataConfig) -> None:
    assert isinstance(b, Batch)
    for t, ch in zip(b, (3, 3, 1, 1)):
        assert t.shape == (n, ch, s, s) and t.dtype == torch.float32 and t.is_contiguous()
        assert torch.isfinite(t).all()
    for t in (b.warped, b.target, b.mask):
        assert float(t.min()) >= 0.0 and float(t.max()) <= 1.0
    assert float(b.weight.min()) >= 0.0
    assert float(b.weight.max()) <= cfg.eye_weight + cfg.mouth_weight - 1.0 + 1e-5
    assert float(b.weight.max()) >= cfg.mouth_weight - 1e-3       # eyes/mouth are there
    assert float(b.target.std()) > 0.05                            # a picture, not a fill


@pytest.mark.parametrize("size", [64, 128, 77])
def test_batch_shapes_dtypes_ranges(sets: tuple[Path, Path], size: int) -> None:
    cfg = DataConfig(size=size)
    pl = loader(sets, cfg, batch=6)
    a, b = pl.batch(0)
    _check_batch(a, 6, size, cfg)
    _check_batch(b, 6, size, cfg)
    fs = pl.sides[0]
    assert len(fs) == 118 and len(pl.sides[1]) == 72 and not fs.skipped
    c = size + 2 * fs.pad
    assert fs.images is not None and fs.images.shape == (118, c, c, 3)
    assert fs.images.dtype == np.uint8 and isinstance(fs.images, np.memmap)
    assert fs.landmarks.shape == (118, 68, 2) and fs.landmarks.dtype == np.float32
    assert not (a.warped == a.target).all()                       # augmented input


def test_deterministic_for_a_seed(sets: tuple[Path, Path]) -> None:
    cfg = DataConfig(size=64)
    x = loader(sets, cfg, seed=7).batch(3)
    y = loader(sets, cfg, seed=7).batch(3)
    z = loader(sets, cfg, seed=8).batch(3)
    for u, v, w in zip(x, y, z):
        for t1, t2 in zip(u, v):
            assert torch.equal(t1, t2)
        assert not torch.equal(u.target, w.target)


def test_worker_processes_give_the_same_batches(sets: tuple[Path, Path]) -> None:
    cfg = DataConfig(size=64, workers=2)
    pl = loader(sets, cfg, seed=4, start=5)
    try:
        it = iter(pl)
        got = [next(it) for _ in range(3)]
    finally:
        pl.close()
    ref = loader(sets, cfg.replace(workers=0), seed=4)
    for k, pair in enumerate(got):
        want = ref.batch(5 + k)
        for u, v in zip(pair, want):
            for t1, t2 in zip(u, v):
                assert torch.equal(t1, t2)


def test_zero_strength_warped_equals_target_equals_crop(sets: tuple[Path, Path]) -> None:
    cfg = DataConfig(size=64, **STILL)  # type: ignore[arg-type]
    pl = loader(sets, cfg)
    a, _ = pl.batch(0)
    assert torch.equal(a.warped, a.target)
    fs, idx = pl.sides[0], pl.indices(0, 0)
    assert fs.images is not None
    crop = torch.from_numpy(fs.images[idx.numpy()][:, fs.pad:fs.pad + 64, fs.pad:fs.pad + 64])
    assert float((a.target - crop.permute(0, 3, 1, 2) / 255.0).abs().max()) < 1e-5
    # a zero-scale grid warp is the identity up to interpolation
    cfg0 = cfg.replace(random_warp=True, warp_scale=0.0)
    a0, _ = loader(sets, cfg0).batch(0)
    assert float((a0.warped - a0.target).abs().max()) < 1e-5


def test_grid_warp_changes_input_only(sets: tuple[Path, Path]) -> None:
    still = DataConfig(size=64, **STILL)  # type: ignore[arg-type]
    warp = still.replace(random_warp=True)
    s, w = loader(sets, still).batch(2)[1], loader(sets, warp).batch(2)[1]
    assert torch.equal(s.target, w.target) and torch.equal(s.mask, w.mask)
    assert torch.equal(s.weight, w.weight)
    diff = (w.warped - w.target).abs().mean()
    assert 0.005 < float(diff) < 0.2


def test_warp_to_landmarks_changes_input_only(sets: tuple[Path, Path]) -> None:
    cfg = DataConfig(size=64, warp_to_landmarks=True)
    ref = loader(sets, cfg.replace(warp_to_landmarks=False, random_warp=False)).batch(1)
    got = loader(sets, cfg).batch(1)
    for r, g in zip(ref, got):
        assert torch.equal(r.target, g.target)
        assert 0.003 < float((g.warped - g.target).abs().mean()) < 0.2


def test_flip_flips_image_mask_and_weights(sets: tuple[Path, Path]) -> None:
    base = DataConfig(size=65, **STILL)  # type: ignore[arg-type]
    plain = loader(sets, base).batch(0)[0]
    flipped = loader(sets, base.replace(flip=1.0)).batch(0)[0]
    for t0, t1 in zip(plain, flipped):
        assert float((t1 - t0.flip(-1)).abs().max()) < 1e-5
    assert not torch.equal(plain.target, flipped.target)


def _eye_distance(fs: Faceset) -> np.ndarray:
    lm = fs.landmarks
    return np.linalg.norm(lm[:, LEFT_EYE].mean(1) - lm[:, RIGHT_EYE].mean(1), axis=1)


def test_coverage_and_centering_scale_the_crop(sets: tuple[Path, Path]) -> None:
    full = DataConfig(size=64, **STILL)  # type: ignore[arg-type]
    tight = full.replace(coverage=0.75)
    head = full.replace(centering="head")
    d_full = _eye_distance(load(sets[1], full))
    np.testing.assert_allclose(_eye_distance(load(sets[1], tight)) / d_full, 1 / 0.75, rtol=1e-3)
    np.testing.assert_allclose(_eye_distance(load(sets[1], head)) / d_full, 1.75 / 2.7, rtol=1e-3)
    # the pixels agree: the full crop zoomed by 1/0.75 about its centre is the tight crop
    a = loader(sets, full).batch(0)[1].target
    b = loader(sets, tight).batch(0)[1].target
    zoom = torch.tensor([[0.75, 0, 8.0], [0, 0.75, 8.0]]).expand(len(a), 2, 3)  # c(1-0.75)=8
    a_zoomed = aug.sample(a, aug.source_coords(zoom, 64))
    inner = slice(6, 58)
    matched = (a_zoomed - b)[..., inner, inner].abs().mean()
    unmatched = (a - b)[..., inner, inner].abs().mean()
    assert float(matched) < 0.03 and float(matched) < 0.4 * float(unmatched)
    assert torch.equal(loader(sets, full).indices(1, 0), loader(sets, tight).indices(1, 0))


def test_head_centering_warns_about_edge_replication(sets: tuple[Path, Path]) -> None:
    with pytest.warns(UserWarning, match="edge-replicated"):
        fs = Faceset(sets[1], DataConfig(size=32, centering="head"))
    assert any("'head'" in w for w in fs.warnings)


def test_masks_line_up_with_the_face(sets: tuple[Path, Path]) -> None:
    cfg = DataConfig(size=64, color_jitter=False, clahe_chance=0.0, rotation=10.0, shift=0.05)
    pl = loader(sets, cfg)
    yy, xx = torch.meshgrid(torch.arange(64) + 0.5, torch.arange(64) + 0.5, indexing="ij")
    for side in (0, 1):
        b = pl.side_batch(side, 0)
        m = b.mask[:, 0]
        cm = torch.stack([(m * xx).sum((1, 2)), (m * yy).sum((1, 2))], 1) / m.sum((1, 2))[:, None]
        lm = torch.from_numpy(pl.sides[side].landmarks[pl.indices(side, 0).numpy()])
        lm = aug.transform_points(lm, aug.affine_matrices(pl.params(side, 0), 64))
        cl = lm[:, 17:].mean(1)                         # inner points (no jaw)
        err = (cm - cl).norm(dim=1)
        assert float(err.max()) < 0.1 * 64, err
        assert float(m.mean()) > 0.2                    # a face-sized mask, not a speck


def test_unmasked_training(sets: tuple[Path, Path]) -> None:
    cfg = DataConfig(size=32, mask="none")
    a, _ = loader(sets, cfg).batch(0)
    assert bool((a.mask == 1).all()) and float(a.weight.min()) >= 1.0


def test_uniform_yaw_flattens_the_yaw_histogram(sets: tuple[Path, Path]) -> None:
    base = DataConfig(size=32, uniform_yaw=True, yaw_bins=6)
    fs = load(sets[1], base)
    bins = aug.yaw_bins(fs.yaw, 6)
    have = np.bincount(bins, minlength=6)
    assert have.max() >= 4 * max(have.min(), 1)              # the man mostly looks ahead
    pl = loader(sets, base)
    drawn = np.concatenate([bins[pl.indices(1, k).numpy()] for k in range(200)])
    hist = np.bincount(drawn, minlength=6)[have > 0]
    assert hist.max() < 1.35 * hist.min()
    plain = loader(sets, base.replace(uniform_yaw=False))
    drawn = np.concatenate([bins[plain.indices(1, k).numpy()] for k in range(200)])
    hist = np.bincount(drawn, minlength=6)[have > 0]
    assert hist.max() > 2 * hist.min()


def test_rank_shards_are_disjoint_and_make_the_global_batch(sets: tuple[Path, Path]) -> None:
    cfg = DataConfig(size=32)
    r0 = loader(sets, cfg, batch=4, rank=0, world=2, seed=3)
    r1 = loader(sets, cfg, batch=4, rank=1, world=2, seed=3)
    one = loader(sets, cfg, batch=8, seed=3)
    n_b = len(r0.sides[1])
    seen0 = np.concatenate([r0.indices(1, k).numpy() for k in range(n_b // 8)])
    seen1 = np.concatenate([r1.indices(1, k).numpy() for k in range(n_b // 8)])
    assert not set(seen0) & set(seen1)                  # one epoch: disjoint shards
    assert len(set(seen0) | set(seen1)) == n_b // 8 * 8
    x0, x1, g = r0.side_batch(0, 2), r1.side_batch(0, 2), one.side_batch(0, 2)
    for t0, t1, tg in zip(x0, x1, g):
        assert torch.equal(torch.cat([t0, t1]), tg)   # DDP ranks = one process, global batch


def test_cache_off_gives_the_same_batches(sets: tuple[Path, Path]) -> None:
    cfg = DataConfig(size=48)
    x = loader(sets, cfg).batch(1)
    y = loader(sets, cfg.replace(cache=False)).batch(1)
    for u, v in zip(x, y):
        for t1, t2 in zip(u, v):
            assert torch.equal(t1, t2)


def _small_set(src: Path, dst: Path, n: int) -> Path:
    dst.mkdir()
    for p in sorted(src.glob("*.png"))[:n]:
        shutil.copy(p, dst / p.name)
    return dst


def test_corrupt_files_are_skipped_and_counted(sets: tuple[Path, Path], tmp_path: Path) -> None:
    folder = _small_set(sets[1], tmp_path / "faces", 12)
    files = sorted(folder.glob("*.png"))
    data = bytearray(files[0].read_bytes())            # damage the pixel data (IDAT)
    at = data.index(b"IDAT") + 200
    data[at:at + 64] = bytes(64)
    files[0].write_bytes(bytes(data))
    raw = files[1].read_bytes()                        # tamper with the metadata text
    at = raw.index(b"faceplate\x00")
    files[1].write_bytes(raw[:at + 30] + bytes([raw[at + 30] ^ 0xFF]) + raw[at + 31:])
    files[2].write_bytes(raw[: len(raw) // 2])         # truncated
    (folder / "notes.png").write_text("not a png")
    cv2.imwrite(str(folder / "plain.png"), np.zeros((8, 8, 3), np.uint8))
    with pytest.warns(UserWarning, match="skipped 5"):
        fs = Faceset(folder, DataConfig(size=32))
    assert len(fs) == 9 and len(fs.skipped) == 5
    assert {p.name for p, _ in fs.skipped} == {files[0].name, files[1].name, files[2].name,
                                               "notes.png", "plain.png"}
    assert all(reason for _, reason in fs.skipped)
    a, _ = PairLoader(fs, fs, 4, DataConfig(size=32), seed=0).batch(0)
    _check_batch(a, 4, 32, DataConfig(size=32))


def test_mismatched_face_sizes_are_rewarped(sets: tuple[Path, Path], tmp_path: Path) -> None:
    folder = _small_set(sets[0], tmp_path / "mixed", 6)
    for p in sorted(folder.glob("*.png"))[:3]:           # rewrite half at 80 px
        rgb, meta = read_face_png(p)
        k = 80 / meta.size
        small = cv2.resize(rgb, (80, 80), interpolation=cv2.INTER_AREA)
        m = meta.matrix * k
        write_face_png(p, small, FaceMeta(meta.record, m, 80, meta.centering, meta.source))
    cfg = DataConfig(size=64, **STILL)  # type: ignore[arg-type]
    with pytest.warns(UserWarning, match="upscaled"):
        mixed = Faceset(folder, cfg.replace(size=128))
    assert len(mixed) == 6
    fs = Faceset(folder, cfg)
    ref = _small_set(sets[0], tmp_path / "ref", 6)
    full = Faceset(ref, cfg)
    assert fs.images is not None and full.images is not None
    diff = np.abs(fs.images.astype(float) - full.images.astype(float)).mean(axis=(1, 2, 3))
    assert diff[:3].max() < 6.0 and diff[3:].max() == 0.0


def test_too_small_or_empty_faceset_is_an_input_error(sets: tuple[Path, Path],
                                                      tmp_path: Path) -> None:
    small = _small_set(sets[1], tmp_path / "three_faces", 3)
    cfg = DataConfig(size=32)
    fs = Faceset(small, cfg)
    with pytest.raises(InputError, match="fewer than the batch size 4") as err:
        PairLoader(load(sets[0], cfg), fs, 4, cfg, seed=0)
    assert str(small) in str(err.value)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="no usable faces") as err:
        Faceset(empty, cfg)
    assert str(empty) in str(err.value)
    with pytest.raises(InputError, match="no stored mask 'occlusion'"), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")
        Faceset(small, cfg.replace(mask="occlusion"))
    with pytest.raises(InputError, match="not found"):
        Faceset(tmp_path / "missing", cfg)
