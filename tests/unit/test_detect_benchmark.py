"""The detection benchmark's pieces: the split, truth boxes, matching, synthetic turns."""

from __future__ import annotations

import numpy as np
import pytest

from faceplate.core.types import BBox, Detection
from faceplate.evaluate.detection import dataset, media, synth
from faceplate.evaluate.detection.score import TruthFace, match, nme, truth_box
from faceplate.evaluate.detection.split import SPLIT, part_of
from faceplate.extract.align import ALIGNERS
from faceplate.extract.detect import DETECTORS
from faceplate.extract.pose import estimate_pose


def test_split_parts_share_no_file() -> None:
    files = {}
    for part, spec in SPLIT.items():
        files[part] = {*spec.stills, *spec.negatives, *spec.clips, *spec.clip_sources,
                       *(v.name for v in spec.videos), *(v.name for v in spec.negative_videos)}
    assert not files["tune"] & files["held"]
    assert part_of("chelsea.png") == "held"  # the only animal face is held back
    assert part_of("obama.jpg") == "tune"
    with pytest.raises(KeyError):
        part_of("camera.png")
    assert SPLIT["tune"].seed != SPLIT["held"].seed


def test_every_real_item_is_annotated() -> None:
    doc = dataset.truth_doc()
    for part in SPLIT:
        for it in dataset.items(part):
            if not it.synthetic and not it.id.startswith("neg:"):
                assert it.id in doc["items"], it.id
    assert len(doc["clips"]["WolfgangLanger_Pexels.mp4"]["frames"]) == 472


def test_truth_box_is_the_detectors_box() -> None:
    img = media.still("obama.jpg")
    hog = DETECTORS.create("dlib_hog").detect(img)[0]
    lm = ALIGNERS.create("dlib68").align(img, [hog])[0].landmarks
    box = truth_box(lm)
    # The median placement over the sample faces (BOX_TEMPLATE): on this face 11 % smaller
    # than HOG's own box, centred within a few percent; matching allows far more.
    assert box.iou(hog.bbox) > 0.7
    assert np.hypot(*np.subtract(box.center, hog.bbox.center)) < 0.1 * box.size


def test_matching_is_one_to_one_and_ignores_ignored_faces() -> None:
    t = [TruthFace(BBox(0, 0, 100, 100), None, 0.0, 80.0),
         TruthFace(BBox(300, 0, 100, 100), None, 0.0, 80.0, ignore=True)]
    dets = [BBox(5, 5, 100, 100), BBox(-5, 0, 100, 100), BBox(310, 0, 90, 90),
            BBox(600, 0, 100, 100), BBox(0, 0, 300, 300)]
    m = match(dets, t)
    assert m.found == (1, 2)  # the nearer of the two on face 0; the ignored face takes one
    assert m.false == (0, 3, 4)  # the duplicate, the stray box and the far too large one
    assert match(dets[3:], t).false == (0, 1)
    assert match([BBox(305, 0, 100, 100)], [t[1]]).false == ()  # on an ignored face: no error


def test_nme_is_normalised_by_the_outer_eye_corners() -> None:
    truth = np.zeros((68, 2))
    truth[36], truth[45] = (0, 0), (100, 0)
    pred = truth + [3.0, 4.0]
    assert nme(pred, truth) == pytest.approx(0.05)


def test_turning_a_head_moves_its_landmarks_with_it() -> None:
    img = media.still("single_face.jpg")
    det = DETECTORS.create("blazeface").detect(img)[0]
    al = ALIGNERS.create("mesh68").align(img, [det])[0]
    lm = ALIGNERS.create("dlib68").align(img, [det])[0].landmarks.astype(np.float64)
    assert al.mesh is not None
    size = (img.shape[1], img.shape[0])
    yaw0 = estimate_pose(lm.astype(np.float32), size)[0]
    same, pts = synth.turn_head(img, al.mesh, lm, 0.0)
    np.testing.assert_allclose(pts, lm, atol=1e-6)
    assert np.abs(same.astype(int) - img).mean() < 2.0
    for yaw in (-40.0, 35.0):
        out, pts = synth.turn_head(img, al.mesh, lm, yaw)
        got = estimate_pose(pts.astype(np.float32), size)[0]
        assert abs(got - (yaw0 + yaw)) < 8.0, (yaw, got)
        # The face the detectors see there is where the carried landmarks say.
        moved = Detection(truth_box(pts), 1.0, "truth")
        found = ALIGNERS.create("dlib68").align(out, [moved])[0].landmarks
        assert nme(found, pts, slice(17, 68)) < 0.15
