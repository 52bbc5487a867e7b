"""faceplate.io.tfevents against event files written by torch's real SummaryWriter."""

from __future__ import annotations

from pathlib import Path

import pytest

from faceplate.core.errors import InputError
from faceplate.io.tfevents import crc32c, masked_crc32c, read_events, step_times


def _write(log_dir: Path, new_style: bool = False) -> Path:
    from torch.utils.tensorboard import SummaryWriter

    w = SummaryWriter(log_dir=str(log_dir))
    for step in range(1, 6):
        w.add_scalar("batch_total", 0.5 / step, step, new_style=new_style)
        w.add_scalar("face_A", -1.25 * step, step, new_style=new_style)
    w.add_text("notes", "not a scalar", 0)
    w.close()
    (path,) = log_dir.glob("events.out.tfevents.*")
    return path


def test_crc32c_check_value() -> None:
    assert crc32c(b"123456789") == 0xE3069283  # the standard CRC-32C check value
    assert crc32c(b"") == 0
    assert 0 <= masked_crc32c(b"x" * 1000) < 2**32


@pytest.mark.parametrize("new_style", [False, True])
def test_reads_scalars_steps_and_times(tmp_path: Path, new_style: bool) -> None:
    events = read_events(_write(tmp_path, new_style))
    scalars = [e for e in events if e.scalars]
    assert [e.step for e in scalars] == [s for s in range(1, 6) for _ in range(2)]
    for e in scalars:
        if "batch_total" in e.scalars:
            assert e.scalars["batch_total"] == pytest.approx(0.5 / e.step, rel=1e-6)
        else:
            assert e.scalars["face_A"] == pytest.approx(-1.25 * e.step, rel=1e-6)
    assert all(e.wall_time > 1e9 for e in events)
    times = step_times(events)
    assert [s for s, _ in times] == [1, 2, 3, 4, 5]
    assert all(b >= a for (_, a), (_, b) in zip(times, times[1:]))
    assert [s for s, _ in step_times(events, "face_A")] == [1, 2, 3, 4, 5]
    assert step_times(events, "absent") == []


def test_corrupt_and_truncated_files_name_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path)
    raw = bytearray(path.read_bytes())
    bad = tmp_path / "flipped.tfevents"
    flipped = bytearray(raw)
    flipped[len(raw) // 2] ^= 0xFF
    bad.write_bytes(bytes(flipped))
    with pytest.raises(InputError, match=r"flipped\.tfevents.*CRC mismatch"):
        read_events(bad)
    cut = tmp_path / "cut.tfevents"
    cut.write_bytes(bytes(raw[:-7]))
    with pytest.raises(InputError, match=r"cut\.tfevents.*truncated"):
        read_events(cut)
    with pytest.raises(InputError, match="missing.tfevents"):
        read_events(tmp_path / "missing.tfevents")
