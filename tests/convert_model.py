"""A tiny real swap model for the convert tests, trained once per test process.

``faceplate train`` runs in-process on the shared sample facesets (``tests.train_facesets``):
the ``original`` model at 64 px with small dims, 2 iterations, ONNX export on (~5 s on 2 cores).
The weights are barely trained, which is all the convert tests need: real files, a real
architecture, a learned mask, torch and ONNX from the same weights.

Usage (pytest-agnostic; wrap it in a fixture)::

    from tests.convert_model import tiny_model

    @pytest.fixture(scope="session")
    def model_dir(tmp_path_factory):
        return tiny_model(tmp_path_factory)
"""

from __future__ import annotations

import contextlib
import io
from fractions import Fraction
from pathlib import Path
from typing import Any

from tests.train_facesets import facesets

#: Frame rate of :func:`sample_clip` (single_face.mp4's own).
CLIP_RATE = Fraction(30)


def sample_clip(path: Path, n: int, *, audio: bool) -> None:
    """Write the first ``n`` frames of single_face.mp4 (640×360, 30 fps, H.264 CRF 12) to
    ``path``, with a 440 Hz stereo AAC track when ``audio``."""
    import av
    import numpy as np

    from faceplate.io import samples

    sr = 48000
    with av.open(str(samples.path("single_face.mp4"))) as inp, av.open(str(path), "w") as out:
        v = out.add_stream("libx264", rate=CLIP_RATE)
        v.width, v.height, v.pix_fmt = 640, 360, "yuv420p"
        v.options = {"preset": "ultrafast", "crf": "12"}
        a = out.add_stream("aac", rate=sr) if audio else None
        if a is not None:
            a.layout = "stereo"
        for i, frame in enumerate(inp.decode(video=0)):
            if i >= n:
                break
            vf = av.VideoFrame.from_ndarray(frame.to_ndarray(format="rgb24"), format="rgb24")
            vf.pts = i
            out.mux(v.encode(vf))
        out.mux(v.encode(None))
        if a is None:
            return
        total, s = int(n / CLIP_RATE * sr), 0
        while s < total:
            k = min(1024, total - s)
            x = (0.3 * np.sin(2 * np.pi * 440 * np.arange(s, s + k) / sr)).astype(np.float32)
            af = av.AudioFrame.from_ndarray(np.stack([x, x]), format="fltp", layout="stereo")
            af.sample_rate, af.pts = sr, s
            out.mux(a.encode(af))
            s += k
        out.mux(a.encode(None))

_MEMO: dict[str, Path] = {}

TINY_ARGS = ("--model", "original", "--size", "64", "--original-encoder-dim", "64",
             "--original-dims", "16", "--original-mask-dims", "8", "--iterations", "2",
             "--batch-size", "4", "--preview-every", "0")


def tiny_model(tmp_path_factory: Any) -> Path:
    """The model directory (manifest, safetensors, ONNX export); read-only, shared."""
    if "model" not in _MEMO:
        import torch

        from faceplate.cli.main import main

        a, b = facesets(tmp_path_factory)
        out = Path(tmp_path_factory.mktemp("convert_model")) / "model"
        sink = io.StringIO()
        threads = torch.get_num_threads()
        try:
            with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
                code = main(["train", "--a", str(a), "--b", str(b), "--output", str(out),
                             *TINY_ARGS])
        finally:
            torch.set_num_threads(threads)
        if code != 0:
            raise RuntimeError(f"faceplate train exited {code}:\n{sink.getvalue()[-4000:]}")
        _MEMO["model"] = out
    return _MEMO["model"]


#: A model whose output is recognisably a face (the watermark verifier must find the face in the
#: converted frame): the demo's recipe, B = the man → A = the woman, 64 px. Bump to retrain.
TRAINED_VERSION = "v1"
TRAINED_ARGS = ("--model", "original", "--size", "64", "--original-encoder-dim", "512",
                "--original-dims", "64", "--iterations", "600", "--batch-size", "8",
                "--lr", "1e-4", "--preview-every", "0", "--save-every", "600")


def trained_model(tmp_path_factory: Any) -> Path:
    """A briefly but really trained model directory (~2 min on 2 cores the first time), cached
    in ``$FACEPLATE_CACHE/test_models/<TRAINED_VERSION>`` across sessions; read-only, shared."""
    if "trained" in _MEMO:
        return _MEMO["trained"]
    import json
    import os
    import shutil

    import torch

    from faceplate.cli.main import main
    from tests.train_facesets import _lock, cache_root, start_build

    root = cache_root().parent.parent / "test_models" / TRAINED_VERSION
    try:
        root.parent.mkdir(parents=True, exist_ok=True)
    except OSError:
        root = Path(tmp_path_factory.mktemp("test_models")) / TRAINED_VERSION
    done = root / "model" / "manifest.json"
    with _lock(root):
        stamp = root / "stamp.json"
        if not (done.is_file() and stamp.is_file()
                and json.loads(stamp.read_text()).get("args") == list(TRAINED_ARGS)):
            work = start_build(root)
            a, b = facesets(tmp_path_factory)
            sink = io.StringIO()
            threads = torch.get_num_threads()
            torch.set_num_threads(len(os.sched_getaffinity(0)))  # every core, whatever ran before
            try:
                with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
                    code = main(["train", "--a", str(a), "--b", str(b), "--output",
                                 str(work / "model"), *TRAINED_ARGS])
            finally:
                torch.set_num_threads(threads)
            if code != 0:
                raise RuntimeError(f"faceplate train exited {code}:\n{sink.getvalue()[-4000:]}")
            shutil.rmtree(work / "model" / "checkpoints", ignore_errors=True)
            (work / "stamp.json").write_text(json.dumps({"args": list(TRAINED_ARGS)}))
            os.replace(work, root)
    _MEMO["trained"] = root / "model"
    return _MEMO["trained"]
