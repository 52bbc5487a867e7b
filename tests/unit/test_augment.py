"""Batch augmentation primitives (faceplate.train.augment) on synthetic data: fast, no facesets."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from faceplate.core.geometry import LEFT_EYE, MEAN_FACE_68, MOUTH, RIGHT_EYE
from faceplate.train import augment as aug


def _params(n: int, seed: int = 0, **kw: float) -> aug.AugParams:
    base = dict(rotation=10.0, zoom=0.05, shift=0.05, flip=0.5, warp_scale=5 / 256,
                lightness=0.3, ab=0.08, clahe_chance=0.5)
    base.update(kw)
    return aug.draw_params(n, aug.generator(seed), **base)  # type: ignore[arg-type]


def _zero(n: int, **kw: float) -> aug.AugParams:
    z = dict(rotation=0.0, zoom=0.0, shift=0.0, flip=0.0, warp_scale=0.0, lightness=0.0, ab=0.0,
             clahe_chance=0.0)
    z.update(kw)
    return _params(n, **z)


# --------------------------------------------------------------------------- colour


def test_lab_known_values_and_round_trip() -> None:
    px = torch.tensor([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    lab = aug.srgb_to_lab(px.T.reshape(1, 3, 1, 4))[0, :, 0].T
    np.testing.assert_allclose(lab[0].numpy(), [100.0, 0.0, 0.0], atol=0.02)
    np.testing.assert_allclose(lab[1].numpy(), [0.0, 0.0, 0.0], atol=0.02)
    np.testing.assert_allclose(lab[2].numpy(), [53.24, 80.09, 67.20], atol=0.05)   # sRGB red
    np.testing.assert_allclose(lab[3].numpy(), [32.30, 79.19, -107.86], atol=0.05)  # sRGB blue
    g = torch.Generator().manual_seed(1)
    x = torch.rand(3, 3, 37, 29, generator=g)
    x[0, :, 0, :] = torch.linspace(0, 1, 29)         # exact 0 and 1 and a grey ramp
    back = aug.lab_to_srgb(aug.srgb_to_lab(x))
    assert back.shape == x.shape
    assert float((back - x).abs().max()) < 1e-3


def test_color_jitter_moves_lightness_and_keeps_range() -> None:
    g = torch.Generator().manual_seed(2)
    x = torch.rand(4, 3, 31, 33, generator=g) * 0.6 + 0.2
    r = torch.tensor([[0.3, 0.0, 0.0], [-0.3, 0.0, 0.0], [0.0, 0.08, -0.08], [0.0, 0.0, 0.0]])
    out = aug.color_jitter(x, r)
    assert out.shape == x.shape and out.dtype == torch.float32
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    lin, lout = aug.srgb_to_lab(x)[:, 0].mean((1, 2)), aug.srgb_to_lab(out)[:, 0].mean((1, 2))
    assert lout[0] > lin[0] + 5.0          # L pushed towards 100 by 30 %
    assert lout[1] < lin[1] - 5.0          # and towards 0
    ain, aout = aug.srgb_to_lab(x)[2, 1].mean(), aug.srgb_to_lab(out)[2, 1].mean()
    assert aout > ain + 3.0                # a* pushed towards +127
    assert float((out[3] - x[3]).abs().max()) < 1e-4   # zero jitter = identity
    # the fused path equals the textbook composition; uint8 input equals float input
    ref = aug.lab_to_srgb(aug.jitter_lab(aug.srgb_to_lab(x), r))
    assert float((out - ref).abs().max()) < 1e-4
    u8 = (x * 255).round().to(torch.uint8)
    a = aug.color_jitter(u8.permute(0, 2, 3, 1).contiguous(), r)
    b = aug.color_jitter(u8.to(torch.float32) / 255, r)
    assert float((a - b).abs().max()) < 1e-4


def test_clahe_only_touches_chosen_images() -> None:
    rng = np.random.default_rng(3)
    imgs = (rng.random((3, 41, 43, 3)) * 80 + 60).astype(np.uint8)   # low contrast
    before = imgs.copy()
    aug.apply_clahe(imgs, np.array([True, False, True]), np.array([1, 2, 3]))
    assert np.array_equal(imgs[1], before[1])
    assert imgs[0].std() > before[0].std() and imgs[2].std() > before[2].std()


# --------------------------------------------------------------------------- geometry


def test_affine_zero_is_identity_and_flip_mirrors() -> None:
    s = 65
    m = aug.affine_matrices(_zero(3), s)
    assert torch.allclose(m, torch.eye(3).expand(3, 3, 3), atol=1e-6)
    f = aug.affine_matrices(_zero(2, flip=1.0), s)
    pts = torch.tensor([[[0.5, 10.0], [20.0, 64.5]]]).expand(2, 2, 2)
    out = aug.transform_points(pts, f)
    assert torch.allclose(out[..., 0], s - pts[..., 0], atol=1e-4)
    assert torch.allclose(out[..., 1], pts[..., 1], atol=1e-4)


def test_rotation_is_counter_clockwise_on_screen() -> None:
    p = _zero(1)
    p = p._replace(angle=torch.tensor([90.0]))
    m = aug.affine_matrices(p, 100)
    # a point right of the centre goes to above the centre (y down) for a CCW turn
    out = aug.transform_points(torch.tensor([[[80.0, 50.0]]]), m)
    assert torch.allclose(out, torch.tensor([[[50.0, 20.0]]]), atol=1e-3)


def test_draw_params_deterministic_and_in_range() -> None:
    a, b = _params(64, seed=5), _params(64, seed=5)
    for x, y in zip(a, b):
        assert torch.equal(x, y)
    c = _params(64, seed=6)
    assert not torch.equal(a.angle, c.angle)
    assert float(a.angle.abs().max()) <= 10.0 and float((a.zoom - 1).abs().max()) <= 0.05
    assert float(a.shift.abs().max()) <= 0.05
    assert 10 < int(a.flip.sum()) < 54
    assert aug.mix_seed(1, 0, 2) != aug.mix_seed(1, 2, 0) != aug.mix_seed(2, 0, 1)


def test_sample_identity_and_no_hw_swap() -> None:
    g = torch.Generator().manual_seed(7)
    src = torch.rand(2, 3, 99, 101, generator=g)                 # H 99, W 101
    # output 40×40 showing the source window starting at (x=30, y=50)
    inv = torch.tensor([[1.0, 0, 30.0], [0, 1.0, 50.0]]).expand(2, 2, 3)
    out = aug.sample(src, aug.source_coords(inv, 40))
    assert torch.allclose(out, src[:, :, 50:90, 30:70], atol=1e-5)


def test_grid_warp_field() -> None:
    s = 64
    p = _params(4, seed=8)
    d = aug.grid_warp_offsets(p.warp, s)
    assert d.shape == (4, s, s, 2)
    assert float(d.abs().max()) > 0.3                         # ~5/256·64 = 1.25 px spread
    assert float(d.abs().max()) < 0.25 * s
    smooth = (d[:, 1:] - d[:, :-1]).abs().max()
    assert float(smooth) < 0.5                                # no pixel-level jumps
    assert float(aug.grid_warp_offsets(torch.zeros(2, 2, 5, 5), s).abs().max()) == 0.0


def test_tps_moves_landmarks() -> None:
    s = 96
    src = torch.from_numpy(MEAN_FACE_68 * 48 + 24).to(torch.float32)[None].repeat(2, 1, 1)
    dst = src.clone()
    dst[0, MOUTH, 1] += 4.0                 # mouth 4 px lower in the warped image
    dst[1] = src[1] * 1.05 - 2.4            # a slightly bigger face
    d = aug.tps_offsets(src, dst, s)
    assert d.shape == (2, s, s, 2)
    # sampling at dst + d(dst) lands on src: check at the mouth points (field is smooth)
    look = aug.sample(d.permute(0, 3, 1, 2), dst[:, :, None, :]).squeeze(-1).permute(0, 2, 1)
    err = (dst + look - src).norm(dim=-1)
    assert float(err.mean()) < 0.5, err.mean()
    ident = aug.tps_offsets(src, src, s)
    assert float(ident.abs().max()) < 1e-3


def test_region_maps_sit_on_eyes_and_mouth() -> None:
    s = 80
    lm = MEAN_FACE_68 * 40 + 20
    eyes, mouth = aug.region_maps(lm, s)
    assert eyes.shape == mouth.shape == (s, s) and eyes.dtype == np.uint8
    ys, xs = np.nonzero(mouth)
    c = lm[MOUTH][:12].mean(0)
    assert abs(xs.mean() + 0.5 - c[0]) < 1.0 and abs(ys.mean() + 0.5 - c[1]) < 1.5
    left = eyes[:, s // 2:]
    ys, xs = np.nonzero(left)
    c = lm[LEFT_EYE].mean(0)
    assert abs(xs.mean() + s // 2 + 0.5 - c[0]) < 1.0 and abs(ys.mean() + 0.5 - c[1]) < 1.0
    assert eyes[:, : s // 2].sum() > 0 and lm[RIGHT_EYE][:, 0].max() < s // 2
    w = aug.priority_weights(torch.from_numpy(eyes / 255.0)[None, None],
                             torch.from_numpy(mouth / 255.0)[None, None], 3.0, 2.0)
    assert set(np.unique(w.numpy())) == {1.0, 2.0, 3.0}


# --------------------------------------------------------------------------- sampling


def test_uniform_bin_sample_flattens_a_skewed_histogram() -> None:
    rng = np.random.default_rng(9)
    yaw = np.concatenate([rng.normal(0, 3, 900), rng.uniform(-40, 40, 100)])  # 90 % frontal
    bins = aug.yaw_bins(yaw, 8)
    assert bins.min() == 0 and bins.max() == 7
    plain = np.bincount(bins, minlength=8)
    assert plain.max() > 10 * plain.min()                 # skewed to start with
    idx = aug.uniform_bin_sample(bins, 8000, aug.generator(1)).numpy()
    drawn = np.bincount(bins[idx], minlength=8)
    assert drawn.min() > 0.8 * 1000 and drawn.max() < 1.2 * 1000
    assert aug.yaw_bins(np.zeros(5), 8).tolist() == [0] * 5


@pytest.mark.parametrize("n", [1, 3])
def test_slice_params(n: int) -> None:
    p = _params(6)
    q = aug.slice_params(p, n, n + 2)
    assert torch.equal(q.angle, p.angle[n:n + 2]) and q.warp.shape == (2, 2, 5, 5)
