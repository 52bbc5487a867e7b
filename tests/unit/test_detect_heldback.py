"""The default chain on the held-back part of the detection benchmark: images and clips that
no threshold, rule or model choice was tuned on (``faceplate/evaluate/detection/split.py``).

* A turned face (20–60° yaw, glasses included; re-rendered through the face mesh from the
  held-back stills) that BlazeFace and CenterFace each find on their own must be kept by the
  chain (the issue's case: a turned face with glasses the chain's verification rejected).
* An animal face (the cat, as it is and re-framed) or a drawing must not be accepted.
* Clips, extracted as ``faceplate extract`` does (with the track search): the real head-turn
  clip keeps its face in every frame; in the synthetic head-turn clips (±55° yaw with roll,
  scale and shift) every frame where both single detectors find the face keeps it.
"""

from __future__ import annotations

import numpy as np
import pytest

from faceplate.core.types import Detection, Frame, FrameInfo
from faceplate.evaluate.detection import dataset, run
from faceplate.evaluate.detection.score import match
from faceplate.evaluate.detection.split import part_of
from faceplate.extract.detect import DETECTORS, Detector
from faceplate.extract.pipeline import ExtractConfig, Extractor

HELD = dataset.items("held")
TURNED = [it for it in HELD
          if it.id.startswith(("syn:turn:still:", "syn:turn_glasses:still:"))]
ANIMALS = [it for it in HELD if "animal" in it.tags]
DRAWINGS = [it for it in HELD if "drawing" in it.tags]

_DET: dict[str, Detector] = {}


def det(name: str) -> Detector:
    if name not in _DET:
        _DET[name] = DETECTORS.create(name)
    return _DET[name]


def test_the_held_back_part_has_what_the_tests_need() -> None:
    assert len(TURNED) >= 20
    assert len(ANIMALS) >= 8
    assert len(DRAWINGS) >= 6
    assert {it.part for it in HELD} == {"held"}
    tuned = {it.id for it in dataset.items("tune") if not it.synthetic}
    assert not tuned & {it.id for it in HELD if not it.synthetic}
    # Synthetic variants start only from held-back faces.
    assert all(part_of(s.item.split(":")[1]) == "held" for s in dataset.subjects("held"))


@pytest.mark.parametrize("item", TURNED, ids=lambda it: it.id)
def test_chain_keeps_turned_faces_the_single_detectors_find(item: dataset.Item) -> None:
    rgb, truth = item.load()
    scoped = [j for j, f in enumerate(truth) if run.in_scope(f) and "turned" in f.tags]
    if not scoped:  # the recipe aims at 20-60°; the carried landmarks may measure just past 60°
        subject = [f for f in truth if "turned" in f.tags]
        assert subject and all(f.ignore or abs(f.yaw) > run.MAX_YAW for f in subject)
        pytest.skip(f"the turned face measures {subject[0].yaw:.0f}° of yaw: out of the "
                    "target's scope")
    chain = match([d.bbox for d in det("chain").detect(rgb)], truth)
    single = [match([d.bbox for d in det(n).detect(rgb)], truth) for n in ("blazeface",
                                                                          "centerface")]
    for j in scoped:
        if all(m.found[j] >= 0 for m in single):
            assert chain.found[j] >= 0, (
                f"BlazeFace and CenterFace each find the face turned {truth[j].yaw:.0f}° "
                f"({truth[j].width:.0f} px wide), the chain drops it")


@pytest.mark.parametrize("item", ANIMALS + DRAWINGS, ids=lambda it: it.id)
def test_chain_accepts_no_animal_face_or_drawing(item: dataset.Item) -> None:
    rgb, truth = item.load()
    assert truth == []
    res = det("chain").detect_all(rgb)
    assert res.faces == [], [(d.bbox, d.score) for d in res.faces]
    for r in res.rejected:  # every candidate it dropped says why
        assert r.stage in ("verify", "size") and r.reason


def _extract(clip: dataset.Clip, also: tuple[str, ...] = ()
             ) -> tuple[dict[str, object], dict[str, list[int]]]:
    """Run the clip through extraction (track search on); frames the detectors in ``also``
    each keep on their own, per detector."""
    ex = Extractor(ExtractConfig(masks=(), thumbnails=False, size=64))
    window = ex.new_tracks()
    kept: dict[str, list[int]] = {n: [] for n in also}

    def step(i: int, rgb: np.ndarray) -> list[Detection]:
        info = FrameInfo(i, f"f{i:06d}", None, rgb.shape[1], rgb.shape[0], i)
        res = ex.process(Frame(info, rgb), window)
        return [Detection(r.bbox, r.score, r.detector) for r in res.records]

    got = run.evaluate_clip(clip, step)
    for n in also:
        single = run.evaluate_clip(clip, lambda _i, rgb, n=n: det(n).detect(rgb))
        lost = set(single["lost_frames"])
        kept[n] = [i for i in range(clip.length) if i not in lost]
    return got, kept


@pytest.mark.slow
def test_real_head_turn_clip_keeps_its_face_in_every_frame() -> None:
    clip = next(c for c in dataset.clips("held") if not c.synthetic)
    got, _ = _extract(clip)
    assert got["frames_with_face"] == 472
    assert got["keep_rate"] == 1.0, got["lost_frames"]
    assert got["false_faces"] == 0


@pytest.mark.slow
@pytest.mark.parametrize("k", [0, 1])
def test_synthetic_head_turn_clip_keeps_what_both_detectors_see(k: int) -> None:
    clip = [c for c in dataset.clips("held") if c.synthetic][k]
    got, kept = _extract(clip, ("blazeface", "centerface"))
    both = set(kept["blazeface"]) & set(kept["centerface"])
    assert not both & set(got["lost_frames"]), got["lost_frames"]
    assert got["false_faces"] == 0
