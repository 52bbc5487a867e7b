"""Contract tests for every swap model in the registry (and every DFL variant flag).

Models are built at small dims (the ``SMALL`` overrides) so the whole file runs in seconds; the
architecture is the same at any width. Randomness is seeded inside ``torch.random.fork_rng`` so
the tests neither depend on nor disturb the global RNG.
"""

from __future__ import annotations

import dataclasses
import itertools
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch

from faceplate.core.errors import ConfigError, InputError
from faceplate.models import MODELS, SwapModel, build_model
from faceplate.models.dfl import DFConfig, LIAEConfig

SMALL = {"dims": 16, "mask_dims": 8, "encoder_dim": 64, "ae_dims": 32, "e_dims": 16, "d_dims": 16,
         "d_mask_dims": 8}
VARIANT_FLAGS = ("likeness_u", "double_res_d", "deeper_t")


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """Tiny models gain nothing from threads, and OpenMP's spin-waits make a 2-thread pool
    10-40× slower when other processes share the 2 cores."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _fields(name: str) -> set[str]:
    return {f.name for f in dataclasses.fields(MODELS.config_class(name))}


def _cases() -> list[tuple[str, tuple[str, ...]]]:
    """(model name, flags turned on): every model, and every flag combination it has."""
    out: list[tuple[str, tuple[str, ...]]] = []
    for name in MODELS.names():
        flags = [f for f in VARIANT_FLAGS if f in _fields(name)]
        for n in range(len(flags) + 1):
            out.extend((name, combo) for combo in itertools.combinations(flags, n))
    return out


CASES = _cases()
CASE_IDS = [f"{n}-{''.join(f[-1] for f in fl) or 'plain'}" for n, fl in CASES]


def make(name: str, flags: tuple[str, ...] = (), seed: int = 0, **over: Any) -> SwapModel:
    """A small model ``name`` with ``flags`` on, initialised from ``seed``."""
    fields = _fields(name)
    kw = {k: v for k, v in SMALL.items() if k in fields}
    kw.update({f: True for f in flags})
    kw.update(over)
    cfg = MODELS.config_class(name)(**kw)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return build_model(name, cfg)


def faces(n: int, size: int, seed: int) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.random((n, 3, size, size), dtype=np.float32))


def sizes_for(name: str) -> tuple[int, ...]:
    cls = MODELS.config_class(name)
    hi = next(f for f in dataclasses.fields(cls) if f.name == "size").metadata["maximum"]
    return tuple(s for s in (64, 128) if s <= hi)


def test_registry_has_the_issue_models() -> None:
    assert {"original", "df", "liae"} <= set(MODELS.names())
    assert len(CASES) == len(MODELS) - 2 + 2 * 8  # original + df/liae × 8 flag combos
    with pytest.raises(ConfigError, match="unknown model"):
        build_model("nope")
    with pytest.raises(ConfigError, match="takes a"):
        build_model("df", LIAEConfig())


@pytest.mark.parametrize(("name", "flags"), CASES, ids=CASE_IDS)
def test_forward_shapes_ranges_both_sides(name: str, flags: tuple[str, ...]) -> None:
    for size in sizes_for(name):
        model = make(name, flags, size=size)
        assert model.input_size == model.output_size == size
        assert model.learn_mask
        x = faces(2, size, seed=size)
        with torch.no_grad():
            for side in ("a", "b"):
                face, mask = model(x, side)
                assert face.shape == (2, 3, size, size) and face.dtype == torch.float32
                assert mask is not None and mask.shape == (2, 1, size, size)
                for t in (face, mask):
                    assert torch.isfinite(t).all()
                    assert float(t.min()) >= 0.0 and float(t.max()) <= 1.0
                    assert float(t.std()) > 0.0  # not a constant image


@pytest.mark.parametrize(("name", "flags"), CASES, ids=CASE_IDS)
def test_no_mask_head_when_learn_mask_off(name: str, flags: tuple[str, ...]) -> None:
    with_mask = make(name, flags, size=64)
    model = make(name, flags, size=64, learn_mask=False)
    assert not model.learn_mask
    assert model.param_count() < with_mask.param_count()  # the head is not built at all
    x = faces(2, 64, seed=1)
    with torch.no_grad():
        for side in ("a", "b"):
            face, mask = model(x, side)
            assert face.shape == (2, 3, 64, 64) and mask is None
        inf_face, inf_mask = model.inference("b2a")(x)
        assert torch.equal(inf_face, model(x, "a")[0])
        assert torch.equal(inf_mask, torch.ones(2, 1, 64, 64))


@pytest.mark.parametrize(("name", "flags"), CASES, ids=CASE_IDS)
def test_face_only_inference_skips_the_mask_branch(name: str, flags: tuple[str, ...]) -> None:
    # The converter asks for the face alone when no mask source uses the learned mask: the
    # same face, no mask, and not one layer of the mask branch run.
    model = make(name, flags, size=64).eval()
    ran: list[str] = []
    branch = [(n, m) for n, m in model.named_modules() if n.split(".")[-1] == "mask"]
    assert branch  # every decoder names its mask branch "mask"
    for n, m in branch:
        m.register_forward_pre_hook(lambda _m, _a, n=n: ran.append(n))
    x = faces(2, 64, seed=5)
    with torch.no_grad():
        full_face, full_mask = model.inference("b2a")(x)
        assert ran and full_mask is not None
        ran.clear()
        face, mask = model.inference("b2a", mask=False)(x)
        assert mask is None and ran == []
        assert torch.equal(face, full_face)
        face_b, mask_b = model(x, "b", mask=False)
        assert mask_b is None and ran == [] and torch.equal(face_b, model(x, "b")[0])


@pytest.mark.parametrize(("name", "flags"), CASES, ids=CASE_IDS)
def test_inference_and_forward_pair_equal_forward(name: str, flags: tuple[str, ...]) -> None:
    model = make(name, flags, size=64).eval()
    x_a, x_b = faces(2, 64, seed=2), faces(3, 64, seed=3)
    with torch.no_grad():
        ref_a, ref_b = model(x_a, "a"), model(x_b, "b")
        for direction, x, ref in (("b2a", x_b, model(x_b, "a")), ("a2b", x_a, model(x_a, "b"))):
            face, mask = model.inference(direction)(x)
            assert torch.equal(face, ref[0]) and torch.equal(mask, ref[1])
        (fa, ma), (fb, mb) = model.forward_pair(x_a, x_b)
    # forward_pair batches the shared encoder: same maths, different kernel blocking.
    for got, want in ((fa, ref_a[0]), (ma, ref_a[1]), (fb, ref_b[0]), (mb, ref_b[1])):
        assert got is not None and want is not None
        torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


@pytest.mark.parametrize(("name", "flags"), CASES, ids=CASE_IDS)
def test_one_adam_step_lowers_the_loss(name: str, flags: tuple[str, ...]) -> None:
    model = make(name, flags, size=64, seed=4)
    x_a, x_b = faces(4, 64, seed=5), faces(4, 64, seed=6)
    t_a, t_b = faces(4, 64, seed=7), faces(4, 64, seed=8)
    m_a, m_b = (faces(4, 64, seed=s)[:, :1] > 0.5 for s in (9, 10))

    def loss() -> torch.Tensor:
        (fa, ma), (fb, mb) = model.forward_pair(x_a, x_b)
        assert ma is not None and mb is not None
        total = (fa - t_a).abs().mean() + (fb - t_b).abs().mean()
        return total + (ma - m_a.float()).abs().mean() + (mb - m_b.float()).abs().mean()

    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    before_t = loss()
    before_t.backward()
    before = before_t.item()
    assert all(p.grad is not None for p in model.parameters())  # every layer is used
    opt.step()
    with torch.no_grad():
        after = loss().item()
    assert after < before - 1e-4, (before, after)


@pytest.mark.parametrize(
    ("name", "kw"),
    [
        ("df", {"size": 72}),  # not a multiple of 16
        ("liae", {"size": 112, "double_res_d": True}),  # -d needs a multiple of 32
        ("df", {"size": 48}),  # below 64
        ("liae", {"size": 528}),  # above 512
        ("df", {"ae_dims": 8}),
        ("original", {"size": 72}),
        ("original", {"size": 272}),  # above original's 256
        ("original", {"dims": 17}),  # odd
        ("original", {"mask_dims": 9}),
    ],
)
def test_config_rejects_bad_values(name: str, kw: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        MODELS.config_class(name)(**kw)


def test_config_accepts_the_range() -> None:
    for size in (64, 80, 96, 112, 128, 256, 512):
        DFConfig(size=size, deeper_t=True)
    for size in (64, 96, 128, 512):
        LIAEConfig(size=size, double_res_d=True)
    assert LIAEConfig(likeness_u=True, double_res_d=True, deeper_t=True).archi == "-udt"


@pytest.mark.parametrize("name", MODELS.names())
def test_wrong_input_shape_is_a_clear_error(name: str) -> None:
    model = make(name, size=64)
    for bad in (torch.rand(1, 3, 128, 128), torch.rand(1, 1, 64, 64), torch.rand(3, 64, 64)):
        with pytest.raises(InputError, match="takes"):
            model(bad, "a")


def test_odd_sizes_keep_shapes() -> None:
    # 80 and 112 are not powers of two: -t's fifth downscale rounds up (80 → 3×3).
    for name, size in (("df", 80), ("liae", 112)):
        model = make(name, ("deeper_t",), size=size)
        face, mask = model(faces(1, size, seed=11), "b")
        assert face.shape == (1, 3, size, size)
        assert mask is not None and mask.shape == (1, 1, size, size)


def test_liae_b2a_uses_inter_ab_only() -> None:
    model = make("liae", size=64).eval()
    x = faces(2, 64, seed=12)
    with torch.no_grad():
        a0, b0 = model(x, "a")[0], model(x, "b")[0]
        for p in model.inter_b.parameters():  # type: ignore[union-attr]
            p.add_(0.5)
        a1, b1 = model(x, "a")[0], model(x, "b")[0]
    assert torch.equal(a0, a1)  # side a (the b2a swap) never reads inter_b
    assert not torch.allclose(b0, b1)


def test_df_sides_use_their_own_decoder() -> None:
    model = make("df", size=64).eval()
    x = faces(2, 64, seed=13)
    with torch.no_grad():
        a0, b0 = model(x, "a")[0], model(x, "b")[0]
        for p in model.decoder_b.parameters():  # type: ignore[union-attr]
            p.add_(0.5)
        a1, b1 = model(x, "a")[0], model(x, "b")[0]
    assert torch.equal(a0, a1) and not torch.allclose(b0, b1)


def test_double_res_decodes_at_half_resolution() -> None:
    model = make("df", ("double_res_d",), size=128).eval()
    seen: list[tuple[int, ...]] = []
    head = model.decoder_a.face[-1]  # type: ignore[index]
    hook = head.register_forward_pre_hook(lambda _m, args: seen.append(tuple(args[0].shape)))
    with torch.no_grad():
        face, _ = model(faces(1, 128, seed=14), "a")
    hook.remove()
    assert seen[0][-2:] == (64, 64) and face.shape[-2:] == (128, 128)


def test_default_dims_and_faceswap_dfl_sae_dims_build() -> None:
    # On the meta device: the structure and parameter count without allocating weights.
    with torch.device("meta"):
        counts = {name: build_model(name).param_count() for name in ("original", "df", "liae")}
        fs = build_model("df", DFConfig(size=128, e_dims=126, d_dims=63, d_mask_dims=21,
                                        ae_dims=512, res_blocks=2))
    # original: 64 px, encoder 1024, both decoders + mask heads (mask_dims 64).
    assert counts == {"original": 87_521_736, "df": 57_538_432, "liae": 94_963_328}
    # Faceswap dfl-sae (encoder 42, decoder 21 → 3× channels, ae 512): first conv is 126 wide.
    assert fs.encoder.down[0].conv.out_channels == 126  # type: ignore[index,union-attr]
    assert fs.param_count() == 137_456_244


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize(("name", "flags"), CASES, ids=CASE_IDS)
def test_small_map_weight_gradient_equals_onednn(name: str, flags: tuple[str, ...],
                                                 precision: str,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The GEMM weight gradient of small-map convolutions (layers._SmallMapConv, used while
    training on the CPU) gives oneDNN's gradients, outputs and dtypes, in fp32 and under bf16
    autocast; and every model at 64 px has such a layer, so the path is exercised."""
    from faceplate.models import layers

    model = make(name, flags, size=64, seed=11)
    x_a, x_b = faces(3, 64, seed=12), faces(3, 64, seed=13)
    calls: list[tuple[int, ...]] = []
    real = layers._SmallMapConv.apply

    def counted(*args: Any) -> Any:
        calls.append(tuple(args[0].shape))
        return real(*args)

    monkeypatch.setattr(layers._SmallMapConv, "apply", counted)
    runs = []
    for limit in (0, layers.GEMM_WEIGHT_GRAD_MAX_PIXELS):
        monkeypatch.setattr(layers, "GEMM_WEIGHT_GRAD_MAX_PIXELS", limit)
        model.zero_grad(set_to_none=True)
        xa, xb = x_a.clone().requires_grad_(), x_b.clone().requires_grad_()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            (fa, ma), (fb, mb) = model.forward_pair(xa, xb)
        outs = [t for t in (fa, ma, fb, mb) if t is not None]
        sum((o.float() - 0.5).square().mean() for o in outs).backward()
        runs.append(([o.detach().float() for o in outs], [xa.grad, xb.grad],
                     {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None},
                     [o.dtype for o in outs]))
        assert (len(calls) > 0) == (limit > 0)
    (o0, x0, g0, d0), (o1, x1, g1, d1) = runs
    assert d0 == d1 and g0.keys() == g1.keys() == {n for n, _ in model.named_parameters()}
    for a, b in zip(o0 + x0, o1 + x1):
        torch.testing.assert_close(a, b, rtol=0, atol=0)  # the forward and input grads are oneDNN's
    tol = 1e-5 if precision == "fp32" else 2e-2  # bf16: one rounding of each product's output
    for n, want in g0.items():
        scale = float(want.abs().max()) or 1.0
        torch.testing.assert_close(g1[n] / scale, want / scale, rtol=0, atol=tol, msg=n)


def test_keep_freed_memory_applies_on_linux() -> None:
    from faceplate.core.cpu import keep_freed_memory

    assert keep_freed_memory() is sys.platform.startswith("linux")
