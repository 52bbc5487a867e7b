"""Training data of the occlusion mask: labelled faces, synthetic occluders, augmented batches.

Pipeline::

    faceset folders ──► every face PNG whose store holds mask labels for it (face_notes.labels,
    (face PNGs)         drawn in the Studio or imported) ──► cache: N×C×C×3 uint8 faces and
                        N×C×C uint8 labels in the training crop (+ a border, C = size + 2·pad),
                        plus occluder sources (the skin and the non-face regions of the faces;
                        a share of the occluders get made-up textures instead)
    MaskLoader.batch(k): pick faces (epoch shuffle) → paste synthetic occluders (chance
                        ``occluders``; their label cut out, exactly) → CLAHE → L*a*b* jitter →
                        one affine + grid warp applied to face *and* label alike

The face crops are re-cut from the PNGs exactly as the swap trainer's are
(:func:`faceplate.io.faceset.recut_face`), and the labels are rasterised straight into
that crop from their vectors (:func:`faceplate.extract.mask.labels.labels_to_mask`: the frame →
crop matrices compose, nothing is resampled twice). The augmentation is the swap trainer's
(:mod:`faceplate.train.augment`).

Labels that cannot be trained on are reported, never used: ``empty`` or ``all white``
(:func:`~faceplate.extract.mask.labels.label_problem`, measured in the training crop), or
labels that do not parse. The labelled faces are found by
:func:`faceplate.io.labelled.labelled_faces`.

Randomness: batch ``k`` draws from streams seeded by ``(seed, k)`` only, so a resumed run sees
exactly the batches the uninterrupted one would have.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
import torch
from torch import Tensor

from faceplate.core.config import Config, option
from faceplate.core.errors import ConfigError, FaceplateError, InputError
from faceplate.core.geometry import transform_points
from faceplate.core.types import Centering
from faceplate.extract.mask.labels import label_problem, labels_to_mask
from faceplate.io.faceset import FaceMeta, recut_face
from faceplate.io.labelled import FaceKey, labelled_faces
from faceplate.train import augment as aug
from faceplate.train.data import cache_pad
from faceplate.train.occluders import OccluderSource, face_regions, paste_occluders

#: Faces without labels whose textures also serve as occluder sources (evenly spread).
EXTRA_SOURCES = 48


@dataclass(frozen=True)
class MaskDataConfig(Config):
    """What the occlusion mask trains on and how the faces are augmented."""

    centering: Centering = option("face", "Framing of the mask model's crop.")
    coverage: float = option(1.0, "Fraction of the centering's frame the crop keeps.",
                             minimum=0.5, maximum=1.0)
    hold_out: float = option(0.0, "Fraction of the labelled faces kept out of training (every "
                             "n-th by store and frame) for `faceplate mask eval`.",
                             minimum=0.0, maximum=0.9)
    occluders: float = option(0.75, "Chance that a training face gets synthetic occluders "
                              "(textures and shapes from the footage) pasted over it.",
                              minimum=0.0, maximum=1.0)
    max_occluders: int = option(3, "Most synthetic occluders on one face.", minimum=1,
                                maximum=8)
    synthetic_textures: float = option(
        0.5, "Chance that a synthetic occluder gets a made-up texture (a flat colour, gradient, "
        "colour noise or stripes of any hue) instead of one from the footage: occluders unlike "
        "anything in the shot.", minimum=0.0, maximum=1.0)
    flip: float = option(0.5, "Chance of a horizontal flip.", minimum=0.0, maximum=1.0)
    rotation: float = option(15.0, "Largest random rotation in degrees.", minimum=0.0,
                             maximum=180.0)
    zoom: float = option(0.1, "Largest random zoom (0.1 = ±10 %).", minimum=0.0, maximum=0.5)
    shift: float = option(0.08, "Largest random shift, fraction of the size.", minimum=0.0,
                          maximum=0.5)
    warp_scale: float = option(5.0 / 256.0, "Grid-warp control point spread, fraction of the "
                               "size (applied to face and label alike).", minimum=0.0,
                               maximum=0.1)
    color_lightness: float = option(0.3, "Largest L* jitter (0.3 = ±30 %).", minimum=0.0,
                                    maximum=1.0)
    color_ab: float = option(0.08, "Largest a*/b* jitter.", minimum=0.0, maximum=1.0)
    clahe_chance: float = option(0.25, "Chance of CLAHE contrast equalisation per face.",
                                 minimum=0.0, maximum=1.0)


class MaskBatch(NamedTuple):
    """One training batch (float32, CPU, contiguous).

    Attributes:
        face: N×3×S×S sRGB [0, 1], augmented, occluders pasted.
        label: N×1×S×S in [0, 1], 1 = face, aligned with ``face``.
    """

    face: Tensor
    label: Tensor


def split_hold_out(keys: Sequence[FaceKey], fraction: float) -> tuple[list[int], list[int]]:
    """Indices of ``keys`` to train on and to hold out: every n-th face (in store, frame
    order) is held out so that ``fraction`` of them are, spread over the whole shot."""
    n = len(keys)
    if fraction <= 0 or n < 2:
        return list(range(n)), []
    held = {int(i) for i in np.unique(np.round(np.arange(0, n, 1.0 / fraction)).astype(int))
            if i < n}
    while len(held) >= n:
        held.discard(max(held))
    return [i for i in range(n) if i not in held], sorted(held)


class LabelledFaces:
    """The labelled faces of some faceset folders, cut into the training crop once.

    Args:
        folders: Faceset folders (face PNGs written by ``faceplate extract``).
        cfg: The data config (crop, hold-out).
        size: Training crop side (the mask model's size).

    Attributes:
        keys: The faces trained on.
        held_out: Labelled faces kept out of training (``cfg.hold_out``).
        skipped: ``(path, reason)`` of files not used: no face, store missing, bad label.
        unlabelled: Number of faces found without labels.
        pad: Cache border in pixels (C = size + 2·pad).
        images: N×C×C×3 uint8 RGB.
        labels: N×C×C uint8, 255 = face.
        sources: Occluder texture sources (skin and non-face regions of the faces).
        load_seconds: Wall time the loading took.

    Raises:
        InputError: no usable labelled face (names the folders and the first reasons).
    """

    def __init__(self, folders: Sequence[Path], cfg: MaskDataConfig, size: int) -> None:
        t0 = time.perf_counter()
        self.cfg = cfg
        self.size = int(size)
        self.pad = cache_pad(self.size)
        c = self.size + 2 * self.pad
        found, unlabelled, self.skipped = labelled_faces(folders)
        self.unlabelled = len(unlabelled)
        images: list[np.ndarray] = []
        labels: list[np.ndarray] = []
        keys: list[FaceKey] = []
        lms: list[np.ndarray] = []
        for path, meta, key, lab in found:
            try:
                img, t_cache, _, _ = recut_face(path, meta, self.size, cfg.centering,
                                                       cfg.coverage, self.pad)
                mask = labels_to_mask(lab, c, t_cache)
            except (FaceplateError, ValueError, cv2.error) as err:
                self.skipped.append((path, f"cannot use this face or its labels ({err})"))
                continue
            inner = mask[self.pad:self.pad + self.size, self.pad:self.pad + self.size]
            why = label_problem(inner)
            if why is not None:
                self.skipped.append((path, f"bad label, not trained on ({why})"))
                continue
            images.append(img)
            labels.append(mask)
            keys.append(key)
            lms.append(transform_points(meta.record.landmarks.astype(np.float64), t_cache))
        if not keys:
            why = "; ".join(f"{p.name}: {r}" for p, r in self.skipped[:3])
            raise InputError(
                f"no usable labelled face in {', '.join(map(str, folders))} ({len(found)} "
                f"labelled, {self.unlabelled} without labels"
                + (f"; skipped: {why}" if why else "")
                + "): label faces in `faceplate studio` or import mask images with "
                "`faceplate mask import-labels FACES_DIR MASKS_DIR`")
        train, held = split_hold_out(keys, cfg.hold_out)
        self.keys = [keys[i] for i in train]
        self.held_out = [keys[i] for i in held]
        self.images = np.stack([images[i] for i in train])
        self.labels = np.stack([labels[i] for i in train])
        self.sources = self._sources(images, labels, lms, unlabelled)
        self.load_seconds = time.perf_counter() - t0

    def _sources(self, images: list[np.ndarray], labels: list[np.ndarray],
                 lms: list[np.ndarray], unlabelled: list[tuple[Path, FaceMeta]]
                 ) -> list[OccluderSource]:
        """Skin and non-face textures of every labelled face (held-out ones included: only
        their textures, never their labels) and of a spread of unlabelled ones."""
        out: list[OccluderSource] = []
        c = self.size + 2 * self.pad
        for img, lab, lm in zip(images, labels, lms):
            skin, outside = face_regions(lm, (c, c))
            out.append(OccluderSource(img, skin & (lab > 127), "skin"))
            out.append(OccluderSource(img, outside & (lab < 128), "background"))
            # what a label cut out of the face: real occluders (hands), the best texture there is
            hull = np.zeros((c, c), np.uint8)
            cv2.fillConvexPoly(hull, cv2.convexHull(np.round(lm - 0.5).astype(np.int32)), 1)
            out.append(OccluderSource(img, hull.astype(bool) & (lab < 128), "skin"))
        if unlabelled:
            step = max(1, len(unlabelled) // EXTRA_SOURCES)
            for path, meta in unlabelled[::step][:EXTRA_SOURCES]:
                try:
                    img, t_cache, _, _ = recut_face(path, meta, self.size,
                                                           self.cfg.centering,
                                                           self.cfg.coverage, self.pad)
                except (FaceplateError, cv2.error):
                    continue
                lm = transform_points(meta.record.landmarks.astype(np.float64), t_cache)
                skin, outside = face_regions(lm, (c, c))
                out.append(OccluderSource(img, skin, "skin"))
                out.append(OccluderSource(img, outside, "background"))
        return [s for s in out if s.usable()]

    def __len__(self) -> int:
        return len(self.keys)


class MaskLoader:
    """Endless augmented batches of labelled faces.

    Args:
        faces: The labelled faces.
        batch_size: Faces per batch.
        cfg: The data config.
        seed: Seed of every random draw.
        start: First batch index (resume).
        prefetch: Make batch ``k + 1`` on a worker thread while the caller trains on batch
            ``k`` (the augmentation costs about as much CPU as a training step of the network;
            OpenCV, NumPy and torch release the GIL, so on two cores it runs beside the step).
            The batches are the same either way. Call :meth:`close` when done.
    """

    def __init__(self, faces: LabelledFaces, batch_size: int, cfg: MaskDataConfig, *,
                 seed: int, start: int = 0, prefetch: bool = False) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch_size: must be >= 1, got {batch_size}")
        self.faces = faces
        self.batch_size = batch_size
        self.cfg = cfg
        self.seed = int(seed)
        self.k = int(start)
        self._perms: dict[int, Tensor] = {}
        self._pool: ThreadPoolExecutor | None = (
            ThreadPoolExecutor(1, thread_name_prefix="mask-batches") if prefetch else None)
        self._ahead: tuple[int, Future[MaskBatch]] | None = None

    def indices(self, k: int) -> np.ndarray:
        """Face indices of batch ``k`` (each face once per epoch, shuffled per epoch)."""
        n = len(self.faces)
        pos = k * self.batch_size + np.arange(self.batch_size)
        out = np.empty(self.batch_size, np.int64)
        for i, p in enumerate(pos):
            e = int(p // n)
            if e not in self._perms:
                if len(self._perms) > 8:
                    self._perms.clear()
                self._perms[e] = torch.randperm(n, generator=aug.generator(self.seed, e, 0x5EED))
            out[i] = int(self._perms[e][int(p % n)])
        return out

    def batch(self, k: int) -> MaskBatch:
        """Batch ``k`` (deterministic for the seed; made with one torch thread)."""
        threads = torch.get_num_threads()
        if threads != 1:
            torch.set_num_threads(1)
        try:
            return self._batch(k)
        finally:
            if threads != 1:
                torch.set_num_threads(threads)

    def _batch(self, k: int) -> MaskBatch:
        cfg, fs = self.cfg, self.faces
        s, pad = fs.size, fs.pad
        idx = self.indices(k)
        imgs = fs.images[idx].copy()
        labs = fs.labels[idx].copy()
        g = aug.generator(self.seed, k, 0xD2)
        p = aug.draw_params(len(idx), g, rotation=cfg.rotation, zoom=cfg.zoom, shift=cfg.shift,
                            flip=cfg.flip, warp_scale=cfg.warp_scale,
                            lightness=cfg.color_lightness, ab=cfg.color_ab,
                            clahe_chance=cfg.clahe_chance, clahe_base=max(1, s // 128))
        if fs.sources:
            for i in range(len(idx)):
                rng = np.random.default_rng(aug.mix_seed(self.seed, k, i, 0x0CC))
                if rng.random() < cfg.occluders:
                    n = int(rng.integers(1, cfg.max_occluders + 1))
                    imgs[i], labs[i], _ = paste_occluders(imgs[i], labs[i], rng, fs.sources, n,
                                                          synthetic=cfg.synthetic_textures)
        if cfg.clahe_chance > 0:
            aug.apply_clahe(imgs, p.clahe.numpy(), p.clahe_grid.numpy())
        u8 = torch.from_numpy(imgs)
        if cfg.color_lightness > 0 or cfg.color_ab > 0:
            src = aug.color_jitter(u8, p.lab)
        else:
            src = u8.permute(0, 3, 1, 2).to(torch.float32).div_(255.0)
        fwd = aug.affine_matrices(p, s)
        inv = torch.linalg.inv(fwd)
        inv[:, :2, 2] += pad
        offset = aug.grid_warp_offsets(p.warp, s) if cfg.warp_scale > 0 else None
        coords = aug.source_coords(inv, s, offset)
        face = aug.sample(src, coords, "border")
        lab = torch.from_numpy(labs)[:, None].to(torch.float32).div_(255.0)
        label = aug.sample(lab, coords, "zeros")
        return MaskBatch(face.clamp_(0.0, 1.0).contiguous(), label.clamp_(0.0, 1.0).contiguous())

    def __iter__(self) -> MaskLoader:
        return self

    def __next__(self) -> MaskBatch:
        k = self.k
        if self._pool is None:
            b = self.batch(k)
        else:
            if self._ahead is None or self._ahead[0] != k:
                self._ahead = (k, self._pool.submit(self.batch, k))
            b = self._ahead[1].result()
            self._ahead = (k + 1, self._pool.submit(self.batch, k + 1))
        self.k = k + 1
        return b

    def close(self) -> None:
        """Stop the worker thread (a no-op without ``prefetch``)."""
        if self._pool is not None:
            if self._ahead is not None:
                self._ahead[1].cancel()
            self._pool.shutdown(wait=True)
            self._pool = None
            self._ahead = None


def preview_faces(faces: LabelledFaces, n: int, seed: int) -> MaskBatch:
    """A fixed set of up to ``n`` faces for the previews: the first faces with one seeded
    occluder each, unaugmented otherwise (S×S crops, no border)."""
    s, pad = faces.size, faces.pad
    pick = np.linspace(0, len(faces) - 1, min(n, len(faces))).round().astype(int)
    imgs, labs = [], []
    for j, i in enumerate(pick):
        img, lab = faces.images[i], faces.labels[i]
        if faces.sources:
            rng = np.random.default_rng(aug.mix_seed(seed, j, 0x9E))
            img, lab, _ = paste_occluders(img, lab, rng, faces.sources, 1)
        imgs.append(img[pad:pad + s, pad:pad + s])
        labs.append(lab[pad:pad + s, pad:pad + s])
    face = torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).float().div(255.0)
    label = torch.from_numpy(np.stack(labs))[:, None].float().div(255.0)
    return MaskBatch(face.contiguous(), label.contiguous())


def default_threads() -> int:
    """Torch threads for mask training: every core this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
        os.cpu_count() or 1)


__all__ = ["EXTRA_SOURCES", "LabelledFaces", "MaskBatch", "MaskDataConfig", "MaskLoader",
           "preview_faces", "split_hold_out"]
