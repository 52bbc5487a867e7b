"""Checkpoints: bit-exact round trips, optimiser state, pruning/snapshots, full-disk safety."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest
import torch
from torch import nn

from faceplate.core.errors import ConfigError, ModelError, OutputError, SchemaVersionError
from faceplate.io import model_files as mf
from faceplate.train import checkpoint as ck
from faceplate.train.optim import AdaBelief, build_optimizer


def net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 2))


def train_steps(model: nn.Module, opt: torch.optim.Optimizer, n: int, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    for _ in range(n):
        x = torch.randn(5, 3, 8, 8, generator=g)
        loss = model(x).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()


def save(model_dir: Path, it: int, model: nn.Module, opt: torch.optim.Optimizer,
         **kw) -> Path:
    return ck.save_checkpoint(model_dir, it, model=model.state_dict(),
                              optimizers={"g": opt.state_dict()},
                              state={"history": [{"iteration": it, "a": {"total": 0.5}}]}, **kw)


@pytest.mark.parametrize("name", ["adam", "adamw", "adabelief"])
def test_round_trip_continues_bit_identically(tmp_path: Path, name: str) -> None:
    m = net()
    opt = build_optimizer(name, m.parameters(), lr=1e-2, weight_decay=0.01,
                          device=torch.device("cpu"))
    train_steps(m, opt, 3, seed=1)
    path = save(tmp_path, 3, m, opt)
    loaded = ck.load_checkpoint(path)
    assert loaded.iteration == 3 and loaded.state["history"][0]["iteration"] == 3
    for k, v in m.state_dict().items():
        assert torch.equal(loaded.model[k], v)

    m2 = net(seed=99)
    opt2 = build_optimizer(name, m2.parameters(), lr=1e-2, weight_decay=0.01,
                           device=torch.device("cpu"))
    m2.load_state_dict(loaded.model)
    opt2.load_state_dict(loaded.optimizers["g"])
    train_steps(m, opt, 2, seed=7)
    train_steps(m2, opt2, 2, seed=7)
    for a, b in zip(m.parameters(), m2.parameters()):
        assert torch.equal(a, b)


def test_rng_state_is_restored(tmp_path: Path) -> None:
    m = net()
    opt = torch.optim.Adam(m.parameters())
    torch.manual_seed(5)
    path = save(tmp_path, 1, m, opt)
    want = torch.rand(4)
    torch.manual_seed(123)
    ck.restore_rng(ck.load_checkpoint(path).rng)
    assert torch.equal(torch.rand(4), want)


def test_latest_keep_last_and_snapshots(tmp_path: Path) -> None:
    m = net()
    opt = torch.optim.Adam(m.parameters())
    for it in (2, 4, 6, 8, 10):
        save(tmp_path, it, m, opt, keep_last=2, snapshot_every=4)
    assert [p.name for p in ck.list_checkpoints(tmp_path)] == ["00000008", "00000010"]
    assert ck.latest_checkpoint(tmp_path) == tmp_path / "checkpoints" / "00000010"
    snaps = sorted(p.name for p in (tmp_path / "snapshots").iterdir())
    assert snaps == ["00000004", "00000008"]
    assert ck.load_checkpoint(tmp_path / "snapshots" / "00000004").iteration == 4
    latest = json.loads((tmp_path / mf.LATEST).read_text())
    assert latest["checkpoint"] == "checkpoints/00000010" and latest["iteration"] == 10


def test_a_training_run_never_overwrites_a_model(tmp_path: Path) -> None:
    """The swap and the mask trainer's shared rule: an empty folder starts a new model; a
    checkpoint is continued only with resume; a model without checkpoints is refused even with
    resume (nothing to continue, and starting anew would overwrite it)."""
    assert ck.checkpoint_to_resume(tmp_path / "new", False) is None
    assert ck.checkpoint_to_resume(tmp_path / "new", True) is None
    m = net()
    opt = torch.optim.Adam(m.parameters())
    ckpt = save(tmp_path / "m", 3, m, opt)
    with pytest.raises(ConfigError, match="pass --resume"):
        ck.checkpoint_to_resume(tmp_path / "m", False)
    assert ck.checkpoint_to_resume(tmp_path / "m", True) == ckpt
    exported = tmp_path / "exported"
    exported.mkdir()
    (exported / mf.MANIFEST).write_text("{}")
    for resume in (False, True):
        with pytest.raises(ConfigError, match="without checkpoints"):
            ck.checkpoint_to_resume(exported, resume)
    assert (exported / mf.MANIFEST).read_text() == "{}"


def test_full_disk_during_checkpoint_keeps_the_previous_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    m = net()
    opt = torch.optim.Adam(m.parameters())
    train_steps(m, opt, 1, seed=0)
    good = save(tmp_path, 5, m, opt)
    want = {k: v.clone() for k, v in m.state_dict().items()}
    latest_before = (tmp_path / mf.LATEST).read_bytes()
    train_steps(m, opt, 1, seed=1)

    calls = {"n": 0}
    real = mf._save_file

    def fill_up_on_second_file(tensors, tmp, metadata):
        calls["n"] += 1
        if calls["n"] == 2:  # model.safetensors written, optimizer.safetensors hits a full disk
            Path(tmp).write_bytes(b"\x00" * 4096)
            raise OSError(errno.ENOSPC, "No space left on device")
        real(tensors, tmp, metadata)

    monkeypatch.setattr(mf, "_save_file", fill_up_on_second_file)
    with pytest.raises(OutputError, match="disk is full"):
        save(tmp_path, 10, m, opt)
    monkeypatch.undo()
    assert (tmp_path / mf.LATEST).read_bytes() == latest_before
    assert ck.latest_checkpoint(tmp_path) == good
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["00000005"]
    loaded = ck.load_checkpoint(good)
    assert all(torch.equal(loaded.model[k], v) for k, v in want.items())


def test_crash_between_renames_is_recovered(tmp_path: Path) -> None:
    m = net()
    opt = torch.optim.Adam(m.parameters())
    path = save(tmp_path, 3, m, opt)
    moved = path.parent / f".old-{path.name}-12345"
    os.replace(path, moved)  # as if killed right after moving the old copy aside
    (path.parent / ".partial-00000003-12345").mkdir()
    ck.remove_partials(tmp_path)
    assert ck.latest_checkpoint(tmp_path) == path
    assert ck.load_checkpoint(path).iteration == 3
    assert sorted(p.name for p in path.parent.iterdir()) == ["00000003"]


def test_tampered_and_foreign_checkpoints_are_refused(tmp_path: Path) -> None:
    m = net()
    opt = torch.optim.Adam(m.parameters())
    path = save(tmp_path, 1, m, opt)
    w = path / ck.MODEL
    raw = bytearray(w.read_bytes())
    raw[-1] ^= 0xFF
    w.write_bytes(bytes(raw))
    with pytest.raises(ModelError, match="sha256") as err:
        ck.load_checkpoint(path)
    assert str(w) in str(err.value)

    path = save(tmp_path, 2, m, opt)
    doc = json.loads((path / ck.STATE).read_text())
    doc["format_version"] = mf.FORMAT_VERSION + 1
    (path / ck.STATE).write_text(json.dumps(doc))
    with pytest.raises(SchemaVersionError, match="newer"):
        ck.load_checkpoint(path)
    (tmp_path / mf.LATEST).write_text(json.dumps({"format": "x", "format_version": 1}))
    with pytest.raises(ModelError, match="not a Faceplate model"):
        ck.latest_checkpoint(tmp_path)


def test_adabelief_matches_the_formula() -> None:
    torch.manual_seed(0)
    p = nn.Parameter(torch.randn(7))
    ref = p.detach().clone()
    opt = AdaBelief([p], lr=0.1, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.01)
    m = torch.zeros(7)
    s = torch.zeros(7)
    for t in range(1, 6):
        g = torch.randn(7)
        p.grad = g.clone()
        opt.step()
        ref = ref * (1 - 0.1 * 0.01)
        m = 0.9 * m + 0.1 * g
        s = 0.99 * s + 0.01 * (g - m) ** 2 + 1e-8
        mh = m / (1 - 0.9 ** t)
        sh = s / (1 - 0.99 ** t)
        ref = ref - 0.1 * mh / (sh.sqrt() + 1e-8)
        torch.testing.assert_close(p.detach(), ref, rtol=1e-6, atol=1e-7)
