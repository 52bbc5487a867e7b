"""Contract tests for every occlusion mask model in the registry (``MASK_MODELS``).

Each model: N×3×S×S float sRGB [0, 1] in, N×1×S×S float32 in [0, 1] out, at every allowed size
and batch; wrong inputs refused with a message; gradients reach every parameter; BatchNorm in eval
mode makes a face's mask independent of its batch; the safetensors round trip and the ONNX export
(checked by onnxruntime) give the same masks. Seeded inside ``torch.random.fork_rng``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from faceplate.core.errors import ConfigError, InputError
from faceplate.io.model_files import load_mask_model, read_mask_manifest
from faceplate.models.occlusion import MASK_MODELS, MaskModel, build_mask_model

NAMES = tuple(MASK_MODELS.names())


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _model(name: str, size: int = 64, seed: int = 0) -> MaskModel:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return build_mask_model(name, MASK_MODELS.config_class(name)(size=size))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(("size", "batch"), [(64, 1), (96, 3), (128, 2)])
def test_shape_range_dtype(name: str, size: int, batch: int) -> None:
    m = _model(name, size).eval()
    x = torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(size))
    with torch.no_grad():
        y = m(x)
        lg = m.logits(x)
    assert y.shape == (batch, 1, size, size) and y.dtype == torch.float32
    assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0
    assert torch.allclose(torch.sigmoid(lg), y, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_bad_input_and_config(name: str) -> None:
    m = _model(name, 64)
    for bad in (torch.rand(1, 3, 96, 96), torch.rand(1, 1, 64, 64), torch.rand(3, 64, 64)):
        with pytest.raises(InputError, match="64"):
            m(bad)
    with pytest.raises(InputError, match="float"):
        m(torch.zeros(1, 3, 64, 64, dtype=torch.uint8))
    cls = MASK_MODELS.config_class(name)
    with pytest.raises(ConfigError, match="multiple of 32"):
        cls(size=100)
    with pytest.raises(ConfigError):
        cls(size=32)


@pytest.mark.parametrize("name", NAMES)
def test_gradients_reach_every_parameter(name: str) -> None:
    m = _model(name, 64).train()
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    m.logits(x).mean().backward()
    dead = [n for n, p in m.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()
            or float(p.grad.abs().sum()) == 0.0]
    assert not dead, dead
    assert m.param_count() == sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize("name", NAMES)
def test_eval_mask_does_not_depend_on_batch(name: str) -> None:
    m = _model(name, 64)
    m.train()
    with torch.no_grad():   # move BatchNorm's running statistics off their initial values
        for s in range(3):
            m(torch.rand(4, 3, 64, 64, generator=torch.Generator().manual_seed(10 + s)))
    m.eval()
    x = torch.rand(5, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        whole = m(x)
        one = torch.cat([m(x[i:i + 1]) for i in range(5)])
    assert torch.allclose(whole, one, atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_save_load_and_onnx_give_the_same_mask(name: str, tmp_path: Path) -> None:
    import dataclasses

    from faceplate.extract.mask.occlusion import OcclusionPredictor
    from faceplate.io.model_files import MaskManifest, save_mask_model
    from faceplate.train.occlusion import export_mask_model

    m = _model(name, 64, seed=3).eval()
    cfg = {f.name: getattr(m.cfg, f.name) for f in dataclasses.fields(m.cfg)}
    manifest = MaskManifest(architecture=name, model_config=cfg, size=64, centering="face",
                            coverage=1.0, weights={}, training={})
    save_mask_model(tmp_path, m.state_dict(), manifest)
    loaded, man = load_mask_model(tmp_path)
    assert man.architecture == name and man.size == 64
    x = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        assert torch.equal(m(x), loaded(x))
    diff = export_mask_model(tmp_path, log=None)
    assert diff < 1e-4
    assert read_mask_manifest(tmp_path).onnx["sha256"]
    faces = (x.permute(0, 2, 3, 1).numpy() * 255 + 0.5).astype(np.uint8)
    ref = loaded(torch.from_numpy(faces).permute(0, 3, 1, 2).float() / 255).detach().numpy()
    for engine in ("onnx", "torch"):
        got = OcclusionPredictor(tmp_path, engine=engine).predict(faces)  # type: ignore[arg-type]
        assert got.shape == (3, 64, 64)
        np.testing.assert_allclose(got.astype(np.float32), ref[:, 0], atol=2e-3)
