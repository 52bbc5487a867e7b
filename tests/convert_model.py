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
from pathlib import Path
from typing import Any

from tests.train_facesets import facesets

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
