"""The detection benchmark's data split: what may be tuned on and what is only reported.

Fixed before any detector threshold was tuned (git history: this file's first commit precedes
the verifier's). Two parts, with no image, identity, clip or random seed in common:

* ``tune`` — the part thresholds, verifier rules and any trained weights may look at;
* ``held`` — the held-back part: ``benchmarks/detect.py`` reports its figures, the tests in
  ``tests/unit/test_detect_heldback.py`` run on it; nothing is tuned on it.

The split is by identity and by source file: Obama (five stills), the man of
``single_face.mp4`` / ``face_noface.mov`` and the astronaut are ``tune``; Biden, the five people
of ``multi_face.jpg``, Einstein (and the seated man beside him), Takeo, the man of
``Image_with_alpha.png`` and the woman of the head-turn clip are ``held``. The non-face images
of scikit-image are split by file; the only animal face (``chelsea.png``, a cat) is held back,
so no animal was seen while tuning. The title-card clips are split by file.

Synthetic variants (see :mod:`faceplate.evaluate.detection.synth` and
:mod:`faceplate.evaluate.detection.dataset`) are made only from their own part's images, with
their own part's seeds. Every synthetic item is marked ``synthetic`` in the benchmark's JSON.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Part = Literal["tune", "held"]
PARTS: tuple[Part, ...] = ("tune", "held")


@dataclass(frozen=True)
class VideoSample:
    """Frames ``range(start, stop, step)`` of a sample clip."""

    name: str
    start: int
    stop: int
    step: int

    @property
    def frames(self) -> range:
        return range(self.start, self.stop, self.step)


@dataclass(frozen=True)
class PartSpec:
    """Everything one part of the split holds.

    Attributes:
        stills: Sample stills with faces (annotated).
        videos: Sampled frames of sample clips (annotated; frames may hold no face).
        negatives: Images with no human face (``samples.NEGATIVES``).
        negative_videos: Sampled frames of clips with no human face.
        clips: Whole sample clips whose every frame is annotated, for the frame-keep rate.
        clip_sources: Stills whose face is re-rendered into synthetic head-turn clips.
        seed: Root seed of every random choice made for this part.
        synth_every: Use every Nth annotated video frame as a source of synthetic variants
            (neighbouring frames of a clip are nearly the same face).
    """

    stills: tuple[str, ...]
    videos: tuple[VideoSample, ...]
    negatives: tuple[str, ...]
    negative_videos: tuple[VideoSample, ...]
    clips: tuple[str, ...]
    clip_sources: tuple[str, ...]
    seed: int
    synth_every: int


SPLIT: dict[Part, PartSpec] = {
    "tune": PartSpec(
        stills=("obama.jpg", "obama2.jpg", "obama3.jpg", "obama_partial_face.jpg",
                "obama_partial_face2.jpg", "single_face.jpg", "astronaut.png"),
        videos=(VideoSample("single_face.mp4", 0, 72, 6),
                VideoSample("face_noface.mov", 0, 72, 6)),
        negatives=("brick.png", "coffee.png", "coins.png", "grass.png", "horse.png",
                   "hubble_deep_field.jpg", "logo.png", "moon.png", "page.png", "rocket.jpg"),
        negative_videos=(VideoSample("face_noface.mov", 80, 169, 8),),
        clips=(),
        clip_sources=("obama.jpg", "single_face.jpg"),
        seed=1301,
        synth_every=2,
    ),
    "held": PartSpec(
        stills=("biden.jpg", "multi_face.jpg", "einstein.jpg", "takeo.ppm",
                "Image_with_alpha.png"),
        videos=(VideoSample("WolfgangLanger_Pexels.mp4", 0, 472, 8),),
        negatives=("chelsea.png", "color.png", "gravel.png", "ihc.png", "motorcycle_left.png",
                   "retina.jpg", "text.png", "clock_motion.png", "cell.png"),
        negative_videos=(VideoSample("no_face.mp4", 0, 95, 8),),
        clips=("WolfgangLanger_Pexels.mp4",),
        clip_sources=("biden.jpg", "Image_with_alpha.png"),
        seed=2702,
        synth_every=4,
    ),
}


def part_of(source: str) -> Part:
    """The part a sample file belongs to (``KeyError`` for a file in neither)."""
    for part, spec in SPLIT.items():
        names = {*spec.stills, *spec.negatives, *spec.clips, *spec.clip_sources,
                 *(v.name for v in spec.videos), *(v.name for v in spec.negative_videos)}
        if source in names:
            return part
    raise KeyError(source)
