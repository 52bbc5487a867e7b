"""Two pipelines at once in one process: the Natron node's renders (two Swap nodes, two models,
two alignments stores) and the watermark's detection, in two threads, give exactly what each
gives alone.

The in-process placement lets a host render two instances concurrently, and a script may run
two verifications at once: the models loaded for them (predictors, swap contexts, extractors,
the detector's mediapipe graphs) must have an owner or a lock. Each pipeline renders frames of
its own store whose face moves its own way, with motion blur on (the blur follows the
neighbouring frames' faces, which each render must take from its own store), then looks for
the mark on each result with its own detection session.
"""

from __future__ import annotations

import dataclasses
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from faceplate.core.colorspace import linear_to_display_u8, srgb_to_linear
from faceplate.core.types import FrameInfo
from faceplate.io import samples
from faceplate.io.media import open_source
from faceplate.io.store import AlignmentsStore, host_frame_name
from faceplate.ofx.effects import SWAP_ID
from faceplate.ofx.render import RenderSession, _detect, render
from faceplate.provenance import watermark as wm
from tests.convert_model import trained_model

FRAMES = (4, 5, 6)


@pytest.fixture(scope="module")
def plate() -> np.ndarray:
    """Frame 10 of single_face.mp4 as H×W×4 float32 scene-linear RGBA."""
    with open_source(samples.path("single_face.mp4")) as clip:
        rgb = clip.read(10).rgb
    lin = srgb_to_linear(rgb.astype(np.float32) / np.float32(255.0))
    rgba = np.concatenate([lin, np.ones(lin.shape[:2] + (1,), np.float32)], axis=2)
    return np.ascontiguousarray(rgba, dtype=np.float32)


def _store(path: Path, plate: np.ndarray, step: tuple[float, float]) -> Path:
    """A store whose face moves by ``step`` pixels a frame over frames 3–7."""
    face = _detect(plate, "chain", "dlib68", ("extended",))[0]
    h, w = plate.shape[:2]
    with AlignmentsStore.open(path, create=True) as st:
        st.set_meta("width", w)
        st.set_meta("height", h)
        st.set_meta("kind", "ofx")
        for i, n in enumerate(range(3, 8)):
            k = n - 5
            moved = dataclasses.replace(face, frame_index=i, frame_name=host_frame_name(n),
                                        landmarks=(face.landmarks + np.array(step, np.float32)
                                                   * k).astype(np.float32))
            st.put_frame(FrameInfo(index=i, name=host_frame_name(n), timestamp=None, width=w,
                                   height=h, frame_number=n), [moved])
    return path


@pytest.fixture(scope="module")
def pipelines(plate: np.ndarray, tmp_path_factory: pytest.TempPathFactory
              ) -> list[dict[str, object]]:
    root = tmp_path_factory.mktemp("pipelines")
    model = trained_model(tmp_path_factory)
    other = root / "model_b"
    shutil.copytree(model, other)  # a second model folder: a second predictor to load
    return [{"model": str(model), "alignments": str(_store(root / "a.fpstore", plate, (9.0, 0.0))),
             "mask": "full", "post_motion_blur": 1.0},
            {"model": str(other), "alignments": str(_store(root / "b.fpstore", plate, (0.0, -9.0))),
             "mask": "full", "post_motion_blur": 1.0}]


def _run(params: dict[str, object], plate: np.ndarray, session: RenderSession,
         detect: wm.DetectSession) -> list[tuple[np.ndarray, list[wm.FaceMark]]]:
    out = []
    for t in FRAMES:
        res = render(SWAP_ID, plate, params, time=float(t), session=session)
        assert res.status == "" and res.faces == 1, res.status
        marks = wm.detect_frame(linear_to_display_u8(res.image)[0], session=detect)
        out.append((res.image, marks))
    return out


def test_two_pipelines_in_threads_equal_each_alone(plate: np.ndarray,
                                                   pipelines: list[dict[str, object]]) -> None:
    # Alone, one after the other (and the two blur directions really differ).
    alone = [_run(p, plate, RenderSession(), wm.DetectSession()) for p in pipelines]
    assert not np.array_equal(alone[0][1][0], alone[1][1][0])
    for run in alone:
        assert all(len(m) == 1 and m[0].detected for _, m in run)
    # Together: one render session (the worker's or the in-process bridge's is shared by every
    # node) and the process's default detection session, both used by two threads at once.
    shared = RenderSession()
    got: list[list[tuple[np.ndarray, list[wm.FaceMark]]] | None] = [None, None]
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def work(i: int) -> None:
        try:
            start.wait()
            got[i] = _run(pipelines[i], plate, shared, wm.default_session())
        except BaseException as err:  # re-raised below, in the test's thread
            errors.append(err)

    threads = [threading.Thread(target=work, args=(i,)) for i in (0, 1)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    if errors:
        raise errors[0]
    for i in (0, 1):
        run = got[i]
        assert run is not None
        for (img, marks), (want, want_marks) in zip(run, alone[i]):
            np.testing.assert_array_equal(img, want)
            assert [(m.detected, m.payload, m.score) for m in marks] == \
                [(m.detected, m.payload, m.score) for m in want_marks]
    assert sorted(shared.loaded_models()) == sorted(
        str(Path(str(p["model"])).resolve()) for p in pipelines)
