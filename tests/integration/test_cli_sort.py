"""`faceplate sort` end to end, in process: real face PNGs, real files moved and put back."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from faceplate.cli.main import main
from faceplate.faceset import sort as sort_mod
from faceplate.io.faceset import read_face_meta, scan_faceset
from tests import facesets


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return facesets.cached_faceset(tmp_path_factory, identity=True)


@pytest.fixture()
def folder(built: Path, tmp_path: Path) -> Path:
    """A copy of the faceset plus two files that are not faces."""
    f = facesets.copy_faceset(built, tmp_path / "faces")
    (f / "notes.txt").write_text("not a face\n")
    (f / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    return f


def snapshot(root: Path) -> dict[str, bytes]:
    """Relative path → bytes of every file under ``root`` (hidden files included)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def faces_in(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.png") if p.name != "broken.png")


def test_sort_by_then_undo_restores_exact_files(folder: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    before = snapshot(folder)
    n = len(faces_in(folder))
    log = tmp_path / "sort.json"
    assert main(["sort", str(folder), "--sort-by", "yaw", "--log", str(log)]) == 0
    out = capsys.readouterr().out
    assert f"sort: {n} faces, " in out and "2 other files left alone" in out
    after = snapshot(folder)
    assert sorted(after.values()) == sorted(before.values())  # same bytes, new names
    assert after["notes.txt"] == before["notes.txt"] and "broken.png" in after
    ranked = sorted(p for p in after if re.match(r"^\d{5}_", p))
    assert len(ranked) == n
    yaws = [read_face_meta(folder / p).record.yaw for p in ranked]
    assert yaws == sorted(yaws)
    # the prefix keeps the extracted name; the log records every change
    data = json.loads(log.read_text())
    assert data["sort_by"] == "yaw" and data["status"] == "complete" and data["time"]
    assert len(data["changes"]) == n
    for c in data["changes"]:
        assert Path(c["to"]).name.endswith("_" + Path(c["from"]).name)
        assert (log.parent / c["to"]).resolve().exists()

    assert main(["sort", "--undo", str(log)]) == 0
    assert snapshot(folder) == before
    assert not log.exists()


def test_default_log_inside_folder_and_index_naming(folder: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    before = snapshot(folder)
    assert main(["sort", str(folder), "--sort-by", "blur", "--naming", "index",
                 "--reverse"]) == 0
    logs = list(folder.glob("sort_log_*.json"))
    assert len(logs) == 1
    assert f"--undo {logs[0]}" in capsys.readouterr().out
    names = sorted(p.name for p in faces_in(folder))
    assert names == [f"{i:05d}.png" for i in range(len(names))]
    # sorting a sorted folder again re-ranks it without stacking prefixes
    assert main(["sort", str(folder), "--sort-by", "size", "--log",
                 str(folder.parent / "second.json")]) == 0
    assert all(re.fullmatch(r"\d{5}_\d{5}\.png", p.name) for p in faces_in(folder))
    assert main(["sort", "--undo", str(folder.parent / "second.json")]) == 0
    assert main(["sort", "--undo", str(logs[0])]) == 0
    assert snapshot(folder) == before


def test_group_by_into_output_with_keep(folder: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    before = snapshot(folder)
    out = tmp_path / "grouped"
    assert main(["sort", str(folder), "-o", str(out), "--group-by", "yaw", "--bins", "3",
                 "--keep"]) == 0
    printed = capsys.readouterr().out
    assert "copied" in printed
    assert snapshot(folder) == before  # originals kept
    bins = sorted(d for d in out.iterdir() if d.is_dir())
    assert 1 <= len(bins) <= 3
    got = []
    for d in bins:
        m = re.fullmatch(r"yaw_(-?\d+)_(-?\d+)", d.name)
        assert m, d.name
        lo, hi = float(m.group(1)), float(m.group(2))
        for p in d.iterdir():
            yaw = read_face_meta(p).record.yaw
            assert lo - 0.5 <= yaw <= hi + 0.5, (p, yaw)
            got.append(p.read_bytes())
            assert (folder / p.name).read_bytes() == p.read_bytes()
    faces, _ = scan_faceset(folder)
    assert len(got) == len(faces)
    log = next(out.glob("sort_log_*.json"))
    assert main(["sort", "--undo", str(log)]) == 0
    assert not out.exists()  # the output folder was created by the sort, now empty: removed
    assert snapshot(folder) == before


def test_group_by_identity_then_rank_within_bins(folder: Path) -> None:
    before = snapshot(folder)
    log = folder.parent / "id.json"
    assert main(["sort", str(folder), "--group-by", "identity", "--sort-by", "size",
                 "--log", str(log)]) == 0
    bins = {p.parent.name for p in faces_in(folder)}
    assert all(re.fullmatch(r"identity_\d{3}", b) for b in bins)
    obama = {p.parent.name for p in faces_in(folder) if "obama" in p.name}
    biden = {p.parent.name for p in faces_in(folder) if "biden" in p.name}
    assert len(obama) == 1 and obama != biden
    ranked = sorted(p.name for p in (folder / obama.pop()).iterdir())
    assert [n[:6] for n in ranked] == ["00000_", "00001_", "00002_"]
    assert main(["sort", "--undo", str(log)]) == 0
    assert snapshot(folder) == before


def test_undo_refuses_when_a_moved_face_is_missing(folder: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "log.json"
    assert main(["sort", str(folder), "--sort-by", "brightness", "--log", str(log)]) == 0
    victim = sorted(folder.glob("00003_*.png"))[0]
    victim.unlink()
    sorted_state = snapshot(folder)
    assert main(["sort", "--undo", str(log)]) == 2
    err = capsys.readouterr().err
    assert str(victim) in err and "missing" in err
    assert snapshot(folder) == sorted_state  # nothing moved
    assert log.exists()


def test_undo_refuses_when_an_original_name_is_taken(folder: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "log.json"
    assert main(["sort", str(folder), "--sort-by", "hue", "--log", str(log)]) == 0
    taken = folder / "obama_0.png"
    taken.write_bytes(b"someone else's file")
    sorted_state = snapshot(folder)
    assert main(["sort", "--undo", str(log)]) == 2
    err = capsys.readouterr().err
    assert str(taken) in err and "another file" in err
    assert snapshot(folder) == sorted_state


def test_sort_never_overwrites(folder: Path, tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    before = snapshot(folder)
    out = tmp_path / "out"
    out.mkdir()
    (out / "00003.png").write_bytes(b"mine")
    assert main(["sort", str(folder), "-o", str(out), "--sort-by", "roll",
                 "--naming", "index"]) == 2
    err = capsys.readouterr().err
    assert str(out / "00003.png") in err and "overwrite" in err
    assert snapshot(folder) == before
    assert snapshot(out) == {"00003.png": b"mine"}  # no log, no partial move


@pytest.mark.parametrize("at", [3, 5], ids=["phase1", "phase2"])
@pytest.mark.parametrize("extra", [[], ["--keep", "-o", "{out}"], ["--group-by", "roll"]],
                         ids=["in-place", "copy", "group"])
def test_interrupted_sort_loses_nothing_and_undoes(folder: Path, tmp_path: Path, at: int,
                                                   extra: list[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C in the middle of a sort (first or second rename phase): every face still exists
    under some name, and --undo puts everything back."""
    before = snapshot(folder)
    real = sort_mod._link_or_rename
    calls = {"n": 0}
    n_faces = len(faces_in(folder))

    def interrupting(src: Path, dst: Path) -> None:
        calls["n"] += 1
        # phase 1 (2 faces out of the way) or phase 2 (4 faces at their final names); a copy
        # makes one rename per face
        if calls["n"] == (at if at == 3 or "--keep" in extra else n_faces + at):
            raise KeyboardInterrupt
        real(src, dst)

    monkeypatch.setattr(sort_mod, "_link_or_rename", interrupting)
    log = tmp_path / "log.json"
    out = tmp_path / "out"
    args = [a.format(out=out) for a in extra]
    assert main(["sort", str(folder), "--sort-by", "distance", "--log", str(log), *args]) == 130
    monkeypatch.setattr(sort_mod, "_link_or_rename", real)
    if "--keep" in extra:
        assert snapshot(folder) == before
    else:
        assert sorted(snapshot(folder).values()) == sorted(before.values())
    assert json.loads(log.read_text())["status"] == "in-progress"
    assert main(["sort", "--undo", str(log)]) == 0
    assert snapshot(folder) == before
    assert not out.exists()


def test_interrupted_undo_can_be_resumed(folder: Path, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    before = snapshot(folder)
    log = tmp_path / "log.json"
    assert main(["sort", str(folder), "--group-by", "pitch", "--log", str(log)]) == 0
    real = sort_mod._link_or_rename
    calls = {"n": 0}

    def interrupting(src: Path, dst: Path) -> None:
        calls["n"] += 1
        if calls["n"] == 7:
            raise KeyboardInterrupt
        real(src, dst)

    monkeypatch.setattr(sort_mod, "_link_or_rename", interrupting)
    assert main(["sort", "--undo", str(log)]) == 130
    monkeypatch.setattr(sort_mod, "_link_or_rename", real)
    assert main(["sort", "--undo", str(log)]) == 0
    assert snapshot(folder) == before


@pytest.mark.parametrize("argv, message, named", [
    (["sort", "{missing}", "--sort-by", "yaw"], "no such folder", "missing"),
    (["sort", "{file}", "--sort-by", "yaw"], "not a folder", "file"),
    (["sort", "--undo", "{missing}"], "no such sort log", "missing"),
    (["sort", "--undo", "{file}"], "not a readable sort log", "file"),
    (["sort", "{empty}"], "nothing to do", None),
    (["sort", "{empty}", "--sort-by", "yaw", "--undo", "{file}"], "takes no INPUT_DIR", None),
])
def test_bad_input_exits_2_with_a_clear_message(argv: list[str], message: str,
                                                named: str | None, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    paths = {"missing": tmp_path / "nope", "file": tmp_path / "file.txt",
             "empty": tmp_path / "empty"}
    paths["file"].write_text("hello")
    paths["empty"].mkdir()
    args = [a.format(**paths) for a in argv]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("faceplate sort: error:") and message in err
    if named is not None:
        assert f"error: {paths[named]}: " in err


def test_folder_without_faces_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a.txt").write_text("x")
    assert main(["sort", str(tmp_path), "--sort-by", "blur"]) == 1
    assert "no Faceplate face" in capsys.readouterr().err


def test_key_options_reach_the_key(folder: Path, tmp_path: Path) -> None:
    n = len(faces_in(folder))
    tight = tmp_path / "tight"
    assert main(["sort", str(folder), "-o", str(tight), "--keep", "--group-by", "identity",
                 "--identity-threshold", "0.001"]) == 0
    assert len([d for d in tight.iterdir() if d.is_dir()]) == n  # everyone alone
    two = tmp_path / "two"
    assert main(["sort", str(folder), "-o", str(two), "--keep", "--group-by", "hist",
                 "--bins", "2"]) == 0
    assert len([d for d in two.iterdir() if d.is_dir()]) == 2
    loose = tmp_path / "loose"
    assert main(["sort", str(folder), "-o", str(loose), "--keep", "--group-by", "identity",
                 "--threshold", "1.9"]) == 0
    assert [d.name for d in loose.iterdir() if d.is_dir()] == ["identity_000"]
    log = next(loose.glob("sort_log_*.json"))
    assert json.loads(log.read_text())["configs"]["identity"]["threshold"] == 1.9


def test_existing_log_is_never_overwritten(folder: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    before = snapshot(folder)
    log = tmp_path / "old.json"
    log.write_text("{}")
    assert main(["sort", str(folder), "--sort-by", "yaw", "--log", str(log)]) == 2
    assert str(log) in capsys.readouterr().err
    assert log.read_text() == "{}" and snapshot(folder) == before
