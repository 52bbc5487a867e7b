"""``faceplate convert`` and ``faceplate preview`` end to end, in-process through the real CLI.

Acceptance 1: extract → train (tiny) → convert writes a video that PyAV decodes with the input's
frame count and rate, audio kept. Plus image-sequence, patch and matte outputs, float EXR
sequences (values outside [0, 1] survive outside the face), the bad inputs of the issue, and
the contact sheet.
"""

from __future__ import annotations

import shutil
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import OpenImageIO as oiio
import pytest

from faceplate.cli.main import main
from faceplate.cli.preview import LABEL_H
from faceplate.io import samples
from faceplate.io.media import open_source
from tests.convert_model import CLIP_RATE, sample_clip, tiny_model

N = 24
RATE = CLIP_RATE


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model(tmp_path_factory)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(clip.mp4 with audio, its alignments store made by the real `faceplate extract`)."""
    root = tmp_path_factory.mktemp("clip")
    video = root / "clip.mp4"
    sample_clip(video, N, audio=True)
    store = root / "clip.fpstore"
    code = main(["extract", str(video), "--alignments", str(store), "--no-write-faces",
                 "--no-thumbnails"])
    assert code == 0
    return video, store


def _probe(path: Path) -> tuple[int, Fraction, int]:
    with av.open(str(path)) as c:
        n = sum(1 for _ in c.decode(video=0))
        return n, c.streams.video[0].average_rate, len(c.streams.audio)


def test_convert_video_keeps_frames_rate_and_audio(clip, model_dir, tmp_path, capsys):
    """Acceptance 1."""
    video, store = clip
    out = tmp_path / "swapped.mp4"
    code = main(["convert", "--model", str(model_dir), "--input", str(video), "--alignments",
                 str(store), "--output", str(out), "--preset", "ultrafast", "--color", "rct",
                 "--blend", "seamless", "--post-motion-blur", "0.5"])
    text = capsys.readouterr().out
    assert code == 0, text
    assert f"convert: {N} frames, {N} faces" in text and "swapped 24" in text
    n, rate, n_audio = _probe(out)
    assert (n, rate, n_audio) == (N, RATE, 1)
    # The face changed; the corners of the plate did not (beyond codec noise).
    with open_source(video) as a, open_source(out) as b:
        fa, fb = a.read(5).rgb.astype(int), b.read(5).rgb.astype(int)
    assert np.abs(fa - fb)[120:260, 250:390].mean() > 8
    assert np.abs(fa - fb)[:60, :120].mean() < 3


def test_convert_frame_ranges_keep_unchanged_and_extra_outputs(clip, model_dir, tmp_path,
                                                               capsys):
    video, store = clip
    out = tmp_path / "seq"
    code = main(["convert", "--model", str(model_dir), "--input", str(video), "--output",
                 str(out), "--alignments", str(store), "--format", "png8",
                 "--frame-ranges", "2-4", "10", "--keep-unchanged",
                 "--patch-dir", str(tmp_path / "patches"), "--mask-dir", str(tmp_path / "mattes"),
                 "--predictor", "onnx", "--mask", "learned", "extended"])
    text = capsys.readouterr().out
    assert code == 0, text
    assert "swapped 4" in text and "unchanged 20" in text
    files = sorted(out.glob("*.png"))
    assert len(files) == N
    mattes = sorted((tmp_path / "mattes").glob("*.png"))
    assert len(mattes) == N
    m3 = cv2.imread(str(mattes[3]), cv2.IMREAD_UNCHANGED)
    m0 = cv2.imread(str(mattes[0]), cv2.IMREAD_UNCHANGED)
    assert m3.max() > 20 and m0.max() == 0  # learned × extended of a barely trained model
    assert len(list((tmp_path / "patches").glob("*_face0_*.json"))) == N  # blank for the rest
    with open_source(video) as src:
        orig0 = src.read(0).rgb
    got0 = cv2.imread(str(files[0]))[..., ::-1]
    assert np.array_equal(got0, orig0), "an unchanged frame must be written as decoded"

    # Without --keep-unchanged only the ranges are written.
    out2 = tmp_path / "seq2"
    assert main(["convert", "--model", str(model_dir), "--input", str(video), "--output",
                 str(out2), "--alignments", str(store), "--format", "jpeg",
                 "--frame-ranges", "0-2"]) == 0
    assert len(list(out2.glob("*.jpg"))) == 3


def test_convert_jobs_give_the_same_frames_in_order(clip, model_dir, tmp_path, capsys):
    """Frames swapped at once (``--jobs``) come out identical and in order: each frame in
    flight has its own neighbours (motion blur) and the writer keeps the input's order."""
    import torch

    from faceplate.core.cpu import blas_threads, opencv_threads

    video, store = clip
    threads = torch.get_num_threads()
    blas = blas_threads()
    cv = opencv_threads()
    outs = {}
    for jobs in (1, 3):
        out = tmp_path / f"jobs{jobs}"
        code = main(["convert", "--model", str(model_dir), "--input", str(video), "--output",
                     str(out), "--alignments", str(store), "--format", "png16",
                     "--frame-ranges", "0-6", "--post-motion-blur", "1.0", "--jobs", str(jobs),
                     "--threads", "1"])
        assert code == 0, capsys.readouterr().out
        assert torch.get_num_threads() == threads  # the run's own thread count is put back
        assert blas_threads() == blas  # NumPy's BLAS too (1 during the run)
        assert opencv_threads() == cv  # and OpenCV's pool (each job's share during the run)
        outs[jobs] = sorted(out.glob("*.png"))
    assert [f.name for f in outs[1]] == [f.name for f in outs[3]] and len(outs[1]) == 7
    for a, b in zip(outs[1], outs[3], strict=True):
        ia = cv2.imread(str(a), cv2.IMREAD_UNCHANGED).astype(int)
        ib = cv2.imread(str(b), cv2.IMREAD_UNCHANGED).astype(int)
        assert np.array_equal(ia, ib), a.name
    # Different frames really differ (a mix-up of the order would be caught above).
    f0 = cv2.imread(str(outs[1][0]), cv2.IMREAD_UNCHANGED).astype(int)
    f6 = cv2.imread(str(outs[1][6]), cv2.IMREAD_UNCHANGED).astype(int)
    assert np.abs(f0 - f6).mean() > 10


def test_convert_on_the_fly_without_a_store(clip, model_dir, tmp_path, capsys):
    video, _ = clip
    lone = tmp_path / "lone.mp4"
    shutil.copy(video, lone)  # no store next to it
    out = tmp_path / "fly"
    code = main(["convert", "--model", str(model_dir), "--input", str(lone), "--output",
                 str(out), "--format", "png8", "--frame-ranges", "0-1", "--output-scale", "50"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "on the fly" in captured.err and "swapped 2" in captured.out
    files = sorted(out.glob("*.png"))
    assert len(files) == 2 and cv2.imread(str(files[0])).shape == (180, 320, 3)


def _write_exr(path: Path, pixels: np.ndarray) -> None:
    out = oiio.ImageOutput.create(str(path))
    spec = oiio.ImageSpec(pixels.shape[1], pixels.shape[0], 3, oiio.FLOAT)
    assert out.open(str(path), spec)
    assert out.write_image(pixels)
    out.close()


def _read_exr(path: Path) -> np.ndarray:
    inp = oiio.ImageInput.open(str(path))
    px = inp.read_image(oiio.FLOAT)
    inp.close()
    return np.asarray(px, np.float32)


@pytest.mark.slow
def test_convert_float_exr_sequence_keeps_out_of_range_values(model_dir, tmp_path):
    """Acceptance 2 end to end: EXR in (values > 1 and < 0), EXR float out, bit-exact outside."""
    from faceplate.core.colorspace import srgb_to_linear

    seq = tmp_path / "plates"
    seq.mkdir()
    rng = np.random.default_rng(3)
    frames = []
    with open_source(samples.path("single_face.mp4")) as src:
        for i in range(2):
            lin = srgb_to_linear(src.read(i).rgb.astype(np.float32) / 255.0) * 2.0
            lin[:40] = rng.uniform(1.5, 12.0, lin[:40].shape)  # hot highlights at the top
            lin[-30:] = -0.25  # negative values at the bottom
            frames.append(lin.astype(np.float32))
            _write_exr(seq / f"shot.{1001 + i:04d}.exr", frames[-1])
    out = tmp_path / "out"
    mattes = tmp_path / "mattes"
    assert main(["convert", "--model", str(model_dir), "--input", str(seq), "--output",
                 str(out), "--format", "exr-float", "--mask-dir", str(mattes),
                 "--masks-format", "exr-float"]) == 0
    outs = sorted(out.glob("*.exr"))
    assert len(outs) == 2
    for plate, path, mpath in zip(frames, outs, sorted(mattes.glob("*.exr"))):
        got = _read_exr(path)
        matte = _read_exr(mpath)[..., 0]
        outside = matte == 0.0
        assert np.array_equal(got[outside], plate[outside])
        assert (got[outside] > 1.5).any() and (got[outside] < 0).any()
        assert not np.array_equal(got[matte > 0.99], plate[matte > 0.99])


def test_bad_inputs(clip, model_dir, tmp_path, capsys):
    video, store = clip
    base = ["convert", "--input", str(video), "--alignments", str(store)]
    # Missing model.
    assert main([*base, "--model", str(tmp_path / "none"), "--output",
                 str(tmp_path / "a.mp4")]) == 2
    assert "model" in capsys.readouterr().err
    # A store for another clip (72 frames) against this 24-frame one.
    from tests.train_facesets import facesets

    a, _ = facesets()
    assert main(["convert", "--input", str(video), "--alignments", str(a.parent / "b.fpstore"),
                 "--model", str(model_dir), "--output", str(tmp_path / "b.mp4")]) == 2
    err = capsys.readouterr().err
    assert "store is for 72 frames" in err and "b.fpstore" in err
    # Unwritable output: a folder under a regular file.
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    assert main([*base, "--model", str(model_dir), "--output",
                 str(blocker / "out.mp4")]) == 2
    assert "error" in capsys.readouterr().err
    assert main([*base, "--model", str(model_dir), "--output", str(blocker / "seq")]) == 2
    capsys.readouterr()
    # Unsupported codec, unsupported container.
    assert main([*base, "--model", str(model_dir), "--output", str(tmp_path / "c.mp4"),
                 "--codec", "libvpx"]) == 2
    assert "codec" in capsys.readouterr().err
    assert main([*base, "--model", str(model_dir), "--output", str(tmp_path / "c.avi")]) == 2
    assert "container" in capsys.readouterr().err
    assert not (tmp_path / "c.mp4").exists()
    # A mask the store does not have.
    assert main([*base, "--model", str(model_dir), "--output", str(tmp_path / "d.mp4"),
                 "--mask", "bisenet"]) == 2
    assert "bisenet" in capsys.readouterr().err


def test_preview_contact_sheet(clip, model_dir, tmp_path, capsys):
    video, store = clip
    sheet = tmp_path / "sheet.png"
    code = main(["preview", "--model", str(model_dir), "--input", str(video), "--alignments",
                 str(store), "--frames", "0", "5", "20", "--settings",
                 "color=rct blend=seamless", "color=avg-color mask=learned,components erode=3",
                 "--cell-width", "200", "-o", str(sheet)])
    assert code == 0, capsys.readouterr().err
    img = cv2.imread(str(sheet))
    ch = round(200 * 360 / 640)
    assert img.shape == (3 * (LABEL_H + ch), 3 * 200, 3)
    # Column 0 is the original frame, columns 1-2 differ from it.
    cell0 = img[LABEL_H:LABEL_H + ch, :200].astype(int)
    cell1 = img[LABEL_H:LABEL_H + ch, 200:400].astype(int)
    assert np.abs(cell0 - cell1).max() > 50
    assert main(["preview", "--model", str(model_dir), "--input", str(video), "--alignments",
                 str(store), "--settings", "colour=rct", "-o", str(sheet)]) == 2
    assert "unknown key" in capsys.readouterr().err


def test_overlapping_runs_put_the_thread_settings_back_once() -> None:
    """Two convert runs overlapping in one process (the first ends while the second runs): the
    second keeps the run settings until it ends, and the process gets its own counts back, not
    the first run's one-thread settings."""
    from faceplate.convert.run import _RunThreads
    from faceplate.core.cpu import blas_threads, opencv_threads

    blas, cv = blas_threads(), opencv_threads()
    if blas == 1 and cv == 1:
        opencv_threads(2)  # a setting the runs change, so that putting it back shows
        cv = 2
    try:
        runs = _RunThreads()
        first, second = runs.scope(2), runs.scope(2)
        first.__enter__()
        during = (blas_threads(), opencv_threads())
        second.__enter__()
        first.__exit__(None, None, None)
        assert (blas_threads(), opencv_threads()) == during  # the second still runs
        second.__exit__(None, None, None)
        assert (blas_threads(), opencv_threads()) == (blas, cv)
        assert during[0] in (None, 1)
    finally:
        opencv_threads(cv)
