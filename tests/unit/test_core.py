"""Registry, configs (the one validator), colour space and the error hierarchy."""

from __future__ import annotations

import argparse
from dataclasses import FrozenInstanceError, dataclass
from typing import Literal

import numpy as np
import pytest

from faceplate.cli.options import add_config, config_from_args
from faceplate.core import colorspace as cs
from faceplate.core.config import Config, option, params
from faceplate.core.errors import ConfigError, FaceplateError, InputError
from faceplate.core.registry import Registry


@dataclass(frozen=True)
class _Cfg(Config):
    radius: float = option(2.0, "Radius.", minimum=0.0, maximum=10.0)
    mode: Literal["a", "b"] = option("a", "Mode.")
    count: int = option(3, "Count.", minimum=1)
    names: tuple[str, ...] = option(("x",), "Names.")
    on: bool = option(True, "Switch.")
    cap: float | None = option(None, "Optional cap.")


def test_config_validates_ranges_choices_and_nan():
    assert _Cfg().radius == 2.0
    with pytest.raises(ConfigError, match="radius"):
        _Cfg(radius=11)
    with pytest.raises(ConfigError, match="mode"):
        _Cfg(mode="c")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="NaN"):
        _Cfg(radius=float("nan"))
    with pytest.raises(FrozenInstanceError):
        _Cfg().radius = 1.0  # type: ignore[misc]
    assert _Cfg().replace(count=5).count == 5


def test_params_describe_every_field():
    ps = {p.name: p for p in params(_Cfg)}
    assert ps["mode"].kind == "choice" and ps["mode"].choices == ("a", "b")
    assert ps["names"].kind == "strs" and ps["on"].kind == "bool"
    assert ps["cap"].optional and ps["cap"].kind == "float"
    assert ps["radius"].flag == "--radius"


def test_cli_options_round_trip_through_argparse():
    p = argparse.ArgumentParser()
    add_config(p, _Cfg, prefix="x_", flag_prefix="blur-")
    ns = p.parse_args(["--blur-radius", "4.5", "--blur-mode", "b", "--no-blur-on",
                       "--blur-names", "p", "q", "--blur-cap", "1"])
    cfg = config_from_args(_Cfg, ns, prefix="x_")
    assert cfg == _Cfg(radius=4.5, mode="b", on=False, names=("p", "q"), cap=1.0)
    assert config_from_args(_Cfg, p.parse_args([]), prefix="x_") == _Cfg()
    with pytest.raises(ConfigError):
        config_from_args(_Cfg, p.parse_args(["--blur-radius", "-1"]), prefix="x_")


def test_registry_create_and_unknown_names():
    reg: Registry[object] = Registry("thing")

    @reg.register("one", config=_Cfg)
    class One:
        """The first thing."""

        def __init__(self, cfg: _Cfg) -> None:
            self.cfg = cfg

    assert reg.names() == ["one"] and "one" in reg and len(reg) == 1
    assert reg.entry("one").summary == "The first thing."
    assert isinstance(reg.create("one"), One)
    with pytest.raises(ConfigError, match="unknown thing 'two'; choose one of: one"):
        reg.create("two")
    with pytest.raises(ConfigError):
        reg.create("one", object())
    with pytest.raises(ValueError):
        reg.register("one", config=_Cfg)(One)


def test_srgb_round_trip_and_known_values():
    x = np.linspace(-0.5, 4.0, 2001, dtype=np.float32)
    np.testing.assert_allclose(cs.srgb_to_linear(cs.linear_to_srgb(x)), x, rtol=1e-5, atol=1e-6)
    assert cs.srgb_to_linear(np.float32(0.5)) == pytest.approx(0.21404114, rel=1e-5)
    assert cs.linear_to_srgb(np.float32(0.18)) == pytest.approx(0.46135613, rel=1e-5)
    assert cs.linear_to_srgb(np.float32(1.0)) == pytest.approx(1.0, abs=1e-6)


def test_premultiply_round_trip_and_zero_alpha(rng):
    rgba = rng.uniform(0, 1, size=(7, 9, 4)).astype(np.float32)
    rgba[0, 0, 3] = 0.0
    pm = cs.premultiply(rgba)
    np.testing.assert_allclose(pm[..., :3], rgba[..., :3] * rgba[..., 3:])
    back = cs.unpremultiply(pm)
    np.testing.assert_allclose(back[1:, 1:], rgba[1:, 1:], rtol=1e-5)
    assert np.all(back[0, 0, :3] == 0) and back[0, 0, 3] == 0


def test_linear_to_display_replaces_non_finite():
    lin = np.full((3, 5, 3), 0.18, np.float32)
    lin[0, 0, 0] = np.nan
    lin[1, 1, 1] = np.inf
    lin[2, 2, 2] = -np.inf
    out, n = cs.linear_to_display_u8(lin)
    assert n == 3 and out.dtype == np.uint8 and out.shape == (3, 5, 3)
    assert out[0, 0, 0] == 0 and out[1, 1, 1] == 255 and out[2, 2, 2] == 0
    assert out[2, 4, 0] == round(0.46135613 * 255)


def test_errors_name_the_file():
    err = InputError("cannot decode", "/tmp/x.png")
    assert str(err) == "/tmp/x.png: cannot decode" and err.path == "/tmp/x.png"
    assert isinstance(err, FaceplateError) and err.exit_code == 2


def test_colour_curves_are_one_copy_for_numpy_and_torch() -> None:
    """The transfer and L*a*b* curves in faceplate.core.colorspace serve NumPy arrays and torch
    tensors alike (issue 16, point 9): the trainer's colour augmentation and the converter's
    colour transfer convert the same colours to the same L*a*b*."""
    import torch

    from faceplate.core import colorspace as cs
    from faceplate.train import augment

    rgb = np.random.default_rng(3).uniform(0.0, 1.0, (2, 5, 7, 3)).astype(np.float32)
    lab_np = cs.srgb_to_lab(rgb)
    lab_t = augment.srgb_to_lab(torch.from_numpy(rgb).permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
    np.testing.assert_allclose(lab_t.numpy(), lab_np, atol=2e-3)
    back = augment.lab_to_srgb(torch.from_numpy(lab_np).permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
    np.testing.assert_allclose(back.numpy(), rgb, atol=1e-4)
    np.testing.assert_allclose(cs.lab_to_srgb(lab_np), rgb, atol=1e-4)
    # the curves themselves: one function, either type; the sign is kept on NumPy's side
    x = np.linspace(-0.2, 1.5, 301, dtype=np.float32)
    dec = cs.srgb_decode_nonneg(torch.from_numpy(np.abs(x))).numpy()
    np.testing.assert_allclose(np.copysign(dec, x), cs.srgb_to_linear(x), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(cs.linear_to_srgb(cs.srgb_to_linear(x)), x, atol=2e-6)
    np.testing.assert_allclose(cs.lab_finv(cs.lab_f(x.astype(np.float64))), x, atol=1e-12)


def test_blas_threads_reads_sets_and_restores_numpy_s_openblas() -> None:
    """NumPy's wheel loads OpenBLAS: its thread count can be read and set at run time (convert
    runs it on one thread), and a product still gives the same result."""
    from faceplate.core.cpu import blas_threads

    before = blas_threads()
    if before is None:  # a NumPy built on another BLAS (not the wheel this project pins)
        pytest.skip("no OpenBLAS loaded in this process")
    a = np.random.default_rng(0).random((200, 300))
    ref = a @ a.T
    try:
        assert blas_threads(1) == before
        assert blas_threads() == 1
        assert np.allclose(a @ a.T, ref)
    finally:
        blas_threads(before)
    assert blas_threads() == before


def test_opencv_threads_reads_sets_and_restores() -> None:
    """OpenCV's pool size is read, set (at least 1) and put back; a warp gives the same pixels
    on one thread as on the pool (convert runs it with each job's share of the cores)."""
    import cv2

    from faceplate.core.cpu import opencv_threads

    before = opencv_threads()
    assert before == cv2.getNumThreads()
    img = np.random.default_rng(1).random((301, 257, 3)).astype(np.float32)
    m = np.array([[0.9, 0.1, 3.25], [-0.1, 0.9, 7.5]])
    ref = cv2.warpAffine(img, m, (211, 199), flags=cv2.INTER_CUBIC)
    try:
        assert opencv_threads(0) == before
        assert cv2.getNumThreads() == 1  # 0 is raised to 1, never "all cores"
        assert np.array_equal(cv2.warpAffine(img, m, (211, 199), flags=cv2.INTER_CUBIC), ref)
    finally:
        opencv_threads(before)
    assert opencv_threads() == before
