"""Training data: facesets decoded once into a shared cache, and an endless loader of batch pairs.

Pipeline::

    face PNGs ──(once, threads)──► Faceset cache: N×C×C×3 uint8 faces, N×C×C uint8 masks,
                                   N×68×2 landmarks, all in *training-crop* coordinates
    PairLoader.batch(k): pick faces (epoch shuffle or uniform yaw) → CLAHE (OpenCV, per chosen
                         face) → float → L*a*b* jitter → one affine grid_sample for the target,
                         mask and landmarks → one more grid_sample (affine ∘ warp field) for the
                         warped model input → eye/mouth weight map.

The cache holds each face in the training crop (``cfg.centering``, ``cfg.coverage``,
``cfg.size``), re-derived from the record's landmarks with
:func:`faceplate.core.geometry.crop_matrix`, plus a border of ``pad`` pixels on every side
(C = size + 2·pad) so rotation/zoom/shift see real pixels instead of smeared edges. The stored
PNG is a crop of the frame (``meta.matrix``: frame → stored crop), so the stored → cache warp is
``T_cache ∘ meta.matrix⁻¹``; pixels the stored crop lacks are edge-replicated (reported in
:attr:`Faceset.warnings`). Masks are warped the same way with their own frame → mask ``affine``.
Faces of any stored size or centering mix freely: everything is re-warped to ``cfg.size``.

The cache lives in a memory-mapped file (``/dev/shm`` when it has room, else the temp dir),
unlinked as soon as it is mapped, so forked worker processes share one copy and nothing is left
behind even after a crash. No pickle: the arrays are raw ``uint8``/``float32``.

Randomness: batch ``k`` of side ``s`` draws everything from ``torch.Generator`` streams seeded by
``(seed, s, k)`` for the *global* batch (``batch_size × world``); rank ``r`` takes samples
``r·batch_size … (r+1)·batch_size − 1``. So batch ``k`` is the same whichever worker makes it,
and ``world`` ranks together see exactly what one process with the global batch sees.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import cv2
import numpy as np
import torch
from torch import Tensor

from faceplate.core.config import Config, option
from faceplate.core.cpu import usable_cores
from faceplate.core.errors import ConfigError, FaceplateError, InputError
from faceplate.core.geometry import (
    CENTERING_FRAMES,
    compose_affine,
    crop_matrix,
    invert_affine,
    to_cv2,
    transform_points,
)
from faceplate.core.records import decode_mask
from faceplate.core.types import Centering
from faceplate.io.faceset import FaceMeta, recut_face, scan_faceset
from faceplate.train import augment as aug

#: Cache border as a fraction of the training size (covers ±10° rotation, ±5 % zoom and shift).
PAD_FRACTION = 0.125
#: Candidate partners per face for warp-to-landmarks (the closest by aligned landmarks).
WARP_NEIGHBOURS = 10


@dataclass(frozen=True)
class DataConfig(Config):
    """What the training faces look like and how they are augmented (Faceswap's defaults)."""

    size: int = option(128, "Training face size in pixels (the model input).",
                       minimum=16, maximum=1024)
    coverage: float = option(1.0, "Fraction of the centering's frame the training crop keeps "
                             "(0.875 zooms in like Faceswap's default coverage).",
                             minimum=0.5, maximum=1.0)
    centering: Centering = option("face", "Framing of the training crop.")
    mask: str = option("extended", "Stored mask to train with (any mask name in the faceset's "
                       "records), or 'none' for unmasked training.")
    random_warp: bool = option(True, "Random 5×5 grid warp of the model input.")
    warp_scale: float = option(5.0 / 256.0, "Grid-warp control point spread, fraction of size.",
                               minimum=0.0, maximum=0.1)
    warp_to_landmarks: bool = option(
        False, "Warp the input towards the landmarks of a similar face of the other side "
        "(replaces the random grid warp).")
    flip: float = option(0.5, "Chance of a horizontal flip.", minimum=0.0, maximum=1.0)
    rotation: float = option(10.0, "Largest random rotation in degrees.", minimum=0.0,
                             maximum=180.0)
    zoom: float = option(0.05, "Largest random zoom (0.05 = ±5 %).", minimum=0.0, maximum=0.5)
    shift: float = option(0.05, "Largest random shift, fraction of the size.", minimum=0.0,
                          maximum=0.5)
    color_jitter: bool = option(True, "Random L*a*b* colour jitter.")
    color_lightness: float = option(0.30, "Largest L* jitter (0.3 = ±30 %).", minimum=0.0,
                                    maximum=1.0)
    color_ab: float = option(0.08, "Largest a*/b* jitter (0.08 = ±8 %).", minimum=0.0,
                             maximum=1.0)
    clahe_chance: float = option(0.5, "Chance of CLAHE contrast equalisation per face.",
                                 minimum=0.0, maximum=1.0)
    uniform_yaw: bool = option(False, "Sample faces so every yaw bin is equally likely.")
    yaw_bins: int = option(16, "Yaw bins for uniform-yaw sampling.", minimum=1, maximum=360)
    eye_weight: float = option(3.0, "Loss weight of the eye regions.", minimum=1.0,
                               maximum=100.0)
    mouth_weight: float = option(2.0, "Loss weight of the mouth region.", minimum=1.0,
                                 maximum=100.0)
    workers: int = option(-1, "Loader worker processes (-1: automatic, 0: main thread).",
                          minimum=-1, maximum=64)
    cache: bool = option(True, "Decode every face once into a shared memory-mapped cache "
                         "(off: decode the chosen faces for every batch).")
    cache_dir: str = option("", "Folder for the face cache file (default: /dev/shm when it "
                            "has room, else the temp folder).")


def cache_pad(size: int) -> int:
    """Border in pixels around the training crop in the cache (≥ 2)."""
    return max(2, int(round(size * PAD_FRACTION)))


def auto_workers(cfg: DataConfig) -> int:
    """``cfg.workers``, or for -1: 0 (main thread) on machines with ≤ 4 cores, else up to 4.

    On small CPU machines a worker process competes with the model for the same cores; a batch
    costs tens of milliseconds against seconds for a model step (see the module docstring of
    ``benchmarks/train.py``), so the main thread is the cheaper place.
    """
    if cfg.workers >= 0:
        return cfg.workers
    cores = usable_cores()
    return 0 if cores <= 4 else min(4, cores // 4)


class Batch(NamedTuple):
    """One side's training batch (float32, CPU, contiguous).

    Attributes:
        warped: N×3×S×S sRGB [0, 1]: the model input (colour-augmented, random affine, then
            grid warp or warp-to-landmarks).
        target: N×3×S×S sRGB [0, 1]: the same faces with the same colour and affine
            augmentation, not warped.
        mask: N×1×S×S [0, 1] the stored mask aligned with ``target`` (all ones for
            ``mask="none"``).
        weight: N×1×S×S loss weight, ``1 + (eye_weight−1)·eyes + (mouth_weight−1)·mouth``,
            times ``mask`` when training masked; aligned with ``target``.
    """

    warped: Tensor
    target: Tensor
    mask: Tensor
    weight: Tensor


# --------------------------------------------------------------------------- one face


@dataclass
class _Loaded:
    image: np.ndarray        # C×C×3 uint8
    aux: np.ndarray          # C×C×3 uint8: mask, eyes, mouth
    landmarks: np.ndarray    # 68×2 float32, training-crop pixels
    outside: bool            # the training crop needs pixels outside the stored crop
    upscaled: bool           # stored face smaller than the training crop needs


def _train_matrix(meta: FaceMeta, cfg: DataConfig) -> np.ndarray:
    return crop_matrix(meta.record.landmarks, cfg.size, cfg.centering, cfg.coverage)


def _load_face(path: Path, meta: FaceMeta, cfg: DataConfig, pad: int) -> _Loaded:
    """Decode one face PNG into the cache layout (see the module docstring).

    Raises:
        FaceplateError: Pixels do not decode, or the record lacks ``cfg.mask``.
    """
    from faceplate.core.errors import RecordError

    mask_sm = None
    if cfg.mask != "none":
        mask_sm = meta.record.masks.get(cfg.mask)
        if mask_sm is None:
            have = ", ".join(sorted(meta.record.masks)) or "none"
            raise RecordError(f"no stored mask {cfg.mask!r} (has: {have})", path)
    image, t_cache, outside, upscaled = recut_face(path, meta, cfg.size, cfg.centering,
                                                   cfg.coverage, pad)
    c = cfg.size + 2 * pad
    aux = np.empty((c, c, 3), np.uint8)
    if mask_sm is None:
        aux[..., 0] = 255
    else:
        raw = decode_mask(mask_sm, str(path))
        mm = compose_affine(t_cache, invert_affine(mask_sm.affine))
        aux[..., 0] = cv2.warpAffine(raw, to_cv2(mm), (c, c), flags=cv2.INTER_LINEAR,
                                     borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    lm = transform_points(meta.record.landmarks, _train_matrix(meta, cfg)).astype(np.float32)
    aux[..., 1], aux[..., 2] = aug.region_maps(lm + pad, c)
    return _Loaded(image, aux, lm, outside, upscaled)


def _shm_dir(nbytes: int, configured: str) -> str | None:
    if configured:
        return configured
    shm = "/dev/shm"
    try:
        if os.path.isdir(shm) and shutil.disk_usage(shm).free > 2 * nbytes:
            return shm
    except OSError:
        pass
    return None


def _mapped(shape: tuple[int, ...], dtype: Any, folder: str | None, tag: str) -> np.ndarray:
    """A zeroed writable memory map backed by an already-unlinked temp file."""
    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    if nbytes == 0:
        return np.zeros(shape, dtype)
    fd, name = tempfile.mkstemp(prefix=f"faceplate-{tag}-", suffix=".u8", dir=folder)
    try:
        os.ftruncate(fd, nbytes)
        with open(fd, "r+b", closefd=False) as fh:
            arr = np.memmap(fh, dtype=dtype, mode="r+", shape=shape)
    finally:
        os.close(fd)
        os.unlink(name)
    return arr


class Faceset:
    """One side's faces, decoded once into the training-crop cache.

    Args:
        folder: A faceset folder (face PNGs written by ``faceplate extract``).
        cfg: The data config (size, centering, coverage, mask, cache).

    Attributes:
        folder: The folder.
        paths: The usable face files (sorted by name).
        skipped: ``[(path, reason)]`` for files that were not used (not a Faceplate face,
            corrupt or tampered PNG, no stored mask of the requested name).
        warnings: Human-readable notes (edge replication, upscaled faces).
        landmarks: N×68×2 float32 landmarks in training-crop pixels (x, y, centres at +0.5).
        yaw: N float32 yaw in degrees from the records.
        pad: Cache border in pixels; cache images are C×C with C = cfg.size + 2·pad and the
            training crop at ``[pad:pad+size, pad:pad+size]``.
        images: N×C×C×3 uint8 RGB cache (a shared memory map), or None when ``cfg.cache`` is off.
        aux: N×C×C×3 uint8 cache of (mask, eye region, mouth region), 0..255, same crop; the
            mask channel is 255 for ``mask="none"``. None when the cache is off.
        load_seconds: Wall time the scan and decode took.

    Raises:
        InputError: The folder is missing, or holds no usable face (names the folder and the
            first reasons).
    """

    def __init__(self, folder: Path, cfg: DataConfig) -> None:
        t0 = time.perf_counter()
        self.folder = Path(folder)
        self.cfg = cfg
        self.pad = cache_pad(cfg.size)
        good, bad = scan_faceset(self.folder)
        self.skipped: list[tuple[Path, str]] = list(bad)
        self.warnings: list[str] = []
        self._metas: list[tuple[Path, FaceMeta]] = []
        c = cfg.size + 2 * self.pad
        loaded: list[tuple[Path, FaceMeta, _Loaded]] = []

        def work(item: tuple[Path, FaceMeta]) -> _Loaded | str:
            try:
                return _load_face(item[0], item[1], cfg, self.pad)
            except FaceplateError as err:
                return str(err)
            except (cv2.error, ValueError, np.linalg.LinAlgError) as err:
                return f"cannot use this face ({err})"

        # Decoded faces go straight into the cache (sized for every candidate; rows of skipped
        # files stay unused at the end), so peak memory is the cache plus a few faces.
        images = aux = None
        if cfg.cache and good:
            where = _shm_dir(2 * len(good) * c * c * 3, cfg.cache_dir)
            images = _mapped((len(good), c, c, 3), np.uint8, where, "faces")
            aux = _mapped((len(good), c, c, 3), np.uint8, where, "aux")
        threads = max(1, min(8, os.cpu_count() or 1))
        with ThreadPoolExecutor(threads) as pool:
            for (path, meta), res in zip(good, pool.map(work, good)):
                if isinstance(res, str):
                    self.skipped.append((path, res))
                    continue
                if images is not None and aux is not None:
                    images[len(loaded)] = res.image
                    aux[len(loaded)] = res.aux
                res.image = res.aux = np.empty(0, np.uint8)   # keep metadata only
                loaded.append((path, meta, res))
        if not loaded:
            why = "; ".join(f"{p.name}: {r}" for p, r in self.skipped[:3])
            raise InputError("no usable faces in this faceset" + (f" ({len(self.skipped)} "
                             f"skipped: {why})" if self.skipped else " (no face PNGs)"),
                             self.folder)
        n = len(loaded)
        self.paths = [p for p, _, _ in loaded]
        self._metas = [(p, m) for p, m, _ in loaded]
        self.landmarks = np.stack([r.landmarks for _, _, r in loaded]).astype(np.float32)
        self.yaw = np.array([m.record.yaw for _, m, _ in loaded], dtype=np.float32)
        self.images: np.ndarray | None = None if images is None else images[:n]
        self.aux: np.ndarray | None = None if aux is None else aux[:n]
        outside = sum(r.outside for _, _, r in loaded)
        if outside:
            stored = sorted({m.centering for _, m, _ in loaded})
            larger = [s for s in stored if CENTERING_FRAMES[cfg.centering][2] * cfg.coverage
                      > CENTERING_FRAMES[s][2] + 1e-9]
            why = (f"the training centering {cfg.centering!r} (coverage {cfg.coverage:g}) "
                   f"frames more than the stored {', '.join(map(repr, larger))} crops"
                   if larger else "the stored crops do not contain the whole training crop")
            self.warnings.append(f"{self.folder}: {outside} of {n} faces need pixels outside "
                                 f"their stored crop ({why}); those pixels are edge-replicated")
        upscaled = sum(r.upscaled for _, _, r in loaded)
        if upscaled:
            self.warnings.append(f"{self.folder}: {upscaled} of {n} faces are stored smaller "
                                 f"than the {cfg.size} px training crop needs (upscaled)")
        if self.skipped:
            self.warnings.append(f"{self.folder}: skipped {len(self.skipped)} file(s), e.g. "
                                 f"{self.skipped[0][0].name}: {self.skipped[0][1]}")
        for w in self.warnings:
            warnings.warn(w, stacklevel=2)
        self.load_seconds = time.perf_counter() - t0

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def nbytes(self) -> int:
        """Bytes held by the cache (images, masks, landmarks)."""
        total = self.landmarks.nbytes + self.yaw.nbytes
        for a in (self.images, self.aux):
            if a is not None:
                total += a.nbytes
        return int(total)

    @property
    def masks(self) -> np.ndarray | None:
        """N×C×C uint8 view of the cached masks (None when the cache is off)."""
        return None if self.aux is None else self.aux[..., 0]

    def gather(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Copies of faces ``idx``: (B×C×C×3 uint8 RGB, B×C×C×3 uint8 mask/eyes/mouth).

        Reads the cache, or decodes the PNGs when the cache is off.
        """
        idx = np.asarray(idx, dtype=np.int64)
        if self.images is not None and self.aux is not None:
            return np.ascontiguousarray(self.images[idx]), np.ascontiguousarray(self.aux[idx])
        faces = [_load_face(*self._metas[int(i)], self.cfg, self.pad) for i in idx]
        return np.stack([f.image for f in faces]), np.stack([f.aux for f in faces])

    def close(self) -> None:
        """Drop the cache mapping (the backing file is already unlinked)."""
        self.images = None
        self.aux = None


def training_crops(folder: Path, cfg: DataConfig, count: int) -> np.ndarray:
    """Up to ``count`` faces of a faceset as the model sees them, un-augmented: the training
    crop (``cfg.size``, ``cfg.centering``, ``cfg.coverage``) of faces spread evenly over the
    folder's sorted names (what int8 calibration and its check read).

    Returns:
        K×3×S×S float32 display sRGB in [0, 1], NCHW (S = ``cfg.size``, K ≤ ``count``).

    Raises:
        InputError: the folder is missing or none of the chosen faces is usable.
    """
    good, _bad = scan_faceset(Path(folder))
    if good and count < len(good):
        pick = np.linspace(0, len(good) - 1, count).round().astype(int)
        good = [good[i] for i in sorted(set(pick.tolist()))]
    pad = cache_pad(cfg.size)
    faces: list[np.ndarray] = []
    reasons: list[str] = []
    for path, meta in good:
        try:
            img = _load_face(path, meta, cfg.replace(mask="none"), pad).image
        except (FaceplateError, cv2.error, ValueError) as err:
            reasons.append(f"{path.name}: {err}")
            continue
        faces.append(img[pad:pad + cfg.size, pad:pad + cfg.size])
    if not faces:
        raise InputError("no usable faces to calibrate with" + (f" ({reasons[0]})" if reasons
                                                                 else " (no face PNGs)"),
                         Path(folder))
    x = np.stack(faces).astype(np.float32) * np.float32(1.0 / 255.0)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


# --------------------------------------------------------------------------- batches


def _nearest_others(mine: np.ndarray, other: np.ndarray, k: int) -> Tensor:
    """For each face of ``mine`` the ``k`` faces of ``other`` with the closest landmarks."""
    a = torch.from_numpy(mine.reshape(len(mine), -1))
    b = torch.from_numpy(other.reshape(len(other), -1))
    k = min(k, len(other))
    out = [torch.topk(torch.cdist(chunk, b), k, largest=False).indices
           for chunk in torch.split(a, 1024)]
    return torch.cat(out)


def make_batch(fs: Faceset, idx: Tensor, p: aug.AugParams, cfg: DataConfig, *,
               other_landmarks: Tensor | None = None) -> Batch:
    """Assemble one augmented batch for faces ``idx`` of ``fs`` with draws ``p``.

    Args:
        fs: The faceset.
        idx: B int64 face indices.
        p: The draws (B samples).
        cfg: The data config.
        other_landmarks: B×68×2 training-crop landmarks of the other side's faces to warp
            towards (used when ``cfg.warp_to_landmarks``).
    """
    s, pad = cfg.size, fs.pad
    imgs, aux = fs.gather(idx.numpy())
    if cfg.clahe_chance > 0:
        aug.apply_clahe(imgs, p.clahe.numpy(), p.clahe_grid.numpy())
    u8 = torch.from_numpy(imgs)
    if cfg.color_jitter and (cfg.color_lightness > 0 or cfg.color_ab > 0):
        src = aug.color_jitter(u8, p.lab)
    else:
        src = u8.permute(0, 3, 1, 2).to(torch.float32).div_(255.0)
    fwd = aug.affine_matrices(p, s)
    inv = torch.linalg.inv(fwd)
    inv[:, :2, 2] += pad                      # output px → cache px
    coords = aug.source_coords(inv, s)
    target = aug.sample(src, coords, "border")
    regions = aug.sample(torch.from_numpy(aux).permute(0, 3, 1, 2).to(torch.float32)
                         .div_(255.0), coords, "zeros")
    mask = torch.ones(len(idx), 1, s, s) if cfg.mask == "none" else regions[:, 0:1]
    offset = None
    if cfg.warp_to_landmarks and other_landmarks is not None:
        lm = torch.from_numpy(fs.landmarks[idx.numpy()])
        src_pts = aug.mirror_order(aug.transform_points(lm, fwd), p.flip)
        dst_pts = aug.mirror_order(aug.transform_points(other_landmarks, fwd), p.flip)
        offset = aug.tps_offsets(src_pts, dst_pts, s)
    elif cfg.random_warp and cfg.warp_scale > 0:
        offset = aug.grid_warp_offsets(p.warp, s)
    warped = target.clone() if offset is None else \
        aug.sample(src, aug.source_coords(inv, s, offset), "border")
    weight = aug.priority_weights(regions[:, 1:2], regions[:, 2:3], cfg.eye_weight,
                                  cfg.mouth_weight)
    if cfg.mask != "none":
        weight = weight * mask
    return Batch(warped.clamp_(0.0, 1.0).contiguous(), target.clamp_(0.0, 1.0).contiguous(),
                 mask.clamp_(0.0, 1.0).contiguous(), weight.contiguous())


class _Stream(torch.utils.data.IterableDataset):
    """Batch pairs ``start + worker_id``, ``+ workers``… (DataLoader keeps them in order)."""

    def __init__(self, loader: PairLoader, start: int) -> None:
        self.loader = loader
        self.start = start

    def __iter__(self) -> Iterator[tuple[Batch, Batch]]:
        info = torch.utils.data.get_worker_info()
        wid, num = (0, 1) if info is None else (info.id, info.num_workers)
        for k in itertools.count(self.start + wid, num):
            yield self.loader.batch(k)


class PairLoader:
    """Endless batch pairs (side A, side B) for training.

    Args:
        a: Side A's faceset (the identity the model learns to produce).
        b: Side B's faceset (the footage's person).
        batch_size: Faces per side per batch on this rank.
        cfg: The data config (``cfg.size`` etc. must match the facesets').
        seed: Seed of every random draw.
        rank: This process's DDP rank.
        world: Number of DDP ranks (the global batch is ``batch_size × world``).
        start: First batch index (resume at iteration ``start``).

    Raises:
        InputError: A faceset has fewer faces than ``batch_size`` (names its folder).
        ConfigError: ``rank``/``world``/``batch_size`` out of range or the facesets were
            loaded with a different size, centering, coverage or mask.
    """

    def __init__(self, a: Faceset, b: Faceset, batch_size: int, cfg: DataConfig, *, seed: int,
                 rank: int = 0, world: int = 1, start: int = 0) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch_size: must be >= 1, got {batch_size}")
        if world < 1 or not 0 <= rank < world:
            raise ConfigError(f"rank/world: need 0 <= rank < world, got {rank}/{world}")
        for fs in (a, b):
            same = (fs.cfg.size, fs.cfg.centering, fs.cfg.coverage, fs.cfg.mask)
            if same != (cfg.size, cfg.centering, cfg.coverage, cfg.mask):
                raise ConfigError(f"{fs.folder}: faceset loaded for size/centering/coverage/mask "
                                  f"{same}, the loader wants "
                                  f"{(cfg.size, cfg.centering, cfg.coverage, cfg.mask)}")
            if len(fs) < batch_size:
                raise InputError(f"only {len(fs)} usable faces, fewer than the batch size "
                                 f"{batch_size}" + (f" ({len(fs.skipped)} files skipped)"
                                                   if fs.skipped else ""), fs.folder)
        self.sides = (a, b)
        self.batch_size = batch_size
        self.cfg = cfg
        self.seed = int(seed)
        self.rank = rank
        self.world = world
        self.start = start
        self.workers = auto_workers(cfg)
        self._perms: dict[tuple[int, int], Tensor] = {}
        self._bins = [aug.yaw_bins(fs.yaw, cfg.yaw_bins) for fs in self.sides]
        self._near: list[Tensor | None] = [None, None]
        if cfg.warp_to_landmarks:
            self._near = [_nearest_others(a.landmarks, b.landmarks, WARP_NEIGHBOURS),
                          _nearest_others(b.landmarks, a.landmarks, WARP_NEIGHBOURS)]
        self._dl: Any = None

    # -- sampling ---------------------------------------------------------------------------

    def _perm(self, side: int, epoch: int) -> Tensor:
        key = (side, epoch)
        if key not in self._perms:
            if len(self._perms) > 8:
                self._perms.clear()
            n = len(self.sides[side])
            self._perms[key] = torch.randperm(n, generator=aug.generator(self.seed, side, epoch,
                                                                          0x5EED))
        return self._perms[key]

    def indices(self, side: int, k: int) -> Tensor:
        """This rank's face indices of batch ``k`` for side 0 (A) or 1 (B), B int64.

        Epoch shuffle (each face once per epoch; the ranks' shares of an epoch are disjoint),
        or with ``uniform_yaw`` a flat draw over yaw bins.
        """
        g_all = self.batch_size * self.world
        lo = self.rank * self.batch_size
        if self.cfg.uniform_yaw:
            g = aug.generator(self.seed, side, k, 0xA1)
            return aug.uniform_bin_sample(self._bins[side], g_all, g)[lo:lo + self.batch_size]
        n = len(self.sides[side])
        pos = k * g_all + lo + torch.arange(self.batch_size)
        epochs, offs = pos // n, pos % n
        out = torch.empty(self.batch_size, dtype=torch.int64)
        for e in torch.unique(epochs).tolist():
            sel = epochs == e
            out[sel] = self._perm(side, int(e))[offs[sel]]
        return out

    def params(self, side: int, k: int) -> aug.AugParams:
        """This rank's random draws of batch ``k`` for a side."""
        c = self.cfg
        g = aug.generator(self.seed, side, k, 0xD2)
        p = aug.draw_params(self.batch_size * self.world, g, rotation=c.rotation, zoom=c.zoom,
                            shift=c.shift, flip=c.flip, warp_scale=c.warp_scale,
                            lightness=c.color_lightness, ab=c.color_ab,
                            clahe_chance=c.clahe_chance, clahe_base=max(1, c.size // 128))
        lo = self.rank * self.batch_size
        return aug.slice_params(p, lo, lo + self.batch_size)

    def side_batch(self, side: int, k: int) -> Batch:
        """Batch ``k`` of one side (0 = A, 1 = B), made in this process."""
        fs = self.sides[side]
        idx = self.indices(side, k)
        p = self.params(side, k)
        other = None
        near = self._near[side]
        if near is not None:
            col = (p.other * near.shape[1]).long().clamp_max(near.shape[1] - 1)
            pick = near[idx, col]
            other = torch.from_numpy(self.sides[1 - side].landmarks[pick.numpy()])
        return make_batch(fs, idx, p, self.cfg, other_landmarks=other)

    def batch(self, k: int) -> tuple[Batch, Batch]:
        """Batch pair ``k`` (A, B), made in this process (deterministic for the seed).

        Runs with one torch thread (restored afterwards): the batch ops are small, and several
        OpenMP threads spinning for them cost far more than they save, badly so when other
        processes share the cores.
        """
        threads = torch.get_num_threads()
        if threads != 1:
            torch.set_num_threads(1)
        try:
            return self.side_batch(0, k), self.side_batch(1, k)
        finally:
            if threads != 1:
                torch.set_num_threads(threads)

    # -- iteration --------------------------------------------------------------------------

    def __iter__(self) -> Iterator[tuple[Batch, Batch]]:
        """Batch pairs ``start``, ``start+1``, … forever (worker processes when ``workers>0``)."""
        if self.workers == 0:
            for k in itertools.count(self.start):
                yield self.batch(k)
            return
        self.close()
        ctx = "fork" if "fork" in torch.multiprocessing.get_all_start_methods() else None
        self._dl = torch.utils.data.DataLoader(
            _Stream(self, self.start), batch_size=None, num_workers=self.workers,
            persistent_workers=True, prefetch_factor=2, multiprocessing_context=ctx,
            pin_memory=torch.cuda.is_available())
        yield from self._dl

    def close(self) -> None:
        """Stop worker processes (the facesets stay usable)."""
        dl, self._dl = self._dl, None
        if dl is not None:
            it = getattr(dl, "_iterator", None)
            if it is not None and hasattr(it, "_shutdown_workers"):
                it._shutdown_workers()
            del dl
